"""Year-end settlement: who carries an ICB's over- or underspend of its delegated budget.

Why a registry: risk-sharing rules are policy questions analysts want to try side by side.
Each rule is one function registered under its scenario name with the parameters it reads;
the scenario schema (`[settlement]`) is assembled from this registry, so a new rule is one
function here (plus its tests and docs), and `settlement.risk_pool` accepts exactly the
registered names.

A rule takes the delegated variance (spend - allocation) of every replicate and ICB and
returns what each ICB still carries after the pool; whatever the ICBs do not carry, NHS
England does (`nhse_absorbs` above a threshold, a share of `regional` pools). Between
years, `carry_forward_share` of what an ICB carries moves into its next budget
(`settle_year`). Every pound of variance ends with an ICB or with NHS England.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class PoolInputs:
    """One year's delegated outcome, (replicate, icb) unless noted."""

    variance: np.ndarray
    """spend - allocation, GBP."""
    hc_excess: np.ndarray
    """the part of each very-high-cost case above the threshold, summed per ICB, GBP (drawn
    only for rules registered with `per_case`; zero otherwise)."""
    allocation: np.ndarray
    """(icb,) delegated allocation, GBP."""
    region: np.ndarray
    """(icb,) NHS region code."""


Rule = Callable[[PoolInputs, Any], np.ndarray]
"""(inputs, the scenario's `[settlement]` section) -> variance each ICB carries."""


@dataclass(frozen=True)
class RiskPool:
    """A registered rule and the scenario fields (name -> pydantic Field) it reads."""

    name: str
    rule: Rule
    parameters: dict[str, FieldInfo] = field(default_factory=dict)
    summary: str = ""
    per_case: bool = False
    """The rule reads `hc_excess`, so very-high-cost cases must be drawn one by one."""


RISK_POOLS: dict[str, RiskPool] = {}


def risk_pool(name: str, per_case: bool = False, **parameters: FieldInfo) -> Callable[[Rule], Rule]:
    """Register `rule` as `settlement.risk_pool = name`, declaring its scenario parameters
    and whether it needs each very-high-cost case's cost (`per_case`)."""

    def register(rule: Rule) -> Rule:
        summary = (rule.__doc__ or "").strip().splitlines()[0]
        RISK_POOLS[name] = RiskPool(name, rule, parameters, summary, per_case)
        return rule

    return register


def _shares(weights: np.ndarray) -> np.ndarray | float:
    total = weights.sum()
    return weights / total if total > 0 else 0.0


@risk_pool("none")
def keep_own(inputs: PoolInputs, config: Any) -> np.ndarray:
    """Each ICB carries all of its own over- or underspend."""
    return inputs.variance.copy()


@risk_pool(
    "regional",
    regional_pool_share=Field(
        0.5, ge=0.0, le=1.0, description="share of each ICB's variance put into its region's pool"
    ),
    regional_nhse_share=Field(
        0.0, ge=0.0, le=1.0, description="share of each regional pool NHS England carries"
    ),
)
def regional(inputs: PoolInputs, config: Any) -> np.ndarray:
    """A share of every ICB's variance is pooled in its region: NHS England carries a share
    of the pool, the region's ICBs the rest by allocation (over- and underspends alike)."""
    share = config.regional_pool_share
    icbs_part = share * (1.0 - config.regional_nhse_share)
    out = (1.0 - share) * inputs.variance
    for region in np.unique(inputs.region):
        members = inputs.region == region
        weight = _shares(inputs.allocation[members])
        pool = inputs.variance[:, members].sum(axis=1, keepdims=True)
        out[:, members] += icbs_part * pool * weight
    return out


@risk_pool("national_high_cost", per_case=True)
def national_high_cost(inputs: PoolInputs, config: Any) -> np.ndarray:
    """A national pool pays each case's cost above the threshold, funded by allocation."""
    weight = _shares(inputs.allocation)
    pooled = inputs.hc_excess.sum(axis=1, keepdims=True) * weight
    return inputs.variance - inputs.hc_excess + pooled


@risk_pool(
    "nhse_absorbs",
    nhse_absorbs_above=Field(
        0.05, ge=0.0, le=1.0, description="overspend beyond this fraction of allocation"
    ),
)
def nhse_absorbs(inputs: PoolInputs, config: Any) -> np.ndarray:
    """NHS England absorbs overspend beyond a fraction of allocation (not conserved)."""
    return np.minimum(inputs.variance, config.nhse_absorbs_above * inputs.allocation)


@dataclass(frozen=True)
class Settled:
    """One year's settlement for every replicate: it conserves money exactly, as
    variance.sum(icb) == outturn.sum(icb) + nhse."""

    outturn: np.ndarray
    """(replicate, icb) the over- (+) or underspend the ICB ends the year with, GBP."""
    carried_forward: np.ndarray
    """(replicate, icb) what moves into the ICB's next delegated budget, whole pounds: an
    overspend lowers it, an underspend raises it."""
    nhse: np.ndarray
    """(replicate,) what NHS England bears this year: its share of pools, what a rule
    absorbs, and the carry-forward it finances now less the one repaid now."""


def settle_year(inputs: PoolInputs, brought_forward: np.ndarray, config: Any) -> Settled:
    """The year's settlement: the ICB's variance plus last year's carry-forward (a lower or
    higher budget this year), then the risk-pool rule, then `carry_forward_share` of what
    the ICB carries moves into next year's budget, NHS England financing it in between."""
    effective = inputs.variance + brought_forward
    carried = settle(dataclasses.replace(inputs, variance=effective), config)
    forward = np.rint(config.carry_forward_share * carried)
    nhse = (
        effective.sum(axis=1)
        - carried.sum(axis=1)
        + forward.sum(axis=1)
        - brought_forward.sum(axis=1)
    )
    return Settled(carried - forward, forward, nhse)


def needs_each_case(config: Any) -> bool:
    """Whether the scenario's rule reads each very-high-cost case's cost."""
    return RISK_POOLS[config.risk_pool].per_case


def settle(inputs: PoolInputs, config: Any) -> np.ndarray:
    """The variance each ICB carries under the scenario's rule (`config.risk_pool`)."""
    return RISK_POOLS[config.risk_pool].rule(inputs, config)
