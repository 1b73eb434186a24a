"""The schema of every result variable, and the assembly of results from the calendar.

Why one table: names, dimensions, units and long names used to live in five places. Here
each variable is declared once, with what kind it is (`deterministic`: the same in every
replicate; `replicate`: one value per replicate; `summary`: over replicates) and how its
yearly values are read from the calendar's books. The engine's results, the summaries'
names (`summary_variables`), the per-replicate Zarr store, the test fakes and the variable
list in docs/architecture.md (`markdown_table`, checked by a test) all come from it.
A new result variable is one entry here (plus tests and docs).

Before an ICB merger, each year's values are carried onto the footprint of the last year:
money, patients and population are summed along `merger_share`, ratios (need index,
distance from target, overspend fractions) are recomputed from the carried sums, and a
service counts as delegated where most of the merged ICB's population held it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import xarray as xr

from sim.allocation import ROUND_ATTRS
from sim.footprint import Footprint
from sim.gaps import GAP_SOURCES, gap_terms
from sim.pipeline import funded_log
from sim.reference import NEED_GROUPS

if TYPE_CHECKING:
    from sim.engine import Books, Calendar

Kind = Literal["deterministic", "replicate", "parameters", "summary"]
QUANTILES = (0.05, 0.5, 0.95)
POOLING = ("before", "after")
PORTFOLIOS = ("delegated", "retained")
RISK_THRESHOLDS = {"p_overspend_1pct": 0.01, "p_overspend_5pct": 0.05}
NATIONAL_THRESHOLDS = (0.0, 0.01, 0.05)


class YearView:
    """One year's books as the schema reads them, on the final footprint.

    `row` holds the values of variables already read this year (in table order), so a
    variable can be derived from earlier ones.
    """

    def __init__(self, books: Books, final: Footprint, group: np.ndarray) -> None:
        self.books = books
        self.calendar_group = group
        self.plan = books.plan
        self.round = books.plan.round
        self.final = final
        self.same = books.plan.footprint is final
        self.row: dict[str, np.ndarray] = {}

    def carried(self, values: np.ndarray, axis: int = 0) -> np.ndarray:
        """Counts or money on the year's footprint (ICBs along `axis`), on the final one."""
        return values if self.same else self.final.counts(values, axis)

    def money(self, values: np.ndarray) -> np.ndarray:
        return values if self.same else self.final.counts(values.astype(float))


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, np.nan)


def _need_index(v: YearView) -> np.ndarray:
    if v.same:
        return v.round.need_index
    return v.row["weighted_population"] / v.row["population"].sum(axis=(1, 2))


def _distance(v: YearView) -> np.ndarray:
    if v.same:
        return v.round.distance_from_target
    old = v.round.notional_allocation / (1.0 + v.round.distance_from_target)
    return v.row["notional_allocation"] / v.final.counts(old) - 1.0


def _population(v: YearView) -> np.ndarray:
    pop = v.plan.population
    if v.final.identity:
        return pop
    return v.final.counts(pop)


def _delegated(v: YearView) -> np.ndarray:
    if v.same:
        return v.plan.delegated
    return v.final.counts(v.plan.delegated.astype(float)) > 0.5


def _expected_spend(v: YearView) -> np.ndarray:
    from sim.engine import by_portfolio

    return v.carried(by_portfolio(v.books.expected, v.plan.delegated))


def by_group(values: np.ndarray, delegated: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(icb, service) -> (icb, need_group, portfolio), summing services."""
    one_hot = np.eye(len(NEED_GROUPS))[group]
    held = delegated.astype(float)
    parts = [np.einsum("is,is,sg->ig", values, mask, one_hot) for mask in (held, 1.0 - held)]
    return np.stack(parts, axis=-1)


def _group_view(name: str) -> Callable[[YearView], np.ndarray]:
    def read(v: YearView) -> np.ndarray:
        values = getattr(v.books, name)
        return v.carried(by_group(values, v.plan.delegated, v.calendar_group))

    return read


def _spend_gap(v: YearView) -> np.ndarray:
    """(icb, gap_source) the gap between expected delegated spend and allocation relative
    to England, by named lever (`sim.gaps`), on the final footprint."""
    target = v.round.target_by_group.sum(axis=1)
    targets = v.plan.lever_targets
    if targets is None:
        targets = np.repeat(target[None], len(GAP_SOURCES) - 1, axis=0)
    expected = v.row["expected_spend"][:, 0]
    allocation = v.money(v.round.allocation).astype(float)
    carried = targets if v.same else v.final.counts(targets, 1)
    return gap_terms(expected, allocation, carried).T


def _budget_by_group(v: YearView) -> np.ndarray:
    """Delegated: the allocation split as its target is, by need group; retained: the
    notional retained budget split as the ICB's expected retained spend is."""
    delegated = v.round.target_by_group
    total = delegated.sum(axis=1, keepdims=True)
    split = np.divide(delegated, total, out=np.zeros_like(delegated), where=total > 0)
    retained = by_group(v.books.expected, v.plan.delegated, v.calendar_group)[..., 1]
    rtotal = retained.sum(axis=1, keepdims=True)
    rsplit = np.divide(retained, rtotal, out=np.zeros_like(retained), where=rtotal > 0)
    budget = v.books.budget
    out = np.stack([budget[:, :1] * split, budget[:, 1:] * rsplit], axis=-1)
    return v.carried(out)


@dataclass(frozen=True)
class Variable:
    """One result variable: name, dims (after `year`, `replicate` first if per replicate),
    units, long name, kind, and how a year's values are read (None for summaries)."""

    name: str
    dims: tuple[str, ...]
    units: str
    long_name: str
    kind: Kind
    read: Callable[[YearView], np.ndarray] | None = None
    needs: tuple[str, ...] = ()
    """Variables `read` takes from `YearView.row` (read first, in table order)."""
    internal: bool = False
    """Read for others to use, not written to results."""

    @property
    def full_dims(self) -> tuple[str, ...]:
        if self.kind == "replicate":
            return ("replicate", "year", *self.dims)
        if self.kind == "parameters":
            return ("replicate", *self.dims)
        return ("year", *self.dims) if self.kind == "deterministic" else self.dims

    @property
    def attrs(self) -> dict[str, str]:
        return {"units": self.units, "long_name": self.long_name}


def _round(
    name: str, dims: tuple[str, ...], read: Callable[[YearView], np.ndarray], needs: tuple = ()
) -> Variable:
    units, long_name = ROUND_ATTRS[name]
    return Variable(name, dims, units, long_name, "deterministic", read, needs)


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "population",
        ("icb", "sex", "age"),
        "persons",
        "resident population by ICB, sex and single year of age",
        "deterministic",
        _population,
    ),
    _round("weighted_population", ("icb",), lambda v: v.carried(v.round.weighted_population)),
    _round("need_index", ("icb",), _need_index, ("weighted_population", "population")),
    _round("target_share", ("icb",), lambda v: v.carried(v.round.target_share)),
    _round("envelope", (), lambda v: v.round.envelope),
    _round("development_fund", (), lambda v: v.round.development_fund),
    _round("retained_budget", (), lambda v: v.round.retained_budget),
    _round("allocation", ("icb",), lambda v: v.money(v.round.allocation)),
    _round("target_allocation", ("icb",), lambda v: v.money(v.round.target_allocation)),
    _round("notional_allocation", ("icb",), lambda v: v.carried(v.round.notional_allocation)),
    _round("distance_from_target", ("icb",), _distance, ("notional_allocation",)),
    Variable(
        "delegated",
        ("icb", "service"),
        "1",
        "service delegated to the ICB in that year",
        "deterministic",
        _delegated,
    ),
    Variable(
        "expected_spend",
        ("icb", "portfolio"),
        "GBP",
        "expected spend by ICB of residence and portfolio",
        "deterministic",
        _expected_spend,
    ),
    Variable(
        "budget",
        ("icb", "portfolio"),
        "GBP",
        "delegated allocation and notional retained budget per ICB",
        "deterministic",
        lambda v: v.carried(v.books.budget),
    ),
    Variable(
        "spend_gap",
        ("icb", "gap_source"),
        "1",
        "expected delegated spend over allocation relative to England's, in log points, by "
        "the lever that causes it (sum over gap_source = the whole gap; sim.gaps)",
        "deterministic",
        _spend_gap,
        needs=("expected_spend",),
    ),
    Variable(
        "target_by_group",
        ("icb", "need_group"),
        "GBP",
        "needs-based target for the ICB's delegated services, by need group",
        "deterministic",
        lambda v: v.money(v.round.target_by_group),
    ),
    Variable(
        "notional_target_by_group",
        ("icb", "need_group"),
        "GBP",
        "needs-based target for the ICB's whole portfolio (delegated or not), by need group",
        "deterministic",
        lambda v: v.money(v.round.notional_target_by_group),
    ),
    Variable(
        "budget_by_group",
        ("icb", "need_group", "portfolio"),
        "GBP",
        "budget by need group: delegated allocation split as its target, notional retained "
        "budget as expected retained spend",
        "deterministic",
        _budget_by_group,
    ),
    Variable(
        "expected_spend_by_group",
        ("icb", "need_group", "portfolio"),
        "GBP",
        "expected spend by ICB of residence, need group and portfolio",
        "deterministic",
        _group_view("expected"),
    ),
    Variable(
        "expected_patients_by_group",
        ("icb", "need_group", "portfolio"),
        "patients",
        "expected patients by ICB of residence, need group and portfolio",
        "deterministic",
        _group_view("expected_patients"),
    ),
    Variable(
        "spend",
        ("icb", "portfolio"),
        "GBP",
        "spend on the ICB's residents by portfolio",
        "replicate",
        lambda v: v.carried(v.books.spend, 1),
    ),
    Variable(
        "patients",
        ("icb", "portfolio"),
        "patients",
        "patients treated, by ICB of residence and portfolio",
        "replicate",
        lambda v: v.carried(v.books.patients, 1),
    ),
    Variable(
        "national_spend",
        ("portfolio",),
        "GBP",
        "spend in England by portfolio (the sum over ICBs, per replicate)",
        "replicate",
        lambda v: v.row["spend"].sum(axis=1),
        needs=("spend",),
    ),
    Variable(
        "variance_to_budget",
        ("icb", "portfolio"),
        "GBP",
        "spend minus budget (delegated: allocation; retained: notional)",
        "replicate",
        lambda v: v.carried(v.books.variance, 1),
    ),
    Variable(
        "carried_variance",
        ("icb",),
        "GBP",
        "delegated variance the ICB ends the year with, after the risk pool and carry-forward",
        "replicate",
        lambda v: v.carried(v.books.settled.outturn, 1),
        internal=True,
    ),
    Variable(
        "carried_forward",
        ("icb",),
        "GBP",
        "over- (+) or underspend moved into the ICB's next delegated budget",
        "replicate",
        lambda v: v.carried(v.books.settled.carried_forward, 1),
    ),
    Variable(
        "nhse_risk_cost",
        (),
        "GBP",
        "delegated over- (+) or underspend NHS England bears: risk-pool shares, what a "
        "rule absorbs, carry-forward financed less repaid",
        "replicate",
        lambda v: v.books.settled.nhse,
    ),
    Variable(
        "overspend_before_pooling",
        ("icb",),
        "1",
        "delegated overspend as a fraction of the allocation",
        "replicate",
        lambda v: v.row["variance_to_budget"][..., 0] / _positive(v.row["budget"][:, 0]),
        needs=("variance_to_budget", "budget"),
    ),
    Variable(
        "overspend_after_pooling",
        ("icb",),
        "1",
        "delegated overspend after the risk-pool rule and carry-forward, as a fraction of "
        "the allocation",
        "replicate",
        lambda v: v.row["carried_variance"] / _positive(v.row["budget"][:, 0]),
        needs=("carried_variance", "budget"),
    ),
)
"""Every variable the engine records, in the order they are read each year."""

PARAMETER_VALUE = Variable(
    "parameter_value",
    ("parameter",),
    "1",
    "each replicate's draw of each uncertain parameter (sim.parameters); "
    "population.variant: the drawn variant's England population in the end year over the "
    "budgets' variant's (attribute `variants` gives each variant's value)",
    "parameters",
)
"""Drawn once per replicate, not per year: read from the calendar, kept for every replicate."""


def risk_variables() -> tuple[Variable, ...]:
    """The overspend risk metrics over replicates (`sim.results.Summariser`)."""
    dims = ("pooling", "year", "icb")
    out = [
        Variable(
            name,
            dims,
            "1",
            f"probability that delegated overspend exceeds {share:.0%} "
            "of the ICB's delegated allocation",
            "summary",
        )
        for name, share in RISK_THRESHOLDS.items()
    ]
    out.append(
        Variable(
            "expected_shortfall",
            dims,
            "GBP",
            "mean over replicates of max(delegated overspend, 0)",
            "summary",
        )
    )
    out += [
        Variable(
            "sensitivity_national_spend",
            ("parameter", "year", "portfolio"),
            "1",
            "partial rank correlation (PRCC) of each uncertain parameter's draws with "
            "England's spend, the other parameters held (first replicates, attr `replicates`)",
            "summary",
        ),
        Variable(
            "sensitivity_overspend",
            ("parameter", "year", "icb"),
            "1",
            "partial rank correlation (PRCC) of each uncertain parameter's draws with the "
            "ICB's delegated overspend, the other parameters held (first replicates, attr "
            "`replicates`)",
            "summary",
        ),
        Variable(
            "p_national_overspend",
            ("threshold", "year", "portfolio"),
            "1",
            "probability that England's spend on the portfolio exceeds its budget by more "
            "than `threshold` of it",
            "summary",
        ),
        Variable(
            "national_expected_shortfall",
            ("year", "portfolio"),
            "GBP",
            "mean over replicates of max(England's spend - budget, 0), by portfolio",
            "summary",
        ),
        Variable(
            "common_risk_share",
            ("year", "icb"),
            "1",
            "share of the variance of the ICB's delegated overspend (fraction of allocation) "
            "that moves with England's (squared correlation): common, not the ICB's own",
            "summary",
        ),
    ]
    return tuple(out)


def summary_variables() -> tuple[Variable, ...]:
    """What a results file holds besides the deterministic variables: for each replicate
    variable X, `X_mean`, `X_std` and `X_quantile`, then the risk metrics."""
    out = []
    for var in VARIABLES:
        if var.kind != "replicate" or var.internal:
            continue
        dims = ("year", *var.dims)
        out += [
            Variable(
                f"{var.name}_mean",
                dims,
                var.units,
                f"{var.long_name}: mean over replicates",
                "summary",
            ),
            Variable(
                f"{var.name}_std",
                dims,
                var.units,
                f"{var.long_name}: standard deviation over replicates (ddof=1)",
                "summary",
            ),
            Variable(
                f"{var.name}_quantile",
                ("quantile", *dims),
                var.units,
                f"{var.long_name}: quantiles over replicates",
                "summary",
            ),
        ]
    return (*out, *risk_variables())


def schema() -> dict[str, Variable]:
    """Every variable a results file can hold, by name (internal ones excluded)."""
    everything = [v for v in VARIABLES if not v.internal]
    everything += [PARAMETER_VALUE, *summary_variables()]
    return {v.name: v for v in everything}


def markdown_table() -> str:
    """The variable list of docs/architecture.md (a test keeps the two identical)."""
    lines = ["| variable | dims | units | kind | meaning |", "|---|---|---|---|---|"]
    for var in schema().values():
        dims = ", ".join(var.full_dims)
        lines.append(f"| `{var.name}` | {dims} | {var.units} | {var.kind} | {var.long_name} |")
    return "\n".join(lines)


# --- assembly ------------------------------------------------------------------------------


def assemble(
    calendar: Calendar, kinds: tuple[Kind, ...] = ("deterministic", "replicate")
) -> xr.Dataset:
    """The results of a calendar run as a Dataset on the last year's footprint.

    `kinds` picks the deterministic variables, the per-replicate ones, or both. Attrs carry
    the schema's units and long names, and the deterministic part the new-treatment log.
    """
    plans = calendar.plan.years
    final = plans[-1].footprint
    wanted = [v for v in VARIABLES if v.kind in kinds]
    needed = _with_inputs(wanted)
    columns: dict[str, list[np.ndarray]] = {v.name: [] for v in needed}
    for plan in plans:
        view = YearView(calendar.books[plan.year], final, calendar.plan.group)
        for var in needed:
            view.row[var.name] = var.read(view)
            columns[var.name].append(view.row[var.name])
    coords = {
        "year": np.array(calendar.years, dtype=np.int64),
        "icb": final.codes,
        "portfolio": np.array(PORTFOLIOS),
        "need_group": np.array(NEED_GROUPS),
        "gap_source": np.array(GAP_SOURCES),
        "service": calendar.plan.services,
        "sex": calendar.plan.sex,
        "age": calendar.plan.age,
    }
    if "replicate" in kinds:
        coords["replicate"] = calendar.replicates
    data = {}
    for var in wanted:
        if var.internal:
            continue
        values = np.stack(columns[var.name])
        if var.kind == "replicate":
            values = np.moveaxis(values, 0, 1)
        data[var.name] = (var.full_dims, values, var.attrs)
    if "replicate" in kinds:
        spread = calendar.plan.spread
        values = spread.parameters.variants
        scales = ", ".join(
            f"{v}={s:.6g}" for v, s in zip(values, spread.variant_scale, strict=True)
        )
        data[PARAMETER_VALUE.name] = (
            PARAMETER_VALUE.full_dims,
            spread.reported(calendar.parameter_values),
            {**PARAMETER_VALUE.attrs, "variants": scales},
        )
        coords["parameter"] = np.array(spread.parameters.names, dtype=str)
    ds = final.label(xr.Dataset(data, coords=coords))
    if "deterministic" in kinds:
        funded = calendar.plan.treatments.funded
        ds.attrs["new_treatments"] = json.dumps(funded_log(funded, calendar.base_year))
    return ds


def _with_inputs(wanted: list[Variable]) -> list[Variable]:
    """`wanted` plus the variables they are derived from, in table order."""
    names = {v.name for v in wanted}
    for var in wanted:
        names |= set(var.needs)
    return [v for v in VARIABLES if v.name in names]


if __name__ == "__main__":
    print(markdown_table())
