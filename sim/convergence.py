"""Pace of change: allocations move each year from where they were toward the needs target.

The published specialised convergence rules were not found (DOMAIN.md), so the rule is a
documented, switchable assumption in the shape of core ICB allocations: a floor on growth,
a share of the gap to target closed each year, and a cap on how far below target an ICB may
stay. Pure numpy: the uniform growth that spends the envelope is solved exactly (the total
is piecewise linear in it), not by an iterative root finder.
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
    """Allocations for a given uniform-growth position `core` (see `converge`); `core` may
    carry a leading axis of several positions at once."""
    step = core + config.gap_closure * (target - core)
    moved = np.maximum(np.maximum(step, floor), capped)
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

    growth = uniform_growth(baseline, target, floor, capped, config, total)
    out = _pace(baseline * (1.0 + growth), target, floor, capped, config)
    room = np.maximum(target - out, 0.0)  # an ICB with no baseline cannot grow into its target
    if total > out.sum() and room.sum() > 0:
        out = out + room * min(1.0, (total - out.sum()) / room.sum())
    return out * (total / out.sum())


def uniform_growth(
    baseline: np.ndarray,
    target: np.ndarray,
    floor: np.ndarray,
    capped: np.ndarray,
    config: ConvergenceConfig,
    total: float,
) -> float:
    """The growth c >= -1 at which `_pace` spends `total`, solved exactly.

    Each ICB's allocation is (1 - g) x baseline x (1 + c) + g x target, bounded below by
    its floor and cap and (over_target = "floor") above by its target: piecewise linear and
    non-decreasing in c, with kinks where the unbounded value meets a bound. So the total
    is too: evaluate it at every kink, find the segment that crosses `total`, and
    interpolate along it. If even a growth at which every ICB sits at its target or floor
    does not spend `total`, that growth is returned (the caller spreads the rest).
    """
    slope = (1.0 - config.gap_closure) * baseline
    moving = slope > 0
    bounds = np.stack([floor, capped, target])[:, moving]
    kinks = (bounds - config.gap_closure * target[moving]) / slope[moving] - 1.0
    kinks = np.unique(kinks[np.isfinite(kinks) & (kinks > -1.0)])
    grid = np.concatenate([[-1.0], kinks, [max(1.0, kinks.max(initial=0.0) + 1.0)]])
    spent = _pace(baseline * (1.0 + grid[:, None]), target, floor, capped, config).sum(axis=1)
    above = np.flatnonzero(spent >= total)
    if above.size == 0:
        return float(grid[-1])
    k = int(above[0])
    if k == 0 or spent[k] == spent[k - 1]:
        return float(grid[k])
    fraction = (total - spent[k - 1]) / (spent[k] - spent[k - 1])
    return float(grid[k - 1] + fraction * (grid[k] - grid[k - 1]))
