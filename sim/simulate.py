"""Entry points that run a scenario's calendar and return results Datasets.

`deterministic_path` is the path every replicate shares (budgets, expected spend; no
draws); `simulate_replicates` is what a worker runs for a chunk of replicates given the
scenario's plan; `simulate` does both in one call, for notebooks and tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from sim.engine import Calendar
from sim.outputs import assemble
from sim.plan import PlanCache, ScenarioPlan, plan_scenario
from sim.reference import ReferenceData, load_data
from sim.scenario import Scenario


def deterministic_of_plan(scenario: Scenario, plan: ScenarioPlan) -> xr.Dataset:
    """The deterministic variables of a planned scenario (a calendar with no replicates)."""
    return assemble(Calendar(scenario, plan, (), 0).run(), ("deterministic",))


def simulate_replicates(
    scenario: Scenario, plan: ScenarioPlan, start: int, stop: int, seed: int
) -> xr.Dataset:
    """Per-replicate variables of replicates start..stop-1 (global indices): no data files
    are read, so a Dask worker needs only the plan it is sent."""
    return assemble(Calendar(scenario, plan, range(start, stop), seed).run(), ("replicate",))


def deterministic_path(
    scenario: Scenario, data: ReferenceData | None = None, cache: PlanCache | None = None
) -> xr.Dataset:
    """Population, allocations, delegation and expected spend of every year, no draws."""
    plan = plan_scenario(scenario, data if data is not None else load_data(), cache)
    return deterministic_of_plan(scenario, plan)


def simulate(
    scenario: Scenario,
    replicates: Sequence[int],
    seed: int,
    data: ReferenceData | None = None,
    cache: PlanCache | None = None,
) -> xr.Dataset:
    """Deterministic and per-replicate variables of `replicates` in one Dataset."""
    plan = plan_scenario(scenario, data if data is not None else load_data(), cache)
    return assemble(Calendar(scenario, plan, replicates, seed).run())
