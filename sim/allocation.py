"""One April allocation round: envelope -> needs targets -> pace of change -> whole pounds.

Why this shape. NHS England spends money on every ICB's population for the whole portfolio
whether or not the ICB holds the budget; delegation only decides who holds which part. So
one *notional* allocation per ICB (the whole catalogue) converges from historic spend toward
a needs-based target, and each ICB's delegated `allocation` is its notional allocation times
the share of its target that is for the services it holds. Consequences, all documented in
docs/service_catalogue.md:

- Envelope E (`sim.envelope`): a development fund E x `development_fund_share` stays
  national; the rest, N, is the service portfolio, split into services' budgets by the
  need model's budget shares (national expected spend at the calibration data year).
- Targets (`sim.need.portfolio_targets`): the notional target of ICB i is N x sum over all
  services of budget share x i's share of the service's need group; its delegated target
  `target_allocation`_i the same sum over the services it holds. `allocation`_i =
  notional_i x delegated target / notional target, so an ICB at target gets its delegated
  target exactly; `retained_budget` = E - sum(allocation).
- The growth floor, gap closure and cap (`sim.convergence`) act on the notional allocation,
  so they hold for the delegated allocation of any ICB whose delegated services did not
  change that year, and a wave moves money between portfolios without a budget shock.
- `distance_from_target` = (notional - notional target) / notional target, which equals
  (allocation - target_allocation) / target_allocation wherever the ICB holds services and
  stays defined (the ICB's funding position) where it holds none.

Everything here is numpy on one footprint; `sim.plan` runs the rounds year after year and
labels a path for the regression goldens and analysts (`sim.plan.allocation_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from sim.convergence import converge
from sim.envelope import budget_shares, development_fund
from sim.footprint import Footprint
from sim.need import NeedInputs, Targets, cost_curve

if TYPE_CHECKING:
    from sim.reference import ReferenceData
    from sim.scenario import ConvergenceConfig

REGISTERED_LIST_YEAR = 2026
"""The GP-registered list is the August 2026 extract; list inflation is taken against the
2026 resident population and applied to every year."""

MONEY = ("envelope", "retained_budget", "allocation", "target_allocation")


def largest_remainder(values: np.ndarray, total: int) -> np.ndarray:
    """Whole pounds (int64) summing exactly to `total`, each within a pound of its value."""
    values = np.asarray(values, float)
    if values.sum() <= 0:
        return np.zeros(values.shape, np.int64)
    scaled = values * (total / values.sum())
    floors = np.floor(scaled).astype(np.int64)
    short = int(total - floors.sum())
    order = np.argsort(-(scaled - floors), kind="stable")
    floors[order[: max(short, 0)]] += 1
    return floors


@dataclass(frozen=True)
class FormulaInputs:
    """What the target formula reads about one footprint, fixed for a run."""

    need: NeedInputs
    """Deprivation scores and weights on the footprint, for the policy adjustments."""
    list_inflation: np.ndarray | None
    """(icb23, sex, age) GP list over resident population; None for a resident base."""
    curve: np.ndarray
    """(sex, age) the catalogue's whole-portfolio cost curve, for the historic start."""


def formula_inputs(
    footprint: Footprint, data: ReferenceData, population_base: str, basis: int
) -> FormulaInputs:
    """Need signals on `footprint`, list inflation on the 2023 ICBs (against the `basis`
    projection's principal resident population of 2026) and the catalogue cost curve."""
    from sim.population import population_series

    ref = data.dataset
    registered = data.registered
    need = NeedInputs(
        imd_score=footprint.scores(ref["imd_score"].values, registered),
        imd_health_score=footprint.scores(ref["imd_health_score"].values, registered),
        weight=footprint.counts(registered),
        region_name=footprint.region_names,
    )
    inflation = None
    if population_base == "registered":
        listed = ref["gp_registered"].transpose("icb", "sex", "age").values
        resident = population_series(ref, basis, "principal").sel(year=REGISTERED_LIST_YEAR)
        resident = resident.transpose("icb", "sex", "age").values
        inflation = np.divide(
            listed, resident, out=np.ones(resident.shape, dtype=float), where=resident > 0
        )
    national = ref["gp_registered"].transpose("icb", "sex", "age").values.sum(axis=0)
    curve = cost_curve(
        data.service_profiles.by_service, budget_shares(data.services), national.astype(float)
    )
    return FormulaInputs(need, inflation, curve)


@dataclass(frozen=True)
class Round:
    """One April's allocation on one footprint: money in whole pounds (int64) that adds up
    (`allocation.sum() + retained_budget == envelope`), the formula's indices, and the float
    `notional_allocation` that carries the convergence state into next year."""

    envelope: np.int64
    development_fund: np.int64
    retained_budget: np.int64
    allocation: np.ndarray
    target_allocation: np.ndarray
    target_by_group: np.ndarray
    """(icb, need group) the delegated target by need group, GBP (float)."""
    notional_target_by_group: np.ndarray
    """(icb, need group) the whole-portfolio target by need group, GBP (float)."""
    weighted_population: np.ndarray
    need_index: np.ndarray
    target_share: np.ndarray
    distance_from_target: np.ndarray
    notional_allocation: np.ndarray


def allocation_round(
    targets: Targets,
    previous: np.ndarray | None,
    start: np.ndarray | None,
    envelope: tuple[float, float],
    development_fund_share: float,
    convergence: ConvergenceConfig,
) -> Round:
    """One April allocation round (pure): the envelope, convergence toward the targets,
    whole pounds.

    targets: the year's needs-based targets (`sim.need.portfolio_targets`); previous: last
    year's notional allocation on this footprint, or None in the first year, which starts
    from `start`, the historic distribution of spend (sums to 1); envelope: last year's and
    this year's national envelope (GBP, float). Raises `convergence.FloorNotFundable` when
    the envelope cannot fund the growth floor (`sim.checks` turns it into a user error).
    """
    before, now = envelope
    portfolio_now = now * (1.0 - development_fund_share)
    baseline = start * (before * (1.0 - development_fund_share)) if previous is None else previous
    target_money = targets.notional * portfolio_now
    notional = converge(baseline, target_money, convergence)
    fraction = np.divide(
        targets.delegated,
        targets.notional,
        out=np.zeros_like(targets.delegated),
        where=targets.notional > 0,
    )
    alloc_float = notional * fraction
    target_by_group = targets.delegated_by_group * portfolio_now
    target_float = target_by_group.sum(axis=1)
    env_gbp = int(np.rint(now))
    delegated_gbp = int(np.rint(alloc_float.sum()))
    weighted = targets.notional * targets.heads.sum()
    return Round(
        envelope=np.int64(env_gbp),
        development_fund=np.int64(development_fund(now, development_fund_share)),
        retained_budget=np.int64(env_gbp - delegated_gbp),
        allocation=largest_remainder(alloc_float, delegated_gbp),
        target_allocation=largest_remainder(target_float, int(np.rint(target_float.sum()))),
        target_by_group=target_by_group,
        notional_target_by_group=targets.notional_by_group * portfolio_now,
        weighted_population=weighted,
        need_index=weighted / targets.heads,
        target_share=targets.notional,
        distance_from_target=(notional - target_money) / target_money,
        notional_allocation=notional,
    )


def carry_state(round_: Round, old: Footprint, new: Footprint) -> np.ndarray:
    """Last year's notional allocation on `new`, for `allocation_round(previous=...)`: on an
    ICB merger it is summed along `merger_share`, so the national total carries over."""
    state = round_.notional_allocation
    return state if old is new else new.counts(state)


# --- a labelled path (goldens, analysts) ---------------------------------------------------

ROUND_ATTRS = {
    "weighted_population": ("persons", "need-weighted population for specialised services"),
    "need_index": ("1", "weighted population per head (England = 1)"),
    "target_share": ("1", "needs-based target share of the national portfolio"),
    "envelope": ("GBP", "national specialised-services envelope"),
    "development_fund": (
        "GBP",
        "development fund for new treatments (held nationally, part of retained_budget)",
    ),
    "retained_budget": (
        "GBP",
        "budget retained by NHS England (undelegated services and development fund)",
    ),
    "allocation": ("GBP", "delegated allocation to the ICB"),
    "target_allocation": ("GBP", "needs-based target for the ICB's delegated services"),
    "distance_from_target": ("1", "distance from target: (allocation - target) / target"),
    "notional_allocation": (
        "GBP",
        "notional allocation for the whole portfolio (convergence state)",
    ),
}
"""Units and long names of a round's fields, as they appear in every result."""


def round_dataset(round_: Round, footprint: Footprint) -> xr.Dataset:
    """One round as a Dataset on its footprint's ICB codes (unlabelled: see `Footprint`)."""
    data = {}
    for name, (units, long_name) in ROUND_ATTRS.items():
        values = getattr(round_, name)
        dims = ("icb",) if np.ndim(values) else ()
        data[name] = (dims, values, {"units": units, "long_name": long_name})
    return xr.Dataset(data, coords={"icb": footprint.codes})


def allocation_totals(ds: xr.Dataset) -> pd.DataFrame:
    """National, regional and per-ICB money by year, in whole pounds (long table).

    Columns `year, level, area, variable, gbp`; national rows carry `envelope`,
    `retained_budget`, `allocation` and `target_allocation`, regional and ICB rows the
    last two. Used for the regression goldens and by analysts checking totals.
    """
    rows = []
    regions = ds["region_name"] if "region_name" in ds.coords else None
    for year in ds["year"].values:
        one = ds.sel(year=year)
        present = one["allocation"].notnull()
        for name in ("envelope", "retained_budget"):
            rows.append((year, "national", "England", name, int(one[name])))
        for name in ("allocation", "target_allocation"):
            values = one[name].where(present, drop=True).astype(np.int64)
            rows.append((year, "national", "England", name, int(values.sum())))
            if regions is not None:
                by_region = values.groupby(values["region_name"]).sum()
                for region, total in zip(
                    by_region["region_name"].values, by_region.values, strict=True
                ):
                    rows.append((year, "region", str(region), name, int(total)))
            for icb, total in zip(values["icb"].values, values.values, strict=True):
                rows.append((year, "icb", str(icb), name, int(total)))
    table = pd.DataFrame(rows, columns=["year", "level", "area", "variable", "gbp"])
    return table.astype({"year": int, "gbp": np.int64})
