"""Pace of change: allocations move each year from where they were toward the needs target.

The published specialised convergence rules were not found (DOMAIN.md), so the rule is a
documented, switchable assumption in the shape of core ICB allocations: a floor on growth,
a share of the gap to target closed each year, and a cap on how far below target an ICB may
stay. Pure numpy; `scipy.optimize` is imported only when a round needs its root finder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.scenario import ConvergenceConfig


class FloorNotFundable(ValueError):
    """The envelope cannot give every ICB the minimum growth."""


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


def converge(baseline: np.ndarray, target: np.ndarray, config: ConvergenceConfig) -> np.ndarray:
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
        return low + (high - low) * ((total - low.sum()) / span if span > 0 else 0.0)

    def excess(growth: float) -> float:
        return float(_pace(baseline * (1.0 + growth), target, floor, capped, config).sum()) - total

    high, slack = 1.0, 1e-12 * total  # at high growth every ICB sits at target or floor
    for _ in range(64):
        if excess(high) >= -slack:
            break
        high = 2.0 * high + 1.0
    if excess(high) > 0:
        from scipy.optimize import brentq  # about 0.2 s to import: only when needed

        growth = brentq(excess, -1.0, high, xtol=1e-14)
    else:
        growth = high
    out = _pace(baseline * (1.0 + growth), target, floor, capped, config)
    room = np.maximum(target - out, 0.0)  # an ICB with no baseline cannot grow into its target
    if total > out.sum() and room.sum() > 0:
        out = out + room * min(1.0, (total - out.sum()) / room.sum())
    return out * (total / out.sum())
