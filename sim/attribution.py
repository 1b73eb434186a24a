"""Attribution: why each ICB's money differs between two scenarios, split into named factors.

`explain(a, b)` (= `sim.explain`, and `specsim explain A.nc B.nc`) splits the change from
scenario A to scenario B in each ICB's `allocation`, `target_allocation` and delegated
`expected_spend`, year by year, into the factors of `FACTORS`. A factor is a set of inputs
switched from A's value to B's: scenario sections and fields (`FIELD_FACTORS`), and, for
the population, the ICB sizes (`population_size`: B's people per ICB and year with A's
age/sex mix) and the age/sex mix (`age_sex_structure`). Every evaluation is the
deterministic path (`sim.plan.plan_of_population` + `sim.simulate.deterministic_of_plan`,
tens of milliseconds), so the split is exact and needs no replicates.

Why Shapley by default: the effect of switching a factor depends on which others are
switched already (faster convergence moves more money when targets move too), so any one
order of switching favours some factors. The Shapley value averages a factor's effect over
every order (2^k evaluations for the k factors that differ, each evaluated once): it does
not depend on how factors are listed, it adds up to the total, and explaining B against A
gives exactly minus A against B. `method="one-at-a-time"` gives each factor's effect
switched alone from A (k + 2 evaluations) and names the rest `interaction`; under Shapley
the interaction is shared out and its row is zero.

Exact to the pound: A's and B's values are taken in whole pounds (allocations are whole
pounds already; expected spend, and money carried onto a merged footprint, are rounded
with the largest remainder so each year's England total is the rounded total), and each
ICB's factors are rounded so that they add up exactly to its change (`split_pounds`).

A field on which A and B differ that no factor covers (`[time]`, or a `[demand]` field
such as `high_cost_cases`) is refused with one line, never hidden; fields the
deterministic path does not read (`[settlement]`, `[run]`, names, how draws are made)
change none of the three measures and are listed as such. See docs/explain.md.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sim.allocation import largest_remainder
from sim.atomic import atomic_path
from sim.errors import DataError, ScenarioError, SpecsimError, did_you_mean
from sim.plan import (
    ALLOCATION_SECTIONS,
    RUN_ONLY_DEMAND,
    PlanCache,
    PopulationInput,
    plan_of_population,
    plan_scenario,
    scenario_population,
)
from sim.scenario import Scenario
from sim.years import financial_year as fy

if TYPE_CHECKING:
    from sim.reference import ReferenceData

FACTORS = (
    "population_size",
    "age_sex_structure",
    "need_adjustments",
    "convergence",
    "delegation",
    "envelope_growth",
    "non_demographic_growth",
    "new_treatments",
    "mergers",
    "interaction",
)
MEASURES = ("allocation", "target_allocation", "expected_spend")
METHODS = ("shapley", "one-at-a-time")
ENGLAND = ("E92000001", "England")
"""The code and name of England's rows in tables (ONS country code)."""
CSV_NAME = "attribution.csv"
CSV_COLUMNS = ["icb", "icb_name", "measure", "factor", "value_gbp"]

FIELD_FACTORS = {
    "allocation": "need_adjustments",
    "demand.deprivation_multiplier": "need_adjustments",
    "convergence": "convergence",
    "delegation": "delegation",
    "envelope": "envelope_growth",
    "demand.growth_multiplier": "non_demographic_growth",
    "cpag": "new_treatments",
    "nice_approvals": "new_treatments",
    "mergers": "mergers",
}
"""The factor of each scenario section (or `section.field`). `need_adjustments` is the
whole target formula: which formula, its population base, deprivation, market forces, the
policy adjustments and their weights, and its calibration (refresh and lags), plus the
deprivation gradient of need (`[demand] deprivation_multiplier`, which the formula is
calibrated on). `[envelope]` includes the development fund share. `[population]` is
split through the population itself (`population_size`, `age_sex_structure`)."""
POPULATION_FACTORS = ("population_size", "age_sex_structure")
IDENTITY = ("name", "description")
"""What a scenario is called: never an input, never listed as a difference."""
SAME_RELATIVE = 1e-12
"""Population sizes or age/sex shares closer than this (relative) are the same: a pure
rescaling of ICBs leaves the shares equal up to rounding of the division."""


def unread_fields() -> tuple[str, ...]:
    """Sections and fields the deterministic path does not read (`sim.plan`), so they
    change no measure here: names, `[settlement]`, `[run]`, how draws are made."""
    outside = tuple(name for name in Scenario.model_fields if name not in ALLOCATION_SECTIONS)
    return (*outside, *(f"demand.{field}" for field in RUN_ONLY_DEMAND))


# --- the pure arithmetic -------------------------------------------------------------------


def shapley(values: Callable[[int], np.ndarray], k: int) -> np.ndarray:
    """(..., k) Shapley values of k factors from `values(S)`, the outcome with the factors
    in bitmask S switched: each factor's marginal effect averaged over every order."""
    out = None
    for f in range(k):
        bit = 1 << f
        for subset in range(1 << k):
            if subset & bit:
                continue
            size = subset.bit_count()
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            step = weight * (values(subset | bit) - values(subset))
            if out is None:
                out = np.zeros((*step.shape, k))
            out[..., f] += step
    return np.zeros((*values(0).shape, 0)) if out is None else out


def one_at_a_time(values: Callable[[int], np.ndarray], k: int) -> np.ndarray:
    """(..., k + 1): each factor switched alone from A, then the interaction (the total
    minus their sum)."""
    none, every = values(0), values((1 << k) - 1)
    alone = [values(1 << f) - none for f in range(k)]
    interaction = (every - none) - sum(alone, np.zeros_like(none))
    return np.stack([*alone, interaction], axis=-1)


def split_pounds(values: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Whole pounds along the last axis adding up exactly to `total` (whole pounds), each
    within a pound of its value when the values add up to about the total (signed
    largest remainder: floors, then the shortfall to the largest fractional parts)."""
    k = values.shape[-1]
    total = np.asarray(total, np.int64)
    if k == 0:
        if np.any(total != 0):
            raise ValueError("a non-zero total cannot be split over no factors")
        return np.zeros(values.shape, np.int64)
    floors = np.floor(values)
    short = total - floors.sum(axis=-1).astype(np.int64)
    whole, extra = np.divmod(short, k)
    rank = np.argsort(np.argsort(floors - values, axis=-1, kind="stable"), axis=-1)
    return floors.astype(np.int64) + whole[..., None] + (rank < extra[..., None])


def whole_pounds(values: np.ndarray) -> np.ndarray:
    """(..., icb) money (>= 0) in whole pounds: rows already whole as they are, others
    rounded so that they add up to their rounded total (largest remainder)."""
    rows = values.reshape(-1, values.shape[-1])
    out = [
        np.rint(row).astype(np.int64)
        if np.array_equal(row, np.rint(row))
        else largest_remainder(row, int(np.rint(row.sum())))
        for row in rows
    ]
    return np.stack(out).reshape(values.shape)


# --- what differs, and the scenario of a mix of A and B -----------------------------------


def differences(a: Scenario, b: Scenario) -> dict[str, list[str]]:
    """Dotted fields on which A and B differ, by factor (`population` for `[population]`,
    `unread` for fields no measure reads). Raises SpecsimError for a difference no factor
    covers."""
    da, db = a.model_dump(), b.model_dump()
    unread = unread_fields()
    out: dict[str, list[str]] = {}
    for key in (k for k in Scenario.model_fields if k not in IDENTITY):
        for dotted in _changed(da[key], db[key], key):
            section, _, rest = dotted.partition(".")
            field = f"{section}.{rest.split('.')[0]}"
            holder = next((k for k in (field, section) if k in FIELD_FACTORS or k in unread), None)
            if section == "time":
                raise SpecsimError(
                    f"explain: {a.name} and {b.name} simulate different years ({dotted}: "
                    f"{_show(da, dotted)} vs {_show(db, dotted)}); give both the same [time]"
                )
            if section == "population":
                factor = "population"
            elif holder in unread:
                factor = "unread"
            elif holder is not None:
                factor = FIELD_FACTORS[holder]
            else:
                raise SpecsimError(
                    f"explain: {a.name} and {b.name} differ in {dotted}, which is not one of "
                    "the named factors (docs/explain.md lists what each covers); give both "
                    "the same value"
                )
            out.setdefault(factor, []).append(dotted)
    return out


def _changed(x: Any, y: Any, at: str) -> list[str]:
    """Dotted paths of the leaves where x and y differ (lists compared whole)."""
    if x == y:
        return []
    if isinstance(x, dict) and isinstance(y, dict):
        keys = list(dict.fromkeys([*x, *y]))
        return [p for k in keys for p in _changed(x.get(k), y.get(k), f"{at}.{k}")]
    return [at]


def _show(dump: dict[str, Any], dotted: str) -> str:
    value: Any = dump
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return repr(value)


def mixed_scenario(a: Scenario, b: Scenario, switched: Iterable[str]) -> Scenario:
    """A with the sections and fields of the `switched` factors taken from B (and B's
    `[population]` when both population factors are switched)."""
    switched = set(switched)
    out, db = a.model_dump(), b.model_dump()
    for key, factor in FIELD_FACTORS.items():
        if factor in switched:
            section, _, field = key.partition(".")
            if field:
                out[section][field] = copy.deepcopy(db[section][field])
            else:
                out[section] = copy.deepcopy(db[section])
    if switched.issuperset(POPULATION_FACTORS):
        out["population"] = copy.deepcopy(db["population"])
    return Scenario.model_validate(out)


def _sizes(population: np.ndarray) -> np.ndarray:
    return population.sum(axis=(-2, -1), keepdims=True)


def _structure(population: np.ndarray) -> np.ndarray:
    size = _sizes(population)
    return np.divide(population, size, out=np.zeros_like(population), where=size > 0)


def _arrays(population: PopulationInput) -> list[np.ndarray]:
    return [population.path, *(population.before[y] for y in sorted(population.before))]


def population_differences(a: PopulationInput, b: PopulationInput) -> tuple[str, ...]:
    """Which population factors differ: the people per ICB and year, the age/sex shares."""
    if sorted(a.before) != sorted(b.before) or a.path.shape != b.path.shape:
        raise SpecsimError("explain: the two populations cover different years")
    pairs = list(zip(_arrays(a), _arrays(b), strict=True))
    out = []
    for factor, measure in zip(POPULATION_FACTORS, (_sizes, _structure), strict=True):
        if any(
            not np.allclose(measure(x), measure(y), rtol=SAME_RELATIVE, atol=0) for x, y in pairs
        ):
            out.append(factor)
    return tuple(out)


def mixed_population(
    a: PopulationInput, b: PopulationInput, size_b: bool, structure_b: bool
) -> PopulationInput:
    """The population with the ICB sizes of one side and the age/sex mix of the other:
    sizes x shares, year by year (a side's own population when both come from it)."""
    if size_b == structure_b:
        return b if size_b else a
    sizes, shares = (b, a) if size_b else (a, b)

    def mix(size: np.ndarray, share: np.ndarray) -> np.ndarray:
        return _structure(share) * _sizes(size)

    before = {y: mix(sizes.before[y], shares.before[y]) for y in sizes.before}
    return PopulationInput(mix(sizes.path, shares.path), before)


# --- the explanation -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Side:
    """One side of an explanation: a scenario, the population it runs on, and for a
    results file the file's values, which the rebuilt path must reproduce."""

    scenario: Scenario
    population: PopulationInput | None = None
    """None: the scenario's own (`sim.plan.scenario_population`)."""
    recorded: xr.Dataset | None = None
    where: str | None = None
    """The results file (for messages), when the side comes from one."""

    @property
    def name(self) -> str:
        return self.scenario.name

    def people(self, data: ReferenceData) -> PopulationInput:
        if self.population is not None:
            return self.population
        return scenario_population(self.scenario, data)


@dataclass(frozen=True, eq=False)
class Explanation:
    """The split of B - A into factors. `dataset` holds `attribution` (measure, factor,
    year, icb) and `level` (side = a, b; measure, year, icb), both int64 GBP, with ICB
    names and regions and `switched` (factor: the factors that differ, and `interaction`
    one at a time); its attrs name the scenarios, the method and the fields behind each
    factor (`fields`, JSON)."""

    dataset: xr.Dataset

    @property
    def names(self) -> tuple[str, str]:
        return str(self.dataset.attrs["scenario_a"]), str(self.dataset.attrs["scenario_b"])

    @property
    def method(self) -> str:
        return str(self.dataset.attrs["method"])

    @property
    def switched(self) -> tuple[str, ...]:
        """The factors that differ between A and B (and `interaction` one at a time)."""
        ds = self.dataset
        return tuple(str(f) for f in ds["factor"].values[ds["switched"].values])

    @property
    def fields(self) -> dict[str, list[str]]:
        """The scenario fields behind each factor (and `unread`: fields no measure reads)."""
        return json.loads(self.dataset.attrs["fields"])

    @property
    def years(self) -> list[int]:
        return [int(y) for y in self.dataset["year"].values]

    def year(self, year: int | None = None) -> int:
        """`year` checked against the years explained (default: the last)."""
        if year is None:
            return self.years[-1]
        if year not in self.years:
            raise SpecsimError(
                f"--year {year}: the scenarios cover {self.years[0]}..{self.years[-1]}"
            )
        return year

    def total(self) -> xr.DataArray:
        """(measure, year, icb) B - A in whole pounds (the sum of the factors)."""
        level = self.dataset["level"]
        return level.sel(side="b", drop=True) - level.sel(side="a", drop=True)

    def largest_change_year(self) -> int:
        """The year in which B moves most allocation between ICBs relative to A."""
        moved = abs(self.total().sel(measure="allocation")).sum("icb")
        return int(moved["year"].values[int(moved.argmax("year"))])

    def icbs(self, wanted: Sequence[str]) -> list[str]:
        """E54 codes of the ICBs named by code, ODS code or name (case-insensitive)."""
        ds = self.dataset
        table = pd.DataFrame({c: ds[c].values for c in ("icb", "icb_ods", "icb_name")})
        return resolve_icbs(wanted, table)

    def biggest(self, n: int, year: int | None = None) -> list[str]:
        """The n ICBs whose allocation changes most (absolute pounds) in `year`."""
        change = abs(self.total().sel(measure="allocation", year=self.year(year)))
        order = np.argsort(-change.values, kind="stable")
        return [str(c) for c in change["icb"].values[order[:n]] if change.sel(icb=c) > 0]

    def table(self, year: int | None = None) -> pd.DataFrame:
        """The long table of one year: `icb, icb_name, measure, factor, value_gbp`, England
        first (its rows are the sums of the ICBs'), then the ICBs by code."""
        one = self.dataset["attribution"].sel(year=self.year(year))
        one = one.transpose("icb", "measure", "factor").values
        values = np.concatenate([one.sum(axis=0, keepdims=True), one])
        codes = [ENGLAND[0], *map(str, self.dataset["icb"].values)]
        names = [ENGLAND[1], *map(str, self.dataset["icb_name"].values)]
        cells = len(MEASURES) * len(FACTORS)
        return pd.DataFrame(
            {
                "icb": np.repeat(codes, cells),
                "icb_name": np.repeat(names, cells),
                "measure": np.tile(np.repeat(MEASURES, len(FACTORS)), len(codes)),
                "factor": np.tile(FACTORS, len(MEASURES) * len(codes)),
                "value_gbp": values.ravel().astype(np.int64),
            }
        )

    def summary(self, year: int | None = None, icbs: Sequence[str] = ()) -> pd.DataFrame:
        """Wide view of one year for England and the given ICBs (E54 codes): per measure A,
        B, the change and each factor that differs, in pounds."""
        year = self.year(year)
        ds = self.dataset.sel(year=year)
        a, b = self.names
        rows = []
        for code in [None, *icbs]:
            part = ds.sum("icb") if code is None else ds.sel(icb=code)
            area = ENGLAND[1] if code is None else _short(str(ds["icb_name"].sel(icb=code).values))
            for measure in MEASURES:
                level = part["level"].sel(measure=measure)
                row = {"area": area, "measure": measure, a + " (A)": int(level.sel(side="a")),
                       b + " (B)": int(level.sel(side="b"))}  # fmt: skip
                row["change"] = row[b + " (B)"] - row[a + " (A)"]
                for factor in self.switched:
                    row[factor] = int(part["attribution"].sel(measure=measure, factor=factor))
                rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, directory: str | Path, year: int | None = None) -> list[Path]:
        """Write `attribution.csv` (the long table of `year`) and `attribution_notes.txt`
        (scenarios, year, method, fields per factor) into `directory`, atomically."""
        directory = Path(directory)
        year = self.year(year)
        table = self.table(year)
        path, notes = directory / CSV_NAME, directory / "attribution_notes.txt"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        with atomic_path(notes) as tmp:
            Path(tmp).write_text("\n".join(self.notes(year)) + "\n", encoding="utf-8")
        return [path, notes]

    def notes(self, year: int | None = None) -> list[str]:
        """What the numbers are, in sentences (for the CSV notes and the report)."""
        a, b = self.names
        year = self.year(year)
        ds = self.dataset
        lines = [
            f"Attribution of {b} (B) minus {a} (A), financial year {fy(year)}.",
            f"Method: {self.method}"
            + (
                " (Shapley: each factor's effect averaged over every order of switching; "
                "interaction is shared out, so its rows are 0)."
                if self.method == "shapley"
                else " (each factor switched alone from A; interaction = total - their sum)."
            )
            + " Values are whole pounds; for every ICB and measure the factors add up "
            "exactly to B - A, and England's rows are the sums of the ICBs'.",  # fmt: skip
            "Measures: allocation (delegated allocation), target_allocation (needs-based "
            "target for the delegated services), expected_spend (expected delegated spend, "
            "rounded to whole pounds before splitting).",
        ]
        for factor, fields in self.fields.items():
            label = {"population": "population_size / age_sex_structure",
                     "unread": "no effect on these measures"}.get(factor, factor)  # fmt: skip
            lines.append(f"{label}: {', '.join(fields)}")
        if not self.switched:
            lines.append("The scenarios do not differ in anything these measures read.")
        for label, name, key in (("A", a, "sha256_a"), ("B", b, "sha256_b")):
            sha = ds.attrs.get(key, "")
            lines.append(f"{label}: {name}" + (f", scenario sha256 {sha}" if sha else ""))
        return lines


def resolve_icbs(wanted: Sequence[str], table: pd.DataFrame) -> list[str]:
    """E54 codes of ICBs named by E54 code, ODS code, full or short name (any case), from
    a table with columns `icb, icb_ods, icb_name`; SpecsimError for a name not in it."""
    lookup: dict[str, str] = {}
    for row in table.itertuples(index=False):
        for label in (row.icb, row.icb_ods, row.icb_name, _short(str(row.icb_name))):
            lookup[str(label).lower()] = str(row.icb)
    out = []
    for item in wanted:
        code = lookup.get(item.strip().lower())
        if code is None:
            raise SpecsimError(
                f"--icb {item}: no such ICB{did_you_mean(item.lower(), lookup)}; give an E54 "
                "code, an ODS code or a name"
            )
        out.append(code)
    return list(dict.fromkeys(out))


def _short(name: str) -> str:
    from sim.accessor import short_icb_name

    return short_icb_name(name)


# --- computing it --------------------------------------------------------------------------


def _measures(ds: xr.Dataset) -> np.ndarray:
    """(measure, year, icb) float: allocation, target, delegated expected spend."""
    spend = ds["expected_spend"].sel(portfolio="delegated", drop=True)
    arrays = [ds["allocation"], ds["target_allocation"], spend]
    return np.stack([da.transpose("year", "icb").values.astype(float) for da in arrays])


class _Evaluator:
    """The deterministic measures of mixes of A and B, each computed once, carried onto
    the footprint B's and A's results end on (the merged one if either merges)."""

    def __init__(
        self,
        a: Side,
        b: Side,
        people: tuple[PopulationInput, PopulationInput],
        order: Sequence[str],
        data: ReferenceData,
    ) -> None:
        self.a, self.b, self.people, self.order, self.data = a, b, people, tuple(order), data
        self.memo: dict[int, np.ndarray] = {}
        self.footprint: Any = None

    def own(self, side: Side, cache: PlanCache) -> xr.Dataset:
        """The side's own deterministic path (its cached plan, unless it runs on another
        population)."""
        from sim.simulate import deterministic_of_plan

        if side.population is None:
            plan = plan_scenario(side.scenario, self.data, cache)
        else:
            plan = plan_of_population(side.scenario, self.data, side.population)
        return deterministic_of_plan(side.scenario, plan)

    def seed(self, subset: int, ds: xr.Dataset) -> None:
        """Take a side's own path for `subset` when the mix reads exactly what the side
        reads: the same plan key (a hash of everything the plan reads) and the very same
        population. Otherwise the mix is evaluated and must match (`_check_corners`)."""
        from sim.plan import allocation_key

        switched = self._switched(subset)
        side = self.b if subset else self.a
        population = self._population(switched)
        scenario = mixed_scenario(self.a.scenario, self.b.scenario, switched)
        same = allocation_key(scenario, self.data) == allocation_key(side.scenario, self.data)
        if same and population is self.people[1 if subset else 0]:
            self.memo[subset] = self.carry(ds)

    def _switched(self, subset: int) -> set[str]:
        return {f for k, f in enumerate(self.order) if subset >> k & 1}

    def _population(self, switched: set[str]) -> PopulationInput:
        size, structure = ("population_size" in switched, "age_sex_structure" in switched)
        return mixed_population(*self.people, size, structure)

    def carry(self, ds: xr.Dataset) -> np.ndarray:
        values = _measures(ds)
        if ds.sizes["icb"] == self.footprint.codes.size:
            return values
        return self.footprint.counts(values, axis=2)

    def __call__(self, subset: int) -> np.ndarray:
        if subset not in self.memo:
            from sim.simulate import deterministic_of_plan

            switched = self._switched(subset)
            scenario = mixed_scenario(self.a.scenario, self.b.scenario, switched)
            population = self._population(switched)
            try:
                plan = plan_of_population(scenario, self.data, population)
            except ScenarioError as err:
                raise SpecsimError(
                    f"explain: these factors cannot be separated: {self.a.name} with "
                    f"{', '.join(sorted(switched))} from {self.b.name} is not a valid "
                    f"allocation ({err.field}: {err.message})"
                ) from None
            self.memo[subset] = self.carry(deterministic_of_plan(scenario, plan))
        return self.memo[subset]


def attribute(
    a: Side,
    b: Side,
    data: ReferenceData,
    method: str = "shapley",
    progress: bool = False,
    cache: PlanCache | None = None,
) -> Explanation:
    """Split B - A into the factors (see the module docstring); `progress` shows a bar."""
    if method not in METHODS:
        raise SpecsimError(f"--method {method}: unknown method; allowed: {', '.join(METHODS)}")
    cache = cache if cache is not None else PlanCache()
    fields = differences(a.scenario, b.scenario)
    people = (a.people(data), b.people(data))
    differing = set(population_differences(*people)) | {f for f in fields if f in FACTORS}
    order = [f for f in FACTORS if f in differing]
    evaluate = _Evaluator(a, b, people, order, data)
    own = {"a": evaluate.own(a, cache), "b": evaluate.own(b, cache)}
    for side, ds in zip((a, b), own.values(), strict=True):
        _check_recorded(side, ds)
    merged = data.footprints[2026]
    on_merged = [ds for ds in own.values() if ds.sizes["icb"] == merged.codes.size]
    final = on_merged[0] if on_merged else own["a"]
    evaluate.footprint = merged if on_merged else data.footprints[2023]
    levels = np.stack([whole_pounds(evaluate.carry(ds)) for ds in own.values()])
    k = len(order)
    evaluate.seed(0, own["a"])
    evaluate.seed((1 << k) - 1, own["b"])
    subsets = (1 << k) if method == "shapley" else k + 2
    with _progress(progress, subsets) as step:
        values = _counting(evaluate, step)
        _check_corners(values, own, evaluate, a, b, k)
        split = shapley(values, k) if method == "shapley" else one_at_a_time(values, k)
    columns = order if method == "shapley" else [*order, "interaction"]
    pounds = split_pounds(split, levels[1] - levels[0]) if k else split.astype(np.int64)
    full = np.zeros((*levels.shape[1:], len(FACTORS)), np.int64)
    for j, factor in enumerate(columns):
        full[..., FACTORS.index(factor)] = pounds[..., j]
    return Explanation(_dataset(full, levels, final, a, b, method, columns, fields))


def _counting(evaluate: _Evaluator, step: Callable[[], None]) -> Callable[[int], np.ndarray]:
    def values(subset: int) -> np.ndarray:
        if subset not in evaluate.memo:
            step()
        return evaluate(subset)

    return values


@contextmanager
def _progress(show: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over the evaluations (when asked, and not for a quick split)."""
    if not show or total <= 8:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("explaining: deterministic paths", total=total)
        yield lambda: bar.advance(task)


def _check_recorded(side: Side, ds: xr.Dataset) -> None:
    """A side rebuilt from a results file must reproduce the file's money to the pound."""
    file = side.recorded
    if file is None:
        return
    same = (
        file.sizes.get("year") == ds.sizes["year"]
        and file.sizes.get("icb") == ds.sizes["icb"]
        and np.array_equal(file["year"].values, ds["year"].values)
        and np.array_equal(file["icb"].values, ds["icb"].values)
    )
    if not (same and _same_money(_measures(ds), _measures(file), rtol=1e-9)):
        from sim.version import specsim_version

        attrs = file.attrs
        made = f"specsim {attrs.get('specsim_version', '?')}, data {attrs.get('data_version', '?')}"
        here = f"specsim {specsim_version()}, data {_data_version()}"
        raise DataError(
            side.where or side.name,
            f"its scenario, rebuilt from the file, no longer reproduces the file's "
            f"allocations to the pound (made with {made}; this is {here}); re-run it with "
            "this version, then explain",
        )


def _same_money(mine: np.ndarray, theirs: np.ndarray, rtol: float) -> bool:
    """Allocations and targets to the pound; expected spend (float) to `rtol`."""
    return np.array_equal(mine[:2], theirs[:2]) and np.allclose(mine[2], theirs[2], rtol=rtol)


def _data_version() -> str:
    from sim.reference import load_data

    return str(load_data().dataset.attrs.get("data_version", "?"))


def _check_corners(values, own, evaluate: _Evaluator, a: Side, b: Side, k: int) -> None:
    """Nothing switched must be A and everything switched B, or a field no factor covers
    moved money: refuse rather than report a split that does not add up."""
    for subset, ds, side in ((0, own["a"], a), ((1 << k) - 1, own["b"], b)):
        if not _same_money(values(subset), evaluate.carry(ds), rtol=1e-12):
            raise SpecsimError(
                f"explain: switching the factors does not reproduce {side.name}: something "
                "these measures read differs outside the named factors (docs/explain.md)"
            )


def _dataset(
    full: np.ndarray,
    levels: np.ndarray,
    final: xr.Dataset,
    a: Side,
    b: Side,
    method: str,
    columns: Sequence[str],
    fields: dict[str, list[str]],
) -> xr.Dataset:
    coords = {
        "measure": list(MEASURES),
        "factor": list(FACTORS),
        "year": final["year"].values,
        "icb": final["icb"].values,
        "side": ["a", "b"],
        "switched": ("factor", [f in columns for f in FACTORS]),
    }
    labels = {c: ("icb", final[c].values) for c in ("icb_ods", "icb_name", "region_name")
              if c in final.coords}  # fmt: skip
    ds = xr.Dataset(
        {
            "attribution": (
                ("measure", "factor", "year", "icb"),
                np.moveaxis(full, -1, 1),
                {"units": "GBP", "long_name": "change from A to B due to the factor"},
            ),
            "level": (
                ("side", "measure", "year", "icb"),
                levels,
                {"units": "GBP", "long_name": "the measure under A and B (whole pounds)"},
            ),
        },
        coords={**coords, **labels},
    )
    ds.attrs = {
        "scenario_a": a.name,
        "scenario_b": b.name,
        "sha256_a": _sha(a),
        "sha256_b": _sha(b),
        "method": method,
        "fields": json.dumps(fields),
    }
    return ds


def _sha(side: Side) -> str:
    if side.recorded is not None:
        return str(side.recorded.attrs.get("scenario_sha256", ""))
    return side.scenario.sha256


# --- the entry points ----------------------------------------------------------------------

SideLike = Scenario | xr.Dataset | str | os.PathLike


def explain(
    a: SideLike,
    b: SideLike | None = None,
    method: str = "shapley",
    data: ReferenceData | None = None,
    progress: bool = False,
) -> Explanation:
    """Why B's allocations, targets and expected delegated spend differ from A's, ICB by
    ICB and year by year, split into `FACTORS` (exact to the pound).

    `a` and `b` are scenarios, scenario `.toml` files, results Datasets or results `.nc`
    files (whose scenario is rebuilt from their provenance and must reproduce them); with
    `b` omitted, `a` must hold two scenarios and the second is explained against the first.
    """
    from sim.checks import check_scenario
    from sim.reference import load_data

    data = data if data is not None else load_data()
    cache = PlanCache()
    sides = _sides(a, b)
    for side in sides:
        if side.recorded is None:
            check_scenario(side.scenario, data, cache)
    return attribute(sides[0], sides[1], data, method, progress, cache)


def _sides(a: SideLike, b: SideLike | None) -> list[Side]:
    items = [a] if b is None else [a, b]
    out: list[Side] = []
    for item in items:
        if isinstance(item, Scenario):
            out.append(Side(item))
            continue
        where = None
        if not isinstance(item, xr.Dataset):
            path = Path(item)
            if path.suffix.lower() == ".toml":
                from sim.scenario import load_scenario

                out.append(Side(load_scenario(path)))
                continue
            from sim.comparison import open_results

            where, item = str(path), open_results(path)
        out.extend(_file_sides(item, where or "<results>"))
    if len(out) != 2:
        names = ", ".join(s.name for s in out)
        raise SpecsimError(
            f"explain needs two scenarios (A, then B) and was given {len(out)} ({names}): "
            "give two results files, or one file holding two scenarios; two years of one "
            "run are not split into factors (docs/explain.md)"
        )
    return out


def _file_sides(results: xr.Dataset, where: str) -> list[Side]:
    """One side per scenario of a results Dataset, each rebuilt from its provenance."""
    from sim.export import scenarios
    from sim.provenance import scenario_of_results

    missing = [m for m in (*MEASURES[:2], "expected_spend") if m not in results]
    if missing:
        raise DataError(where, f"not a specsim results file: missing {', '.join(missing)}")
    return [Side(scenario_of_results(ds, where), None, ds, where) for ds in scenarios(results)]


__all__ = ["FACTORS", "MEASURES", "METHODS", "Explanation", "Side", "attribute", "explain"]
