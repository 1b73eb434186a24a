"""The SimPy calendar of a simulated NHS: budgets each April, demand each month, settlement.

Why SimPy with numpy inside: the policy calendar (allocation rounds, delegation waves, CPAG
rounds, NICE approvals, mergers, year-end settlement) is the same for every replicate; only
the random draws differ. So one environment runs the calendar once and every event updates
all replicates of the chunk with numpy. Each replicate draws only from its own stream,
keyed by its global index, so results never depend on how replicates are chunked.

Time unit: one month; t = 0 is 1 April of `time.base_year`. Phases are ordered by events,
not by luck: each April's plan (`sim.plan`) opens the year (`april_done[year]`); CPAG
rounds and NICE approvals act after it; a month's demand is accrued only once every policy
event dated that month has fired (`policy_done[t]`); the March draw closes the books
(`books_closed[year]`), and settlement follows it.

Who writes what: `Books` (one per year) is written by `april` (plan, budgets), `demand`
(expected and drawn outcomes) and `settle` (portfolio results), in that order; `uplift`
(new treatments' utilisation multipliers) is written by the new-treatment process when a
CPAG round or NICE approval funds one (decided in the plan, `sim.pipeline`) and read by
`demand`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from sim.draws import CellCosts, Outcome, draw, expected_outcome
from sim.plan import ScenarioPlan, YearPlan
from sim.scenario import Scenario
from sim.settlement import PoolInputs, needs_each_case, settle

OUTCOMES = ("spend", "patients", "hc_excess")


def replicate_stream(seed: int, replicate: int) -> np.random.Generator:
    """The random stream of one replicate: keyed by its global index, never by chunk."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replicate,)))
    )


def by_portfolio(values: np.ndarray, delegated: np.ndarray) -> np.ndarray:
    """(..., icb, service) -> (..., icb, portfolio). One code path for expected and drawn
    values, so a run without randomness reproduces the expectation to the last bit."""
    held = delegated.astype(float)
    portfolios = [np.einsum("...s,...s->...", values, mask) for mask in (held, 1.0 - held)]
    return np.stack(portfolios, axis=-1)


@dataclass
class Books:
    """One financial year's accounts for the chunk's replicates."""

    plan: YearPlan
    expected: np.ndarray
    """(icb, service) expected spend, accrued month by month (GBP)."""
    drawn: dict[str, np.ndarray]
    """spend, patients, hc_excess: (replicate, icb, service), the year's draws."""
    expected_patients: np.ndarray | None = None
    """(icb, service) the year's expected patients, new treatments included (what a year
    draw draws)."""
    budget: np.ndarray | None = None
    """(icb, portfolio): delegated allocation, notional retained budget (GBP)."""
    spend: np.ndarray | None = None
    patients: np.ndarray | None = None
    variance: np.ndarray | None = None
    """(replicate, icb, portfolio): spend, patients and spend - budget by portfolio."""
    carried: np.ndarray | None = None
    """(replicate, icb): the delegated variance the ICB carries after the risk pool."""


class Calendar:
    """One SimPy environment running a scenario's calendar for a chunk of replicates.

    With no replicates it yields the deterministic path alone (budgets, expected spend and
    the new treatments funded).
    """

    def __init__(
        self, scenario: Scenario, plan: ScenarioPlan, replicates: Sequence[int], seed: int
    ) -> None:
        self.scenario = scenario
        self.plan = plan
        self.replicates = np.asarray(list(replicates), dtype=np.int64)
        self.rngs = [replicate_stream(seed, int(i)) for i in self.replicates]
        self.base_year = scenario.time.base_year
        self.years = [p.year for p in plan.years]
        self.service_index = {s: k for k, s in enumerate(plan.services)}
        self.threshold = scenario.settlement.high_cost_threshold_gbp
        self.per_case = needs_each_case(scenario.settlement)
        # the expected pool excess per case is needed only where draws are not made
        self.excess_per_case = (
            None if scenario.demand.stochastic else plan.costs.hc_expected_excess(self.threshold)
        )
        self.env = simpy.Environment()
        self.books: dict[int, Books] = {}
        self.uplift = np.ones(plan.services.size)
        self.april_done = {y: self.env.event() for y in self.years}
        self.books_closed = {y: self.env.event() for y in self.years}
        self.policy_done: dict[int, list[simpy.Event]] = {}

    def _policy_event(self, t: int) -> simpy.Event:
        """A new event that month t's demand waits for."""
        event = self.env.event()
        self.policy_done.setdefault(t, []).append(event)
        return event

    # --- processes ---------------------------------------------------------------------
    def april(self):
        """Each April: the year's plan (population, footprint, delegation, allocation)."""
        for k, plan in enumerate(self.plan.years):
            n_icb, n_service = plan.delegated.shape
            self.books[plan.year] = Books(
                plan,
                np.zeros((n_icb, n_service)),
                {key: np.zeros((len(self.rngs), n_icb, n_service)) for key in OUTCOMES},
            )
            self.april_done[plan.year].succeed()
            if k < len(self.plan.years) - 1:
                yield self.env.timeout(12)

    def new_treatments(self, t: int, done: simpy.Event):
        """Month t's funded treatments (CPAG rounds, NICE approvals) take effect, after the
        year's April plan: demand from that month on carries their uplift."""
        yield self.env.timeout(t)
        yield self.april_done[self.base_year + t // 12]
        self.uplift = self.plan.treatments.uplift[t]
        done.succeed()

    def demand(self):
        """Each month, once the month's policy events have acted: expected patients accrue;
        draws per replicate for the month, or for the year's accrued expectation at its
        last month (`demand.draw_period`)."""
        cfg = self.scenario.demand
        costs = self.plan.costs
        for year in self.years:
            books = self.books[year]
            plan = books.plan
            cells = CellCosts.for_footprint(costs, plan.delegated.shape[0], plan.cost_index)
            accrued = np.zeros_like(books.expected)
            lam = mean = None
            for month in range(12):
                t = 12 * (year - self.base_year) + month
                events = self.policy_done.get(t, [])
                yield self.env.all_of(([self.april_done[year]] if month == 0 else []) + events)
                if mean is None or events:  # the month's rates change only at policy events
                    lam = plan.patients * self.uplift / 12.0
                    mean = expected_outcome(lam, costs, self.excess_per_case, plan.cost_index)
                books.expected += mean.spend
                accrued += lam
                if not cfg.stochastic:  # every replicate gets the expectation, month by month
                    for key in OUTCOMES:
                        books.drawn[key] += getattr(mean, key)
                elif cfg.draw_period == "month" or month == 11:
                    self._draw(books.drawn, lam if cfg.draw_period == "month" else accrued, cells)
                if month < 11:
                    yield self.env.timeout(1)
            books.expected_patients = accrued
            self.books_closed[year].succeed()
            yield self.env.timeout(1)

    def settlement(self):
        """Each March, after the last draw: budgets, variance to budget, the risk pool."""
        for year in self.years:
            yield self.books_closed[year]
            self._settle(self.books[year])

    # --- helpers -----------------------------------------------------------------------
    def _draw(self, drawn: dict[str, np.ndarray], lam: np.ndarray, cells: CellCosts) -> None:
        """Add one period's random patients and spend to every replicate's accumulators."""
        if not self.rngs:
            return
        flat = lam.ravel()
        totals = [drawn[key].reshape(len(self.rngs), -1) for key in OUTCOMES]
        for r, rng in enumerate(self.rngs):
            outcome: Outcome = draw(rng, flat, cells, self.threshold, self.per_case)
            for total, key in zip(totals, OUTCOMES, strict=True):
                total[r] += getattr(outcome, key)

    def _settle(self, books: Books) -> None:
        plan = books.plan
        mask = plan.delegated
        books.budget = budgets(plan, by_portfolio(books.expected, mask)[:, 1])
        books.spend = by_portfolio(books.drawn["spend"], mask)
        books.patients = by_portfolio(books.drawn["patients"], mask)
        books.variance = books.spend - books.budget
        excess = by_portfolio(books.drawn["hc_excess"], mask)[..., 0]
        inputs = PoolInputs(
            books.variance[..., 0], excess, books.budget[:, 0], plan.footprint.regions
        )
        books.carried = settle(inputs, self.scenario.settlement)

    def _schedule(self) -> None:
        env = self.env
        env.process(self.april())
        for t in sorted({item.t for item in self.plan.treatments.funded}):
            env.process(self.new_treatments(t, self._policy_event(t)))
        env.process(self.settlement())
        env.process(self.demand())

    def run(self) -> Calendar:
        """Run the calendar to the end of the last year; the books hold the results."""
        self._schedule()
        self.env.run()
        return self


def budgets(plan: YearPlan, retained_expected: np.ndarray) -> np.ndarray:
    """(icb, portfolio): the delegated allocation, and the retained budget shown per ICB as
    a notional share by its expected retained spend."""
    allocation = plan.round.allocation.astype(float)
    total = retained_expected.sum()
    share = retained_expected / total if total > 0 else np.zeros_like(retained_expected)
    notional = float(plan.round.retained_budget) * share
    return np.stack([allocation, notional], axis=-1)
