"""The floor: the bare numpy cost of the random variates one replicate needs.

WHY: the engine's target is to stay within 3x of this floor. The script draws the same kinds
and numbers of variates as `sim.demand.draw_month` for one replicate over the whole run: per
draw period (a month, or a year when `demand.draw_period = "year"`, the default) and per
(icb, service) cell, a Poisson for ordinary patients and one gamma for their total cost, a
Poisson for high-cost cases where the service has them and one gamma per high-cost case.
Expected patients come from the calibrated demand model on each year's projected
population (setup, not timed). Only the draws are timed.

    .venv/bin/python benchmarks/bench_draws_floor.py [--replicates 20] [--end-year 2043]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sim.demand import CellCosts, build_demand
from sim.reference import load_profiles, load_reference, load_services
from sim.scenario import load_scenario

BASELINE = Path(__file__).parents[1] / "scenarios" / "baseline.toml"


def period_lambdas(end_year: int) -> tuple[list[np.ndarray], CellCosts]:
    """Expected patients per cell for every draw period of the run, and the cost cells."""
    scenario = load_scenario(BASELINE)
    reference = load_reference()
    base = scenario.time.base_year
    projection = reference["population_projection"].sel(variant="principal")
    model = build_demand(
        scenario.demand,
        load_services(),
        load_profiles(),
        reference["imd_score"],
        projection.sel(year=base),
        base,
    )
    periods = 12 if scenario.demand.draw_period == "month" else 1
    lambdas = []
    for year in range(base, end_year + 1):
        population = projection.sel(year=year).transpose("icb", "sex", "age").values
        lam = model.annual_patients(population, year).ravel() / periods
        lambdas.extend([lam] * periods)
    cells = CellCosts.for_footprint(model.costs, projection.sizes["icb"])
    return lambdas, cells


def draw_replicate(rng: np.random.Generator, lambdas: list[np.ndarray], cells: CellCosts) -> int:
    """Every variate of one replicate; returns how many were drawn."""
    variates = 0
    for lam in lambdas:
        lam_hc = lam[cells.hc_cells] * cells.hc_share
        lam_reg = lam.copy()
        lam_reg[cells.hc_cells] -= lam_hc
        patients = rng.poisson(lam_reg)
        rng.standard_gamma(patients * cells.reg_shape)
        n_hc = rng.poisson(lam_hc)
        rng.standard_gamma(np.repeat(cells.hc_shape, n_hc))
        variates += 2 * lam.size + n_hc.size + int(n_hc.sum())
    return variates


def floor_seconds(lambdas: list[np.ndarray], cells: CellCosts, replicates: int) -> float:
    """Mean seconds per replicate, each on its own stream as in the engine."""
    start = time.perf_counter()
    for i in range(replicates):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(1, spawn_key=(i,))))
        draw_replicate(rng, lambdas, cells)
    return (time.perf_counter() - start) / replicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--end-year", type=int, default=2043)
    args = parser.parse_args()
    lambdas, cells = period_lambdas(args.end_year)
    variates = draw_replicate(np.random.default_rng(0), lambdas, cells)
    per = floor_seconds(lambdas, cells, args.replicates)
    print(
        f"draw periods: {len(lambdas)}; cells: {lambdas[0].size}; variates/replicate: {variates:,}"
    )
    print(f"floor: {per * 1e3:.1f} ms per replicate ({args.replicates} replicates)")


if __name__ == "__main__":
    main()
