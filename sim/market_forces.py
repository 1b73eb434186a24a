"""Market forces: unavoidable differences in what the same care costs in different areas.

One assumption serves two modules: `allocation` may recognise these differences in the
target formula (the `market_forces` switch), and `demand` always charges them on ordinary
cases' costs, because they are real costs whether or not a formula pays for them.
"""

from __future__ import annotations

import pandas as pd
import xarray as xr

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


def weighted_mean_one(index: xr.DataArray, weight: xr.DataArray) -> xr.DataArray:
    """Rescale `index` so its `weight`-weighted mean is exactly 1 (a pure redistribution)."""
    return index * weight.sum() / (index * weight).sum()


def market_forces_index(region_name: xr.DataArray, weight: xr.DataArray) -> xr.DataArray:
    """Regional MFF per ICB (assumption, MARKET_FORCES_BY_REGION), weighted mean 1."""
    values = pd.Series(region_name.values).map(MARKET_FORCES_BY_REGION)
    if values.isna().any():
        unknown = sorted(set(region_name.values[values.isna().to_numpy()]))
        raise DataError("icbs.csv", f"region_name: no market forces index for {unknown}")
    raw = xr.DataArray(values.to_numpy(float), dims="icb", coords={"icb": region_name["icb"]})
    return weighted_mean_one(raw, weight)
