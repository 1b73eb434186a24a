"""Needs-based allocation of the specialised-services budget to ICBs (pure functions, no SimPy).

Why this shape. NHS England spends money on every ICB's population for the whole portfolio
whether or not the ICB holds the budget; delegation only decides who holds which part. So
one *notional* allocation per ICB (the whole catalogue) converges from historic spend toward
a needs-based target, and each ICB's delegated `allocation` is its notional allocation times
the share of the portfolio delegated to it. Consequences, all documented in
docs/service_catalogue.md:

- Envelope E (scenario): a development fund E x `development_fund_share` stays national;
  the rest, N, is the service portfolio. Service s's budget is N x its share of catalogue
  baseline spend (fixed shares: service-specific growth shows up as spend against budget).
- ICB i's delegated fraction f_i = sum of the budget shares of the services delegated to it.
  `target_allocation`_i = target_share_i x N x f_i (= share x delegated envelope when every
  ICB holds the same services); `allocation`_i = notional_i x f_i;
  `retained_budget` = E - sum(allocation) (development fund + undelegated services).
- The growth floor, gap closure and cap act on the notional allocation, so they hold for
  the delegated allocation of any ICB whose delegated services did not change that year,
  and a wave (2024: three regions) moves money between portfolios without a budget shock.
- `distance_from_target` = (notional - notional target) / notional target, which equals
  (allocation - target_allocation) / target_allocation wherever the ICB holds services and
  stays defined (the ICB's funding position) where it holds none.

For the engine: `allocation_round(...)` each April, passing the Dataset it returned the
year before as `previous` (that Dataset is the allocation state: its `notional_allocation`
and `target_share`; on an ICB merger the round maps them along `merger_share` itself).
`allocate_years(...)` loops the rounds over a population path (tests, goldens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize

from sim.delegation import delegation_status
from sim.errors import ScenarioError
from sim.market_forces import market_forces_index, weighted_mean_one
from sim.reference import CATALOGUE_YEAR
from sim.scenario import AllocationConfig, ConvergenceConfig, Scenario

HISTORIC_DEPRIVATION_ELASTICITY = 0.3
"""Assumption: historic spend per weighted head rose with deprivation more steeply than the
needs target does (specialist centres sit in large, often deprived cities, and ACRA's impact
analysis moved money away from the most deprived ICBs). Starting spend share is the age/sex
weighted population x MFF x (1 + elasticity x (IMD index - 1))."""

REGISTERED_LIST_YEAR = 2026
"""The GP-registered list is the August 2026 extract; list inflation is taken against the
2026 resident population and applied to every year."""

MONEY = ("envelope", "retained_budget", "allocation", "target_allocation")


def _money(values: xr.DataArray, long_name: str) -> xr.DataArray:
    return values.assign_attrs(units="GBP", long_name=long_name)


# --- envelopes ----------------------------------------------------------------------------


def national_envelope(scenario: Scenario, years: Sequence[int]) -> xr.DataArray:
    """National specialised budget per financial year (GBP, float, before rounding).

    `envelope.base_gbp` is the budget of `time.base_year`; year y's growth (from y-1) is
    `growth_by_year[y]` or else `growth`. Years before the base year are deflated back.
    """
    cfg = scenario.envelope
    base = scenario.time.base_year
    years = [int(y) for y in years]
    lo, hi = min([*years, base]), max([*years, base])

    def rate(y: int) -> float:
        return cfg.growth_by_year.get(y, cfg.growth)

    level = {base: cfg.base_gbp}
    for y in range(base + 1, hi + 1):
        level[y] = level[y - 1] * (1.0 + rate(y))
    for y in range(base - 1, lo - 1, -1):
        level[y] = level[y + 1] / (1.0 + rate(y + 1))
    values = np.array([level[y] for y in years])
    return _money(
        xr.DataArray(values, dims="year", coords={"year": years}, name="envelope"),
        "national specialised-services envelope",
    )


def budget_shares(services: pd.DataFrame, year: int | None = None) -> xr.DataArray:
    """Each service's slice of the budget (sums to 1): catalogue 2023/24 spend, grown to
    `year` at the service's own non-demographic growth.

    Growing the shares matters: retained services (CAR-T, gene therapies) grow faster than
    the delegated ones, so fixed 2023/24 shares would drift toward over-funding ICBs and
    under-funding NHS England's retained portfolio year after year.
    """
    spend = services["baseline_spend_gbp"].to_numpy(float)
    if year is not None:
        growth = services["non_demographic_growth"].to_numpy(float)
        spend = spend * (1.0 + growth) ** (year - CATALOGUE_YEAR)
    return xr.DataArray(
        spend / spend.sum(),
        dims="service",
        coords={"service": services["service_id"].astype(str).to_numpy()},
        name="budget_share",
    )


def delegated_fraction(
    status: xr.DataArray, services: pd.DataFrame, year: int | None = None
) -> xr.DataArray:
    """Share of the service portfolio each ICB holds in `year` (status: icb x service bool)."""
    shares = budget_shares(services, year)
    held = status.reindex(service=shares["service"], fill_value=False).astype(float)
    return (held * shares).sum("service")


# --- target formula -----------------------------------------------------------------------


def cost_curve(
    services: pd.DataFrame, profiles: xr.DataArray, national_population: xr.DataArray
) -> xr.DataArray:
    """Specialised cost weight per head by (sex, age), population-weighted mean 1.

    Each service's spend is spread over the national population along its utilisation
    profile, then summed: the per-head cost curve the catalogue implies. It is flatter at
    older ages than the core general-and-acute curve because children's, mental health and
    rare-disease services weigh heavily (DOMAIN.md, ACRA).
    """
    pop = national_population.transpose("sex", "age")
    names = list(profiles["profile"].values)
    rows = [names.index(p) for p in services["age_profile"]]
    prof = profiles.transpose("profile", "sex", "age").sel(sex=pop["sex"], age=pop["age"])
    prof = prof.values[rows]  # (service, sex, age): numpy, as this runs every April
    reach = np.einsum("ksa,sa->k", prof, pop.values)
    shares = budget_shares(services).values
    per_head = np.einsum("k,ksa->sa", shares / reach, prof)
    curve = per_head * pop.values.sum() / (per_head * pop.values).sum()
    return xr.DataArray(
        curve,
        dims=("sex", "age"),
        coords={"sex": pop["sex"].values, "age": pop["age"].values},
        name="cost_weight",
        attrs={"units": "1", "long_name": "specialised cost weight per head (mean 1)"},
    )


def deprivation_index(imd_score: xr.DataArray, weight: xr.DataArray) -> xr.DataArray:
    """IMD average score relative to its population-weighted mean (1 = England average)."""
    return weighted_mean_one(imd_score.astype(float), weight)


def unmet_need_index(health_score: xr.DataArray, weight: xr.DataArray) -> xr.DataArray:
    """IoD health-deprivation score mapped to [0.5, 1.5] around its weighted mean of 1.

    The health domain score is centred near zero and can be negative, so it is used as a
    relative position, not a ratio (assumption, documented).
    """
    centred = health_score - (health_score * weight).sum() / weight.sum()
    spread = float(abs(centred).max())
    return 1.0 + (centred / (2.0 * spread) if spread > 0 else 0.0 * centred)


def need_multiplier(config: AllocationConfig, need: xr.Dataset) -> xr.DataArray:
    """Product of the switched-on adjustments: health inequalities, unmet need, MFF.

    `need` (see `need_inputs`) holds `imd_score`, `imd_health_score`, `weight` and the
    `region_name` coord per ICB.
    """
    weight = need["weight"]
    mult = xr.ones_like(weight, dtype=float)
    if config.health_inequalities:
        dep = deprivation_index(need["imd_score"], weight)
        mult = mult * (1.0 + config.health_inequalities_weight * (dep - 1.0))
    if config.unmet_need:
        unmet = unmet_need_index(need["imd_health_score"], weight)
        mult = mult * (1.0 + config.unmet_need_weight * (unmet - 1.0))
    if config.market_forces:
        mult = mult * market_forces_index(need["region_name"], weight)
    return mult


def historic_share(population: xr.DataArray, need: xr.Dataset, curve: xr.DataArray) -> xr.DataArray:
    """Documented starting distribution of actual spend by ICB (sums to 1); see constants."""
    age_sex = (population * curve).sum(("sex", "age"))
    dep = deprivation_index(need["imd_score"], need["weight"])
    raw = (
        age_sex
        * market_forces_index(need["region_name"], need["weight"])
        * (1.0 + HISTORIC_DEPRIVATION_ELASTICITY * (dep - 1.0))
    )
    return raw / raw.sum()


def target_formula(
    config: AllocationConfig,
    population: xr.DataArray,
    need: xr.Dataset,
    curve: xr.DataArray,
    historic: xr.DataArray | None,
) -> xr.Dataset:
    """`weighted_population`, `need_index`, `target_share` per ICB for the chosen formula.

    population: (icb, sex, age) on the formula's base (resident or registered). Weighted
    populations sum nationally to the population (the AIF convention), so `need_index` is
    weighted population per head, England = 1.
    """
    heads = population.sum(("sex", "age"))
    if config.formula == "capitation":
        raw = heads.astype(float)
    elif config.formula == "historic":
        raw = historic
    else:
        raw = (population * curve).sum(("sex", "age"))
        if config.formula == "needs":
            raw = raw * need_multiplier(config, need)
    share = raw / raw.sum()
    weighted = share * heads.sum()
    return xr.Dataset(
        {
            "weighted_population": weighted.assign_attrs(
                units="persons", long_name="need-weighted population for specialised services"
            ),
            "need_index": (weighted / heads).assign_attrs(
                units="1", long_name="weighted population per head (England = 1)"
            ),
            "target_share": share.assign_attrs(
                units="1", long_name="needs-based target share of the national portfolio"
            ),
        }
    )


# --- convergence and rounding -------------------------------------------------------------


class FloorNotFundable(ValueError):
    """The envelope cannot give every ICB the minimum growth."""


class Convergence(NamedTuple):
    """Allocations after one year's pace of change, and the uniform growth that balanced it."""

    allocation: np.ndarray
    core_growth: float


def _pace(
    core: np.ndarray,
    target: np.ndarray,
    floor: np.ndarray,
    capped: np.ndarray,
    config: ConvergenceConfig,
) -> np.ndarray:
    """Allocations for a given uniform-growth position `core` (see `converge`)."""
    step = core + config.gap_closure * (target - core)
    moved = np.maximum.reduce([step, floor, capped])
    if config.over_target == "converge":
        return moved
    return np.where(target > floor, np.minimum(moved, target), floor)


def converge(baseline: np.ndarray, target: np.ndarray, config: ConvergenceConfig) -> Convergence:
    """Move allocations from `baseline` toward `target`; they sum to `target.sum()`.

    Every ICB starts from a uniform growth c (solved so the total fits) and closes
    `gap_closure` of its gap to target from there: (1 - g) x baseline x (1 + c) + g x target.
    No ICB gets less than the floor, baseline x (1 + floor_growth), and none sits more than
    `max_below_target` below target. With `over_target = "floor"` (the default) ICBs whose
    target is below their floor are held to the floor and the others never pass their
    target, so the growth above the floor goes to the under-target ICBs; with "converge"
    over-target ICBs also move toward target by `gap_closure`, and gap_closure = 0 is a
    pure roll-forward. If the envelope cannot fund all this, gap closure goes first, then
    the cap, never the floor (FloorNotFundable when the floors alone do not fit).
    """
    floor = baseline * (1.0 + config.floor_growth)
    total = float(target.sum())
    if floor.sum() > total * (1.0 + 1e-12):
        raise FloorNotFundable(f"needs {floor.sum():,.0f}, has {total:,.0f}")
    capped = (1.0 - config.max_below_target) * target
    lowest = _pace(np.zeros_like(baseline), target, floor, capped, config)
    if lowest.sum() > total:
        keep_cap = np.minimum(np.maximum(floor, capped), lowest)
        low, high = (keep_cap, lowest) if keep_cap.sum() <= total else (floor, keep_cap)
        span = high.sum() - low.sum()
        return Convergence(
            low + (high - low) * ((total - low.sum()) / span if span > 0 else 0.0), -1.0
        )

    def excess(growth: float) -> float:
        return float(_pace(baseline * (1.0 + growth), target, floor, capped, config).sum()) - total

    high, slack = 1.0, 1e-12 * total  # at high growth every ICB sits at target or floor
    for _ in range(64):
        if excess(high) >= -slack:
            break
        high = 2.0 * high + 1.0
    growth = optimize.brentq(excess, -1.0, high, xtol=1e-14) if excess(high) > 0 else high
    out = _pace(baseline * (1.0 + growth), target, floor, capped, config)
    room = np.maximum(target - out, 0.0)  # an ICB with no baseline cannot grow into its target
    if total > out.sum() and room.sum() > 0:
        out = out + room * min(1.0, (total - out.sum()) / room.sum())
    return Convergence(out * (total / out.sum()), float(growth))


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


# --- footprints and reference inputs ------------------------------------------------------


def _on_footprint(
    values: xr.DataArray, icbs: xr.DataArray, reference: xr.Dataset, weight: xr.DataArray | None
) -> xr.DataArray:
    """`values` (on 2023 ICBs) on the footprint of `icbs`: summed along `merger_share`, or
    averaged with `weight` (counts are summed, scores averaged)."""
    if set(map(str, values["icb"].values)) >= set(map(str, icbs.values)):
        return values.sel(icb=icbs.values).drop_vars(
            [c for c in values.coords if c != "icb" and "icb" in values[c].dims]
        )
    share = reference["merger_share"].rename(icb26="icb_new")
    share = share.sel(icb=values["icb"].values)
    if weight is None:
        mapped = (values * share).sum("icb")
    else:
        w = share * weight.sel(icb=values["icb"].values)
        mapped = (values * w).sum("icb") / w.sum("icb")
    return (
        mapped.rename(icb_new="icb")
        .sel(icb=icbs.values)
        .drop_vars(
            [c for c in mapped.coords if c not in ("icb_new",) and "icb_new" in mapped[c].dims]
        )
    )


def _region_names(population: xr.DataArray, reference: xr.Dataset) -> xr.DataArray:
    """NHS region name of each ICB of `population` (its own coord, else the ICB tables)."""
    if "region_name" in population.coords:
        return population["region_name"]
    from sim.reference import load_icbs

    known = {}
    for footprint in (2023, 2026):
        table = load_icbs(footprint)
        known.update(zip(table["icb"], table["region_name"], strict=True))
    names = [known[str(code)] for code in population["icb"].values]
    return xr.DataArray(names, dims="icb", coords={"icb": population["icb"].values})


def need_inputs(population: xr.DataArray, reference: xr.Dataset) -> xr.Dataset:
    """Per-ICB deprivation scores, region and `weight` on the population's ICB footprint.

    `weight` (GP-registered patients, Aug 2026) fixes what "England average" means for the
    need indices, so they do not move when population moves: a bigger ICB then never gets
    a smaller target (a tested property). They depend only on the footprint, so the packaged
    reference data's are kept per footprint rather than rebuilt every year.
    """
    version = reference.attrs.get("data_version")
    if version is None:
        return _need_inputs(population["icb"], reference)
    key = (version, tuple(map(str, population["icb"].values)))
    if key not in _NEED_INPUTS:
        _NEED_INPUTS[key] = _need_inputs(population["icb"], reference)
    return _NEED_INPUTS[key]


_NEED_INPUTS: dict[tuple[str, tuple[str, ...]], xr.Dataset] = {}


def _need_inputs(icbs: xr.DataArray, reference: xr.Dataset) -> xr.Dataset:
    registered = reference["gp_registered"].sum(("sex", "age"))
    need = xr.Dataset(
        {
            name: _on_footprint(reference[name], icbs, reference, registered)
            for name in ("imd_score", "imd_health_score")
        }
    )
    need["weight"] = _on_footprint(registered, icbs, reference, None)
    return need.assign_coords(region_name=("icb", _region_names(icbs, reference).values))


def formula_population(
    population: xr.DataArray, config: AllocationConfig, reference: xr.Dataset
) -> xr.DataArray:
    """Resident population, or registered: resident x list inflation by (icb, sex, age).

    List inflation is the Aug 2026 GP list over the ONS 2026 resident population (principal),
    on the population's footprint; cells with no residents keep the resident count.
    """
    if config.population_base == "resident":
        return population
    icbs = population["icb"]
    registered = _on_footprint(reference["gp_registered"], icbs, reference, None)
    resident = reference["population_projection"].sel(
        variant="principal", year=REGISTERED_LIST_YEAR
    )
    resident = _on_footprint(resident.drop_vars(["variant", "year"]), icbs, reference, None)
    inflation = xr.where(resident > 0, registered / resident.where(resident > 0), 1.0)
    return population * inflation


# --- one allocation round and a path of them ----------------------------------------------


def _floor_error(scenario: Scenario, year: int, detail: str) -> ScenarioError:
    cfg = scenario.convergence
    return ScenarioError(
        getattr(scenario, "source_path", None),
        "convergence.floor_growth",
        f"{year}/{(year + 1) % 100:02d}: the envelope cannot give every ICB the "
        f"{cfg.floor_growth:.1%} minimum growth ({detail}); lower the floor or raise the "
        "envelope growth",
    )


def check_allocation_inputs(
    scenario: Scenario, services: pd.DataFrame, icbs: pd.DataFrame | xr.DataArray
) -> None:
    """Raise the ScenarioError a run would hit, before anything runs or is written.

    Checks every wave's names (via `delegation_status`) and that each year's envelope can
    fund the growth floor: the notional allocations sum to the portfolio, so the floors fit
    exactly when the envelope grows at least `floor_growth` (development fund share fixed).
    """
    years = list(range(scenario.time.base_year, scenario.time.end_year + 1))
    delegation_status(scenario, services, icbs, years)
    envelope = national_envelope(scenario, [years[0] - 1, *years]).values
    floor = 1.0 + scenario.convergence.floor_growth
    for year, before, now in zip(years, envelope[:-1], envelope[1:], strict=True):
        if before * floor > now * (1.0 + 1e-12):
            raise _floor_error(
                scenario, year, f"envelope growth {now / before - 1.0:.1%} that year"
            )


def allocation_round(
    year: int,
    population: xr.DataArray,
    status: xr.DataArray,
    previous: xr.Dataset | None,
    scenario: Scenario,
    reference: xr.Dataset,
    services: pd.DataFrame,
    profiles: xr.DataArray,
) -> xr.Dataset:
    """One April allocation round (the engine calls it inside SimPy; it is pure).

    population: resident (icb, sex, age) for `year`; status: delegated (icb, service) bool;
    previous: the Dataset this function returned for year - 1 (its `notional_allocation`
    and `target_share` carry the state, mapped onto a merged footprint if the ICBs
    changed), or None for the first year, which starts from the historic distribution.
    Returns `envelope`, `development_fund`, `retained_budget` (scalars), `allocation`,
    `target_allocation` (icb; int64 whole pounds, allocation.sum() + retained == envelope),
    `weighted_population`, `need_index`, `target_share`, `distance_from_target` and the
    float state `notional_allocation` (icb). Raises ScenarioError (convergence.floor_growth)
    when the envelope cannot fund the growth floor.
    """
    config = scenario.allocation
    population = population.transpose("icb", "sex", "age")
    need = need_inputs(population, reference)
    base = formula_population(population, config, reference)
    curve = cost_curve(services, profiles, base.sum("icb"))
    if previous is None:
        hist = historic_share(population, need, curve)
    elif config.formula == "historic":
        hist = _on_footprint(previous["target_share"], population["icb"], reference, None)
    else:
        hist = None  # only the first round and the historic formula need it
    formula = target_formula(config, base, need, curve, hist)

    envelope = national_envelope(scenario, [year - 1, year])
    portfolio = envelope * (1.0 - scenario.envelope.development_fund_share)
    if previous is None:
        baseline = hist * float(portfolio.sel(year=year - 1))
    else:
        baseline = _on_footprint(
            previous["notional_allocation"], population["icb"], reference, None
        )
    target = formula["target_share"] * float(portfolio.sel(year=year))
    try:
        notional = converge(baseline.values, target.values, scenario.convergence).allocation
    except FloorNotFundable as error:
        raise _floor_error(scenario, year, str(error)) from None
    notional = xr.DataArray(notional, dims="icb", coords={"icb": population["icb"].values})

    fraction = delegated_fraction(status.sel(icb=population["icb"].values), services, year)
    alloc_float = (notional * fraction).values
    target_float = (target * fraction).values
    env_gbp = int(np.rint(float(envelope.sel(year=year))))
    delegated_gbp = int(np.rint(alloc_float.sum()))
    icb = {"icb": population["icb"].values}
    out = formula.assign(
        envelope=_money(xr.DataArray(np.int64(env_gbp)), "national specialised-services envelope"),
        development_fund=_money(
            xr.DataArray(np.int64(np.rint(env_gbp * scenario.envelope.development_fund_share))),
            "development fund for new treatments (held nationally, part of retained_budget)",
        ),
        retained_budget=_money(
            xr.DataArray(np.int64(env_gbp - delegated_gbp)),
            "budget retained by NHS England (undelegated services and development fund)",
        ),
        allocation=_money(
            xr.DataArray(largest_remainder(alloc_float, delegated_gbp), dims="icb", coords=icb),
            "delegated allocation to the ICB",
        ),
        target_allocation=_money(
            xr.DataArray(
                largest_remainder(target_float, int(np.rint(target_float.sum()))),
                dims="icb",
                coords=icb,
            ),
            "needs-based target for the ICB's delegated services",
        ),
        distance_from_target=((notional - target) / target).assign_attrs(
            units="1", long_name="distance from target: (allocation - target) / target"
        ),
        notional_allocation=_money(
            notional, "notional allocation for the whole portfolio (convergence state)"
        ),
    )
    return out.assign_coords(year=year)


def allocate_years(
    scenario: Scenario,
    population_path: xr.DataArray,
    reference: xr.Dataset,
    services: pd.DataFrame,
    profiles: xr.DataArray,
) -> xr.Dataset:
    """`allocation_round` for every year of `population_path` (year, icb, sex, age), with the
    scenario's delegation status (`delegated` (year, icb, service) is added to the result).

    With `mergers.enabled`, years from the merger year use the April 2026 footprint (the
    population summed along `merger_share`); the `icb` dimension is then the union of both
    footprints, and variables are NaN for ICBs that do not exist in a year.
    """
    from sim.reference import load_icbs

    merge = scenario.mergers
    footprints = {2023: load_icbs(2023), 2026: load_icbs(2026)}
    rounds, statuses, previous = [], [], None
    for year in (int(y) for y in population_path["year"].values):
        pop = population_path.sel(year=year, drop=True)
        pop = pop.drop_vars([c for c in pop.coords if c not in pop.dims])
        icbs = footprints[2026 if merge.enabled and year >= merge.year else 2023]
        if set(pop["icb"].values) != set(icbs["icb"]):
            pop = _on_footprint(pop, xr.DataArray(icbs["icb"].values, dims="icb"), reference, None)
        regions = icbs.set_index("icb").loc[pop["icb"].values, "region_name"].to_numpy()
        status = delegation_status(scenario, services, icbs, [year]).sel(year=year, drop=True)
        previous = allocation_round(
            year,
            pop.assign_coords(region_name=("icb", regions)),
            status,
            previous,
            scenario,
            reference,
            services,
            profiles,
        )
        rounds.append(previous.drop_vars("region_name"))
        statuses.append(status.drop_vars([c for c in status.coords if c not in status.dims]))
    out = xr.concat(rounds, dim="year", join="outer", coords="minimal", compat="override")
    delegated = xr.concat(statuses, dim="year", join="outer", fill_value=False)
    out["delegated"] = delegated.assign_coords(year=out["year"]).assign_attrs(statuses[0].attrs)
    region_of = pd.concat(footprints.values()).drop_duplicates("icb").set_index("icb")
    return out.assign_coords(
        region_name=("icb", region_of.loc[out["icb"].values, "region_name"].to_numpy())
    )


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
