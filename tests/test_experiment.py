"""Ensembles: replicate streams, chunking, Dask execution, faults, Zarr output.

Most tests use `FAKE`, a small engine with the contract of the real one (the variables,
dims, units and long names of `sim.outputs`, and per-replicate streams) so they run in
milliseconds; a few run the real engine on a short horizon.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import xarray as xr

from sim import experiment
from sim.outputs import schema
from sim.scenario import RunConfig, Scenario, TimeConfig

ICBS = ["E54000008", "E54000010", "E54000011"]
PORTFOLIOS = ["delegated", "retained"]
BASE = np.array([[300e6, 500e6], [120e6, 210e6], [80e6, 150e6]])


def _variable(name: str, values: np.ndarray) -> tuple:
    """(dims, values, attrs) of a schema variable: the fake cannot drift from the engine."""
    var = schema()[name]
    return (var.full_dims, values, dict(var.attrs))


def _coords(scenario: Scenario) -> dict:
    return {
        "year": np.arange(scenario.time.base_year, scenario.time.end_year + 1),
        "icb": ICBS,
        "portfolio": PORTFOLIOS,
        "icb_name": ("icb", ["North", "Middle", "South"]),
    }


def _expected(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    years = np.arange(scenario.time.base_year, scenario.time.end_year + 1)
    growth = (1 + scenario.envelope.growth) ** (years - years[0])
    expected = growth[:, None, None] * BASE[None]
    return expected, expected[:, :, 0] * 1.01


def fake_deterministic(scenario: Scenario, prepared: object) -> xr.Dataset:
    expected, allocation = _expected(scenario)
    return xr.Dataset(
        {
            "allocation": _variable("allocation", allocation),
            "expected_spend": _variable("expected_spend", expected),
            "budget": _variable("budget", np.stack([allocation, expected[..., 1]], axis=-1)),
        },
        coords=_coords(scenario),
    )


def fake_replicates(scenario: Scenario, prepared: object, start: int, stop: int, seed: int):
    """Engine stand-in: lognormal spend around a growing expectation, one stream per replicate."""
    expected, allocation = _expected(scenario)
    draws = []
    for i in range(start, stop):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(i,))))
        draws.append(rng.lognormal(0.0, 0.03, size=expected.shape) * expected)
    spend = np.stack(draws) if draws else np.zeros((0, *expected.shape))
    variance = spend.copy()
    variance[..., 0] -= allocation
    variance[..., 1] -= expected[..., 1]
    # like the real engine: what the ICB carries after pooling, as a fraction of allocation
    after = np.where(variance[..., 0] > 0, 0.5 * variance[..., 0], variance[..., 0]) / allocation
    return xr.Dataset(
        {
            "spend": _variable("spend", spend),
            "national_spend": _variable("national_spend", spend.sum(axis=2)),
            "patients": _variable("patients", np.floor(spend / 1e4)),
            "variance_to_budget": _variable("variance_to_budget", variance),
            "overspend_after_pooling": _variable("overspend_after_pooling", after),
        },
        coords={**_coords(scenario), "replicate": np.arange(start, stop, dtype=np.int64)},
    )


def fake_simulate(scenario: Scenario, replicates: range, seed: int) -> xr.Dataset:
    """Deterministic and per-replicate variables in one Dataset, for direct comparisons."""
    reps = fake_replicates(scenario, None, replicates.start, replicates.stop, seed)
    return xr.merge([fake_deterministic(scenario, None), reps], compat="override")


def engine_with(replicates=fake_replicates, prepare=lambda scenario: None) -> experiment.Engine:
    return experiment.Engine(
        prepare=prepare,
        deterministic=fake_deterministic,
        replicates=replicates,
        provenance=lambda: ("fake", "fake engine"),
    )


FAKE = engine_with()


def slow_replicates(scenario, prepared, start, stop, seed):
    """Marks each chunk start (by worker pid) and is slow enough to be killed mid-chunk."""
    marks = Path(os.environ["SPECSIM_TEST_MARKS"])
    (marks / f"{start}-{os.getpid()}").touch()
    time.sleep(0.4)
    return fake_replicates(scenario, prepared, start, stop, seed)


# Worker processes cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def short(name: str = "baseline", growth: float = 0.055) -> Scenario:
    return Scenario(
        name=name, time=TimeConfig(base_year=2024, end_year=2026), envelope={"growth": growth}
    )


def run(scenarios=None, replications=10, **kwargs) -> xr.Dataset:
    kwargs.setdefault("engine", FAKE)
    kwargs.setdefault("progress", False)
    return experiment.run(scenarios or short(), replications, seed=7, **kwargs)


def test_summaries_match_direct_statistics():
    """Mean, std and exact quantiles (replications <= pilot) equal numpy on all replicates."""
    ds = run(replications=30, chunk_size=7)
    full = fake_simulate(short(), range(30), 7)
    spend = full["spend"]
    np.testing.assert_allclose(ds["spend_mean"], spend.mean("replicate"), rtol=1e-12)
    np.testing.assert_allclose(ds["spend_std"], spend.std("replicate", ddof=1), rtol=1e-9)
    expected_q = spend.quantile([0.05, 0.5, 0.95], dim="replicate")
    np.testing.assert_allclose(ds["spend_quantile"], expected_q, rtol=1e-12)
    xr.testing.assert_identical(ds["allocation"], full["allocation"])
    assert ds.attrs["replications"] == 30 and ds.attrs["seed"] == 7


def test_risk_metrics_by_hand():
    """p_overspend counts replicates above allocation x 1.01/1.05; shortfall is E[max(over,0)]."""
    ds = run(replications=40, chunk_size=9)
    full = fake_simulate(short(), range(40), 7)
    before = full["variance_to_budget"].sel(portfolio="delegated", drop=True)
    after = full["overspend_after_pooling"] * full["allocation"]  # fraction -> GBP
    for pooling, over in (("before", before), ("after", after)):
        got = ds.sel(pooling=pooling)
        for name, share in (("p_overspend_1pct", 0.01), ("p_overspend_5pct", 0.05)):
            hits = (over > full["allocation"] * share).sum("replicate") / 40
            np.testing.assert_array_equal(got[name], hits)
        np.testing.assert_allclose(
            got["expected_shortfall"], over.clip(min=0).mean("replicate"), rtol=1e-12
        )
    # pooling halves positive overspends in the fake engine, so it must lower the shortfall
    assert (
        ds["expected_shortfall"].sel(pooling="after")
        <= ds["expected_shortfall"].sel(pooling="before")
    ).all()
    assert 0 < float(ds["p_overspend_1pct"].sel(pooling="before").mean()) < 1


def test_identical_for_any_chunk_size():
    """Chunking only changes execution: results are bit-identical (beyond the pilot too)."""
    a = run(replications=150, chunk_size=150)
    b = run(replications=150, chunk_size=11)
    c = run(replications=150)
    xr.testing.assert_identical(a, b)
    xr.testing.assert_identical(a, c)
    assert "sketch" in a["spend_quantile"].attrs["method"]


def test_replicate_streams_are_keyed_by_index():
    """The same replicate index gives the same draws whatever else is in the run."""
    whole = fake_simulate(short(), range(20), 7)
    part = fake_simulate(short(), range(12, 14), 7)
    xr.testing.assert_identical(whole["spend"].sel(replicate=[12, 13]), part["spend"])


def test_several_scenarios_share_streams(tmp_path: Path):
    """A list of scenarios gives a `scenario` dim; common random numbers across them."""
    low, high = short("low", 0.0), short("high", 0.1)
    ds = run([low, high], replications=12, chunk_size=5, keep_replicates=tmp_path / "b.zarr")
    kept = xr.open_zarr(tmp_path / "b.zarr", group="high", consolidated=False)
    np.testing.assert_array_equal(kept["spend"], fake_simulate(high, range(12), 7)["spend"])
    assert list(ds["scenario"].values) == ["low", "high"]
    alone = run(high, replications=12)
    np.testing.assert_array_equal(ds["spend_mean"].sel(scenario="high"), alone["spend_mean"])
    # common random numbers: spend / expected is the same draw in both scenarios
    ratio = ds["spend_mean"] / ds["expected_spend"]
    np.testing.assert_allclose(ratio.sel(scenario="low"), ratio.sel(scenario="high"), rtol=1e-12)
    assert ds["scenario_sha256"].sel(scenario="low") != ds["scenario_sha256"].sel(scenario="high")


def test_replications_and_seed_default_to_the_scenario():
    scenario = short().model_copy(update={"run": RunConfig(replications=9, seed=5)})
    ds = experiment.run(scenario, engine=FAKE, progress=False)
    assert (ds.attrs["replications"], ds.attrs["seed"]) == (9, 5)
    direct = fake_simulate(scenario, range(9), 5)["spend"].mean("replicate")
    np.testing.assert_allclose(ds["spend_mean"], direct, rtol=1e-12)


def test_scenario_names_must_differ():
    from sim.errors import SpecsimError

    with pytest.raises(SpecsimError, match="names must differ"):
        run([short(), short()])


def test_default_chunking_keeps_tasks_in_hundreds():
    for replications in (1, 10, 1000, 10_000, 1_000_000):
        for scenarios in (1, 3):
            size = experiment.default_chunk_size(replications, scenarios, slots=2)
            tasks = experiment.plan(replications, scenarios, size)
            assert len(tasks) <= experiment.MAX_TASKS
            for s in range(scenarios):  # each scenario's chunks tile 0..replications exactly
                mine = [t for t in tasks if t.scenario == s]
                edges = [0] + [t.stop for t in mine]
                assert [t.start for t in mine] == edges[:-1] and edges[-1] == replications


def test_keep_replicates_writes_every_replicate(tmp_path: Path):
    """Every replicate, with the coordinates a reader needs to tell which ICB and year a
    number is, units and long names, and consolidated metadata."""
    out = tmp_path / "reps.zarr"
    run(replications=23, chunk_size=5, keep_replicates=out)
    stored = xr.open_zarr(out, consolidated=True).load()
    full = fake_simulate(short(), range(23), 7)
    np.testing.assert_array_equal(stored["spend"], full["spend"])
    np.testing.assert_array_equal(stored["replicate"], np.arange(23))
    assert list(stored["icb"].values) == ICBS and list(stored["year"].values) == [2024, 2025, 2026]
    assert list(stored["icb_name"].values) == ["North", "Middle", "South"]
    assert list(stored["portfolio"].values) == PORTFOLIOS
    assert stored["spend"].attrs == schema()["spend"].attrs
    assert [p.name for p in tmp_path.iterdir()] == ["reps.zarr"]


def test_interrupted_run_leaves_no_output(tmp_path: Path):
    """Ctrl-C mid-run: no store at PATH and no temporary left behind."""
    calls = []

    def interrupted(scenario, prepared, start, stop, seed):
        calls.append(start)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fake_replicates(scenario, prepared, start, stop, seed)

    with pytest.raises(KeyboardInterrupt):
        run(
            replications=20,
            chunk_size=4,
            keep_replicates=tmp_path / "r.zarr",
            engine=engine_with(interrupted),
        )
    assert list(tmp_path.iterdir()) == []


def test_each_scenario_is_prepared_once_and_chunks_get_what_was_prepared():
    """The deterministic path is computed once per scenario, in the caller, and every chunk
    receives that same object (shipped to workers, never recomputed)."""
    prepared, seen = [], []

    def prepare(scenario):
        prepared.append(scenario.name)
        return {"plan of": scenario.name}

    def replicates(scenario, plan, start, stop, seed):
        seen.append(plan["plan of"])
        return fake_replicates(scenario, plan, start, stop, seed)

    run(
        [short("a"), short("b")],
        replications=9,
        chunk_size=2,
        engine=engine_with(replicates, prepare),
    )
    assert prepared == ["a", "b"]
    assert sorted(seen) == ["a"] * 5 + ["b"] * 5


def short_toml(folder: Path) -> Path:
    """baseline.toml with a 4-year horizon, for tests on the real engine."""
    baseline = Path(__file__).parents[1] / "scenarios" / "baseline.toml"
    path = folder / "short.toml"
    path.write_text(f'extends = "{baseline}"\nname = "short"\n\n[time]\nend_year = 2027\n')
    return path


@pytest.mark.slow
def test_identical_in_process_and_on_two_workers(tmp_path: Path, monkeypatch):
    """The acceptance test, on the real engine: in-process in one chunk vs a 2-worker local
    cluster in chunks of 9; 70 replicates, so quantiles go through the sketch."""
    pytest.importorskip("h5py")  # the packaged reference data is HDF5 (NetCDF4)
    path = short_toml(tmp_path)
    reference = experiment.run(path, 70, seed=11, chunk_size=70, progress=False)
    on_cluster = experiment.run(path, 70, seed=11, chunk_size=9, workers=2, progress=False)
    xr.testing.assert_identical(reference, on_cluster)
    assert "sketch" in reference["spend_quantile"].attrs["method"]


@pytest.mark.slow
def test_killed_worker_loses_no_chunk(tmp_path: Path, monkeypatch):
    """Kill a worker process inside a chunk: Dask reruns that chunk; the result is exact."""
    from distributed import LocalCluster

    monkeypatch.setenv("SPECSIM_TEST_MARKS", str(tmp_path))  # inherited by worker processes
    reference = run(replications=24, chunk_size=2)
    killed = []

    def kill_inside_third_chunk() -> None:
        while len(list(tmp_path.iterdir())) < 3:
            time.sleep(0.02)
        name = sorted(tmp_path.iterdir(), key=lambda p: p.stat().st_mtime_ns)[-1].name
        killed.append(name)
        os.kill(int(name.split("-")[1]), 9)

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        killer = threading.Thread(target=kill_inside_third_chunk)
        killer.start()
        try:
            ds = run(
                replications=24,
                chunk_size=2,
                scheduler=cluster.scheduler_address,
                engine=engine_with(slow_replicates),
            )
        finally:
            killer.join()
    first = int(killed[0].split("-")[0])
    starts = [p.name.split("-")[0] for p in tmp_path.iterdir()]
    assert starts.count(str(first)) == 2  # the killed chunk ran again on another worker
    assert sorted(set(starts), key=int) == [str(r) for r in range(0, 24, 2)]
    xr.testing.assert_identical(reference, ds)


def test_real_engine_short_horizon(tmp_path: Path, monkeypatch):
    """The real engine through `run`: a TOML path, chunking-independent, exact means."""
    pytest.importorskip("h5py")  # the packaged reference data is HDF5 (NetCDF4)
    from sim.simulate import simulate

    path = short_toml(tmp_path)
    one = experiment.run(path, 6, seed=3, chunk_size=6, progress=False)
    other = experiment.run(path, 6, seed=3, chunk_size=4, progress=False)
    xr.testing.assert_identical(one, other)
    direct = simulate(experiment.load(path), range(6), 3)
    np.testing.assert_allclose(one["spend_mean"], direct["spend"].mean("replicate"), rtol=1e-12)
    assert list(one["year"].values) == [2024, 2025, 2026, 2027]
    assert one.attrs["scenario_name"] == "short" and one.attrs["data_version"]
    assert {"p_overspend_1pct", "expected_shortfall", "patients_quantile"} <= set(one.data_vars)
    # baseline has no risk pool: the ICB carries all its overspend, before = after
    assert one.attrs["scenario_text"].count('risk_pool = "none"') == 1
    risk = one[["p_overspend_1pct", "p_overspend_5pct", "expected_shortfall"]]
    xr.testing.assert_allclose(
        risk.sel(pooling="before", drop=True), risk.sel(pooling="after", drop=True)
    )
    assert float(one["expected_shortfall"].sum()) > 0


def test_missing_optional_dask_is_one_clear_error_before_any_work(monkeypatch):
    """A base install (no `[distributed]` extra) asked for workers fails at once, in one line
    naming the option and the extra to install, without simulating anything."""
    from sim.errors import SpecsimError

    real = experiment.find_spec
    monkeypatch.setattr(
        experiment, "find_spec", lambda name: None if name == "distributed" else real(name)
    )

    def must_not_run(*args, **kwargs):
        raise AssertionError("simulated before checking the optional dependency")

    engine = experiment.Engine(must_not_run, must_not_run, must_not_run, must_not_run)
    scenario = Scenario(name="x", time={"base_year": 2024, "end_year": 2025})
    with pytest.raises(SpecsimError, match=r"--workers/--scheduler needs .*distributed"):
        experiment.run(scenario, replications=2, seed=1, workers=2, engine=engine)


def test_national_risk_and_common_share_by_hand():
    """England's overspend probabilities and shortfall come from `national_spend` against
    the summed budget; the common share is the squared correlation, across replicates, of
    each ICB's delegated overspend fraction with England's."""
    ds = run(replications=40, chunk_size=9)
    full = fake_simulate(short(), range(40), 7)
    budget = full["budget"].sum("icb")
    over = full["national_spend"] - budget
    for threshold in (0.0, 0.01, 0.05):
        hits = (over > threshold * budget).sum("replicate") / 40
        got = ds["p_national_overspend"].sel(threshold=threshold, drop=True)
        np.testing.assert_array_equal(got, hits.transpose(*got.dims))
    shortfall = over.clip(min=0).mean("replicate")
    np.testing.assert_allclose(
        ds["national_expected_shortfall"], shortfall.transpose("year", "portfolio"), rtol=1e-12
    )
    icb = full["variance_to_budget"].sel(portfolio="delegated") / full["allocation"]
    england = over.sel(portfolio="delegated") / budget.sel(portfolio="delegated")
    r = xr.corr(icb, england, dim="replicate")
    np.testing.assert_allclose(ds["common_risk_share"], (r**2).transpose("year", "icb"), rtol=1e-9)
    assert 0 < float(ds["common_risk_share"].min()) <= float(ds["common_risk_share"].max()) < 1
