"""The ageing population: ICB x sex x single year of age, one financial year at a time.

Two projections (`scenario.population.basis`) and two modes (`.mode`):

- basis 2022 (the default): ONS's 2022-based subnational projection (migration-category
  variant, June 2025), 2022..2047, on single years of age; its other variants are derived
  from the 2018-based ones (`sim.projection_variants`). basis 2018: ONS's 2018-based SNPP,
  principal and 10 variants, 2018..2043. Before the 2022-based projection starts, the
  2018-based variant (2018..2021) fills the series (`population_series`), so a back-cast
  can start in 2018. No mid-year estimates before 2018 are packaged (the source's series
  repeats mid-2018; sim/data/README.md).
- `projection` mode reads the series as published; `cohort` runs a cohort-component model
  per ICB from the base-year population (from the projection's first year on), so that
  analysts can move mortality, fertility and migration with scenario levers.

Timing follows the ONS NPP accounting, which reproduces the NPP's own population to rounding
at single ages (tests/test_population.py checks it on the packaged data). For the year from
mid-year t to t+1, with q the death probability, M net migrants by age at migration and W
women aged x:

    P(t+1, a+1) = (P(t, a) + M(a)/2) (1 - q(a)) + M(a+1)/2        (90 = 90 and over)
    P(t+1, 0)   = B (1 - q_birth) + M(0)/2,   B = sum_x ASFR(x) (W(t, x) + W(t+1, x)) / 2

Per ICB the model is calibrated on the chosen SNPP variant so that at ONS assumptions (all
levers neutral) it reproduces that variant, and the levers act as perturbations of it:

- survival uses the national NPP q for every ICB; each ICB's departure from it (local
  mortality, internal and cross-border moves) is a rate `i` on its survivors, taken from the
  SNPP residual  P_icb(t+1, a+1) - survivors - w_icb N(a+1). Internal moves are re-balanced
  every year so they never add or remove people in England.
- national net migration N is placed in ICBs with shares w(icb, sex, age) measured from how
  the SNPP's own high- and low-migration variants differ: the ICB split of a *change* in
  England's net migration, which is exactly what the migration lever changes (London's five
  ICBs take 35% of a change at age 22, twice their 17% share of people that age).
- births apply national age-specific fertility to each ICB's women, times an ICB fertility
  differential f_icb: the SNPP's births (age 0 less infant migration, undone for infant deaths)
  over the births national rates would give, pooled over 2018..2042.

Levers scale the chosen variant's NPP rates for every year from the base year on: q and
q_birth by `mortality_multiplier` x (1 - `extra_mortality_improvement`) ** (Y - base + 1) for
the year from mid-year Y (capped at 1), fertility by `fertility_multiplier`, England's net
migration by `migration_multiplier`. A cell that extreme levers would push below zero is
floored at zero. At neutral levers the model reproduces the SNPP variant by construction;
the independent check is the zero-migration lever against ONS's own zero net migration
projection (within 0.02% for England's total, 65+ and 85+ in 2043).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from sim.errors import ScenarioError
from sim.projection_variants import derive_variant

if TYPE_CHECKING:
    from sim.scenario import PopulationConfig, TimeConfig

FEMALE = 0  # position of "f" on the sex axis, ["f", "m"] by the data contract
LONG_NAME = "resident population at mid-year (financial year start), 90 = 90 and over"
# Ages pooled when measuring where a change in England's net migration lands: single ages are
# too noisy above ~70 and at the extremes; age 0 borrows 1-4 (infants move with parents).
MIGRATION_AGE_BANDS = [(1, 4), *[(a, a + 4) for a in range(5, 70, 5)], (70, 90)]


@dataclass(frozen=True)
class CohortRates:
    """Everything one cohort step needs, for each transition year (first axis: t - first_year).

    Shapes: q (t, sex, age), q_birth (t, sex), fertility (t, fertility_age),
    migration (t, sex, age), sex_share (t, sex), fertility_diff (icb,),
    migration_share (icb, sex, age), internal (t, icb, sex, age), internal_mean (t, sex, age).
    """

    first_year: int
    q: np.ndarray
    q_birth: np.ndarray
    fertility: np.ndarray
    fertility_ages: np.ndarray
    migration: np.ndarray
    sex_share: np.ndarray
    fertility_diff: np.ndarray
    migration_share: np.ndarray
    internal: np.ndarray
    internal_mean: np.ndarray


def survivors(pop: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Age everyone one year, with q (..., age) for the age at the start; 90+ stays open."""
    alive = pop * (1.0 - q)
    out = np.zeros_like(alive)
    out[..., 1:] = alive[..., :-1]
    out[..., -1] += alive[..., -1]
    return out


def cohort_migration(mig: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Net migrants added to each age at t+1 (ONS: half arrive early and face q, half late)."""
    half = mig / 2.0
    return survivors(half, q) + half


def women_exposure(now: np.ndarray, nxt: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """Women by fertility age, mean of the two mid-years (the NPP's exposure): (..., age)."""
    return 0.5 * (now[..., FEMALE, ages] + nxt[..., FEMALE, ages])


def _values(da: xr.DataArray, *dims: str) -> np.ndarray:
    return np.array(da.transpose(*dims).values, dtype=np.float64)  # a copy: never a view


def _weighted_mean(x: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Mean of x along `axis` weighted by `weights` (0 where the weights sum to 0)."""
    total = weights.sum(axis)
    return np.divide((x * weights).sum(axis), total, out=np.zeros_like(total), where=total > 0)


def _implied_births(
    next_age0: np.ndarray, mig_share0: np.ndarray | float, n0: np.ndarray, qb: np.ndarray
) -> np.ndarray:
    """Births to each area by sex implied by age 0 at t+1 (infant migration taken out)."""
    return (next_age0 - mig_share0 * n0) / (1.0 - qb)


FIRST_YEAR = {2018: 2018, 2022: 2022}
"""First year of each basis's projection (before it, the 2018-based variant)."""


def projection(reference: xr.Dataset, basis: int, variant: str) -> xr.DataArray:
    """An ONS projection (year, icb, sex, age) in persons: the 2018-based variant, or the
    2022-based principal or a variant derived from the 2018-based one."""
    old = reference["population_projection"]
    if basis == 2018:
        return old.sel(variant=variant, drop=True)
    new = reference["population_projection_2022"]
    if variant != "principal":
        new = derive_variant(new, old.sel(variant=variant), old.sel(variant="principal"))
    return new.rename(year_2022="year")


def coverage(reference: xr.Dataset, basis: int) -> tuple[int, int]:
    """(first, last) mid-year of the population series of `basis`."""
    first = int(reference["year"].values[0])
    last = reference["year"] if basis == 2018 else reference["year_2022"]
    return first, int(last.values[-1])


def population_series(reference: xr.Dataset, basis: int, variant: str) -> xr.DataArray:
    """Mid-year populations (year, icb, sex, age), float64, for every year a scenario may
    use: the 2018-based variant up to the basis's first year, then the basis's projection."""
    parts = []
    if basis != 2018:
        parts.append(
            projection(reference, 2018, variant).sel(year=slice(None, FIRST_YEAR[basis] - 1))
        )
    parts.append(projection(reference, basis, variant))
    parts = [part.transpose("year", "icb", "sex", "age").astype(np.float64) for part in parts]
    return xr.concat(parts, dim="year", coords="minimal", compat="override", join="exact")


def _npp(reference: xr.Dataset, name: str, variant: str, years: np.ndarray, *dims: str):
    """An NPP assumption of `variant` for the mid-years `years`, as (year, *dims) numpy."""
    da = reference[name].sel(variant=variant, npp_year=years).rename(npp_year="year")
    return _values(da, "year", *dims)


def migration_shares(reference: xr.Dataset, basis: int = 2018) -> np.ndarray:
    """Each ICB's share of a change in England's net migration, by sex and age (icb, sex, age).

    Measured from the basis's high- minus low-migration variants (same fertility and
    mortality): the extra persons each ICB gains beyond survival, over the extra national
    net migrants, pooled over all years and within MIGRATION_AGE_BANDS, floored at 0 and
    summing to 1.
    """
    gain, national = [], []
    for variant in ("high_migration", "low_migration"):
        path = projection(reference, basis, variant)
        years = path["year"].values
        q = _npp(reference, "npp_mortality", variant, years, "sex", "age")
        pop = _values(path, "year", "icb", "sex", "age")
        mig = _npp(reference, "npp_net_migration", variant, years, "sex", "age")
        gain.append((pop[1:] - survivors(pop[:-1], q[:-1, None])).sum(0))
        national.append(cohort_migration(mig[:-1], q[:-1]).sum(0))
    d_gain, d_nat = gain[0] - gain[1], national[0] - national[1]
    shares = np.empty_like(d_gain)
    for lo, hi in MIGRATION_AGE_BANDS:
        band = d_gain[..., lo : hi + 1].sum(-1) / d_nat[..., lo : hi + 1].sum(-1)
        shares[..., lo : hi + 1] = band[..., None]
    shares[..., 0] = shares[..., 1]
    shares = np.maximum(shares, 0.0)
    return shares / shares.sum(0)


def calibrate(reference: xr.Dataset, variant: str, basis: int = 2018) -> CohortRates:
    """Rates that make the cohort model reproduce the projection at ONS assumptions."""
    path = projection(reference, basis, variant)
    years = path["year"].values
    q = _npp(reference, "npp_mortality", variant, years, "sex", "age")[:-1]
    qb = _npp(reference, "npp_mortality_birth", variant, years, "sex")[:-1]
    mig = _npp(reference, "npp_net_migration", variant, years, "sex", "age")[:-1]
    asfr = _npp(reference, "npp_fertility", variant, years, "fertility_age")[:-1]
    f_ages = reference["npp_fertility"]["fertility_age"].values.astype(int)
    pop = _values(path, "year", "icb", "sex", "age")
    now, nxt = pop[:-1], pop[1:]

    n = cohort_migration(mig, q)  # (t, sex, age)
    share = migration_shares(reference, basis)  # (icb, sex, age)
    npp_pop = _npp(reference, "npp_population", variant, years, "sex", "age")
    births_by_sex = _implied_births(npp_pop[1:, :, 0], 1.0, n[..., 0], qb)
    sex_share = births_by_sex / births_by_sex.sum(-1, keepdims=True)

    expected = np.einsum("tix,tx->ti", women_exposure(now, nxt, f_ages), asfr)
    implied = _implied_births(nxt[..., 0], share[None, :, :, 0], n[:, None, :, 0], qb[:, None])
    fertility_diff = implied.sum((0, 2)) / expected.sum(0)

    arrived = survivors(now, q[:, None])
    arrived[..., 0] = (fertility_diff * expected)[..., None] * (sex_share * (1.0 - qb))[:, None]
    residual = nxt - arrived - share * n[:, None]
    internal = np.divide(residual, arrived, out=np.zeros_like(residual), where=arrived > 0)
    return CohortRates(
        first_year=int(years[0]),
        q=q,
        q_birth=qb,
        fertility=asfr,
        fertility_ages=f_ages,
        migration=mig,
        sex_share=sex_share,
        fertility_diff=fertility_diff,
        migration_share=share,
        internal=internal,
        internal_mean=_weighted_mean(internal, arrived, axis=1),
    )


def cohort_step(
    pop: np.ndarray, rates: CohortRates, year: int, levers: PopulationConfig, base_year: int
) -> np.ndarray:
    """Population (icb, sex, age) at mid-year `year`+1 from `pop` at mid-year `year`."""
    k = year - rates.first_year
    scale = levers.mortality_multiplier * (1.0 - levers.extra_mortality_improvement) ** (
        year - base_year + 1
    )
    q = np.minimum(rates.q[k] * scale, 1.0)
    qb = np.minimum(rates.q_birth[k] * scale, 1.0)
    n = levers.migration_multiplier * cohort_migration(rates.migration[k], q)

    def settle(arrived: np.ndarray, ages: slice) -> np.ndarray:
        """Add internal moves and national migrants to the survivors of each ICB.

        Internal rates are re-centred so that their England mean stays the SNPP's own (about
        0): moving people between ICBs never creates or removes anyone in England.
        """
        internal = rates.internal[k][..., ages]
        drift = _weighted_mean(internal, arrived, axis=0) - rates.internal_mean[k][..., ages]
        moves = arrived * (internal - drift)
        return np.maximum(arrived + moves + rates.migration_share[..., ages] * n[..., ages], 0.0)

    nxt = np.empty_like(pop)
    nxt[..., 1:] = settle(survivors(pop, q[None])[..., 1:], np.s_[1:])
    exposure = women_exposure(pop, nxt, rates.fertility_ages)
    births = rates.fertility_diff * (exposure @ rates.fertility[k]) * levers.fertility_multiplier
    babies = births[:, None] * (rates.sex_share[k] * (1.0 - qb))
    nxt[..., :1] = settle(babies[..., None], np.s_[:1])
    return nxt


class PopulationModel:
    """The population of one scenario, moved on one financial year at a time by `advance`."""

    def __init__(
        self,
        config: PopulationConfig,
        time: TimeConfig,
        reference: xr.Dataset,
        series: xr.DataArray | None = None,
    ) -> None:
        """`series` is `population_series(reference, config.basis, config.variant)`, if the
        caller has it already."""
        if series is None:
            series = population_series(reference, config.basis, config.variant)
        years = series["year"].values
        self.first_data_year, self.last_data_year = int(years[0]), int(years[-1])
        self.base_year, self.end_year = time.base_year, time.end_year
        self._check_year(self.base_year, "time.base_year")
        self._check_year(self.end_year, "time.end_year")
        self._config = config
        # one float64 array of the series, so each April is a plain array lookup
        self._projection = _values(series, "year", "icb", "sex", "age")
        template = series.sel(year=self.base_year, drop=True).transpose("icb", "sex", "age")
        self._template = template.rename("population")
        self._template.attrs = {"units": "persons", "long_name": LONG_NAME}
        self._rates = None
        if config.mode == "cohort":
            if self.base_year < FIRST_YEAR[config.basis]:
                raise ScenarioError(
                    None,
                    "time.base_year",
                    f"cohort mode starts from the {config.basis}-based projection: "
                    f"base_year must be {FIRST_YEAR[config.basis]} or later",
                )
            self._rates = calibrate(reference, config.variant, config.basis)
        self.year = self.base_year
        # never modified in place: `advance` replaces it, `current` hands out copies
        self._pop = self._projection[self.base_year - self.first_data_year]

    def _check_year(self, year: int, field: str) -> None:
        if not self.first_data_year <= year <= self.last_data_year:
            raise ScenarioError(
                None,
                field,
                f"year {year} is outside the population data "
                f"({self.first_data_year}..{self.last_data_year})",
            )

    @property
    def coords(self) -> dict[str, xr.DataArray]:
        """The (icb, sex, age) coordinates of every population this model returns."""
        return {name: self._template.coords[name] for name in self._template.coords}

    @property
    def rates(self) -> CohortRates | None:
        """The calibrated cohort rates (None in projection mode), for diagnostics."""
        return self._rates

    def current(self) -> xr.DataArray:
        """Population (icb, sex, age) in persons at mid-year `self.year`."""
        return self._template.copy(deep=False, data=self._pop.copy())

    def advance(self) -> None:
        """Move the population on one year (cohort step, or the next projection year)."""
        nxt = self.year + 1
        self._check_year(nxt, "time.end_year")
        if self._rates is None:
            self._pop = self._projection[nxt - self.first_data_year]
        else:
            self._pop = cohort_step(self._pop, self._rates, self.year, self._config, self.base_year)
        self.year = nxt


def population_path(
    config: PopulationConfig,
    time: TimeConfig,
    reference: xr.Dataset,
    series: xr.DataArray | None = None,
) -> xr.DataArray:
    """Population (year, icb, sex, age) for every year base_year..end_year of the scenario
    (`series` as for `PopulationModel`)."""
    model = PopulationModel(config, time, reference, series)
    frames = [model.current().values]
    while model.year < model.end_year:
        model.advance()
        frames.append(model.current().values)
    return xr.DataArray(
        np.stack(frames),
        dims=("year", "icb", "sex", "age"),
        coords={"year": np.arange(model.base_year, model.end_year + 1), **model.coords},
        name="population",
        attrs={"units": "persons", "long_name": LONG_NAME},
    )
