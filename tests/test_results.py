"""Streamed summaries, the quantile sketch, provenance attrs and the national table."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import results
from sim.outputs import schema
from sim.results import QuantileSketch, RunningMoments
from sim.scenario import Scenario, TimeConfig


def split(values: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    edges = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    return [values[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def sketch_of(values: np.ndarray, cuts: list[int], pilot: int = 16, bins: int = 256):
    sketch = QuantileSketch(values.shape[1:], None, pilot, bins)
    for block in split(values, cuts):
        sketch.add(block)
    return sketch


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=6), st.integers(0, 2**31))
def test_sketch_and_moments_do_not_depend_on_grouping(cuts, seed):
    values = np.random.default_rng(seed).gamma(0.7, 3.0, size=(120, 5))
    whole = sketch_of(values, [])
    parts = sketch_of(values, cuts)
    np.testing.assert_array_equal(
        whole.quantiles((0.05, 0.5, 0.95)), parts.quantiles((0.05, 0.5, 0.95))
    )
    a, b = RunningMoments((5,)), RunningMoments((5,))
    a.add(values)
    for block in split(values, cuts):
        b.add(block)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std(), b.std())
    np.testing.assert_allclose(a.std(), values.std(axis=0, ddof=1), rtol=1e-10)


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n: rng.normal(3e8, 5e6, size=(n, 4)),  # spend-like
        lambda rng, n: rng.lognormal(0, 1.5, size=(n, 4)),  # heavy right tail
        lambda rng, n: np.where(rng.random((n, 4)) < 0.9, 0.0, rng.exponential(1e6, (n, 4))),
    ],
    ids=["normal", "lognormal", "zero-inflated"],
)
def test_sketch_quantiles_are_within_a_bin_of_exact(draw):
    """Beyond the pilot, each estimate lies within one bin width of numpy's exact quantile
    (or, outside the grid, between the true neighbouring order statistics' extremes)."""
    rng = np.random.default_rng(1)
    values = draw(rng, 5000)
    sketch = sketch_of(values, [700, 2100], pilot=64, bins=2048)
    got = sketch.quantiles(results.QUANTILES)
    exact = np.quantile(values, results.QUANTILES, axis=0)
    tolerance = np.maximum(sketch.width, 1e-9 * np.abs(exact))
    inside = (exact >= sketch.lo) & (exact <= sketch.lo + sketch.bins * sketch.width)
    assert inside.mean() > 0.8  # the grid covers the bulk of the distribution
    np.testing.assert_array_less(np.abs(got - exact)[inside], 1.0001 * tolerance[inside])
    assert (got >= values.min(axis=0)).all() and (got <= values.max(axis=0)).all()


def test_sketch_of_a_constant_is_exact():
    sketch = sketch_of(np.full((300, 2), 42.5), [10, 99])
    np.testing.assert_array_equal(sketch.quantiles((0.05, 0.5, 0.95)), 42.5)


def scenario() -> Scenario:
    return Scenario(name="unit", time=TimeConfig(base_year=2024, end_year=2025))


def small_dataset() -> xr.Dataset:
    years = [2024, 2025]
    icbs = ["E54000008", "E54000010"]
    described = schema()

    def variable(name: str, values: np.ndarray, **extra) -> tuple:
        return (described[name].full_dims, values, {**described[name].attrs, **extra})

    return xr.Dataset(
        {
            "allocation": variable("allocation", np.array([[100.0, 200.0], [110.0, 220.0]]) * 1e6),
            "envelope": variable("envelope", np.array([900e6, 950e6])),
            "spend_mean": variable("spend_mean", np.arange(8.0).reshape(2, 2, 2) * 1e6, flag=True),
        },
        coords={"year": years, "icb": icbs, "portfolio": ["delegated", "retained"]},
    )


def test_finalise_provenance_round_trips_netcdf(tmp_path):
    ds = results.finalise(
        small_dataset(), scenario(), seed=11, replications=5, data=("test-data-1", "ONS; NHSE")
    )
    assert ds.attrs["seed"] == 11 and ds.attrs["replications"] == 5
    assert ds.attrs["scenario_name"] == "unit"
    assert ds.attrs["data_version"] == "test-data-1" and ds.attrs["sources"] == "ONS; NHSE"
    assert '"name": "unit"' in ds.attrs["scenario_text"]
    assert len(ds.attrs["scenario_sha256"]) == 64
    assert ds["spend_mean"].attrs["flag"] == 1  # booleans are not valid NetCDF attrs
    ds.to_netcdf(tmp_path / "r.nc", engine="scipy")  # netCDF3: the strictest attrs
    back = xr.open_dataset(tmp_path / "r.nc", engine="scipy")
    assert back.attrs["scenario_sha256"] == ds.attrs["scenario_sha256"]


def test_finalise_rejects_variables_the_schema_does_not_describe():
    """Missing units, other dims, or a name the schema does not know: refused."""
    no_units = small_dataset()
    no_units["allocation"].attrs.pop("units")
    other_dims = small_dataset()
    other_dims["allocation"] = other_dims["allocation"].transpose("icb", "year")
    unknown = small_dataset().assign(mystery=small_dataset()["envelope"])
    for ds, name in ((no_units, "allocation"), (other_dims, "allocation"), (unknown, "mystery")):
        with pytest.raises(ValueError, match=name):
            results.finalise(ds, scenario(), seed=1, replications=1, data=("v", "s"))


def test_sketch_cell_with_missing_values_is_nan_and_others_unaffected():
    """An ICB absent in some replicates/years (NaN) must not corrupt the other cells."""
    values = np.random.default_rng(3).normal(10.0, 1.0, size=(200, 3))
    holed = values.copy()
    holed[150, 1] = np.nan
    got = sketch_of(holed, [77]).quantiles(results.QUANTILES)
    assert np.isnan(got[:, 1]).all()
    clean = sketch_of(values, []).quantiles(results.QUANTILES)
    np.testing.assert_array_equal(got[:, [0, 2]], clean[:, [0, 2]])
