"""The needs-based target formula: cost curve, need adjustments and target shares (numpy).

Why numpy: the formula runs every April of every scenario (and hundreds of times for an
attribution), on arrays of 42 ICBs; xarray's bookkeeping would cost more than the sums.
xarray stays at the edges (`sim.allocation` labels the results).

Need is modelled per service group (`NeedModel`, estimated from demand by
`sim.calibration`), so an ICB's target for a portfolio is the sum over its services of each
service's budget times the ICB's share of its group's need. Policy adjustments on top of
measured need are a registry: each one is a function returning a multiplier per ICB,
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
    enabled=False,
    weight=Field(0.10, ge=0.0, le=1.0, description="weight on the deprivation index"),
)
def health_inequalities(weight: float, need: NeedInputs) -> np.ndarray:
    """Health inequalities uplift beyond measured need: 1 + weight x (IMD index - 1)."""
    return 1.0 + weight * (deprivation_index(need) - 1.0)


@need_adjustment(
    "unmet_need",
    enabled=False,
    weight=Field(0.05, ge=0.0, le=1.0, description="weight on the unmet-need index"),
)
def unmet_need(weight: float, need: NeedInputs) -> np.ndarray:
    """Unmet need beyond current use: 1 + weight x (health-deprivation index - 1)."""
    return 1.0 + weight * (unmet_need_index(need) - 1.0)


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
class NeedModel:
    """NHS England-style need sub-models, one per need group, as estimated at a data year
    (`sim.calibration.estimate`): each service's expected spend per unit of exposure (its
    group's age/sex cost curve is the sum of its services' utilisation profiles weighted by
    these), its group's deprivation response, its area cost index, and the services' shares
    of national spend (the budget split)."""

    spend_rate: np.ndarray
    """(service,) GBP per unit of exposure (people weighted by the service's profile)."""
    deprivation: np.ndarray
    """(icb23, service) the group's deprivation response per ICB, weighted mean 1."""
    area: np.ndarray
    """(icb23, service) cost per patient relative to England (market forces)."""
    group: np.ndarray
    """(service,) need group index."""
    budget_share: np.ndarray
    """(service,) share of national expected spend at the data year."""
    profiles: np.ndarray
    """(profile, sex, age) utilisation profiles; `profile_index` (service,) picks each
    service's."""
    profile_index: np.ndarray


def service_need(config: AllocationConfig, population: np.ndarray, model: NeedModel) -> np.ndarray:
    """(icb23, service) need by the formula before policy adjustments, for `population`
    (icb23, sex, age) on the formula's base.

    needs: exposure (people weighted by each service's profile) x spend rate x (deprivation
    response if `config.deprivation`) x (area index if `config.market_forces`); age_sex:
    exposure x spend rate; capitation: heads. (The historic formula rolls last year's shares
    forward instead; see `sim.plan`.)
    """
    if config.formula == "capitation":
        heads = population.sum(axis=(1, 2)).astype(float)
        return np.broadcast_to(heads[:, None], (heads.size, model.group.size)).copy()
    exposure = np.einsum("isa,psa->ip", population, model.profiles)[:, model.profile_index]
    need = exposure * model.spend_rate
    if config.formula == "needs":
        if config.deprivation:
            need = need * model.deprivation
        if config.market_forces:
            need = need * model.area
    return need


def group_shares(need: np.ndarray, group: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(icb, service): in each service's column, its need group's share of need, measured
    over the `columns` services of the group (all of them when none is in `columns`)."""
    out = np.empty_like(need)
    for g in np.unique(group):
        members = group == g
        measured = members & columns if (members & columns).any() else members
        total = need[:, measured].sum(axis=1)
        out[:, members] = (total / total.sum())[:, None]
    return out


@dataclass(frozen=True)
class Targets:
    """A year's needs-based targets on one footprint, as shares of the service portfolio.

    `notional_by_group` (icb, need group): the whole portfolio (sums to 1), the convergence
    target, by need group; `delegated_by_group` (icb, need group): the services each ICB
    holds, each service's
    budget times the ICB's share of its group's need (measured over the group's services
    delegated anywhere), summed by need group.
    """

    notional_by_group: np.ndarray
    delegated_by_group: np.ndarray
    heads: np.ndarray

    @property
    def notional(self) -> np.ndarray:
        """(icb,) the whole-portfolio target share, all groups (sums to 1)."""
        return self.notional_by_group.sum(axis=1)

    @property
    def delegated(self) -> np.ndarray:
        """(icb,) the delegated target, all groups."""
        return self.delegated_by_group.sum(axis=1)


def portfolio_targets(
    need: np.ndarray,
    group: np.ndarray,
    budget_share: np.ndarray,
    held: np.ndarray,
    heads: np.ndarray,
    n_groups: int | None = None,
) -> Targets:
    """Targets from need (icb, service), the budget split and who holds what (icb, service);
    `group` indexes each service's need group among `n_groups` (default: the groups up to
    the highest index used)."""
    every = np.ones(group.shape, bool)
    one_hot = np.eye(int(group.max()) + 1 if n_groups is None else n_groups)[group]
    notional = (group_shares(need, group, every) * budget_share) @ one_hot
    shares = group_shares(need, group, held.any(axis=0))
    delegated = (shares * budget_share * held) @ one_hot
    return Targets(notional, delegated, heads)
