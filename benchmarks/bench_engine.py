"""Speed of the engine: full England (42 ICBs), full catalogue, base..end years, monthly calendar.

Prints wall-clock figures (not a test). Run from the repository root:

    python benchmarks/bench_engine.py              # 1 and 50 replicates, and the draw floor
    python benchmarks/bench_engine.py --thousand   # also 1,000 replicates on 2 Dask workers

"Cold" includes the deterministic path (20 allocation rounds, delegation status), which a
worker computes once per scenario; "warm" is every later chunk of the same scenario. The
floor is the bare numpy cost of the random variates the engine draws (same shapes, same
expected counts), so engine / floor shows the overhead of everything else.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sim.demand import CellCosts, build_demand
from sim.engine import simulate
from sim.reference import load_profiles, load_reference, load_services
from sim.scenario import Scenario, load_scenario

BASELINE = Path(__file__).resolve().parents[1] / "scenarios" / "baseline.toml"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def draw_floor(scenario: Scenario, reference, periods: int, replicates: int) -> float:
    """Seconds for the variates alone: per period Poisson + gamma per cell, Poisson per
    high-cost cell and one gamma per high-cost patient, at base-year expected counts."""
    pop = reference["population_projection"].sel(variant="principal", year=scenario.time.base_year)
    model = build_demand(
        scenario.demand,
        load_services(),
        load_profiles(),
        reference["imd_score"],
        pop,
        scenario.time.base_year,
    )
    years = scenario.time.end_year - scenario.time.base_year + 1
    lam = (
        model.annual_patients(
            pop.transpose("icb", "sex", "age").values, scenario.time.base_year
        ).ravel()
        * years
        / periods
    )
    cells = CellCosts.for_footprint(model.costs, pop.sizes["icb"])
    lam_hc = lam[cells.hc_cells] * cells.hc_share
    rngs = [np.random.default_rng(i) for i in range(replicates)]
    start = time.perf_counter()
    for rng in rngs:
        for _ in range(periods):
            n = rng.poisson(lam)
            rng.standard_gamma(n * cells.reg_shape)
            h = rng.poisson(lam_hc)
            rng.standard_gamma(np.repeat(cells.hc_shape, h))
    return time.perf_counter() - start


def thousand_on_dask(scenario: Scenario, seed: int, workers: int = 2, chunk: int = 50) -> float:
    """1,000 replicates in chunks on a local Dask cluster (one thread per worker)."""
    from dask.distributed import Client, LocalCluster

    def run_chunk(reps: list[int]) -> float:
        return float(simulate(scenario, reps, seed)["spend"].sum())

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: load_reference())  # reading the data file is not the engine's cost
        start = time.perf_counter()
        futures = client.map(run_chunk, [list(range(i, i + chunk)) for i in range(0, 1000, chunk)])
        client.gather(futures)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=50)
    parser.add_argument("--thousand", action="store_true", help="also 1,000 on 2 Dask workers")
    args = parser.parse_args()
    scenario = load_scenario(BASELINE)
    years = scenario.time.end_year - scenario.time.base_year + 1
    reference = load_reference()
    n = args.replicates
    print(f"full England, 100-service catalogue, {years} years x 12 months, seed 1")
    for period in ("year", "month"):
        scenario.demand.draw_period = period
        cold, _ = timed(simulate, scenario, [0], 1, reference)
        warm, _ = timed(simulate, scenario, [0], 1, reference)
        many, _ = timed(simulate, scenario, list(range(n)), 1, reference)
        per = (many - warm) / (n - 1)
        periods = years if period == "year" else 12 * years
        floor = draw_floor(scenario, reference, periods, n) / n
        print(f"draw_period={period}:")
        print(f"  1 replicate: cold {cold:.2f} s (incl. allocation path), warm {warm:.3f} s")
        print(f"  {n} replicates in one process: {many:.2f} s -> {per * 1e3:.1f} ms/replicate")
        print(
            f"  bare draws (numpy floor): {floor * 1e3:.1f} ms/replicate; "
            f"engine/floor = {per / floor:.2f}"
        )
        print(f"  projected 1,000 replicates on 2 workers: {warm + 500 * per:.1f} s")
    scenario.demand.draw_period = "year"
    if args.thousand:
        print(
            f"1,000 replicates, 2 Dask workers, chunks of 50: {thousand_on_dask(scenario, 1):.1f} s"
        )


if __name__ == "__main__":
    main()
