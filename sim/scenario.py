"""Scenario schema: the one contract between an analyst's TOML file and the model.

Every section is a strict pydantic model: unknown keys are errors, types are not coerced
("2024" is not a year, 1 is not true), every number has a finite range this machine can
run, NaN and infinity are refused, and names that become file names are checked. Each
model module is handed only the section it reads.

Loading (`load_scenario`) resolves `extends = "other.toml"` overlays and turns every
validation failure into one `ScenarioError` line naming the file that holds the mistake
(the parent or the child) and the dotted field, so an analyst sees
`population.mortality_multiplier: must be >= 0 ...`, never a pydantic dump.

The `[allocation]` need adjustments and the `[settlement]` risk-pool rules and their
parameters come from the registries in `sim.need` and `sim.settlement`.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from sim.errors import ScenarioError, did_you_mean
from sim.need import NEED_ADJUSTMENTS
from sim.settlement import RISK_POOLS

FIRST_DATA_YEAR = 2018
LAST_DATA_YEAR = 2047
"""Years any scenario may name: the 2018-based projection from 2018 (a back-cast), the
2022-based projection to 2047; `sim.checks` holds each year to the chosen projection's coverage."""

MAX_FILE_BYTES = 1_000_000
"""A scenario is a page of settings; anything larger is not one."""
MAX_EXTENDS = 16
"""Longest `extends` chain: deeper chains are a mistake, not a design."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Scenario names become file names (results/<name>.nc): letters, digits, _ and -."""
MAX_ENVELOPE_GBP = 1e12
MAX_GROWTH = 0.5

ProjectionVariant = Literal[
    "principal",
    "high_fertility",
    "low_fertility",
    "high_life_expectancy",
    "low_life_expectancy",
    "high_migration",
    "low_migration",
    "high_population",
    "low_population",
    "young_age_structure",
    "old_age_structure",
]
PROJECTION_VARIANTS: tuple[str, ...] = get_args(ProjectionVariant)


def _printable(text: str) -> str:
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ValueError("must not contain control characters (tabs, newlines, NUL)")
    return text


Label = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
"""A name shown in tables and reports (waves, treatments)."""
Token = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]
"""A service id, group, region or ICB name, checked against the reference data."""
Year = Annotated[int, Field(ge=FIRST_DATA_YEAR, le=LAST_DATA_YEAR)]
Month = Annotated[int, Field(ge=1, le=12)]
Growth = Annotated[float, Field(ge=-MAX_GROWTH, le=MAX_GROWTH)]


@dataclass(frozen=True)
class UncertainRange:
    """The allowed range of a lever that may be written as a number or an 80% interval."""

    lower: float
    upper: float

    def check(self, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and (len(value) != 2 or value[0] > value[1]):
            raise ValueError(f"an 80% interval is [low, high] with low <= high (got {value!r})")
        for v in values:
            if not self.lower <= v <= self.upper:
                raise ValueError(
                    f"must be within {self.lower:g}..{self.upper:g}, as a number or an 80% "
                    f"interval [low, high] (got {value!r})"
                )
        return value


def Uncertain(lower: float, upper: float) -> Any:  # noqa: N802 (a type, read as one)
    """A demand-side lever: a number, or `[low, high]`, an 80% interval (`sim.parameters`)."""
    allowed = UncertainRange(lower, upper)
    return Annotated[float | list[float], allowed, AfterValidator(allowed.check)]


def interval_bounds(model: type[BaseModel], field: str) -> tuple[float, float]:
    """The range an uncertain lever's draws are clipped to."""
    for item in model.model_fields[field].metadata:
        if isinstance(item, UncertainRange):
            return item.lower, item.upper
    raise KeyError(f"{model.__name__}.{field} is not an uncertain lever")


class Section(BaseModel):
    """Base for every scenario section: strict keys and types, finite numbers."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True
    )


class TimeConfig(Section):
    """Financial years simulated; a year is named by its start (2024 = 2024/25)."""

    base_year: Year = 2024
    end_year: Year = 2043

    @model_validator(mode="after")
    def _ordered(self) -> TimeConfig:
        if self.end_year < self.base_year:
            raise ValueError(
                f"end_year ({self.end_year}) must not be before base_year ({self.base_year})"
            )
        return self


class PopulationConfig(Section):
    """How the population ages: follow an ONS variant, or run the cohort-component model.

    `basis` is the ONS projection: 2022 (2022-based, June 2025; variants derived from the
    2018-based ones) or 2018 (2018-based, with its published variants).
    """

    mode: Literal["projection", "cohort"] = "projection"
    basis: Literal[2018, 2022] = 2022
    variant: ProjectionVariant = "principal"
    # Cohort-mode levers, relative to the chosen variant's ONS assumptions (1 / 0 = as ONS).
    # Death probabilities (and infant deaths) times this:
    mortality_multiplier: float = Field(1.0, ge=0.0, le=5.0)
    # Age-specific fertility rates times this:
    fertility_multiplier: float = Field(1.0, ge=0.0, le=5.0)
    # England's net migration times this (0 = natural change only; internal moves remain):
    migration_multiplier: float = Field(1.0, ge=0.0, le=5.0)
    # Extra yearly fall in death rates, compounding: the year after mid-year Y multiplies
    # them by (1 - value) ** (Y - base_year + 1); negative values mean slower improvement.
    extra_mortality_improvement: float = Field(0.0, ge=-0.1, le=0.1)
    # Demand may follow other variants than the budgets: each replicate draws one of
    # `demand_variants` with `demand_variant_weights` (normalised); empty = `variant` for
    # both. Lists, so that a scenario that extends another replaces them whole.
    demand_variants: list[ProjectionVariant] = Field(default_factory=list, max_length=11)
    demand_variant_weights: list[Annotated[float, Field(ge=0.0, le=1e6)]] = Field(
        default_factory=list, max_length=11
    )

    @field_validator("demand_variants")
    @classmethod
    def _demand_variants(cls, names: list[str], info: ValidationInfo) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("each variant at most once")
        variant = info.data.get("variant")
        if names and variant not in names:
            raise ValueError(
                f"must include `variant` ({variant!r}), which the budgets follow, or be [] "
                "so that demand follows it too"
            )
        return names

    @field_validator("demand_variant_weights")
    @classmethod
    def _demand_variant_weights(cls, weights: list[float], info: ValidationInfo) -> list[float]:
        if "demand_variants" not in info.data:  # already reported
            return weights
        names = info.data["demand_variants"]
        if len(weights) != len(names):
            raise ValueError(
                f"one weight per entry of demand_variants ({len(names)}), got {len(weights)}"
            )
        if names and sum(weights) <= 0:
            raise ValueError("at least one weight must be above 0")
        return weights

    @model_validator(mode="after")
    def _levers_need_cohort(self) -> PopulationConfig:
        moved = [
            name
            for name, neutral in (
                ("mortality_multiplier", 1.0),
                ("fertility_multiplier", 1.0),
                ("migration_multiplier", 1.0),
                ("extra_mortality_improvement", 0.0),
            )
            if getattr(self, name) != neutral
        ]
        if self.mode == "projection" and moved:
            raise ValueError(
                f'{", ".join(moved)}: cohort-model levers; set mode = "cohort" to use them'
            )
        return self


class EnvelopeConfig(Section):
    """The national specialised-services budget and how it grows.

    `base_gbp` is the budget of `time.base_year`; year y grows by `growth_by_year[y]`, else
    `growth`. `development_fund_share` of it stays with NHS England for new treatments
    (part of the retained budget). See `sim.envelope.national_envelope`.
    """

    base_gbp: float = Field(26.5e9, gt=0, le=MAX_ENVELOPE_GBP)
    growth: Growth = 0.06
    growth_by_year: dict[Year, Growth] = Field(default_factory=dict, max_length=100)
    development_fund_share: float = Field(0.01, ge=0.0, le=0.5)

    @field_validator("growth_by_year", mode="before")
    @classmethod
    def _year_keys(cls, value: Any) -> Any:
        """TOML table keys are strings: `2030 = 0.05` arrives as {"2030": 0.05}."""
        if isinstance(value, dict):
            return {
                int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in value.items()
            }
        return value


class _AllocationBase(Section):
    """Which formula sets each ICB's target share, how it is calibrated, which adjustments.

    needs: NHS England-style need sub-models per service group (age/sex cost curve from the
    group's services, the group's deprivation response if `deprivation`, area costs if
    `market_forces`), times the switched-on policy adjustments (`sim.need`); age_sex: the
    cost curves only; capitation: heads; historic: the starting shares rolled forward.
    `calibration` (`sim.calibration`): "lagged" re-estimates the sub-models every
    `refresh_years` on data `data_lag_years` old and splits the envelope between services
    on spend `split_lag_years` old; "perfect" both every year on current demand.
    Documented in docs/service_catalogue.md.
    """

    formula: Literal["needs", "age_sex", "capitation", "historic"] = "needs"
    population_base: Literal["resident", "registered"] = "resident"
    calibration: Literal["lagged", "perfect"] = "lagged"
    refresh_years: int = Field(3, ge=1, le=10)
    data_lag_years: int = Field(2, ge=0, le=5)
    split_lag_years: int = Field(1, ge=0, le=5)
    deprivation: bool = True
    market_forces: bool = True


def allocation_model() -> type[_AllocationBase]:
    """`[allocation]`: the base fields plus, for each registered need adjustment, its switch
    `<name>` and, if it has one, its `<name>_weight` (built at import from `sim.need`)."""
    fields: dict[str, Any] = {}
    for adjustment in NEED_ADJUSTMENTS.values():
        fields[adjustment.name] = (bool, adjustment.enabled)
        if adjustment.weight is not None:
            fields[f"{adjustment.name}_weight"] = (float, adjustment.weight)
    return create_model(
        "AllocationConfig",
        __base__=_AllocationBase,
        __doc__=_AllocationBase.__doc__,
        __module__=__name__,
        **fields,
    )


AllocationConfig = allocation_model()


class ConvergenceConfig(Section):
    """Pace of change: how fast actual allocations move from historic spend toward target.

    Every ICB grows at least `floor_growth`; each closes `gap_closure` of its gap to target
    (from a uniform growth solved so the envelope is spent) and sits at most
    `max_below_target` below target. `over_target = "floor"`: ICBs above target get just
    the floor (so the envelope's growth above the floor funds the under-target ICBs);
    "converge": they move toward target by `gap_closure` like the others, and
    gap_closure = 0 is a historic roll-forward. See `sim.convergence.converge`.
    """

    floor_growth: Growth = 0.05
    gap_closure: float = Field(0.25, ge=0.0, le=1.0)
    max_below_target: float = Field(0.05, ge=0.0, le=1.0)
    over_target: Literal["floor", "converge"] = "floor"


class DelegationWave(Section):
    """From April of `year`, the named services pass to the ICBs of the named regions.

    `services`: catalogue service ids or groups (wave_59, wave_70, retained, delegable, all).
    `regions`: NHS region names or codes, or "all"; `icbs` adds single ICBs (E54/ODS code
    or name) to a list of regions (give `regions = []` for ICBs only). Names are checked
    against the catalogue and the ICB list by `sim.checks`.
    """

    name: Label
    year: int = Field(ge=2013, le=LAST_DATA_YEAR)
    regions: Annotated[list[Token], Field(max_length=50)] | Literal["all"] = "all"
    icbs: list[Token] = Field(default_factory=list, max_length=100)
    services: Annotated[list[Token], Field(max_length=500)] | Token = "delegable"

    @model_validator(mode="after")
    def _icbs_need_region_list(self) -> DelegationWave:
        if self.icbs and self.regions == "all":
            raise ValueError("with icbs, give regions as a list (regions = [] for ICBs only)")
        return self


def _published_waves() -> list[DelegationWave]:
    """Published policy (DOMAIN.md): 59 services to three regions in 2024, 70 to all in 2025."""
    return [
        DelegationWave(
            name="first delegation: East of England, Midlands, North West",
            year=2024,
            regions=["East of England", "Midlands", "North West"],
            services="wave_59",
        ),
        DelegationWave(
            name="all ICBs: the 59 plus 11 more", year=2025, services=["wave_59", "wave_70"]
        ),
    ]


class DelegationConfig(Section):
    """Which services are delegated to ICBs, where and when; everything else is retained.

    Default waves are the published ones (joint committees from April 2023 are not
    delegation: NHS England still holds the budget). `also_delegate` joins every wave,
    `also_retain` leaves every wave, `retain_all` delegates nothing.
    """

    retain_all: bool = False
    waves: list[DelegationWave] = Field(default_factory=_published_waves, max_length=50)
    also_delegate: list[Token] = Field(default_factory=list, max_length=500)
    also_retain: list[Token] = Field(default_factory=list, max_length=500)


class DemandConfig(Section):
    """Demand growth and randomness of patients and costs."""

    stochastic: bool = True
    # Multiplier on every service's non-demographic growth; the catalogue's fastest service
    # then grows 3 x its rate a year (checks.py also bounds the cases a replicate draws).
    # This and the other `Uncertain` levers may be an 80% interval [low, high]
    # (sim.parameters).
    growth_multiplier: Uncertain(0.0, 3.0) = 1.0
    demographic_growth: bool = True
    high_cost_cases: bool = True
    # Assumption (docs/demand_model.md): use per head rises with deprivation as
    # (IMD score / England mean) ** elasticity, one elasticity per need group
    # (sim.demand.DEPRIVATION_ELASTICITY); this scales them all, 0 switches the link off.
    deprivation_multiplier: Uncertain(0.0, 3.0) = 1.0
    # Recurrent cost of each new treatment funded (CPAG, NICE) over its planned annual cost.
    new_treatment_cost: Uncertain(0.0, 5.0) = 1.0
    # Log-sd of a national demand shock drawn every year for every replicate (mean 1,
    # common to all ICBs and services, independent across years); 0 = none.
    national_variation: float = Field(0.0, ge=0.0, le=0.2)
    # Expected patients accrue month by month; draws are made for each month ("month") or
    # once for the year's accrued expectation ("year": same distribution of every annual
    # result, since Poisson and gamma sums aggregate exactly, and 12x fewer variates).
    draw_period: Literal["month", "year"] = "year"


class NiceApproval(Section):
    """A NICE-mandated treatment: funded from its date whatever the budget."""

    name: Label
    service: Token
    year: Year
    month: Month = 4
    annual_cost_gbp: float = Field(gt=0, le=1e10)


class CpagConfig(Section):
    """Relative prioritisation rounds funding new treatments from the development fund."""

    enabled: bool = True
    round_months: list[Month] = Field(default_factory=lambda: [5, 11], max_length=12)
    candidates_per_round: int = Field(6, ge=0, le=100)

    @field_validator("round_months")
    @classmethod
    def _distinct(cls, months: list[int]) -> list[int]:
        if len(set(months)) != len(months):
            raise ValueError(f"months must differ (got {months})")
        return months


class _SettlementBase(Section):
    """Year-end settlement: who carries an ICB's over- or underspend (`sim.settlement`)."""

    # Per-patient threshold of the very-high-cost cases a national pool would pay above.
    high_cost_threshold_gbp: float = Field(500_000.0, gt=0, le=1e9)
    # Share of the over- or underspend an ICB carries (after the risk pool) that moves into
    # its next year's delegated budget; 0 = none (each year starts afresh).
    carry_forward_share: float = Field(0.0, ge=0.0, le=1.0)


def settlement_model() -> type[_SettlementBase]:
    """`[settlement]`: `risk_pool` (one of the registered rules) and every rule's parameters
    (built at import from `sim.settlement`)."""
    fields: dict[str, Any] = {"risk_pool": (Literal[tuple(RISK_POOLS)], "none")}
    for pool in RISK_POOLS.values():
        for name, spec in pool.parameters.items():
            fields[name] = (float, spec)
    return create_model(
        "SettlementConfig",
        __base__=_SettlementBase,
        __doc__=_SettlementBase.__doc__,
        __module__=__name__,
        **fields,
    )


SettlementConfig = settlement_model()


class MergerConfig(Section):
    """ICB footprint changes: April 2026 mergers (42 -> 36) when enabled."""

    enabled: bool = False
    year: Year = 2026


MAX_SEED = 2**63 - 1


class RunConfig(Section):
    """Defaults for the command line; `--replications` and `--seed` override them."""

    replications: int = Field(100, ge=1, le=1_000_000)
    seed: int = Field(20240401, ge=0, le=MAX_SEED)


def _scenario_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{_show(name)} is not allowed: 1 to 64 letters, digits, '_' or '-', "
            "starting with a letter or digit (it becomes a file name)"
        )
    return name


class Scenario(Section):
    """A whole scenario, as validated from TOML (after `extends` overlays are merged)."""

    name: Annotated[str, AfterValidator(_scenario_name)]
    description: Annotated[str, Field(max_length=1000), AfterValidator(_printable)] = ""
    time: TimeConfig = Field(default_factory=TimeConfig)
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    envelope: EnvelopeConfig = Field(default_factory=EnvelopeConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)  # type: ignore[valid-type]
    convergence: ConvergenceConfig = Field(default_factory=ConvergenceConfig)
    delegation: DelegationConfig = Field(default_factory=DelegationConfig)
    demand: DemandConfig = Field(default_factory=DemandConfig)
    nice_approvals: list[NiceApproval] = Field(default_factory=list, max_length=500)
    cpag: CpagConfig = Field(default_factory=CpagConfig)
    settlement: SettlementConfig = Field(default_factory=SettlementConfig)  # type: ignore[valid-type]
    mergers: MergerConfig = Field(default_factory=MergerConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    _source_path: Path | None = PrivateAttr(default=None)
    _source_text: str = PrivateAttr(default="")

    @property
    def source_path(self) -> Path | None:
        """The file the scenario was loaded from (None when built from a dict)."""
        return self._source_path

    @property
    def source_text(self) -> str:
        """What was run: the file's text, or every file of an `extends` chain, base first.

        A scenario built in code (`Scenario(...)`) has no text: its validated values, as
        JSON, stand in, so two different such scenarios never share a hash.
        """
        return self._source_text or self.model_dump_json(indent=1)

    @property
    def sha256(self) -> str:
        """Hash of `source_text`, stored with results so a figure can be traced to its inputs."""
        return hashlib.sha256(self.source_text.encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path | None = None) -> Scenario:
        """Validate a plain dict (tests, notebooks) with the same rules and errors as a file.

        `extends` resolves against `path`'s folder (or the working folder); provenance text
        is the canonical JSON of `data` after the parents' text.
        """
        origin = Path(path) if path is not None else Path("<dict>")
        text = "# scenario built from a dict\n" + json.dumps(
            data, sort_keys=True, indent=1, default=str
        )
        layers = _chain(origin, dict(data), text)
        return _validate(layers, origin if path is not None else None)


def load_scenario(path: str | Path) -> Scenario:
    """Read, overlay (`extends`) and validate a scenario TOML file."""
    path = Path(path)
    data, text = _read_toml(path)
    return _validate(_chain(path, data, text), path)


@dataclass(frozen=True)
class ScenarioInfo:
    """One row of `specsim scenarios`: a shipped scenario, or the reason it does not load."""

    name: str
    description: str
    path: Path
    error: str | None = None


def list_scenarios(folder: str | Path = "scenarios") -> list[ScenarioInfo]:
    """Every `*.toml` scenario in `folder`, baseline first, then by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScenarioError(folder, None, "scenario folder not found")
    infos = []
    for path in sorted(folder.glob("*.toml"), key=lambda p: (p.stem != "baseline", p.name)):
        try:
            scenario = load_scenario(path)
        except ScenarioError as err:
            problem = f"{err.field}: {err.message}" if err.field else err.message
            infos.append(ScenarioInfo(path.stem, "", path, error=problem))
        else:
            infos.append(ScenarioInfo(scenario.name, scenario.description, path))
    return infos


# ---- reading and overlaying files -------------------------------------------------------

# A scenario's identity is its own: an overlay that does not name itself is named after its
# file, never after the parent it extends.
_NOT_INHERITED = ("name", "description")


@dataclass(frozen=True)
class _Layer:
    """One file of an `extends` chain: where it is, its table and its text."""

    path: Path
    label: str
    data: dict[str, Any]
    text: str


def _read_text(path: Path) -> str:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ScenarioError(path, None, "is a folder, not a scenario file")
        if not stat.S_ISREG(info.st_mode):
            raise ScenarioError(path, None, "is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ScenarioError(path, None, f"is larger than {MAX_FILE_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(path, None, "file not found") from None
    except PermissionError:
        raise ScenarioError(path, None, "cannot be read (permission denied)") from None
    except UnicodeDecodeError as err:
        raise ScenarioError(path, None, f"is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ScenarioError(path, None, f"cannot be read ({err.strerror or err})") from None
    return text.removeprefix("\ufeff")  # a byte-order mark, as some editors write


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed table and the text it came from (kept verbatim for provenance)."""
    text = _read_text(path)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(path, None, f"not valid TOML: {err}") from None
    except RecursionError:
        raise ScenarioError(path, None, "not usable TOML: values nested too deeply") from None


def _chain(path: Path, data: dict[str, Any], text: str) -> list[_Layer]:
    """The files of the `extends` chain from `path`, base first (cycles and depth checked)."""
    layers = [_Layer(path, path.name, data, text)]
    seen = [path.resolve() if path.exists() else path]
    while True:
        child = layers[0]
        extends = child.data.get("extends")
        if extends is None:
            return layers
        if not isinstance(extends, str) or not extends.strip():
            raise ScenarioError(
                child.path, "extends", f"must be a file name (got {_show(extends)})"
            )
        parent = child.path.parent / extends
        if parent.resolve() in seen:
            loop = " -> ".join(p.name for p in (*seen, parent.resolve()))
            raise ScenarioError(child.path, "extends", f"cycle of extends: {loop}")
        if len(layers) >= MAX_EXTENDS:
            top = layers[-1].path
            raise ScenarioError(top, "extends", f"chain of more than {MAX_EXTENDS} files")
        if not parent.is_file():
            raise ScenarioError(child.path, "extends", f"file not found: {parent}")
        parent_data, parent_text = _read_toml(parent)
        parent_data = {k: v for k, v in parent_data.items() if k not in _NOT_INHERITED}
        layers.insert(0, _Layer(parent, extends, parent_data, parent_text))
        seen.append(parent.resolve())


Origins = dict[tuple[str, ...], tuple[int, Path]]
"""Which file (layer number, path) set each key, as a tuple of keys: errors name that file."""


def _deep_merge(
    base: dict[str, Any],
    over: dict[str, Any],
    origin: tuple[int, Path],
    origins: Origins,
    at: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Tables merge key by key (the child wins); arrays and values are replaced whole."""
    merged = dict(base)
    for key, value in over.items():
        here = (*at, str(key))
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value, origin, origins, here)
        else:
            merged[key] = value
            for stale in [k for k in origins if k[: len(here)] == here]:
                del origins[stale]
            origins[here] = origin
            if isinstance(value, dict):
                _deep_merge({}, value, origin, origins, here)
    return merged


def _validate(layers: list[_Layer], path: Path | None) -> Scenario:
    data: dict[str, Any] = {}
    origins: Origins = {}
    for number, layer in enumerate(layers):
        body = {k: v for k, v in layer.data.items() if k != "extends"}
        data = _deep_merge(data, body, (number, layer.path), origins)
    if path is not None:
        data.setdefault("name", path.stem)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise _translate(err, path, origins) from None
    except RecursionError:
        raise ScenarioError(path, None, "values nested too deeply") from None
    if len(layers) == 1:
        text = layers[0].text
    else:
        text = "".join(f"# ===== {x.label} =====\n{x.text.rstrip()}\n" for x in layers)
    scenario._source_path = path
    scenario._source_text = text
    return scenario


# ---- turning pydantic errors into one line for an analyst --------------------------------

_UNIONS = (typing.Union, types.UnionType)
_WHAT = {"variant": "projection variant"}


def _translate(err: ValidationError, path: Path | None, origins: Origins) -> ScenarioError:
    """The first problem as `ScenarioError(file, dotted.field, message)`, counting the rest.

    The file is the one that set the offending key (a parent or the child). Union-typed
    fields report one error per member; those are grouped back into one.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    # A misspelt key also makes the real one "missing": report the misspelling first.
    errors = sorted(err.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    for error in errors:
        dotted = _locate(error["loc"])[0]
        if error["type"] == "extra_forbidden":
            dotted = f"{dotted}.{error['loc'][-1]}" if dotted else str(error["loc"][-1])
        groups.setdefault(dotted, []).append(error)
    field, errors = next(iter(groups.items()))
    message = _message(errors)
    if len(groups) > 1:
        more = len(groups) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ScenarioError(_file_of(errors[0]["loc"], path, origins), field or None, message)


def _file_of(loc: tuple[int | str, ...], path: Path | None, origins: Origins) -> Path | None:
    """The file holding the mistake at `loc`: the last file that set a key at or under it,
    else the one that set its nearest enclosing key (an array is set whole), else the
    scenario's own file. Scenarios built from a dict have no file."""
    if path is None:
        return None
    keys = tuple(str(k) for k in loc)
    for end in range(len(keys), 0, -1):
        prefix = keys[:end]
        found = [origin for key, origin in origins.items() if key[:end] == prefix]
        if found:
            return max(found, key=lambda origin: origin[0])[1]
    return path


def _locate(loc: tuple[int | str, ...]) -> tuple[str, Any, FieldInfo | None]:
    """Dotted TOML path of an error location, the type found there and the last field.

    Pydantic adds union-member tags (`list[str]`, `literal['all']`) to locations; they are
    not keys in the file, so anything that is not a field, index or table key is skipped.
    """
    dotted, field = "", None
    tp: Any = Scenario
    for item in loc:
        if isinstance(item, int) and _element(tp, dict) is None:
            dotted += f"[{item}]"
            tp = _element(tp, list)
            continue
        found = _model_in(tp)
        if found is not None and item in found.model_fields:
            field = found.model_fields[item]
            tp = field.annotation
        elif _element(tp, dict) is not None and item != "[key]":
            tp = _element(tp, dict)
        else:
            continue
        dotted = f"{dotted}.{item}" if dotted else str(item)
    return dotted, tp, field


def _members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return typing.get_args(tp) if typing.get_origin(tp) in _UNIONS else (tp,)


def _model_in(tp: Any) -> type[BaseModel] | None:
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _element(tp: Any, container: type) -> Any:
    """The element (list) or value (dict) type of `tp` or of its matching union member."""
    for member in _members(tp):
        if typing.get_origin(member) is container:
            return typing.get_args(member)[-1]
    return None


def _message(errors: list[dict[str, Any]]) -> str:
    error = errors[0]
    kind, got = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(error)
    if kind == "missing":
        return "required key is missing"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return _out_of_range(error)
    if kind == "finite_number":
        return f"must be a finite number (got {_show(got)})"
    if kind == "literal_error" and len(errors) == 1:
        return _unknown_choice(error)
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("too_long", "too_short"):
        return _length(error)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a table of keys (got {_show(got)})"
    wanted = list(dict.fromkeys(_should(e["msg"]) for e in errors))
    return f"must be {' or '.join(wanted)} (got {_show(got)})"


def _should(msg: str) -> str:
    return msg.removeprefix("Input should be ").removeprefix("Value should be ")


def _length(error: dict[str, Any]) -> str:
    ctx = error.get("ctx", {})
    kind = "at most" if error["type"] == "too_long" else "at least"
    limit = ctx.get("max_length", ctx.get("min_length"))
    unit = "characters" if isinstance(error.get("input"), str) else "items"
    return f"must have {kind} {limit} {unit} (got {ctx.get('actual_length', '?')})"


def _unknown_key(error: dict[str, Any]) -> str:
    key = str(error["loc"][-1])
    holder = _model_in(_locate(error["loc"][:-1])[1])
    allowed = list(holder.model_fields) if holder is not None else []
    return (
        f"unknown key {_show(key)}{did_you_mean(key, allowed)}; allowed keys: {', '.join(allowed)}"
    )


def _unknown_choice(error: dict[str, Any]) -> str:
    _, _, field = _locate(error["loc"])
    allowed = [str(a) for a in _literal_values(field.annotation)] if field else []
    got = error.get("input")
    what = _WHAT.get(str(error["loc"][-1]), "value")
    if not allowed:
        return f"unknown {what} {_show(got)}; allowed: {error['ctx']['expected']}"
    hint = did_you_mean(str(got), allowed)
    return f"unknown {what} {_show(got)}{hint}; allowed: {', '.join(allowed)}"


def _literal_values(tp: Any) -> list[Any]:
    values: list[Any] = []
    for member in _members(tp):
        if typing.get_origin(member) is Literal:
            values.extend(typing.get_args(member))
    return values


def _out_of_range(error: dict[str, Any]) -> str:
    """State the whole allowed range from the field's constraints, not only the bound hit."""
    ops = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    hit = {ops[k]: v for k, v in error.get("ctx", {}).items() if k in ops}
    declared = _declared_bounds(error["loc"])
    bounds = declared if hit.items() <= declared.items() else hit
    rule = " and ".join(f"{op} {_number(v)}" for op, v in bounds.items())
    message = f"must be {rule} (got {_show(error.get('input'))})"
    last = str(error["loc"][-1])
    if last.endswith("year") or last == "[key]":
        message += f"; the reference data covers {FIRST_DATA_YEAR}..{LAST_DATA_YEAR}"
    return message


def _declared_bounds(loc: tuple[int | str, ...]) -> dict[str, Any]:
    """The range a field (or a list item's type) declares, as {">=": 0, "<=": 5}."""
    _, tp, field = _locate(loc)
    if typing.get_origin(tp) is Annotated:
        metadata = [m for extra in typing.get_args(tp)[1:] for m in getattr(extra, "metadata", [])]
    else:
        metadata = list(field.metadata) if field is not None else []
    bounds = {}
    for constraint in metadata:
        for op, attr in ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt")):
            if isinstance(constraint, getattr(annotated_types, attr.capitalize())):
                bounds[op] = getattr(constraint, attr)
    return bounds


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return "<a value nested too deeply to show>"
    return text if len(text) <= 60 else text[:57] + "..."
