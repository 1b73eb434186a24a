"""Every check of a scenario against the reference data, before anything is run or written.

Why one place: `specsim validate` must accept exactly what `specsim run` accepts. Both call
`check_scenario`, which opens every packaged file a run reads, checks the names a scenario
uses (services, regions, ICBs), the years the data covers, that each year's envelope can
fund the growth floor and stays within whole-pound accounting, and then computes the
scenario's deterministic path, so that a run can fail only for reasons outside the
scenario (an interrupt, a full disk). It bounds what one replicate would draw, so that a
scenario cannot ask for more patients than this machine can simulate.

Errors are `ScenarioError`s naming the scenario's file (the module that found the problem
sees only its section, so the file is attached here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.envelope import national_envelope
from sim.errors import ScenarioError, did_you_mean
from sim.years import financial_year

if TYPE_CHECKING:
    from sim.plan import PlanCache, ScenarioPlan
    from sim.reference import ReferenceData
    from sim.scenario import Scenario

MAX_POUNDS = 1e15
"""Largest envelope (GBP) the whole-pound accounts carry: int64 sums of 42 ICBs stay exact."""
MAX_HIGH_COST_CASES = 5_000_000
"""Very-high-cost cases a replicate may draw in one year: each is drawn on its own."""
MAX_PATIENTS = 1e12
"""Expected patients a year, all cells: beyond this the Poisson draws lose meaning."""


def check_scenario(
    scenario: Scenario, data: ReferenceData, cache: PlanCache | None = None
) -> ScenarioPlan:
    """Raise the ScenarioError a run would hit; otherwise return the scenario's plan."""
    from sim.plan import plan_scenario

    try:
        _check_years(scenario, data)
        _check_names(scenario, data)
        _check_envelope(scenario)
        plan = plan_scenario(scenario, data, cache)
        _check_demand(scenario, plan)
    except ScenarioError as error:
        if error.path is not None:
            raise
        raise ScenarioError(scenario.source_path, error.field, error.message) from None
    return plan


def _check_years(scenario: Scenario, data: ReferenceData) -> None:
    from sim.population import coverage

    basis = scenario.population.basis
    first, last = coverage(data.dataset, basis)
    for field in ("base_year", "end_year"):
        year = getattr(scenario.time, field)
        if not first <= year <= last:
            message = f"year {year} is outside the {basis}-based population data ({first}..{last})"
            raise ScenarioError(None, f"time.{field}", message)


def _check_names(scenario: Scenario, data: ReferenceData) -> None:
    """Waves (services, regions, ICBs) on every footprint the scenario uses; NICE services."""
    from sim.delegation import delegation_masks

    years = [scenario.time.base_year]
    for footprint in {2023, 2026} if scenario.mergers.enabled else {2023}:
        delegation_masks(scenario.delegation, data.services, data.icbs[footprint], years)
    known = set(data.services["service_id"].astype(str))
    for i, item in enumerate(scenario.nice_approvals):
        if item.service not in known:
            raise ScenarioError(
                None,
                f"nice_approvals[{i}].service",
                f"unknown service {item.service!r}{did_you_mean(item.service, known)}",
            )


def _check_envelope(scenario: Scenario) -> None:
    """The envelope fits whole-pound accounts, and grows enough to fund the growth floor.

    The notional allocations sum to the portfolio, so the floors fit exactly when the
    envelope grows at least `floor_growth` (the development fund share is fixed).
    """
    time = scenario.time
    years = list(range(time.base_year, time.end_year + 1))
    envelope = national_envelope(scenario.envelope, time.base_year, [years[0] - 1, *years])
    if envelope.max() > MAX_POUNDS:
        year = years[int(np.argmax(envelope[1:]))]
        raise ScenarioError(
            None,
            "envelope.growth",
            f"the envelope would reach £{envelope.max():.3g} by {financial_year(year)}; "
            f"at most £{MAX_POUNDS:.0e} can be allocated to the pound",
        )
    floor = 1.0 + scenario.convergence.floor_growth
    for year, before, now in zip(years, envelope[:-1], envelope[1:], strict=True):
        if before * floor > now * (1.0 + 1e-12):
            raise ScenarioError(
                None,
                "convergence.floor_growth",
                f"{financial_year(year)}: the envelope cannot give every ICB the "
                f"{scenario.convergence.floor_growth:.1%} minimum growth (envelope growth "
                f"{now / before - 1.0:.1%} that year); lower the floor or raise the envelope "
                "growth",
            )


def _check_demand(scenario: Scenario, plan: ScenarioPlan) -> None:
    """Bound the patients one replicate draws in a year (new treatments at most double a
    year's uplift, so the bound allows for the NICE approvals' costs too)."""
    uplift = np.ones(plan.services.size)
    for item in scenario.nice_approvals:
        k = int(np.flatnonzero(plan.services == item.service)[0])
        patients = plan.years[0].patients[:, k].sum()
        base = patients * plan.costs.mean[k]
        uplift[k] += item.annual_cost_gbp / base if base > 0 else 0.0
    for year in plan.years:
        expected = year.patients * uplift
        cases = float((expected * plan.costs.hc_share).sum())
        if cases > MAX_HIGH_COST_CASES or expected.sum() > MAX_PATIENTS:
            raise ScenarioError(
                None,
                "demand.growth_multiplier",
                f"by {financial_year(year.year)} a replicate would draw {expected.sum():.3g} "
                f"patients, {cases:.3g} of them very-high-cost cases drawn one by one; at most "
                f"{MAX_HIGH_COST_CASES:.0e} such cases a year can be simulated: lower the growth "
                "or the new treatments' costs",
            )
