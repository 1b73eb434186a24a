"""Regenerate the allocation-total goldens in tests/regression/ for every shipped scenario.

Run from the repository root:

    .venv/bin/python scripts/regenerate_goldens.py

For each `scenarios/*.toml` it writes `tests/regression/<file stem>.csv`: national, regional
and per-ICB `allocation` and `target_allocation`, and national `envelope` and
`retained_budget`, by year, in whole pounds (`sim.allocation.allocation_totals`). The path
is deterministic: the ONS projection variant of the scenario (population mode forced to
"projection") and `sim.plan.allocation_dataset`, no stochastic spend. A change in these
files must be explained in the commit message.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim.allocation import allocation_totals
from sim.plan import allocation_dataset
from sim.reference import load_data
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
GOLDENS = ROOT / "tests" / "regression"


def golden_totals(path: Path) -> pd.DataFrame:
    """Allocation totals of one scenario file on the deterministic path."""
    scenario = load_scenario(path)
    projection = scenario.population.model_copy(update={"mode": "projection"})
    scenario = scenario.model_copy(update={"population": projection})
    return allocation_totals(allocation_dataset(scenario, load_data()))


def main() -> None:
    GOLDENS.mkdir(parents=True, exist_ok=True)
    for path in sorted(SCENARIOS.glob("*.toml")):
        table = golden_totals(path)
        out = GOLDENS / f"{path.stem}.csv"
        table.to_csv(out, index=False)
        print(f"{out.relative_to(ROOT)}: {len(table)} rows")


if __name__ == "__main__":
    main()
