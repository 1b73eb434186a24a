"""The ICBs that hold budgets: the 42 ICBs of April 2023, or the 36 after the April 2026 mergers.

Why one module: population, need, expected patients and money all live on the 2023
footprint in the data, and move onto the merged one along the same table of shares
(`merger_share`: each 2023 ICB's registered patients in each 2026 ICB, rows summing to one).
Counts move linearly along it, so national totals are conserved; scores (deprivation) are
averaged with a weight. Every module that changes footprint does it here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

FOOTPRINTS = (2023, 2026)
LABELS = ("icb_ods", "icb_name", "region", "region_ods", "region_name")
"""Non-index coordinates every result carries on `icb`."""


@dataclass(frozen=True, eq=False)
class Footprint:
    """A footprint: its ICB table and the shares mapping 2023 ICBs onto it.

    `share` is (icb23, icb); for the 2023 footprint it is the identity and mapping is a
    no-op. `name` (2023 or 2026) identifies the footprint in cache keys.
    """

    name: int
    table: pd.DataFrame
    share: np.ndarray

    @property
    def codes(self) -> np.ndarray:
        return self.table["icb"].to_numpy()

    @property
    def identity(self) -> bool:
        return self.name == 2023

    @property
    def regions(self) -> np.ndarray:
        """NHS region code of each ICB."""
        return self.table["region"].to_numpy()

    @property
    def region_names(self) -> np.ndarray:
        return self.table["region_name"].to_numpy()

    def counts(self, values: np.ndarray, axis: int = 0) -> np.ndarray:
        """Carry counts or money on 2023 ICBs (along `axis`) onto this footprint (summed)."""
        if self.identity:
            return values
        moved = np.tensordot(values, self.share, axes=([axis], [0]))
        return np.ascontiguousarray(np.moveaxis(moved, -1, axis))

    def scores(self, values: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Carry a per-ICB score onto this footprint as a `weight`-weighted mean."""
        if self.identity:
            return values
        return (values * weight) @ self.share / (weight @ self.share)

    def coords(self) -> dict[str, tuple[str, np.ndarray] | np.ndarray]:
        """xarray coordinates of the `icb` dimension: codes, names and regions."""
        out: dict[str, tuple[str, np.ndarray] | np.ndarray] = {"icb": self.codes}
        for column in LABELS:
            if column in self.table:
                out[column] = ("icb", self.table[column].to_numpy())
        return out

    def label(self, da: xr.DataArray | xr.Dataset) -> xr.DataArray | xr.Dataset:
        """Attach this footprint's ICB names and regions to an object with an `icb` dim."""
        return da.assign_coords({k: v for k, v in self.coords().items() if k != "icb"})


def build_footprints(icbs: dict[int, pd.DataFrame], merger_share: xr.DataArray) -> dict:
    """Both footprints from the ICB tables and the packaged `merger_share` (icb, icb26)."""
    table23 = icbs[2023].reset_index(drop=True)
    table26 = icbs[2026].reset_index(drop=True)
    codes23 = table23["icb"].to_numpy()
    share = merger_share.sel(icb=codes23, icb26=table26["icb"].to_numpy())
    return {
        2023: Footprint(2023, table23, np.eye(codes23.size)),
        2026: Footprint(2026, table26, np.asarray(share.values, dtype=float)),
    }


def footprint_year(year: int, mergers_enabled: bool, merger_year: int, base_year: int) -> int:
    """Which footprint holds budgets in `year` (the `[mergers]` section's rule)."""
    merged = mergers_enabled and year >= max(merger_year, base_year)
    return 2026 if merged else 2023
