"""Formula calibration: when the need sub-models are re-estimated, and on which year's data.

Why a lever: NHS England estimates its need models from activity and costs some years old
and re-estimates them every few years, while demand moves on (services grow at different
rates, so each group's cost curve drifts). `[allocation] calibration = "lagged"` (the
default: the sub-models that share each service's budget between ICBs are re-estimated
every `refresh_years` from the base year, on data `data_lag_years` old, and the split of
the envelope between services is set every year from expected spend `split_lag_years` old;
assumptions 3, 2 and 1, in scenarios/baseline.toml) or `"perfect"` (both every year, on the
year's own expected demand). The estimate is the demand model read at the
data year: each service's expected spend per unit of exposure (new treatments funded by
then included), its need group's deprivation response and its area cost index
(`sim.need.NeedModel`), so with perfect calibration the formula reproduces expected demand
and a gap can only come from a named lever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.demand import DemandModel, non_demographic_trend
from sim.need import NeedModel

if TYPE_CHECKING:
    from sim.scenario import AllocationConfig


def data_year(year: int, base_year: int, config: AllocationConfig, earliest: int) -> int:
    """The year whose demand the need sub-models used in `year` were estimated on (never
    before `earliest`, the first year with population data: then the earliest is used)."""
    if config.calibration == "perfect":
        return year
    estimated = base_year + (year - base_year) // config.refresh_years * config.refresh_years
    return max(estimated - config.data_lag_years, earliest)


def split_year(year: int, config: AllocationConfig, earliest: int) -> int:
    """The year whose expected spend splits `year`'s envelope between services: budgets are
    set every year from a recent outturn, `split_lag_years` old (perfect: the year itself),
    never before `earliest`."""
    if config.calibration == "perfect":
        return year
    return max(year - config.split_lag_years, earliest)


def estimate(
    demand: DemandModel, population: np.ndarray, year: int, uplift: np.ndarray
) -> NeedModel:
    """The sub-models as read off expected demand in `year` (population: icb23, sex, age;
    uplift: each service's mean utilisation multiplier from new treatments that year).

    Spend per unit of exposure is rate x trend x uplift x national mean cost per patient;
    the area index is each ICB's cost per patient over the national mean; budget shares are
    each service's share of national expected spend that year, new treatments included.
    """
    trend = non_demographic_trend(demand.growth, year, demand.base_year)
    mean_cost = demand.costs.mean
    per_patient = demand.cost_per_patient()
    spend = (demand.annual_patients(population, year) * uplift * per_patient).sum(axis=0)
    return NeedModel(
        spend_rate=demand.rate * trend * uplift * mean_cost,
        deprivation=demand.deprivation,
        area=per_patient / mean_cost,
        group=demand.group,
        budget_share=spend / spend.sum(),
        profiles=demand.profiles,
        profile_index=demand.profile_index,
    )
