"""Ensemble benchmarks: wall time on 1 and 2 Dask workers, peak memory, cost per replicate.

Figures, not tests (nothing here asserts a time). Each measurement runs in a fresh process so
peak memory (ru_maxrss) belongs to that measurement alone.

    .venv/bin/python benchmarks/bench_ensemble.py speed  --replications 1000 --workers 1 2
    .venv/bin/python benchmarks/bench_ensemble.py memory --replications 1000 10000
    .venv/bin/python benchmarks/bench_ensemble.py floor  --replications 1000
    .venv/bin/python benchmarks/bench_ensemble.py profile --replications 20   # pyinstrument

`--end-year` shortens the horizon (default 2043: full England, 20 years). `--synthetic`
swaps the engine for numpy draws with the engine's output shapes, which isolates the cost
and memory of the experiment layer itself (chunking, Dask, streamed summaries).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cloudpickle
import numpy as np
import xarray as xr

from sim import experiment, results
from sim.scenario import Scenario, load_scenario

BASELINE = Path(__file__).parents[1] / "scenarios" / "baseline.toml"
SEED = 20240401


def synthetic_simulate(
    scenario: Scenario, replicates: Sequence[int], seed: int, reference=None
) -> xr.Dataset:
    """Engine-shaped output (42 ICBs, every year) from one gamma draw per value."""
    years = np.arange(scenario.time.base_year, scenario.time.end_year + 1)
    icbs = [f"E54{i:06d}" for i in range(42)]
    expected = np.full((len(years), 42, 2), 3e8)
    allocation = expected[..., 0].copy()
    rows = []
    for i in replicates:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(i,))))
        rows.append(rng.gamma(400.0, 1 / 400.0, size=expected.shape) * expected)
    spend = np.stack(rows)
    variance = spend - expected
    money = {"units": "GBP", "long_name": "synthetic"}
    dims = ("replicate", "year", "icb", "portfolio")
    return xr.Dataset(
        {
            "allocation": (("year", "icb"), allocation, money),
            "expected_spend": (dims[1:], expected, money),
            "spend": (dims, spend, money),
            "patients": (dims, spend / 1e4, {"units": "persons", "long_name": "synthetic"}),
            "variance_to_budget": (dims, variance, money),
            "overspend_after_pooling": (dims[:3], variance[..., 0], money),
        },
        coords={
            "replicate": np.asarray(replicates),
            "year": years,
            "icb": icbs,
            "portfolio": ["delegated", "retained"],
        },
    )


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Dask workers cannot import us


def scenario(end_year: int) -> Scenario:
    base = load_scenario(BASELINE)
    return base.model_copy(update={"time": base.time.model_copy(update={"end_year": end_year})})


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(args: argparse.Namespace, replications: int, workers: int | None) -> dict:
    """One run in this process; with workers, on a fresh local cluster (not timed)."""
    engine = synthetic_simulate if args.synthetic else None
    if args.synthetic:  # no reference data is used, so none is recorded
        results._data_provenance = lambda: ("synthetic", "")
    chosen = scenario(args.end_year)
    if workers is None:
        start = time.perf_counter()
        experiment.run(chosen, replications, SEED, progress=False, engine=engine)
        return {"seconds": time.perf_counter() - start, "client_mib": peak_rss_mib()}
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        # warm-up: workers import the package and cache the reference data (not timed)
        experiment.run(chosen, workers, SEED, scheduler=cluster.scheduler_address,
                       chunk_size=1, progress=False, engine=engine)  # fmt: skip
        start = time.perf_counter()
        experiment.run(
            chosen,
            replications,
            SEED,
            scheduler=cluster.scheduler_address,
            progress=False,
            engine=engine,
        )
        seconds = time.perf_counter() - start
        with Client(cluster) as client:
            workers_mib = list(client.run(peak_rss_mib).values())
    return {"seconds": seconds, "client_mib": peak_rss_mib(), "workers_mib": workers_mib}


def child(args: argparse.Namespace, replications: int, workers: int | None) -> dict:
    """Run `measure` in a fresh interpreter so its peak memory is its own."""
    command = [sys.executable, __file__, "_child", "--replications", str(replications),
               "--end-year", str(args.end_year), "--workers", str(workers or 0)]  # fmt: skip
    if args.synthetic:
        command.append("--synthetic")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def floor_ms(end_year: int, replicates: int = 20) -> float:
    """The numpy-only cost of one replicate's variates (see bench_draws_floor.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_draws_floor import floor_seconds, period_lambdas

    lambdas, cells = period_lambdas(end_year)
    return floor_seconds(lambdas, cells, replicates) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "memory", "floor", "profile", "_child"])
    parser.add_argument("--replications", type=int, nargs="+", default=[1000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--end-year", type=int, default=2043)
    parser.add_argument("--synthetic", action="store_true")
    args = parser.parse_args()
    years = args.end_year - 2024 + 1
    label = f"{'synthetic' if args.synthetic else 'real'} engine, {years} years"
    if args.what == "_child":
        workers = args.workers[0] or None
        print(json.dumps(measure(args, args.replications[0], workers)))
    elif args.what == "speed":
        replications = args.replications[0]
        times = {}
        for workers in args.workers:
            result = child(args, replications, workers)
            times[workers] = result["seconds"]
            print(f"{replications} replicates, {label}, {workers} worker(s): "
                  f"{result['seconds']:.1f} s wall, {result['seconds'] / replications * 1e3:.0f} "
                  f"ms/replicate; peak MiB client {result['client_mib']:.0f}, workers "
                  f"{[round(m) for m in result['workers_mib']]}")  # fmt: skip
        if 1 in times and 2 in times:
            print(f"speed-up 2 vs 1 worker: {times[1] / times[2]:.2f}x")
    elif args.what == "memory":
        for replications in args.replications:
            result = child(args, replications, None)
            print(f"{replications} replicates in-process, {label}: peak "
                  f"{result['client_mib']:.0f} MiB, {result['seconds']:.1f} s")  # fmt: skip
    elif args.what == "floor":
        replications = args.replications[0]
        result = child(args, replications, None)
        per = result["seconds"] / replications * 1e3
        bare = floor_ms(args.end_year)
        print(f"{label}: {per:.1f} ms per replicate in-process (whole run, imports and the "
              f"one-off deterministic setup included: use 1,000+ replicates); numpy floor "
              f"{bare:.1f} ms; ratio {per / bare:.2f}x")  # fmt: skip
    else:
        from pyinstrument import Profiler

        profiler = Profiler()
        with profiler:
            measure(args, args.replications[0], None)
        print(profiler.output_text(color=False, show_all=False))


if __name__ == "__main__":
    main()
