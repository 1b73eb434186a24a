"""The deterministic path and its cache: keys read exactly the sections a path depends on,
plans are shared across a run's scenarios, and the disk cache is exact and safe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim import plan as P
from sim.reference import load_data
from sim.scenario import load_scenario
from sim.simulate import deterministic_of_plan

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="module")
def data():
    return load_data()


def scenario(name: str):
    return load_scenario(SCENARIOS / f"{name}.toml")


def test_keys_read_exactly_the_sections_a_path_depends_on(data):
    base, high, pooled = (
        scenario("baseline"),
        scenario("high_demand"),
        scenario("risk_pool_national"),
    )
    # the formula is calibrated on the scenario's own demand: demand growth moves both
    assert P.allocation_key(base, data) != P.allocation_key(high, data)
    assert P.plan_key(base, data) != P.plan_key(high, data)
    # settlement only: the same allocation path and the same plan
    assert P.allocation_key(base, data) == P.allocation_key(pooled, data)
    assert P.plan_key(base, data) == P.plan_key(pooled, data)
    # how draws are made is not part of the plan
    monthly = base.model_copy(deep=True)
    monthly.demand.draw_period = "month"
    monthly.demand.stochastic = False
    assert P.plan_key(monthly, data) == P.plan_key(base, data)
    # a name, a description or the run table change nothing either
    renamed = base.model_copy(update={"name": "other", "description": "x"}, deep=True)
    renamed.run.seed = 1
    assert P.plan_key(renamed, data) == P.plan_key(base, data)
    # policy does
    faster = scenario("fast_convergence")
    assert P.allocation_key(faster, data) != P.allocation_key(base, data)


def test_one_allocation_path_serves_every_scenario_that_shares_it(data, monkeypatch):
    """baseline and risk_pool_national differ only in settlement: one path for both
    (high_demand, calibrated on its own demand, needs its own), and one yardstick each."""
    computed = []
    real = P.allocation_round

    def counting(*args, **kwargs):
        computed.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "allocation_round", counting)
    cache = P.PlanCache()
    for name in ("baseline", "high_demand", "risk_pool_national"):
        P.plan_scenario(scenario(name), data, cache)
    years = scenario("baseline").time.end_year - scenario("baseline").time.base_year + 1
    # baseline (= risk_pool_national) and high_demand, each with its perfect-calibration
    # yardstick for the spend gap (sim.gaps): 4 paths for three scenarios, not 6
    assert len(computed) == 4 * years


def test_disk_cache_gives_the_same_path_and_survives_a_damaged_file(tmp_path, data):
    sc = scenario("icb_mergers_2026")  # two footprints: the hardest to store
    fresh = deterministic_of_plan(sc, P.plan_scenario(sc, data, P.PlanCache()))
    P.plan_scenario(sc, data, P.PlanCache(tmp_path))
    (stored,) = tmp_path.glob("plan-*.npz")
    again = deterministic_of_plan(sc, P.plan_scenario(sc, data, P.PlanCache(tmp_path)))
    xr.testing.assert_identical(fresh, again)
    stored.write_bytes(b"not a zip")
    damaged = deterministic_of_plan(sc, P.plan_scenario(sc, data, P.PlanCache(tmp_path)))
    xr.testing.assert_identical(fresh, damaged)
    with np.load(stored, allow_pickle=False) as rewritten:  # recomputed and written again
        assert "population_0" in rewritten.files
    assert [p.name for p in tmp_path.iterdir()] == [stored.name]  # no temporaries


@pytest.mark.slow
def test_concurrent_runs_share_a_cache_folder_safely(tmp_path):
    """Four processes fill one cache folder at once: each gets the same results."""
    cache = tmp_path / "cache"
    code = (
        "import sys, json; from sim.scenario import load_scenario; from sim.plan import "
        "PlanCache, plan_scenario; from sim.reference import load_data; "
        "from sim.simulate import deterministic_of_plan; s = load_scenario(sys.argv[1]); "
        "ds = deterministic_of_plan(s, plan_scenario(s, load_data(), PlanCache(sys.argv[2]))); "
        "print(json.dumps(int(ds['allocation'].sum())))"
    )
    args = [sys.executable, "-c", code, str(SCENARIOS / "baseline.toml"), str(cache)]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    totals = {json.loads(run.communicate()[0]) for run in runs}
    assert all(run.returncode == 0 for run in runs) and len(totals) == 1
    assert len(list(cache.glob("*.npz"))) == 1 and not list(cache.glob(".*"))
