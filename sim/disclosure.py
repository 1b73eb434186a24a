"""Disclosure control for patient counts.

NHS England publishes activity for highly specialised services but suppresses any patient
count below 30, because a handful of patients at one of two or three national centres could be
identified. specsim applies the same rule to every patient count it reports where the
underlying services are highly specialised; the rule can be switched off only explicitly
(`suppress_small_counts=False`, CLI `--show-small-counts`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr

THRESHOLD = 30
MARKER = "*"
FOOTNOTE = (
    f"{MARKER} Patient counts from 1 to {THRESHOLD - 1} for highly specialised services are "
    "suppressed (NHS England's disclosure rule for small numbers)."
)
# Retained services are, by construction of the catalogue, mostly the highly specialised ones
# (they are never delegated); patient counts reported by portfolio treat "retained" as such.
HIGHLY_SPECIALISED_PORTFOLIOS = ("retained",)


def is_small(values: np.ndarray | pd.Series | xr.DataArray, threshold: int = THRESHOLD):
    """True where a count is disclosive: above zero but below the threshold.

    Zero is not disclosive (it identifies nobody); expected counts such as 0.4 are treated as
    small numbers too, because rounding them would publish a count of 1..29 patients.
    """
    return (values > 0) & (values < threshold)


def suppress_small_counts(
    data: xr.DataArray | pd.DataFrame,
    threshold: int = THRESHOLD,
    *,
    where: xr.DataArray | pd.Series | None = None,
    columns: Iterable[str] | None = None,
) -> xr.DataArray | pd.DataFrame:
    """Hide small patient counts: NaN in arrays, the marker "*" in tables.

    `where` limits the rule to the cells (DataArray, broadcast) or rows (DataFrame, boolean
    Series aligned on the index) whose services are highly specialised; by default every cell
    is checked. For a DataFrame, `columns` names the count columns (default: all numeric
    columns). The result carries the footnote in `attrs["disclosure_note"]` when anything was
    suppressed, so reports can say so.
    """
    if isinstance(data, xr.DataArray):
        mask = is_small(data, threshold)
        if where is not None:
            mask = mask & where
        out = data.where(~mask)
        if bool(mask.any()):
            out.attrs["disclosure_note"] = FOOTNOTE
        return out
    if isinstance(data, pd.DataFrame):
        cols = (
            list(columns)
            if columns is not None
            else list(data.select_dtypes(include="number").columns)
        )
        rows = (
            pd.Series(True, index=data.index)
            if where is None
            else where.reindex(data.index).fillna(False).astype(bool)
        )
        out = data.copy()
        suppressed = False
        for col in cols:
            mask = is_small(out[col], threshold).fillna(False).astype(bool) & rows
            if mask.any():
                out[col] = out[col].astype(object)
                out.loc[mask, col] = MARKER
                suppressed = True
        if suppressed:
            out.attrs["disclosure_note"] = FOOTNOTE
        return out
    raise TypeError(f"suppress_small_counts expects a DataArray or DataFrame, not {type(data)}")


def highly_specialised_mask(da: xr.DataArray) -> xr.DataArray | None:
    """Which cells of a patient-count array belong to highly specialised services.

    Uses the `portfolio` dimension (retained = highly specialised) or, for a `service`
    dimension, the catalogue's `highly_specialised` flag. None means "no way to tell": the
    caller should then suppress every small count.
    """
    if "portfolio" in da.dims:
        return da["portfolio"].isin(list(HIGHLY_SPECIALISED_PORTFOLIOS))
    if "service" in da.dims:
        from sim.reference import load_services

        services = load_services().set_index("service_id")["highly_specialised"].astype(bool)
        flags = services.reindex(da["service"].values).fillna(True).to_numpy()
        return xr.DataArray(flags, coords={"service": da["service"].values}, dims="service")
    return None
