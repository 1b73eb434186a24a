"""The needs-based target formula: cost curve, need adjustments and target shares (numpy).

Why numpy: the formula runs every April of every scenario (and hundreds of times for an
attribution), on arrays of 42 ICBs; xarray's bookkeeping would cost more than the sums.
xarray stays at the edges (`sim.allocation` labels the results).

Need adjustments are a registry: each one is a function returning a multiplier per ICB,
registered with the scenario fields it reads, and `[allocation]` in the scenario schema is
assembled from it. A new adjustment is one function here (plus tests and docs). They are
applied in registration order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field
from pydantic.fields import FieldInfo

from sim.market_forces import market_forces_index, weighted_mean_one

if TYPE_CHECKING:
    from sim.scenario import AllocationConfig

HISTORIC_DEPRIVATION_ELASTICITY = 0.3
"""Assumption: historic spend per weighted head rose with deprivation more steeply than the
needs target does (specialist centres sit in large, often deprived cities, and ACRA's impact
analysis moved money away from the most deprived ICBs). Starting spend share is the age/sex
weighted population x MFF x (1 + elasticity x (IMD index - 1))."""


@dataclass(frozen=True)
class NeedInputs:
    """Per-ICB need signals on one footprint; fixed for a run (they do not follow population).

    `weight` (GP-registered patients, Aug 2026) fixes what "England average" means, so a
    bigger ICB never gets a smaller target (a tested property).
    """

    imd_score: np.ndarray
    imd_health_score: np.ndarray
    weight: np.ndarray
    region_name: np.ndarray


def deprivation_index(need: NeedInputs) -> np.ndarray:
    """IMD average score relative to its weighted mean (1 = England average)."""
    return weighted_mean_one(need.imd_score.astype(float), need.weight)


def unmet_need_index(need: NeedInputs) -> np.ndarray:
    """IoD health-deprivation score mapped to [0.5, 1.5] around its weighted mean of 1.

    The health domain score is centred near zero and can be negative, so it is used as a
    relative position, not a ratio (assumption, documented).
    """
    score, weight = need.imd_health_score, need.weight
    centred = score - (score * weight).sum() / weight.sum()
    spread = float(abs(centred).max())
    return 1.0 + (centred / (2.0 * spread) if spread > 0 else 0.0 * centred)


# --- the registry of need adjustments -------------------------------------------------------

Multiplier = Callable[[float, NeedInputs], np.ndarray]
"""(weight from the scenario, need inputs) -> multiplier per ICB."""


@dataclass(frozen=True)
class NeedAdjustment:
    """A switchable adjustment: `[allocation] <name> = true/false` and, if it has one,
    `<name>_weight` (declared by `weight`)."""

    name: str
    multiplier: Multiplier
    enabled: bool
    weight: FieldInfo | None
    summary: str


NEED_ADJUSTMENTS: dict[str, NeedAdjustment] = {}


def need_adjustment(
    name: str, enabled: bool = True, weight: FieldInfo | None = None
) -> Callable[[Multiplier], Multiplier]:
    """Register a multiplier as the adjustment `name` (default on or off, optional weight)."""

    def register(multiplier: Multiplier) -> Multiplier:
        summary = (multiplier.__doc__ or "").strip().splitlines()[0]
        NEED_ADJUSTMENTS[name] = NeedAdjustment(name, multiplier, enabled, weight, summary)
        return multiplier

    return register


@need_adjustment(
    "health_inequalities",
    weight=Field(0.10, ge=0.0, le=1.0, description="weight on the deprivation index"),
)
def health_inequalities(weight: float, need: NeedInputs) -> np.ndarray:
    """Health inequalities: 1 + weight x (IMD index - 1)."""
    return 1.0 + weight * (deprivation_index(need) - 1.0)


@need_adjustment(
    "unmet_need",
    weight=Field(0.05, ge=0.0, le=1.0, description="weight on the unmet-need index"),
)
def unmet_need(weight: float, need: NeedInputs) -> np.ndarray:
    """Unmet need: 1 + weight x (health-deprivation index - 1)."""
    return 1.0 + weight * (unmet_need_index(need) - 1.0)


@need_adjustment("market_forces")
def market_forces(weight: float, need: NeedInputs) -> np.ndarray:
    """Market forces: the regional unavoidable-cost index (weighted mean 1)."""
    return market_forces_index(need.region_name, need.weight)


def need_multiplier(config: AllocationConfig, need: NeedInputs) -> np.ndarray:
    """Product of the switched-on adjustments, in registration order."""
    mult = np.ones(need.weight.shape, dtype=float)
    for adjustment in NEED_ADJUSTMENTS.values():
        if getattr(config, adjustment.name):
            weight = getattr(config, f"{adjustment.name}_weight", 1.0)
            mult = mult * adjustment.multiplier(weight, need)
    return mult


# --- cost curve and target ------------------------------------------------------------------


def cost_curve(
    profiles: np.ndarray, shares: np.ndarray, national_population: np.ndarray
) -> np.ndarray:
    """Specialised cost weight per head by (sex, age), population-weighted mean 1.

    `profiles` (service, sex, age) are the services' utilisation profiles and `shares`
    (service,) their catalogue budget shares: each service's spend is spread over the
    national population along its profile, then summed. The curve is flatter at older ages
    than the core general-and-acute one because children's, mental health and rare-disease
    services weigh heavily (DOMAIN.md, ACRA).
    """
    reach = np.einsum("ksa,sa->k", profiles, national_population)
    per_head = np.einsum("k,ksa->sa", shares / reach, profiles)
    return per_head * national_population.sum() / (per_head * national_population).sum()


def historic_share(population: np.ndarray, need: NeedInputs, curve: np.ndarray) -> np.ndarray:
    """Documented starting distribution of actual spend by ICB (sums to 1); see constants."""
    age_sex = (population * curve).sum(axis=(1, 2))
    raw = (
        age_sex
        * market_forces_index(need.region_name, need.weight)
        * (1.0 + HISTORIC_DEPRIVATION_ELASTICITY * (deprivation_index(need) - 1.0))
    )
    return raw / raw.sum()


@dataclass(frozen=True)
class Target:
    """The formula's result per ICB: weighted population, need index, target share."""

    weighted_population: np.ndarray
    need_index: np.ndarray
    target_share: np.ndarray


def target_formula(
    config: AllocationConfig,
    population: np.ndarray,
    need: NeedInputs,
    curve: np.ndarray,
    historic: np.ndarray | None,
) -> Target:
    """Weighted population, need index and target share for the chosen formula.

    `population` (icb, sex, age) is on the formula's base (resident or registered).
    Weighted populations sum nationally to the population (the AIF convention), so the need
    index is weighted population per head, England = 1.
    """
    heads = population.sum(axis=(1, 2))
    if config.formula == "capitation":
        raw = heads.astype(float)
    elif config.formula == "historic":
        raw = historic
    else:
        raw = (population * curve).sum(axis=(1, 2))
        if config.formula == "needs":
            raw = raw * need_multiplier(config, need)
    share = raw / raw.sum()
    weighted = share * heads.sum()
    return Target(weighted, weighted / heads, share)
