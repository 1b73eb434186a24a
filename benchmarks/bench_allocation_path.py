"""The deterministic path: population, 20 allocation rounds, delegation status and expected
spend for full England, as `specsim` computes it once per scenario.

Warm: data loaded and imports done, a fresh plan cache each time (so nothing is reused).
Cold: the first call in the process (imports inside the path, cached data properties).
It leaves out reading the reference data (bench_run.py times a whole run). Target: under
30 ms warm (issue 10); 09d1c3c took about 35 ms per round, 0.81 s for the path. Since
issue 12 the whole path also computes the spend-gap yardstick (a second allocation path,
`sim.gaps`) and the populations of the variants the replicates may draw, so it is compared
with the target as well as the allocation rounds alone.

    .venv/bin/python benchmarks/bench_allocation_path.py [--repeats 30]
"""

from __future__ import annotations

import argparse

from common import BASELINE, machine_note, median, timed

from sim.plan import PlanCache, allocation_path, plan_scenario
from sim.reference import load_data
from sim.scenario import load_scenario
from sim.simulate import deterministic_of_plan

TARGET_MS = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    scenario = load_scenario(BASELINE)
    data = load_data()
    years = scenario.time.end_year - scenario.time.base_year + 1

    def path() -> None:
        deterministic_of_plan(scenario, plan_scenario(scenario, data, PlanCache()))

    cold = timed(path)
    rounds = [timed(lambda: allocation_path(scenario, data)) for _ in range(args.repeats)]
    whole = [timed(path) for _ in range(args.repeats)]
    ms = 1e3 * median(whole)
    print(machine_note())
    print(f"cold (first call, imports included): {1e3 * cold:.1f} ms")
    print(f"allocation rounds only ({years} years): {1e3 * median(rounds):.1f} ms median")
    print(f"per round: {1e3 * median(rounds) / years:.2f} ms")
    print(f"whole path / target {TARGET_MS:.0f} ms: {ms / TARGET_MS:.2f}")
    print(f"allocation path: {ms:.1f} ms")


if __name__ == "__main__":
    main()
