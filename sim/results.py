"""The results Dataset: streamed summaries over replicates, provenance attrs, national table.

WHY streamed: an ensemble of 10,000 replicates must not hold every replicate in memory, so
each replicate is folded into running statistics as soon as it arrives. WHY strictly in
replicate order: floating-point sums depend on how terms are grouped, so folding one
replicate at a time in global index order makes the summaries bit-identical for any chunk
size, number of workers or scheduler (the caller, `sim.experiment`, guarantees the order).

Definitions (also written into each variable's attrs):
- `X_mean`, `X_std`: mean and sample standard deviation (ddof=1) over replicates (Welford).
- `X_quantile`: quantiles 0.05, 0.5, 0.95 over replicates (numpy's "linear" definition). Exact
  while replications <= `PILOT`; beyond, estimated from a fixed-grid histogram per cell (see
  `QuantileSketch`), accurate to one bin width (bins are 1/`BINS` of the grid, which spans the
  first `PILOT` replicates' range plus 4 standard deviations either side).
- `p_overspend_1pct`, `p_overspend_5pct` (pooling, year, icb): share of replicates in which the
  ICB's delegated overspend exceeds 1% / 5% of its delegated allocation (`allocation`).
  `pooling="before"` uses `variance_to_budget` on the delegated portfolio (spend -
  allocation), `"after"` uses `overspend_after_pooling` (what the ICB still carries after the
  risk pool; the engine's fraction of the allocation, converted to GBP).
- `expected_shortfall` (pooling, year, icb): mean over replicates of max(overspend, 0) in GBP,
  i.e. the expected amount by which delegated spend exceeds the allocation (not CVaR).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import sim.accessor  # noqa: F401  (registers ds.specsim on every result)
from sim.outputs import (
    NATIONAL_THRESHOLDS,
    PARAMETER_VALUE,
    POOLING,
    QUANTILES,
    RISK_THRESHOLDS,
    schema,
)
from sim.version import specsim_version

PILOT = 64
SENSITIVITY_SAMPLE = 2000
"""Replicates (the first, in global order) whose outcomes are kept for the sensitivity
rank correlations: the standard error of a rank correlation near 0 is then about 0.02."""
BINS = 2048
GRID_SDS = 4.0
MIN_HALF_WIDTH = 0.02  # grid half-width is at least 2% of the cell's scale (see QuantileSketch)


class RunningMoments:
    """Welford mean and variance, one replicate at a time, so the result is order-defined."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.n = 0
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)

    def add(self, block: np.ndarray) -> None:
        for row in block:
            self.n += 1
            delta = row - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (row - self.mean)

    def std(self) -> np.ndarray:
        if self.n < 2:
            return np.full_like(self.m2, np.nan)
        return np.sqrt(self.m2 / (self.n - 1))


def _correlate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x column, y column) Pearson correlations of centred columns; NaN where constant."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x.T @ y) / np.sqrt(np.outer((x**2).sum(axis=0), (y**2).sum(axis=0)))


def partial_rank_correlations(parameters: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(parameter, *cells) partial rank correlation coefficients (PRCC): the Spearman
    correlation of each parameter with each outcome once the other parameters' ranks are
    regressed out of both. Why: the draws are independent, but in a finite sample they
    correlate a little by chance, and a weak parameter then borrows a strong one's effect
    (with 400 replicates, growth made the new treatments' cost look as if it moved delegated
    spend). With one parameter it is the Spearman correlation."""
    n, p = parameters.shape
    if n < p + 3:
        return np.full((p, *outcomes.shape[1:]), np.nan)
    x = pd.DataFrame(parameters).rank(method="average").to_numpy()
    y = pd.DataFrame(np.nan_to_num(outcomes.reshape(n, -1))).rank(method="average").to_numpy()
    out = np.empty((p, y.shape[1]))
    for j in range(p):
        others = np.column_stack([np.ones(n), np.delete(x, j, axis=1)])
        fit = np.linalg.lstsq(others, np.column_stack([x[:, j], y]), rcond=None)[0]
        residual = np.column_stack([x[:, j], y]) - others @ fit
        out[j] = _correlate(residual[:, :1], residual[:, 1:])[0]
    return out.reshape(p, *outcomes.shape[1:])


class RunningCovariance:
    """Welford co-moments of x and y per cell, one replicate at a time (order-defined)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.x = RunningMoments(shape)
        self.y = RunningMoments(shape)
        self.cxy = np.zeros(shape)

    def add(self, xs: np.ndarray, ys: np.ndarray) -> None:
        for x, y in zip(xs, ys, strict=True):
            dx = x - self.x.mean
            self.x.add(x[None])
            self.y.add(y[None])
            self.cxy += dx * (y - self.y.mean)

    def squared_correlation(self) -> np.ndarray:
        """corr(x, y)^2 per cell; NaN where either does not vary."""
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = self.cxy**2 / (self.x.m2 * self.y.m2)
        return np.where((self.x.m2 > 0) & (self.y.m2 > 0), r2, np.nan)


class QuantileSketch:
    """Bounded-memory quantiles per cell, identical for any chunking of the replicates.

    The first `pilot` replicates (in global order) are kept exactly. They fix each cell's grid:
    centred on the pilot's mid-range, half-width = half the pilot range + `GRID_SDS` pilot
    standard deviations (at least `MIN_HALF_WIDTH` x `scale`, so an all-zero pilot still gets
    a usable grid), split into `bins` equal bins plus an underflow and an overflow bin. Later
    replicates only increment integer counts, and the exact minimum and maximum are kept, so
    the state does not depend on how replicates were grouped. A quantile is read by locating
    the order statistic's bin and spreading the bin's values uniformly across it (the
    under/overflow bins span the exact min/max to the grid edge).
    """

    def __init__(
        self, shape: tuple[int, ...], scale: np.ndarray | None, pilot: int, bins: int
    ) -> None:
        self.shape = shape
        self.cells = int(np.prod(shape))
        self.scale = None if scale is None else np.abs(np.broadcast_to(scale, shape)).ravel()
        self.pilot = pilot
        self.bins = bins
        self.rows: list[np.ndarray] = []
        self.kept = 0
        self.lo: np.ndarray | None = None
        self.width: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.minimum = np.full(self.cells, np.inf)
        self.maximum = np.full(self.cells, -np.inf)
        self.missing = np.zeros(self.cells, dtype=bool)  # cells with a NaN: quantile is NaN

    def add(self, block: np.ndarray) -> None:
        flat = block.reshape(len(block), self.cells)
        if len(flat):
            np.fmin(self.minimum, np.nanmin(flat, axis=0, initial=np.inf), out=self.minimum)
            np.fmax(self.maximum, np.nanmax(flat, axis=0, initial=-np.inf), out=self.maximum)
            self.missing |= np.isnan(flat).any(axis=0)
        if self.counts is None:
            take = min(len(flat), self.pilot - self.kept)
            self.rows.append(flat[:take].copy())
            self.kept += take
            flat = flat[take:]
            if self.kept == self.pilot:
                self._build_grid()
        if self.counts is not None and len(flat):
            self._count(flat)

    def _build_grid(self) -> None:
        pilot = np.concatenate(self.rows)
        pilot = np.where(np.isnan(pilot), 0.0, pilot)  # NaN cells report NaN anyway
        low, high = pilot.min(axis=0), pilot.max(axis=0)
        half = (high - low) / 2 + GRID_SDS * pilot.std(axis=0)
        floor = MIN_HALF_WIDTH * (np.abs(pilot).mean(axis=0) if self.scale is None else self.scale)
        half = np.maximum(np.fmax(half, floor), np.finfo(float).tiny)
        self.lo = (high + low) / 2 - half
        self.width = 2 * half / self.bins
        self.counts = np.zeros((self.cells, self.bins + 2), dtype=np.uint32)
        self.rows = []
        self._count(pilot)

    def _count(self, flat: np.ndarray) -> None:
        index = np.floor((flat - self.lo) / self.width)
        index = np.clip(np.nan_to_num(index, nan=-1.0), -1, self.bins).astype(np.int64) + 1
        width = self.bins + 2
        flat_bins = (np.arange(self.cells) * width + index).ravel()  # whole counts: any order
        self.counts += (
            np.bincount(flat_bins, minlength=self.cells * width)
            .reshape(self.cells, width)
            .astype(np.uint32)
        )

    def quantiles(self, qs: tuple[float, ...]) -> np.ndarray:
        """Array (quantile, *shape)."""
        if self.counts is None:
            exact = np.quantile(np.concatenate(self.rows), qs, axis=0)
            return exact.reshape((len(qs), *self.shape))
        cumulative = np.cumsum(self.counts, axis=1, dtype=np.int64)
        with np.errstate(invalid="ignore"):  # all-NaN cells: overwritten with NaN below
            out = np.stack([self._estimate(q, cumulative) for q in qs])
        out[:, self.missing] = np.nan
        return out.reshape((len(qs), *self.shape))

    def _estimate(self, q: float, cumulative: np.ndarray) -> np.ndarray:
        n = int(cumulative[0, -1])
        h = (n - 1) * q
        k = int(np.floor(h))
        frac = h - k
        low = self._order_statistic(k, cumulative)
        high = self._order_statistic(min(k + 1, n - 1), cumulative)
        if frac == 0:  # also keeps infinite/NaN neighbours out of an exact order statistic
            return low
        return low + frac * (high - low)

    def _order_statistic(self, k: int, cumulative: np.ndarray) -> np.ndarray:
        b = np.argmax(cumulative > k, axis=1)
        rows = np.arange(self.cells)
        before = np.where(b > 0, cumulative[rows, np.maximum(b - 1, 0)], 0)
        inside = self.counts[rows, b].astype(float)
        position = (k - before + 0.5) / inside
        left = np.where(b == 0, self.minimum, self.lo + (b - 1) * self.width)
        right = np.where(b == self.bins + 1, self.maximum, self.lo + b * self.width)
        left = np.minimum(left, right)
        return np.clip(left + position * (right - left), self.minimum, self.maximum)


class Summariser:
    """Folds chunks of per-replicate results, in global replicate order, into summaries."""

    def __init__(self, deterministic: xr.Dataset, pilot: int = PILOT, bins: int = BINS) -> None:
        self.deterministic = deterministic
        self.pilot = pilot
        self.bins = bins
        self.next_replicate = 0
        self.templates: dict[str, xr.DataArray] = {}
        self.moments: dict[str, RunningMoments] = {}
        self.sketches: dict[str, QuantileSketch] = {}
        self.exceed: dict[tuple[str, str], np.ndarray] = {}
        self.shortfall: dict[str, np.ndarray] = {}
        self.draws: list[xr.DataArray] = []
        self.sample: dict[str, list[np.ndarray]] = {"national_spend": [], "overspend": []}
        self.common: RunningCovariance | None = None
        self.national_exceed: dict[float, np.ndarray] = {}
        self.national_shortfall: np.ndarray | None = None

    def add(self, chunk: xr.Dataset) -> None:
        """Fold a chunk whose replicates continue exactly where the previous chunk stopped."""
        replicates = chunk["replicate"].values
        expected = np.arange(self.next_replicate, self.next_replicate + len(replicates))
        if not np.array_equal(replicates, expected):
            raise ValueError(
                f"chunk replicates {replicates[:1]}..{replicates[-1:]} do not continue "
                f"from replicate {self.next_replicate}"
            )
        for name, da in chunk.data_vars.items():
            if name == PARAMETER_VALUE.name:
                self.draws.append(da)
                continue
            if "replicate" not in da.dims:
                continue
            da = da.transpose("replicate", ...)
            if name not in self.templates:
                self._start(str(name), da)
            self.moments[name].add(da.values)
            self.sketches[name].add(da.values)
        self._add_risk(chunk)
        self.next_replicate += len(replicates)

    def _start(self, name: str, da: xr.DataArray) -> None:
        template = da.isel(replicate=0, drop=True)
        self.templates[name] = template
        self.moments[name] = RunningMoments(template.shape)
        self.sketches[name] = QuantileSketch(
            template.shape, self._scale(name, template), self.pilot, self.bins
        )

    def _scale(self, name: str, template: xr.DataArray) -> np.ndarray | None:
        """Magnitude that sets the sketch's minimum grid width: expected spend for money,
        1 for fractions (of an allocation), else the pilot's mean absolute value."""
        units = template.attrs.get("units")
        if units == "1":
            return np.ones(template.shape)
        if units != "GBP" or "expected_spend" not in self.deterministic:
            return None
        expected = self.deterministic["expected_spend"]
        if "portfolio" not in template.dims:
            expected = expected.sel(portfolio="delegated", drop=True)
        if "icb" not in template.dims:  # a national total
            expected = expected.sum("icb")
        return expected.broadcast_like(template).transpose(*template.dims).values

    def _risk_inputs(self, chunk: xr.Dataset) -> dict[str, xr.DataArray]:
        """Delegated overspend in GBP (replicate, year, icb), before and after pooling.

        The engine gives `overspend_after_pooling` as a fraction of the delegated allocation
        (units "1"); an ICB with no delegated allocation overspends nothing.
        """
        before = chunk["variance_to_budget"].sel(portfolio="delegated", drop=True)
        after = chunk["overspend_after_pooling"]
        if after.attrs.get("units") != "1":
            raise ValueError("overspend_after_pooling must be a fraction of the allocation")
        allocation = self.deterministic["allocation"]
        return {"before": before, "after": (after * allocation).where(allocation > 0, 0.0)}

    def _add_risk(self, chunk: xr.Dataset) -> None:
        allocation = self.deterministic["allocation"]
        for pooling, over in self._risk_inputs(chunk).items():
            over = over.transpose("replicate", "year", "icb")
            for metric, share in RISK_THRESHOLDS.items():
                limit = (allocation * share).transpose("year", "icb").values
                hits = (over.values > limit).sum(axis=0, dtype=np.int64)
                key = (metric, pooling)
                self.exceed[key] = self.exceed.get(key, 0) + hits
            total = self.shortfall.get(pooling, np.zeros(over.shape[1:]))
            # row by row, in replicate order (cumsum is sequential): chunking cannot change it
            rows = np.concatenate([total[None], np.maximum(over.values, 0.0)])
            self.shortfall[pooling] = np.cumsum(rows, axis=0)[-1]
        self._add_national(chunk)
        self._add_sample(chunk)

    def _add_sample(self, chunk: xr.Dataset) -> None:
        """Keep the outcomes of the first SENSITIVITY_SAMPLE replicates for `sensitivity`."""
        room = SENSITIVITY_SAMPLE - sum(len(block) for block in self.sample["national_spend"])
        if room <= 0:
            return
        spend = chunk["national_spend"].transpose("replicate", "year", "portfolio").values
        over = chunk["variance_to_budget"].sel(portfolio="delegated", drop=True)
        self.sample["national_spend"].append(spend[:room])
        self.sample["overspend"].append(over.transpose("replicate", "year", "icb").values[:room])

    def _add_national(self, chunk: xr.Dataset) -> None:
        """England's overspend by portfolio, and how much of each ICB's delegated overspend
        moves with England's (the common part)."""
        budget = self.deterministic["budget"].sum("icb").transpose("year", "portfolio")
        spend = chunk["national_spend"].transpose("replicate", "year", "portfolio")
        over = spend.values - budget.values
        for share in NATIONAL_THRESHOLDS:
            hits = (over > share * budget.values).sum(axis=0, dtype=np.int64)
            self.national_exceed[share] = self.national_exceed.get(share, 0) + hits
        start = np.zeros(over.shape[1:]) if self.national_shortfall is None else None
        total = start if start is not None else self.national_shortfall
        self.national_shortfall = np.cumsum(
            np.concatenate([total[None], np.maximum(over, 0.0)]), axis=0
        )[-1]
        allocation = self.deterministic["allocation"].transpose("year", "icb")
        icb = chunk["variance_to_budget"].sel(portfolio="delegated", drop=True)
        icb = icb.transpose("replicate", "year", "icb").values
        england = over[..., 0] / np.where(budget.values[:, 0] > 0, budget.values[:, 0], np.nan)
        if self.common is None:
            self.common = RunningCovariance(allocation.shape)
        fraction = icb / np.where(allocation.values > 0, allocation.values, np.nan)
        self.common.add(
            np.nan_to_num(fraction), np.broadcast_to(np.nan_to_num(england)[..., None], icb.shape)
        )

    def result(self) -> xr.Dataset:
        """The summary Dataset: deterministic variables plus summaries of stochastic ones.

        Names, units and long names come from the schema (`sim.outputs.summary_variables`).
        """
        n = self.next_replicate
        out = self.deterministic.copy()
        described = schema()
        for name, template in self.templates.items():
            moments = self.moments[name]
            out[f"{name}_mean"] = template.copy(data=moments.mean)
            out[f"{name}_std"] = template.copy(data=moments.std())
            out[f"{name}_quantile"] = xr.DataArray(
                self.sketches[name].quantiles(QUANTILES),
                dims=("quantile", *template.dims),
                coords={"quantile": list(QUANTILES), **template.coords},
            )
            method = "exact" if n <= self.pilot else f"histogram sketch, {self.bins} bins"
            for suffix in ("_mean", "_std", "_quantile"):
                out[name + suffix].attrs = dict(described[name + suffix].attrs)
            out[f"{name}_quantile"].attrs["method"] = method
        if self.draws:
            out[PARAMETER_VALUE.name] = xr.concat(self.draws, dim="replicate")
            if out.sizes["parameter"]:
                out = out.merge(self._sensitivity(out[PARAMETER_VALUE.name]))
        return out.merge(self._risk_result(n), compat="override")

    def _sensitivity(self, draws: xr.DataArray) -> xr.Dataset:
        """Partial rank correlations of each parameter's draws with England's spend and
        with each ICB's delegated overspend, over the kept sample of replicates (NaN where
        either does not vary)."""
        spend = np.concatenate(self.sample["national_spend"])
        over = np.concatenate(self.sample["overspend"])
        values = draws.values[: len(spend)]
        template = self.deterministic["allocation"].transpose("year", "icb")
        budget = self.deterministic["budget"].sum("icb").transpose("year", "portfolio")
        described = schema()
        out = xr.Dataset(
            {
                "sensitivity_national_spend": (
                    ("parameter", "year", "portfolio"),
                    partial_rank_correlations(values, spend),
                ),
                "sensitivity_overspend": (
                    ("parameter", "year", "icb"),
                    partial_rank_correlations(values, over),
                ),
            },
            coords={"parameter": draws["parameter"].values, **template.coords, **budget.coords},
        )
        for name in out.data_vars:
            out[name].attrs = {**described[name].attrs, "replicates": len(spend)}
        return out

    def _national_result(self, n: int) -> xr.Dataset:
        budget = self.deterministic["budget"].sum("icb").transpose("year", "portfolio")
        described = schema()
        probabilities = np.stack([self.national_exceed[s] / n for s in NATIONAL_THRESHOLDS])
        out = xr.Dataset(
            {
                "p_national_overspend": (
                    ("threshold", "year", "portfolio"),
                    probabilities,
                ),
                "national_expected_shortfall": (
                    ("year", "portfolio"),
                    self.national_shortfall / n,
                ),
                "common_risk_share": (("year", "icb"), self.common.squared_correlation()),
            },
            coords={"threshold": list(NATIONAL_THRESHOLDS), **budget.coords},
        )
        for name in out.data_vars:
            out[name].attrs = dict(described[name].attrs)
        out["threshold"].attrs = {
            "units": "1",
            "long_name": "overspend above this fraction of England's budget",
        }
        return out

    def _risk_result(self, n: int) -> xr.Dataset:
        template = self.deterministic["allocation"].transpose("year", "icb")
        coords = {"pooling": list(POOLING), **template.coords}
        dims = ("pooling", "year", "icb")
        described = schema()
        out = xr.Dataset()
        for metric in RISK_THRESHOLDS:
            counts = np.stack([self.exceed[(metric, p)] for p in POOLING])
            out[metric] = xr.DataArray(counts / n, dims=dims, coords=coords)
        shortfall = np.stack([self.shortfall[p] / n for p in POOLING])
        out["expected_shortfall"] = xr.DataArray(shortfall, dims=dims, coords=coords)
        for name in out.data_vars:
            out[name].attrs = dict(described[name].attrs)
        out["pooling"].attrs = {
            "long_name": "before: spend - allocation; after: overspend the ICB carries "
            "after the risk pool",
        }
        return out.merge(self._national_result(n))


def _netcdf_safe(value: Any) -> str | int | float:
    """NetCDF attrs must be strings or numbers: booleans become 0/1, anything else a string."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | float | str | np.integer | np.floating):
        return value
    return str(value)


def check_schema(ds: xr.Dataset) -> None:
    """Every result variable is in the schema, with its dims, units and long name."""
    described = schema()
    for name, da in ds.data_vars.items():
        var = described.get(str(name))
        if var is None:
            raise ValueError(f"result variable {name!r} is not in the schema (sim.outputs)")
        if da.dims != var.full_dims or {k: da.attrs.get(k) for k in var.attrs} != var.attrs:
            raise ValueError(
                f"result variable {name!r} has dims {da.dims} and attrs {da.attrs}; "
                f"the schema says {var.full_dims} and {var.attrs}"
            )


def finalise(
    ds: xr.Dataset, scenario: Any, seed: int, replications: int, data: tuple[str, str]
) -> xr.Dataset:
    """Attach provenance attrs and check the schema, ready to be written to NetCDF.

    `data` is the (data_version, sources) of the reference data the engine used.
    """
    check_schema(ds)
    data_version, sources = data
    attrs: Mapping[str, Any] = {
        **ds.attrs,
        "scenario_name": scenario.name,
        "scenario_text": scenario.source_text,
        "scenario_sha256": scenario.sha256,
        "scenario_json": scenario.model_dump_json(),
        "seed": int(seed),
        "replications": int(replications),
        "specsim_version": specsim_version(),
        "data_version": data_version,
        "sources": sources,
    }
    out = ds.copy()
    out.attrs = {k: _netcdf_safe(v) for k, v in attrs.items() if v is not None}
    for da in out.variables.values():
        da.attrs = {k: _netcdf_safe(v) for k, v in da.attrs.items() if v is not None}
    return out


def combine_scenarios(datasets: list[xr.Dataset]) -> xr.Dataset:
    """One Dataset with a `scenario` dimension; per-scenario provenance becomes coordinates."""
    names = [str(ds.attrs["scenario_name"]) for ds in datasets]
    per_scenario = ("scenario_text", "scenario_sha256", "scenario_json")
    combined = xr.concat(
        [ds.drop_attrs(deep=False) for ds in datasets],
        dim=pd.Index(names, name="scenario"),
        join="outer",
        coords="minimal",
        compat="override",
    )
    for key in per_scenario:
        combined.coords[key] = ("scenario", [str(ds.attrs[key]) for ds in datasets])
    shared = {k: v for k, v in datasets[0].attrs.items() if k not in per_scenario}
    shared["scenario_name"] = ", ".join(names)
    combined.attrs = shared
    return combined
