"""Market forces: unavoidable differences in what the same care costs in different areas.

One assumption serves two modules: the target formula may recognise these differences (the
`market_forces` need adjustment), and demand always charges them on ordinary cases' costs,
because they are real costs whether or not a formula pays for them.
"""

from __future__ import annotations

import numpy as np

from sim.errors import DataError

MARKET_FORCES_BY_REGION = {
    "London": 1.08,
    "South East": 1.03,
    "East of England": 1.01,
    "South West": 0.99,
    "Midlands": 0.98,
    "North West": 0.98,
    "North East and Yorkshire": 0.97,
}
"""Assumption (no MFF by ICB was found, SOURCES.md "Not found"): regional unavoidable-cost
indices, London highest, in the range of the published core-formula MFF; normalised to a
population-weighted mean of 1 before use."""


def weighted_mean_one(index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Rescale `index` so its `weight`-weighted mean is exactly 1 (a pure redistribution)."""
    return index * weight.sum() / (index * weight).sum()


def market_forces_index(region_name: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Regional MFF per ICB (assumption, MARKET_FORCES_BY_REGION), weighted mean 1."""
    unknown = sorted({str(r) for r in region_name} - set(MARKET_FORCES_BY_REGION))
    if unknown:
        raise DataError("icbs.csv", f"region_name: no market forces index for {unknown}")
    raw = np.array([MARKET_FORCES_BY_REGION[str(r)] for r in region_name], dtype=float)
    return weighted_mean_one(raw, weight)
