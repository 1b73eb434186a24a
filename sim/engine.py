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
from sim.footprint import Footprint
from sim.parameters import annual_shocks, draw_parameters
from sim.plan import ScenarioPlan, YearPlan
from sim.scenario import Scenario
from sim.settlement import PoolInputs, Settled, needs_each_case, settle_year

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
    settled: Settled | None = None
    """The year-end settlement (`sim.settlement.settle_year`)."""


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
        spread = plan.spread
        self.parameter_values = draw_parameters(spread.parameters, seed, self.replicates)
        self.shocks = annual_shocks(
            seed, self.replicates, len(self.years), scenario.demand.national_variation
        )
        self.uncertain = len(self.replicates) > 0 and (
            bool(spread.parameters) or scenario.demand.national_variation > 0
        )
        self.env = simpy.Environment()
        self.books: dict[int, Books] = {}
        self.uplift = np.ones(plan.services.size)
        self.carry: tuple[Footprint, np.ndarray] | None = None
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
        last month (`demand.draw_period`). With uncertain parameters each replicate's
        expectation is its own (`sim.parameters`); the books' expectation stays the plan's."""
        cfg = self.scenario.demand
        costs = self.plan.costs
        for k, year in enumerate(self.years):
            books = self.books[year]
            plan = books.plan
            cells = CellCosts.for_footprint(costs, plan.delegated.shape[0], plan.cost_index)
            own = self._replicate_patients(plan) if self.uncertain else None
            accrued = np.zeros_like(books.expected)
            accrued_own = None if own is None else np.zeros_like(own[0])
            lam = mean = lam_own = None
            for month in range(12):
                t = 12 * k + month
                events = self.policy_done.get(t, [])
                yield self.env.all_of(([self.april_done[year]] if month == 0 else []) + events)
                if mean is None or events:  # the month's rates change only at policy events
                    lam = plan.patients * self.uplift / 12.0
                    mean = expected_outcome(lam, costs, self.excess_per_case, plan.cost_index)
                    if own is not None:
                        lam_own = self._replicate_rates(own, k)
                books.expected += mean.spend
                accrued += lam
                if accrued_own is not None:
                    accrued_own += lam_own
                period = lam if lam_own is None else lam_own
                if not cfg.stochastic:  # every replicate gets its expectation, month by month
                    outcome = mean
                    if lam_own is not None:
                        outcome = expected_outcome(
                            lam_own, costs, self.excess_per_case, plan.cost_index
                        )
                    for key in OUTCOMES:
                        books.drawn[key] += getattr(outcome, key)
                elif cfg.draw_period == "month":
                    self._draw(books.drawn, period, cells)
                elif month == 11:
                    self._draw(books.drawn, accrued if own is None else accrued_own, cells)
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
    def _replicate_patients(self, plan: YearPlan) -> tuple[np.ndarray, np.ndarray]:
        """Each replicate's expected patients before new treatments (replicate, icb,
        service) on the year's footprint, and its new-treatment cost ratio (replicate,)."""
        spread = self.plan.spread
        values = self.parameter_values
        if spread.parameters.variants:
            p23 = plan.variant_patients23[values[:, -1].astype(int)]
        else:
            p23 = plan.patients23[None]
        ratios = [spread.patient_ratio(v, plan.year) for v in values]
        if all(r.ndim == 1 for r in ratios):  # growth only: one factor per service
            ratio = np.stack(ratios)[:, None, :]
        else:
            ratio = np.stack([np.broadcast_to(r, p23.shape[1:]) for r in ratios])
        patients = plan.footprint.counts(p23 * ratio, axis=1)
        costs = np.array([spread.treatment_cost_ratio(v) for v in values])
        return patients, costs

    def _replicate_rates(self, own: tuple[np.ndarray, np.ndarray], k: int) -> np.ndarray:
        """(replicate, icb, service) the month's expected patients of each replicate: its
        own patients, its new treatments' cost, the year's national shock."""
        patients, cost_ratio = own
        uplift = 1.0 + (self.uplift - 1.0)[None, :] * cost_ratio[:, None]
        return patients * (uplift * self.shocks[:, k, None])[:, None, :] / 12.0

    def _draw(self, drawn: dict[str, np.ndarray], lam: np.ndarray, cells: CellCosts) -> None:
        """Add one period's random patients and spend to every replicate's accumulators;
        `lam` is (icb, service), shared, or (replicate, icb, service)."""
        if not self.rngs:
            return
        cells_per_replicate = drawn["spend"][0].size
        lams = np.broadcast_to(lam, (len(self.rngs), *drawn["spend"].shape[1:]))
        lams = lams.reshape(len(self.rngs), cells_per_replicate)
        totals = [drawn[key].reshape(len(self.rngs), -1) for key in OUTCOMES]
        for r, rng in enumerate(self.rngs):
            outcome: Outcome = draw(rng, lams[r], cells, self.threshold, self.per_case)
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
        brought = self._brought_forward(plan)
        books.settled = settle_year(inputs, brought, self.scenario.settlement)
        self.carry = (plan.footprint, books.settled.carried_forward)

    def _brought_forward(self, plan: YearPlan) -> np.ndarray:
        """Last year's carry-forward on this year's footprint (summed along a merger)."""
        if self.carry is None:
            return np.zeros((len(self.rngs), plan.footprint.codes.size))
        footprint, amounts = self.carry
        return amounts if footprint is plan.footprint else plan.footprint.counts(amounts, 1)

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
