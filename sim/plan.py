"""The deterministic path of a scenario: what each April decides, the same for every replicate.

Why a separate, cached path: the population, the footprint, the delegation status, the
allocation round and the expected patients of every year depend only on the scenario and
the reference data, never on a replicate's draws. They are computed once per scenario
(about 30 ms for 20 years of full England), cached by content (`PlanCache`), shared by
every scenario of a run that has the same sections, shipped to Dask workers with the
tasks, and optionally kept on disk. The SimPy calendar (`sim.engine`) then reads a year's
plan each April.

Cache keys hash exactly the scenario sections a result depends on, the bytes of the
packaged data and the source of the modules that compute it:
- the allocation path and the plan: time, population, envelope, allocation, convergence,
  delegation, mergers, `[demand]` (but not `stochastic` or `draw_period`, which only change
  how draws are made), `[cpag]` and the NICE approvals: the formula is calibrated on the
  scenario's own expected demand, new treatments included.

The population is an input of the path (`PopulationInput`, `scenario_population`), so
`sim.attribution` can run a scenario on another population (another scenario's ICB sizes
with this one's age structure) through `plan_of_population`; such plans are not cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sim.allocation import (
    FormulaInputs,
    Round,
    allocation_round,
    carry_state,
    formula_inputs,
    round_dataset,
)
from sim.calibration import data_year, estimate, split_year
from sim.convergence import FloorNotFundable
from sim.delegation import delegation_masks
from sim.demand import DemandModel, build_demand, demographic_exposure
from sim.draws import CostModel
from sim.envelope import development_fund, national_envelope
from sim.errors import ScenarioError
from sim.footprint import Footprint, footprint_year
from sim.gaps import lever_configs
from sim.market_forces import market_forces_index
from sim.need import (
    NeedModel,
    Targets,
    historic_share,
    need_multiplier,
    portfolio_targets,
    service_need,
)
from sim.parameters import DemandSpread, central, uncertain_parameters
from sim.pipeline import Funded, funded_treatments, uplift_path
from sim.population import population_path, population_series
from sim.reference import NEED_GROUPS
from sim.years import financial_year

if TYPE_CHECKING:
    from sim.reference import ReferenceData
    from sim.scenario import AllocationConfig, Scenario

ALLOCATION_SECTIONS = (
    "time",
    "population",
    "envelope",
    "allocation",
    "convergence",
    "delegation",
    "mergers",
    "demand",
    "cpag",
    "nice_approvals",
)
"""The formula is calibrated on the scenario's own expected demand (new treatments
included), so `[demand]`, `[cpag]` and the NICE approvals count."""
RUN_ONLY_DEMAND = ("stochastic", "draw_period")


@dataclass(frozen=True, eq=False)
class YearPlan:
    """What April decides for one financial year (arrays on that year's footprint)."""

    year: int
    footprint: Footprint
    population: np.ndarray
    """(icb23, sex, age) resident population at mid-year, on the 2023 footprint."""
    delegated: np.ndarray
    """(icb, service) bool: services whose budget the ICB holds."""
    round: Round
    patients: np.ndarray | None = None
    """(icb, service) expected patients in the year, before new treatments."""
    cost_index: np.ndarray | None = None
    """(icb, service) area cost index of ordinary cases (market forces)."""
    patients23: np.ndarray | None = None
    """(icb23, service) `patients` on the 2023 footprint (where parameter draws act)."""
    variant_patients23: np.ndarray | None = None
    """(variant, icb23, service) expected patients under each population variant a
    replicate may draw (`[population] demand_variants`; empty when there are none)."""
    lever_targets: np.ndarray | None = None
    """(lever + 1, icb) delegated targets (GBP, float) of the yardstick formula and after
    each lever of `sim.gaps.LEVERS` is moved to the scenario's setting; None: the
    scenario's target at every step (no lever moved)."""


@dataclass(frozen=True, eq=False)
class NewTreatments:
    """The new treatments a scenario funds (`sim.pipeline.funded_treatments`) and the
    utilisation uplift they give each service month by month."""

    funded: tuple[Funded, ...]
    uplift: np.ndarray
    """(month, service) multiplier on expected patients, month 0 = April of the base year."""

    def year_mean(self, year: int, base_year: int) -> np.ndarray:
        """(service,) the uplift averaged over financial year `year` (1 before the horizon)."""
        k = year - base_year
        if k < 0:
            return np.ones(self.uplift.shape[1])
        return self.uplift[12 * k : 12 * k + 12].mean(axis=0)


@dataclass(frozen=True, eq=False)
class PopulationInput:
    """The population an allocation path reads, on the 2023 ICBs (icb23, sex, age)."""

    path: np.ndarray
    """(year, icb23, sex, age) from `time.base_year` to `time.end_year`."""
    before: dict[int, np.ndarray]
    """Years before the base year, which lagged calibration estimates the formula on: the
    scenario's ONS series (every packaged year before the base year)."""

    def at(self, year: int, base_year: int) -> np.ndarray:
        """(icb23, sex, age) in `year`."""
        return self.path[year - base_year] if year >= base_year else self.before[year]


@dataclass(frozen=True, eq=False)
class AllocationPath:
    """What every April decides, and the new treatments the year's rounds fund."""

    years: tuple[YearPlan, ...]
    treatments: NewTreatments


@dataclass(frozen=True, eq=False)
class ScenarioPlan:
    """A scenario's whole deterministic path and what the calendar needs besides."""

    key: str
    years: tuple[YearPlan, ...]
    treatments: NewTreatments
    services: np.ndarray
    group: np.ndarray
    """(service,) index of each service's need group in `sim.reference.NEED_GROUPS`."""
    spread: DemandSpread
    """How each replicate's parameter draws move its demand from the plan's."""
    costs: CostModel
    sex: np.ndarray
    age: np.ndarray


# --- keys ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the source of every module the plan depends on: a code change is a new key."""
    from sim.version import specsim_version

    folder = Path(__file__).parent
    digest = hashlib.sha256(specsim_version().encode())
    for path in sorted(folder.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _key(data: ReferenceData, sections: dict[str, Any], what: str) -> str:
    text = json.dumps(sections, sort_keys=True, default=str)
    raw = f"{what}|{text}|{data.fingerprint}|{code_fingerprint()}"
    return f"{what}-{hashlib.sha256(raw.encode()).hexdigest()[:24]}"


def allocation_key(scenario: Scenario, data: ReferenceData) -> str:
    """Content key of the allocation path: exactly the sections it reads."""
    dumped = scenario.model_dump(mode="json", include=set(ALLOCATION_SECTIONS))
    sections = {
        name: {k: v for k, v in value.items() if k not in _run_only(name)}
        if isinstance(value, dict)
        else value
        for name, value in dumped.items()
    }
    return _key(data, sections, "allocation")


def _run_only(section: str) -> set[str]:
    return set(RUN_ONLY_DEMAND) if section == "demand" else set()


def plan_key(scenario: Scenario, data: ReferenceData) -> str:
    """Content key of the whole plan (the allocation path with expected patients)."""
    return _key(data, {"allocation": allocation_key(scenario, data)}, "plan")


# --- the cache -----------------------------------------------------------------------------


class PlanCache:
    """Content-keyed plans: in memory for a run, optionally on disk across runs.

    On disk each plan is one `.npz` file of plain arrays (never pickles: a cache folder
    is user-writable), written under a temporary name and renamed into place, so
    concurrent runs never read a half-written file; an unreadable file is recomputed.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, Any] = {}

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        if key in self._memory:
            return self._memory[key]
        value = None
        if self.directory is not None and key.startswith("plan-"):
            value = self._read(key)
        if value is None:
            value = compute()
            if self.directory is not None and key.startswith("plan-"):
                self._write(key, value)
        self._memory[key] = value
        return value

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def _write(self, key: str, plan: ScenarioPlan) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        arrays = plan_arrays(plan)
        handle, temporary = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **arrays)
            os.replace(temporary, self._path(key))
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def _read(self, key: str) -> ScenarioPlan | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}  # type: ignore[return-value]
        except (OSError, ValueError, KeyError):
            return None  # damaged: recompute and overwrite


# --- computing a plan ----------------------------------------------------------------------


def _floor_error(year: int, floor: float, detail: str) -> ScenarioError:
    return ScenarioError(
        None,
        "convergence.floor_growth",
        f"{financial_year(year)}: the envelope cannot give every ICB the {floor:.1%} minimum "
        f"growth ({detail}); lower the floor or raise the envelope growth",
    )


def _demand(scenario: Scenario, data: ReferenceData, base_population: np.ndarray):
    """The scenario's calibrated demand model (`sim.demand.build_demand`)."""
    profiles = data.service_profiles
    area_cost = market_forces_index(data.icbs[2023]["region_name"].to_numpy(), data.registered)
    return build_demand(
        scenario.demand,
        data.services,
        profiles.profiles,
        profiles.index,
        data.dataset["imd_score"].values,
        base_population,
        scenario.time.base_year,
        area_cost,
    )


def new_treatments(
    scenario: Scenario,
    pipeline: pd.DataFrame,
    demand: DemandModel,
    populations: np.ndarray,
    envelope: np.ndarray,
) -> NewTreatments:
    """The treatments funded over the horizon and their uplift path. `populations` (year,
    icb23, sex, age) and `envelope` (GBP) are the horizon's, year by year."""
    funds = [development_fund(e, scenario.envelope.development_fund_share) for e in envelope]
    base_year = scenario.time.base_year
    funded = funded_treatments(pipeline, scenario.cpag, scenario.nice_approvals, funds, base_year)
    base_spend = np.stack(
        [
            demand.annual_patients(people, base_year + k).sum(axis=0) * demand.costs.mean
            for k, people in enumerate(populations)
        ]
    )
    ratio = central(scenario.demand.new_treatment_cost)
    return NewTreatments(funded, uplift_path(funded, demand.services, base_spend, ratio))


def scenario_population(
    scenario: Scenario, data: ReferenceData, cache: PlanCache | None = None
) -> PopulationInput:
    """The scenario's own population: its `[population]` path over the horizon and its ONS
    series before the base year (kept in `cache`, shared by every path on it: the
    scenario's, its spend-gap yardstick's, other scenarios' and variant draws)."""
    if cache is not None:
        sections = {
            "time": scenario.time.model_dump(mode="json"),
            "population": scenario.population.model_dump(
                mode="json", exclude={"demand_variants", "demand_variant_weights"}
            ),
        }
        key = _key(data, sections, "population")
        return cache.get(key, lambda: scenario_population(scenario, data))
    time, config = scenario.time, scenario.population
    series = population_series(data.dataset, config.basis, config.variant)
    path = population_path(config, time, data.dataset, series).values
    before = {
        int(year): np.asarray(series.sel(year=year).values)
        for year in series["year"].values
        if year < time.base_year
    }
    return PopulationInput(path, before)


def allocation_path(
    scenario: Scenario,
    data: ReferenceData,
    cache: PlanCache | None = None,
    population: PopulationInput | None = None,
) -> AllocationPath:
    """Population, footprint, delegation and allocation round of every year, and the new
    treatments funded.

    The formula's need sub-models are read off the scenario's own expected demand at each
    year's calibration data year (`sim.calibration`), new treatments funded by then
    included, so the targets and the split of the envelope between delegated and retained
    services follow the demand the model simulates, lagged as the scenario says.
    `population` replaces the scenario's own (`scenario_population`); it is never cached.
    """
    if cache is not None and population is None:
        key = allocation_key(scenario, data)
        people = scenario_population(scenario, data, cache)
        return cache.get(key, lambda: allocation_path(scenario, data, None, people))
    time, config = scenario.time, scenario.allocation
    years = list(range(time.base_year, time.end_year + 1))
    population = population if population is not None else scenario_population(scenario, data)
    people = population.path
    earliest = min([time.base_year, *population.before])
    demand = _demand(scenario, data, people[0])
    envelope = national_envelope(scenario.envelope, time.base_year, [years[0] - 1, *years])
    treatments = new_treatments(scenario, data.pipeline, demand, people, envelope[1:])
    models: dict[int, NeedModel] = {}
    masks: dict[int, np.ndarray] = {}
    inputs: dict[int, Any] = {}
    out: list[YearPlan] = []
    for k, year in enumerate(years):
        name = footprint_year(year, scenario.mergers.enabled, scenario.mergers.year, time.base_year)
        fp = data.footprints[name]
        if name not in masks:
            masks[name] = delegation_masks(scenario.delegation, data.services, fp.table, years)
            inputs[name] = formula_inputs(
                fp, data, config.population_base, scenario.population.basis
            )
        need_year = data_year(year, time.base_year, config, earliest)
        budget_year = split_year(year, config, earliest)
        for d in {need_year, budget_year}:
            if d not in models:
                models[d] = estimate(
                    demand,
                    population.at(d, time.base_year),
                    d,
                    treatments.year_mean(d, time.base_year),
                )
        model = models[need_year]
        split = models[budget_year].budget_share
        last = out[-1] if out else None
        targets, start = _targets(
            config, people[k], fp, model, split, masks[name][k], inputs[name], last
        )
        previous = None if last is None else carry_state(last.round, last.footprint, fp)
        try:
            round_ = allocation_round(
                targets,
                previous,
                start,
                (envelope[k], envelope[k + 1]),
                scenario.envelope.development_fund_share,
                scenario.convergence,
            )
        except FloorNotFundable as error:
            raise _floor_error(year, scenario.convergence.floor_growth, str(error)) from None
        out.append(YearPlan(year, fp, people[k], masks[name][k], round_))
    return AllocationPath(tuple(out), treatments)


def _targets(
    config: AllocationConfig,
    population: np.ndarray,
    fp: Footprint,
    model: NeedModel,
    split: np.ndarray,
    held: np.ndarray,
    inputs: FormulaInputs,
    last: YearPlan | None,
) -> tuple[Targets, np.ndarray | None]:
    """The year's targets on `fp` (need sub-models `model`, services' budget shares
    `split`), and (first year only) the historic starting shares."""
    formula_population = (
        population if inputs.list_inflation is None else (population * inputs.list_inflation)
    )
    heads23 = formula_population.sum(axis=(1, 2))
    start = None
    if last is None:
        start = historic_share(fp.counts(population), inputs.need, inputs.curve)
    if config.formula == "historic":
        rolled = start if last is None else last.round.target_share
        if last is not None and last.footprint is not fp:
            rolled = fp.counts(rolled)
        need = np.broadcast_to(rolled[:, None], (fp.codes.size, model.group.size))
    else:
        need = fp.counts(service_need(config, formula_population, model))
        if config.formula == "needs":
            need = need * need_multiplier(config, inputs.need)[:, None]
    targets = portfolio_targets(
        need, model.group, split, held, fp.counts(heads23), len(NEED_GROUPS)
    )
    return targets, start


def plan_scenario(
    scenario: Scenario, data: ReferenceData, cache: PlanCache | None = None
) -> ScenarioPlan:
    """The scenario's deterministic path with expected patients and costs (cached)."""
    cache = cache if cache is not None else PlanCache()
    key = plan_key(scenario, data)
    value = cache.get(key, lambda: _plan(scenario, data, cache, key))
    if isinstance(value, dict):  # read back from disk as arrays
        value = plan_from_arrays(value, scenario, data, key)
        cache._memory[key] = value
    return value


def plan_of_population(
    scenario: Scenario, data: ReferenceData, population: PopulationInput
) -> ScenarioPlan:
    """The scenario's deterministic path on another population (not cached): the seam
    `sim.attribution` uses to switch population size and age structure as factors."""
    path = allocation_path(scenario, data, None, population)
    return _complete("uncached", scenario, data, path, None, population)


def _plan(scenario: Scenario, data: ReferenceData, cache: PlanCache, key: str) -> ScenarioPlan:
    return _complete(key, scenario, data, allocation_path(scenario, data, cache), cache)


def _complete(
    key: str,
    scenario: Scenario,
    data: ReferenceData,
    path: AllocationPath,
    cache: PlanCache | None,
    population: PopulationInput | None = None,
) -> ScenarioPlan:
    """An allocation path completed with demand, the parameter spread, the variants a
    replicate may draw and the spend-gap levers' targets (on `population` if given)."""
    demand = _demand(scenario, data, path.years[0].population)
    variants = _variant_populations(scenario, data, cache)
    end = path.years[-1].population.sum()
    scale = tuple(float(v[-1].sum() / end) for v in variants)
    plan = with_demand(
        key,
        path,
        demand,
        demand_spread(scenario, data.services, data.dataset["imd_score"].values, demand, scale),
        variants,
        data.dataset["sex"].values,
        data.dataset["age"].values,
    )
    targets = lever_targets(scenario, data, cache, population)
    years = tuple(
        dataclasses.replace(year, lever_targets=t)
        for year, t in zip(plan.years, targets, strict=True)
    )
    return dataclasses.replace(plan, years=years)


def lever_targets(
    scenario: Scenario,
    data: ReferenceData,
    cache: PlanCache | None,
    population: PopulationInput | None = None,
) -> list[np.ndarray]:
    """Per year, (lever + 1, icb) the delegated targets of the yardstick formula and after
    each lever is moved to the scenario's setting (`sim.gaps`): one allocation path per
    lever that differs from the yardstick, shared through the cache."""
    steps: list[list[np.ndarray]] = []
    for config in lever_configs(scenario.allocation):
        if config is None:
            steps.append(steps[-1])
            continue
        moved = scenario.model_copy(update={"allocation": config})
        years = allocation_path(moved, data, cache, population).years
        steps.append([y.round.target_by_group.sum(axis=1) for y in years])
    return [np.stack(per_year) for per_year in zip(*steps, strict=True)]


def _variant_populations(
    scenario: Scenario, data: ReferenceData, cache: PlanCache | None
) -> np.ndarray:
    """(variant, year, icb23, sex, age) the populations of the variants a replicate may draw
    (`[population] demand_variants`, sorted by name), empty if there are none."""
    names = uncertain_parameters(scenario).variants
    paths = []
    for name in names:
        population = scenario.population.model_copy(update={"variant": name})
        drawn = scenario.model_copy(update={"population": population})
        paths.append(scenario_population(drawn, data, cache).path)
    return np.stack(paths) if paths else np.empty((0,))


def demand_spread(
    scenario: Scenario,
    services: pd.DataFrame,
    imd_score: np.ndarray,
    demand: DemandModel,
    variant_scale: tuple[float, ...] = (),
) -> DemandSpread:
    """The arrays a replicate's parameter draws act on (`sim.parameters.DemandSpread`):
    the catalogue's growth rates and need groups, the ICBs' IMD scores, the demand model,
    and each drawable variant's end-year population relative to the budgets' variant."""
    config = scenario.demand
    return DemandSpread(
        parameters=uncertain_parameters(scenario),
        base_year=scenario.time.base_year,
        growth=services["non_demographic_growth"].to_numpy(float),
        imd_score=imd_score,
        weight=demand.base_population.sum(axis=(1, 2)),
        groups=services["need_group"].astype(str).to_numpy(),
        base_exposure=demographic_exposure(
            demand.base_population, demand.profiles, demand.profile_index
        ),
        central={
            f"demand.{name}": central(getattr(config, name))
            for name in ("growth_multiplier", "deprivation_multiplier", "new_treatment_cost")
        },
        variant_scale=variant_scale,
    )


def with_demand(
    key: str,
    path: AllocationPath,
    demand: DemandModel,
    spread: DemandSpread,
    variant_populations: np.ndarray,
    sex: np.ndarray,
    age: np.ndarray,
) -> ScenarioPlan:
    """Complete an allocation path with each year's expected patients and area costs, and
    the patients under each population variant a replicate may draw
    (`variant_populations`: variant, year, icb23, sex, age).

    The 2023-footprint values move onto each year's footprint. Also the seam engine tests
    use to run the calendar on a small synthetic England.
    """
    planned = []
    for k, year in enumerate(path.years):
        patients23 = demand.annual_patients(year.population, year.year)
        variants = np.stack(
            [demand.annual_patients(people[k], year.year) for people in variant_populations]
            or [np.empty((0,) + patients23.shape)]
        ).reshape(-1, *patients23.shape)
        fp = year.footprint
        patients = fp.counts(patients23)
        priced = fp.counts(patients23 * demand.cost_index)
        cost_index = np.divide(priced, patients, out=np.ones_like(priced), where=patients > 0)
        planned.append(
            dataclasses.replace(
                year,
                patients=patients,
                cost_index=cost_index,
                patients23=patients23,
                variant_patients23=variants,
            )
        )
    return ScenarioPlan(
        key=key,
        years=tuple(planned),
        treatments=path.treatments,
        services=demand.services,
        group=demand.group,
        spread=spread,
        costs=demand.costs,
        sex=sex,
        age=age,
    )


# --- plain arrays (disk cache) -------------------------------------------------------------

ROUND_FIELDS = tuple(field.name for field in dataclasses.fields(Round))
YEAR_ARRAYS = (
    "population",
    "delegated",
    "patients",
    "cost_index",
    "patients23",
    "variant_patients23",
    "lever_targets",
)
FUNDED_FIELDS = tuple(field.name for field in dataclasses.fields(Funded))


def plan_arrays(plan: ScenarioPlan) -> dict[str, np.ndarray]:
    """A plan as named plain arrays (years stacked), for `np.savez`."""
    out: dict[str, np.ndarray] = {
        "year": np.array([y.year for y in plan.years]),
        "footprint": np.array([y.footprint.name for y in plan.years]),
    }
    for k, year in enumerate(plan.years):
        for name in YEAR_ARRAYS:
            out[f"{name}_{k}"] = getattr(year, name)
        for name in ROUND_FIELDS:
            out[f"round_{name}_{k}"] = np.asarray(getattr(year.round, name))
    out["uplift"] = plan.treatments.uplift
    out["variant_scale"] = np.array(plan.spread.variant_scale)
    for name in FUNDED_FIELDS:
        out[f"funded_{name}"] = np.array([getattr(f, name) for f in plan.treatments.funded])
    return out


def plan_from_arrays(
    arrays: dict[str, np.ndarray], scenario: Scenario, data: ReferenceData, key: str
) -> ScenarioPlan:
    """The inverse of `plan_arrays` (footprints and catalogue from `data`)."""
    years = []
    for k, (year, name) in enumerate(zip(arrays["year"], arrays["footprint"], strict=True)):
        fields = {f: arrays[f"round_{f}_{k}"] for f in ROUND_FIELDS}
        round_ = Round(**{f: v[()] if v.ndim == 0 else v for f, v in fields.items()})
        years.append(
            YearPlan(
                int(year),
                data.footprints[int(name)],
                round=round_,
                **{field: arrays[f"{field}_{k}"] for field in YEAR_ARRAYS},
            )
        )
    columns = [arrays[f"funded_{name}"].tolist() for name in FUNDED_FIELDS]
    funded = tuple(Funded(*values) for values in zip(*columns, strict=True))
    demand = _demand(scenario, data, years[0].population)
    return ScenarioPlan(
        key=key,
        years=tuple(years),
        treatments=NewTreatments(funded, arrays["uplift"]),
        services=demand.services,
        group=demand.group,
        spread=demand_spread(
            scenario,
            data.services,
            data.dataset["imd_score"].values,
            demand,
            tuple(arrays["variant_scale"].tolist()),
        ),
        costs=demand.costs,
        sex=data.dataset["sex"].values,
        age=data.dataset["age"].values,
    )


# --- a labelled allocation path (goldens, analysts) ----------------------------------------


def allocation_dataset(scenario: Scenario, data: ReferenceData) -> xr.Dataset:
    """The allocation rounds of every year as one Dataset (`allocation_totals` reads it).

    With an ICB merger, the `icb` dimension is the union of both footprints and variables
    are NaN for ICBs that do not exist in a year; `delegated` (year, icb, service) is added.
    """
    years = allocation_path(scenario, data).years
    services = data.services["service_id"].astype(str).to_numpy()
    rounds, statuses = [], []
    for year in years:
        rounds.append(round_dataset(year.round, year.footprint).assign_coords(year=year.year))
        statuses.append(
            xr.DataArray(
                year.delegated,
                dims=("icb", "service"),
                coords={"icb": year.footprint.codes, "service": services},
            )
        )
    out = xr.concat(rounds, dim="year", join="outer", coords="minimal", compat="override")
    delegated = xr.concat(statuses, dim="year", join="outer", fill_value=False)
    out["delegated"] = delegated.assign_coords(year=out["year"]).assign_attrs(
        units="1", long_name="service delegated to the ICB (True) or retained"
    )
    tables = pd.concat([fp.table for fp in {y.footprint for y in years}]).drop_duplicates("icb")
    names = tables.set_index("icb").loc[out["icb"].values]
    return out.assign_coords({c: ("icb", names[c].to_numpy()) for c in ("icb_name", "region_name")})
