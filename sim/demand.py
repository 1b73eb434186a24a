"""Demand for specialised services: calibrated utilisation, growth, stochastic patients and costs.

Why this shape: an ICB's financial risk comes from two sources, the Poisson count of its
patients and the heavy-tailed cost of each one. Both are drawn per (icb, service) cell for a
whole month at once. The sum of N independent gamma(k, theta) costs is exactly
gamma(N k, theta), so a cell needs two variates, not one per patient. The rare very-high-cost
cases (CAR-T, gene therapies, complex transplants) are few, so they are drawn one by one; that
lets the national high-cost pool apply its per-patient threshold exactly.

Assumptions are documented in docs/demand_model.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from sim.reference import CATALOGUE_YEAR
from sim.scenario import DemandConfig

HIGH_COST_CV = 0.5
"""Coefficient of variation of a very-high-cost case's cost (assumption, not published)."""


def need_multiplier(
    imd_score: xr.DataArray, weight: xr.DataArray, elasticity: float
) -> xr.DataArray:
    """Deprivation-linked utilisation multiplier per ICB, weighted mean 1 over `weight`.

    Why: need formulas only matter if need drives spend; utilisation is assumed to scale as
    (IMD score / mean) ** elasticity (elasticity 0 = no link).
    """
    raw = (imd_score / float(imd_score.mean())) ** elasticity
    mult = raw / float((raw * weight).sum() / weight.sum())
    return mult.rename("need_multiplier").assign_attrs(
        units="1", long_name="deprivation-linked utilisation multiplier"
    )


@dataclass(frozen=True)
class CostModel:
    """Cost per patient by service: a gamma for ordinary cases, another for rare high-cost ones.

    `hc_share` is the share of a service's patients who are very-high-cost cases; `mean` is
    the expected cost of one patient of either kind.
    """

    reg_shape: np.ndarray
    reg_scale: np.ndarray
    hc_share: np.ndarray
    hc_shape: np.ndarray
    hc_scale: np.ndarray

    @property
    def reg_mean(self) -> np.ndarray:
        return self.reg_shape * self.reg_scale

    @property
    def hc_mean(self) -> np.ndarray:
        return self.hc_shape * self.hc_scale

    @property
    def mean(self) -> np.ndarray:
        return (1.0 - self.hc_share) * self.reg_mean + self.hc_share * self.hc_mean

    def hc_expected_excess(self, threshold: float) -> np.ndarray:
        """E[(X - threshold)+] for one high-cost case: what a per-patient pool would pay."""
        x = threshold / self.hc_scale
        return self.hc_mean * special.gammaincc(self.hc_shape + 1.0, x) - threshold * (
            special.gammaincc(self.hc_shape, x)
        )


def cost_model(services: pd.DataFrame, high_cost_cases: bool) -> CostModel:
    """Gamma parameters from the catalogue: ordinary-case mean and cv, and the high-cost
    cases' share of spend and mean cost.

    With high-cost cases switched off, every patient's cost comes from one gamma with the
    same overall mean and the ordinary cv: the expected spend is unchanged, only the tail goes.
    """
    mean = services["mean_cost_gbp"].to_numpy(float)
    cv = services["cost_cv"].to_numpy(float)
    spend_share = services["high_cost_share"].fillna(0.0).to_numpy(float)
    hc_mean = services["high_cost_mean_gbp"].fillna(0.0).to_numpy(float)
    has_hc = (hc_mean > 0) & (spend_share > 0)
    # the catalogue gives the high-cost share of SPEND; turn it into a share of patients
    hc_rate = np.where(has_hc, spend_share / np.where(has_hc, hc_mean, 1.0), 0.0)
    share = hc_rate / (hc_rate + (1.0 - spend_share) / mean)
    if not high_cost_cases:
        mean = (1.0 - share) * mean + share * hc_mean
        share = np.zeros_like(share)
    shape = 1.0 / cv**2
    hc_shape = np.full_like(mean, 1.0 / HIGH_COST_CV**2)
    hc_scale = np.where(share > 0, hc_mean / hc_shape, 1.0)
    return CostModel(shape, mean / shape, share, hc_shape, hc_scale)


@dataclass(frozen=True)
class DemandModel:
    """Expected patients per (icb, service) from population, utilisation, need and growth.

    rate[s] is calibrated so that base-year national expected spend equals the catalogue's
    2023/24 spend grown at the service's non-demographic growth (see `calibrate`).
    """

    service: np.ndarray
    profile_index: np.ndarray
    profiles: np.ndarray
    rate: np.ndarray
    growth: np.ndarray
    need: np.ndarray
    cost_index: np.ndarray
    costs: CostModel
    base_year: int

    def annual_patients(self, population: np.ndarray, year: int) -> np.ndarray:
        """Expected patients in financial year `year`, shape (icb, service).

        `population` is (icb, sex, age) on the 2023 footprint that `need` is indexed by.
        """
        exposure = np.einsum("isa,psa->ip", population, self.profiles)
        trend = (1.0 + self.growth) ** (year - self.base_year)
        return exposure[:, self.profile_index] * self.need[:, None] * (self.rate * trend)


def build_demand(
    config: DemandConfig,
    services: pd.DataFrame,
    profiles: xr.DataArray,
    imd_score: xr.DataArray,
    base_population: xr.DataArray,
    base_year: int,
    market_forces: xr.DataArray | None = None,
) -> DemandModel:
    """Calibrate utilisation rates to the catalogue for the base year.

    `market_forces` (icb, weighted mean 1) scales ordinary cases' costs by area; it is
    normalised per service over the base year's patients, so every service's national
    expected spend still equals the catalogue. High-cost drugs and devices keep national
    prices.
    """
    pop = base_population.transpose("icb", "sex", "age")
    prof = profiles.transpose("profile", "sex", "age").sel(sex=pop["sex"], age=pop["age"])
    names = list(prof["profile"].values)
    profile_index = np.array([names.index(p) for p in services["age_profile"]])
    need = need_multiplier(
        imd_score.sel(icb=pop["icb"]), pop.sum(("sex", "age")), config.deprivation_elasticity
    )
    g_hist = services["non_demographic_growth"].to_numpy(float)
    costs = cost_model(services, config.high_cost_cases)
    target_spend = services["baseline_spend_gbp"].to_numpy(float) * (1.0 + g_hist) ** (
        base_year - CATALOGUE_YEAR
    )
    exposure = np.einsum("isa,psa->ip", pop.values, prof.values)
    patients = exposure[:, profile_index] * need.values[:, None]
    weighted = patients.sum(axis=0)
    rate = target_spend / costs.mean / weighted
    area = np.ones(len(need)) if market_forces is None else market_forces.sel(icb=pop["icb"]).values
    cost_index = area[:, None] * weighted / (area[:, None] * patients).sum(axis=0)
    return DemandModel(
        service=services["service_id"].to_numpy(),
        profile_index=profile_index,
        profiles=prof.values,
        rate=rate,
        growth=g_hist * config.growth_multiplier,
        need=need.values,
        cost_index=cost_index,
        costs=costs,
        base_year=base_year,
    )


@dataclass(frozen=True)
class MonthDraw:
    """One month's outcome for one replicate, each (icb, service)."""

    patients: np.ndarray
    spend: np.ndarray
    hc_excess: np.ndarray


def expected_month(
    lam: np.ndarray, costs: CostModel, threshold: float, cost_index: np.ndarray | float = 1.0
) -> MonthDraw:
    """The expectation of `draw_month` (used when demand is not stochastic).

    `cost_index` (icb, service) scales ordinary cases' costs by area (market forces).
    """
    hc = lam * costs.hc_share
    reg = lam - hc
    spend = reg * costs.reg_mean * cost_index + hc * costs.hc_mean
    return MonthDraw(lam.copy(), spend, hc * costs.hc_expected_excess(threshold))


@dataclass(frozen=True)
class CellCosts:
    """Cost parameters broadcast to the flat (icb, service) cells, computed once per footprint."""

    reg_shape: np.ndarray
    reg_scale: np.ndarray
    hc_cells: np.ndarray
    hc_share: np.ndarray
    hc_shape: np.ndarray
    hc_scale: np.ndarray

    @classmethod
    def for_footprint(
        cls, costs: CostModel, n_icb: int, cost_index: np.ndarray | float = 1.0
    ) -> CellCosts:
        """`cost_index` (icb, service) scales ordinary cases' cost (gamma scale) by area."""
        tile = lambda a: np.tile(a, n_icb)  # noqa: E731 - cells are icb-major, service-minor
        share = tile(costs.hc_share)
        cells = np.flatnonzero(share > 0)
        reg_scale = np.broadcast_to(costs.reg_scale * cost_index, (n_icb, costs.reg_scale.size))
        return cls(
            tile(costs.reg_shape),
            reg_scale.ravel().copy(),
            cells,
            share[cells],
            tile(costs.hc_shape)[cells],
            tile(costs.hc_scale)[cells],
        )


def draw_month(
    rng: np.random.Generator, lam: np.ndarray, cells: CellCosts, threshold: float
) -> MonthDraw:
    """Patients and spend for one replicate and month; `lam` is expected patients per cell.

    Ordinary cases: N ~ Poisson, spend ~ gamma(N k, theta). High-cost cases (cells where the
    service has them): H ~ Poisson, each case's cost drawn on its own, and the part of each
    above `threshold` summed per cell for the national high-cost pool.
    """
    lam_hc = lam[cells.hc_cells] * cells.hc_share
    lam_reg = lam.copy()
    lam_reg[cells.hc_cells] -= lam_hc
    patients = rng.poisson(lam_reg).astype(np.float64)
    spend = rng.standard_gamma(patients * cells.reg_shape) * cells.reg_scale
    excess = np.zeros_like(spend)
    n_hc = rng.poisson(lam_hc)
    total = int(n_hc.sum())
    if total:
        which = np.repeat(np.arange(n_hc.size), n_hc)
        cost = rng.standard_gamma(cells.hc_shape[which]) * cells.hc_scale[which]
        size = n_hc.size
        spend[cells.hc_cells] += np.bincount(which, cost, minlength=size)
        excess[cells.hc_cells] = np.bincount(
            which, np.maximum(cost - threshold, 0.0), minlength=size
        )
        patients[cells.hc_cells] += n_hc
    return MonthDraw(patients, spend, excess)
