"""The marginal replicate against its floor: what one more replicate of a run costs, and
the bare cost of the random variates it needs, from the same generator, in the same run.

The floor draws exactly the engine's variates for the baseline (year draws): per year and
(icb, service) cell, a Poisson for ordinary patients and one gamma for their total cost, a
Poisson for very-high-cost cases where the service has them and one gamma for theirs, at
the year's expected patients as the calendar accrues them (new treatments included), each
replicate on its own stream. The marginal replicate is (T(N2) - T(N1)) / (N2 - N1) of
`sim.experiment.run` in-process: calendar, draws, settlement, assembly and the streamed
summaries, with the fixed costs (plan, deterministic path) cancelled out. Target: within
1.2x of the floor (issue 10); 09d1c3c measured 14 ms against 9.6 ms (1.48x).

    .venv/bin/python benchmarks/bench_draws.py [--n1 100] [--n2 400] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import BASELINE, interleaved, machine_note, median

from sim import experiment
from sim.draws import CellCosts
from sim.engine import Calendar, replicate_stream
from sim.plan import PlanCache, plan_scenario
from sim.reference import load_data
from sim.scenario import load_scenario

SEED = 20240401


def year_cells(scenario) -> list[tuple[np.ndarray, CellCosts]]:
    """Each year's expected patients (flat cells) and cost cells, from the calendar."""
    plan = plan_scenario(scenario, load_data())
    calendar = Calendar(scenario, plan, (), SEED).run()
    out = []
    for year in plan.years:
        books = calendar.books[year.year]
        cells = CellCosts.for_footprint(plan.costs, year.delegated.shape[0], year.cost_index)
        out.append((books.expected_patients.ravel(), cells))
    return out


def floor(years: list[tuple[np.ndarray, CellCosts]], replicates: range) -> int:
    """The engine's variates for `replicates`, nothing else; returns how many were drawn."""
    count = 0
    for i in replicates:
        rng = replicate_stream(SEED, i)
        for lam, cells in years:
            lam_hc = lam[cells.hc_cells] * cells.hc_share
            lam_reg = lam.copy()
            lam_reg[cells.hc_cells] -= lam_hc
            patients = rng.poisson(lam_reg)
            rng.standard_gamma(patients * cells.reg_shape)
            n_hc = rng.poisson(lam_hc)
            rng.standard_gamma(n_hc * cells.hc_shape)
            count += 2 * (lam_reg.size + lam_hc.size)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=100)
    parser.add_argument("--n2", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scenario = load_scenario(BASELINE)
    years = year_cells(scenario)
    span = args.n2 - args.n1

    def run(n: int):
        engine = experiment.sim_engine(PlanCache())
        return lambda: experiment.run(scenario, n, seed=SEED, progress=False, engine=engine)

    run(5)()  # warm-up: imports and data
    times = interleaved(
        {"n1": run(args.n1), "n2": run(args.n2), "floor": lambda: floor(years, range(span))},
        args.repeats,
    )
    marginal = (median(times["n2"]) - median(times["n1"])) / span
    per_floor = median(times["floor"]) / span
    print(machine_note())
    print(f"variates per replicate: {floor(years, range(1)):,}")
    print(
        f"run of {args.n1}: {median(times['n1']):.2f} s; of {args.n2}: {median(times['n2']):.2f} s"
    )
    print(f"marginal replicate: {1e3 * marginal:.1f} ms")
    print(f"floor (the same variates alone): {1e3 * per_floor:.1f} ms")
    print(f"marginal / floor: {marginal / per_floor:.2f}")


if __name__ == "__main__":
    main()
