"""Expected demand for specialised services: a chain of named factors, calibrated to the catalogue.

Why a chain: an analyst asks how much of a change in spend comes from more people, older
people, new treatments or deprivation. So expected patients per (ICB, service) in a year
are a product of named factors, each a pure function returning its multiplier (after the
model iterations of The Strategy Unit's NHP model):

    patients = exposure (demographic: population x utilisation profile)
               x deprivation (the service's need group's response to deprivation)
               x rate (calibrated so base-year spend equals the catalogue)
               x trend (non-demographic growth since the base year)
               x uplift (new treatments funded by CPAG or NICE; the calendar sets it)

and ordinary cases are priced by the area cost index (market forces). Each factor can be
switched to its base-year value to attribute change to it. Random draws are in
`sim.draws`; assumptions are documented in docs/demand_model.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.draws import CostModel
from sim.parameters import central
from sim.reference import CATALOGUE_YEAR, NEED_GROUPS

if TYPE_CHECKING:
    from sim.scenario import DemandConfig


DEPRIVATION_ELASTICITY = {
    "cancer": 0.05,
    "cardiac": 0.25,
    "renal": 0.40,
    "neonatal_critical_care": 0.20,
    "adult_critical_care": 0.25,
    "hiv_blood_infection": 0.30,
    "mental_health": 0.35,
    "other_physical": 0.10,
}
"""Assumption (docs/demand_model.md): use per head rises with deprivation as
(IMD score / England mean) ** elasticity, by need group. Renal replacement therapy,
cardiovascular disease, severe mental illness and HIV are strongly more common in
deprived areas; cancer much less so (incidence and treatment rates pull both ways).
`[demand] deprivation_multiplier` scales them all (0 switches the link off)."""


def demographic_exposure(
    population: np.ndarray, profiles: np.ndarray, profile_index: np.ndarray
) -> np.ndarray:
    """People weighted by each service's utilisation profile, (icb, service).

    `population` (icb, sex, age); `profiles` (profile, sex, age); `profile_index` the
    profile of each service.
    """
    return np.einsum("isa,psa->ip", population, profiles)[:, profile_index]


def deprivation_multiplier(
    imd_score: np.ndarray, weight: np.ndarray, elasticity: float
) -> np.ndarray:
    """Deprivation-linked utilisation multiplier per ICB, weighted mean 1 over `weight`.

    Why: need formulas only matter if need drives spend; utilisation is assumed to scale as
    (IMD score / mean) ** elasticity (elasticity 0 = no link).
    """
    raw = (imd_score / float(np.nanmean(imd_score))) ** elasticity
    return raw / float((raw * weight).sum() / weight.sum())


def group_deprivation(
    imd_score: np.ndarray, weight: np.ndarray, groups: np.ndarray, multiplier: float
) -> np.ndarray:
    """(icb, service): each service's need-group deprivation multiplier, weighted mean 1."""
    out = np.empty((imd_score.size, groups.size))
    for group in np.unique(groups):
        elasticity = DEPRIVATION_ELASTICITY[str(group)] * multiplier
        out[:, groups == group] = deprivation_multiplier(imd_score, weight, elasticity)[:, None]
    return out


def non_demographic_trend(growth: np.ndarray, year: int, base_year: int) -> np.ndarray:
    """Growth of each service's use per head since the base year, (service,)."""
    return (1.0 + growth) ** (year - base_year)


def expected_patients(
    exposure: np.ndarray, deprivation: np.ndarray, rate: np.ndarray, trend: np.ndarray
) -> np.ndarray:
    """The chain's product, (icb, service) patients a year (before new treatments);
    `deprivation` is (icb, service)."""
    return exposure * deprivation * (rate * trend)


@dataclass(frozen=True)
class DemandModel:
    """The calibrated, year-independent factors of one scenario, on the 2023 footprint.

    `rate[s]` is calibrated so that base-year national expected spend equals the catalogue's
    2023/24 spend grown at the service's non-demographic growth (see `build_demand`).
    `cost_index` (icb, service) prices ordinary cases by area.
    """

    services: np.ndarray
    """(service,) catalogue ids."""
    profile_index: np.ndarray
    profiles: np.ndarray
    group: np.ndarray
    """(service,) index of the service's need group in NEED_GROUPS."""
    rate: np.ndarray
    growth: np.ndarray
    deprivation: np.ndarray
    cost_index: np.ndarray
    costs: CostModel
    base_year: int
    base_population: np.ndarray
    demographic_growth: bool

    def cost_per_patient(self) -> np.ndarray:
        """(icb, service) expected cost of one patient: ordinary cases priced by area,
        very-high-cost cases at national prices."""
        c = self.costs
        return (1.0 - c.hc_share) * c.reg_mean * self.cost_index + c.hc_share * c.hc_mean

    def annual_patients(self, population: np.ndarray, year: int) -> np.ndarray:
        """Expected patients in financial year `year`, (icb, service), 2023 footprint.

        With `demographic_growth` off, the base year's population stands in for `population`.
        """
        people = population if self.demographic_growth else self.base_population
        exposure = demographic_exposure(people, self.profiles, self.profile_index)
        trend = non_demographic_trend(self.growth, year, self.base_year)
        return expected_patients(exposure, self.deprivation, self.rate, trend)


def build_demand(
    config: DemandConfig,
    services: pd.DataFrame,
    profiles: np.ndarray,
    profile_index: np.ndarray,
    imd_score: np.ndarray,
    base_population: np.ndarray,
    base_year: int,
    area_cost: np.ndarray,
) -> DemandModel:
    """Calibrate utilisation rates to the catalogue for the base year.

    `profiles` (profile, sex, age) are the utilisation profiles and `profile_index` the
    profile of each service (`sim.reference.ServiceProfiles`). `area_cost`
    (icb, weighted mean 1) scales ordinary cases' costs by area; it is normalised per
    service over the base year's patients, so every service's national expected spend still
    equals the catalogue. High-cost drugs and devices keep national prices.
    """
    groups = services["need_group"].astype(str).to_numpy()
    deprivation = group_deprivation(
        imd_score, base_population.sum(axis=(1, 2)), groups, central(config.deprivation_multiplier)
    )
    growth = services["non_demographic_growth"].to_numpy(float)
    costs = CostModel.from_catalogue(services, config.high_cost_cases)
    target_spend = services["baseline_spend_gbp"].to_numpy(float) * (1.0 + growth) ** (
        base_year - CATALOGUE_YEAR
    )
    exposure = demographic_exposure(base_population, profiles, profile_index)
    patients = exposure * deprivation
    weighted = patients.sum(axis=0)
    rate = target_spend / costs.mean / weighted
    cost_index = area_cost[:, None] * weighted / (area_cost[:, None] * patients).sum(axis=0)
    return DemandModel(
        services=services["service_id"].astype(str).to_numpy(),
        profile_index=profile_index,
        profiles=profiles,
        group=np.array([NEED_GROUPS.index(g) for g in groups]),
        rate=rate,
        growth=growth * central(config.growth_multiplier),
        deprivation=deprivation,
        cost_index=cost_index,
        costs=costs,
        base_year=base_year,
        base_population=base_population,
        demographic_growth=config.demographic_growth,
    )
