"""The SimPy calendar of a simulated NHS: budgets each April, demand each month, settlement.

Why SimPy with numpy inside: the policy calendar (allocation rounds, delegation waves, CPAG
rounds, NICE approvals, mergers, year-end settlement) is the same for every replicate; only
the random draws differ. So one environment runs the calendar once and every event updates
all replicates of the chunk with numpy. Each replicate draws only from its own stream,
keyed by its global index, so results never depend on how replicates are chunked.

Time unit: one month; t = 0 is 1 April of `time.base_year`. Within a month, policy events
(April round, CPAG, NICE) take effect before that month's demand is drawn.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import simpy
import xarray as xr

from sim.demand import CellCosts, DemandModel, build_demand, draw_month, expected_month
from sim.errors import ScenarioError
from sim.market_forces import market_forces_index
from sim.pipeline import CpagQueue, load_pipeline
from sim.population import ageing
from sim.scenario import Scenario

PORTFOLIOS = ("delegated", "retained")
APRIL = 4


class Population(Protocol):
    """What the engine needs from `sim.population.PopulationModel`."""

    year: int
    end_year: int

    def current(self) -> xr.DataArray: ...
    def advance(self) -> Any: ...


Allocator = Callable[[int, xr.DataArray, xr.DataArray, xr.Dataset | None], xr.Dataset]
"""(year, population on the footprint, delegated (icb, service), previous round) -> round."""

StatusRule = Callable[[int, pd.DataFrame], xr.DataArray]
"""(year, ICB table of the footprint) -> delegated (icb, service) bool."""


@dataclass
class Inputs:
    """Everything the calendar consumes, so tests can run it on small synthetic inputs.

    `icbs` holds the ICB tables (columns icb, region, region_name, ...) of the 2023 footprint
    (key 2023) and, for merger scenarios, the merged one (key 2026).
    """

    reference: xr.Dataset
    services: pd.DataFrame
    profiles: xr.DataArray
    population: Population
    icbs: dict[int, pd.DataFrame]
    status: StatusRule
    allocate: Allocator
    pipeline: pd.DataFrame
    area_cost: xr.DataArray | None = None
    """Unavoidable cost index per 2023 ICB (market forces) on ordinary cases; None = flat."""


def replicate_stream(seed: int, replicate: int) -> np.random.Generator:
    """The random stream of one replicate: keyed by its global index, never by chunk."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replicate,)))
    )


def month_index(year: int, month: int, base_year: int) -> int:
    """Months since 1 April of the base year for calendar `month` of calendar `year`."""
    return 12 * (year - base_year) + month - APRIL


@dataclass
class Footprint:
    """The ICBs budgets are held by: the 2023 ICBs, or the April 2026 ones after a merger.

    `share` (icb23, icb) maps 2023 ICBs onto this footprint (rows sum to one): population,
    expected patients and money move along it linearly, so totals are conserved.
    """

    table: pd.DataFrame
    share: xr.DataArray
    identity: bool
    _template: xr.DataArray | None = None

    @classmethod
    def build(cls, inputs: Inputs, merged: bool) -> Footprint:
        table = inputs.icbs[2026 if merged else 2023].reset_index(drop=True)
        codes = table["icb"].to_numpy()
        if merged:
            share = inputs.reference["merger_share"].rename(icb="icb23", icb26="icb")
            share = share.drop_vars([c for c in share.coords if c not in ("icb23", "icb")])
            share = share.sel(icb=codes).transpose("icb23", "icb")
        else:
            share = xr.DataArray(
                np.eye(codes.size), dims=("icb23", "icb"), coords={"icb23": codes, "icb": codes}
            )
        return cls(table, share, identity=not merged)

    def map(self, da: xr.DataArray) -> xr.DataArray:
        """Carry a 2023-footprint array (dim `icb`) onto this footprint, dims kept in order."""
        if self.identity:
            return da
        plain = da.drop_vars([c for c in da.coords if c != "icb" and "icb" in da[c].dims])
        out = xr.dot(plain.rename(icb="icb23"), self.share, dim="icb23")
        return out.transpose(*da.dims)

    def label(self, da: xr.DataArray) -> xr.DataArray:
        """Attach the footprint's ICB names and regions as non-index coords of `icb`."""
        extra = [c for c in self.table.columns if c != "icb"]
        return da.assign_coords({c: ("icb", self.table[c].to_numpy()) for c in extra})

    def population(self, pop42: xr.DataArray) -> xr.DataArray:
        """The 2023-footprint population on this footprint, labelled (template reused: the
        coords are the same every year, only the numbers change)."""
        mapped = self.map(pop42)
        if self._template is None or self._template.dims != mapped.dims:
            self._template = self.label(mapped)
            return self._template
        return self._template.copy(data=mapped.values)

    @property
    def matrix(self) -> np.ndarray:
        return self.share.values

    @property
    def region(self) -> np.ndarray:
        return self.table["region"].to_numpy()


@dataclass
class _Year:
    """What one financial year records (deterministic parts shared by every replicate)."""

    allocation: xr.Dataset
    delegated: xr.DataArray  # (icb, service) on the year's footprint
    footprint: Footprint
    expected: np.ndarray | None = None  # (icb, service) GBP, filled month by month
    budget: np.ndarray | None = None  # (icb, portfolio) GBP, set at settlement


class Engine:
    """One SimPy environment running the calendar for a chunk of replicates."""

    def __init__(self, scenario: Scenario, inputs: Inputs, replicates: Sequence[int], seed: int):
        self.scenario = scenario
        self.inputs = inputs
        self.replicates = np.asarray(list(replicates), dtype=np.int64)
        self.rngs = [replicate_stream(seed, int(i)) for i in self.replicates]
        self.base_year = scenario.time.base_year
        self.years = list(range(self.base_year, scenario.time.end_year + 1))
        self.env = simpy.Environment()
        self.services = inputs.services["service_id"].to_numpy()
        self.service_index = {s: k for k, s in enumerate(self.services)}
        self.footprint = Footprint.build(inputs, merged=False)
        self.demand: DemandModel | None = None
        self.uplift = np.ones(self.services.size)  # CPAG/NICE uplifts of each service's rate
        self.cpag = CpagQueue(inputs.pipeline)
        self.threshold = scenario.settlement.high_cost_threshold_gbp
        self.record: dict[int, _Year] = {}
        self.stoch: dict[int, dict[str, np.ndarray]] = {}
        self.population: dict[int, xr.DataArray] = {}
        self.fund_left = 0.0
        self.funded: list[dict[str, Any]] = []
        self.books_closed = {y: self.env.event() for y in self.years}
        for i, item in enumerate(scenario.nice_approvals):
            if item.service not in self.service_index:
                hint = difflib.get_close_matches(item.service, list(self.services), n=1)
                raise ScenarioError(
                    getattr(scenario, "source_path", None),
                    f"nice_approvals[{i}].service",
                    f"unknown service {item.service!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else ""),
                )

    # --- processes -------------------------------------------------------------------
    def on_april(self, year: int, pop42: xr.DataArray) -> None:
        """Each April, after ageing: merger, delegation status, allocation round, demand rates."""
        pop42 = pop42.transpose("icb", "sex", "age")
        if self.demand is None:
            self.demand = self._build_demand(pop42)
        merge = self.scenario.mergers
        previous = self.record[year - 1].allocation if year > self.base_year else None
        if merge.enabled and year == max(merge.year, self.base_year):
            self.footprint = Footprint.build(self.inputs, merged=True)
        self._start_year(year, pop42, previous)

    def demand_process(self):
        """Each month: expected patients per cell accrue; draws per replicate for the month,
        or for the year's accrued expectation at its last month (`demand.draw_period`)."""
        cfg = self.scenario.demand
        for year in self.years:
            for month in range(12):
                yield self.env.timeout(0)  # let policy events dated this month act first
                if month == 0:
                    rec = self.record[year]
                    n_icb = rec.delegated.sizes["icb"]
                    cells = CellCosts.for_footprint(self.demand.costs, n_icb, self._cost_year)
                    acc = {
                        k: np.zeros((len(self.rngs), n_icb, self.services.size))
                        for k in ("spend", "patients", "hc_excess")
                    }
                    rec.expected = np.zeros((n_icb, self.services.size))
                    accrued = np.zeros((n_icb, self.services.size))
                lam = self._lam_year * self.uplift / 12.0
                mean = expected_month(lam, self.demand.costs, self.threshold, self._cost_year)
                rec.expected += mean.spend
                accrued += lam
                if not cfg.stochastic:  # every replicate gets the expectation, month by month
                    for key in acc:
                        acc[key] += getattr(mean, key)
                elif cfg.draw_period == "month" or month == 11:
                    self._draw(acc, lam if cfg.draw_period == "month" else accrued, cells)
                if month < 11:
                    yield self.env.timeout(1)
            self.stoch[year] = acc
            self.books_closed[year].succeed()
            yield self.env.timeout(1)

    def _draw(self, acc: dict[str, np.ndarray], lam: np.ndarray, cells: CellCosts) -> None:
        """Add one period's random patients and spend to every replicate's accumulators."""
        flat = lam.ravel()
        for r, rng in enumerate(self.rngs):
            draw = draw_month(rng, flat, cells, self.threshold)
            for key in acc:
                acc[key][r] += getattr(draw, key).reshape(lam.shape)

    def settlement(self):
        """Each March, after the last draw: variance to budget and the risk-pool rule."""
        for year in self.years:
            yield self.books_closed[year]
            self._settle(year)

    def cpag_rounds(self):
        """CPAG rounds on their months: fund the best benefit per pound within the fund."""
        cfg = self.scenario.cpag
        times = sorted(
            12 * (y - self.base_year) + (m - APRIL) % 12
            for y in self.years
            for m in cfg.round_months
        )
        for t in times:
            yield self.env.timeout(t - self.env.now)
            year = self.base_year + t // 12
            funded = self.cpag.run_round(year, self.fund_left, cfg.candidates_per_round)
            for row in funded.to_dict("records"):
                self.fund_left -= row["annual_cost_gbp"]
                self._add_treatment(row["service_id"], row["annual_cost_gbp"])
                self._log("cpag", row["name"], t, row["annual_cost_gbp"])

    def nice_approval(self, index: int):
        """A NICE-mandated treatment: funded from its date whatever the budget."""
        item = self.scenario.nice_approvals[index]
        t = month_index(item.year, item.month, self.base_year)
        if t >= 12 * len(self.years):
            return
        yield self.env.timeout(max(t, 0))
        self._add_treatment(item.service, item.annual_cost_gbp)
        self._log("nice", item.name, max(t, 0), item.annual_cost_gbp)

    # --- helpers ---------------------------------------------------------------------
    def _build_demand(self, pop42: xr.DataArray) -> DemandModel:
        self._base_pop = pop42
        return build_demand(
            self.scenario.demand,
            self.inputs.services,
            self.inputs.profiles,
            self.inputs.reference["imd_score"],
            pop42,
            self.base_year,
            self.inputs.area_cost,
        )

    def _start_year(self, year: int, pop42: xr.DataArray, previous: xr.Dataset | None) -> None:
        fp = self.footprint
        self.population[year] = pop42
        status = self.inputs.status(year, fp.table).transpose("icb", "service")
        delegated = status.sel(icb=fp.table["icb"].to_numpy(), service=self.services)
        delegated = delegated.drop_vars(
            [c for c in delegated.coords if c not in ("icb", "service")]
        )
        allocation = self.inputs.allocate(year, fp.population(pop42), delegated, previous)
        self.record[year] = _Year(allocation, delegated, fp)
        demand_pop = pop42 if self.scenario.demand.demographic_growth else self._base_pop
        lam42 = self.demand.annual_patients(demand_pop.values, year)
        self._lam_year = fp.matrix.T @ lam42
        # area cost index of the footprint's ICBs: patient-weighted over merged ICBs
        priced = fp.matrix.T @ (lam42 * self.demand.cost_index)
        self._cost_year = np.divide(
            priced, self._lam_year, out=np.ones_like(priced), where=self._lam_year > 0
        )
        # the year's development fund (kept nationally by the allocation round) for CPAG
        if "development_fund" in allocation:
            self.fund_left = float(allocation["development_fund"])
        else:
            share = self.scenario.envelope.development_fund_share
            self.fund_left = share * float(allocation["envelope"])

    def _log(self, route: str, name: str, t: int, annual_cost: float) -> None:
        """Record a funded treatment with its financial year and calendar month."""
        self.funded.append(
            {
                "route": route,
                "name": str(name),
                "year": self.base_year + t // 12,
                "month": (t + APRIL - 1) % 12 + 1,
                "annual_cost_gbp": float(annual_cost),
            }
        )

    def _add_treatment(self, service: str, annual_cost: float) -> None:
        """Raise a service's utilisation so its national spend grows by `annual_cost` a year."""
        k = self.service_index[service]
        base = float(self._lam_year[:, k].sum() * self.demand.costs.mean[k])
        if base > 0:
            self.uplift[k] += annual_cost / base

    def _settle(self, year: int) -> None:
        rec = self.record[year]
        acc = self.stoch[year]
        mask = rec.delegated.values  # (icb, service)
        spend = by_portfolio(acc["spend"], mask)
        patients = by_portfolio(acc["patients"], mask)
        excess = by_portfolio(acc["hc_excess"], mask)[..., 0]
        budget = rec.budget = self._budgets(rec)
        variance = spend - budget
        after = pool(self.scenario, variance[..., 0], excess, budget[:, 0], rec.footprint.region)
        self.stoch[year] = {
            "spend": spend,
            "patients": patients,
            "variance": variance,
            "after": after,
        }

    def _budgets(self, rec: _Year) -> np.ndarray:
        """(icb, portfolio): the delegated allocation, and a notional retained budget."""
        alloc = rec.allocation["allocation"]
        if not np.array_equal(alloc["icb"].values, rec.delegated["icb"].values):
            alloc = alloc.sel(icb=rec.delegated["icb"].values)
        alloc = alloc.values.astype(float)
        retained_exp = by_portfolio(rec.expected, rec.delegated.values)[:, 1]
        total = retained_exp.sum()
        notional = float(rec.allocation["retained_budget"]) * (
            retained_exp / total if total > 0 else np.zeros_like(retained_exp)
        )
        return np.stack([alloc, notional], axis=-1)

    def run(self) -> xr.Dataset:
        env = self.env
        env.process(ageing(env, self.inputs.population, self.on_april))
        if self.scenario.cpag.enabled and self.scenario.cpag.candidates_per_round > 0:
            env.process(self.cpag_rounds())
        for i in range(len(self.scenario.nice_approvals)):
            env.process(self.nice_approval(i))
        env.process(self.settlement())
        env.process(self.demand_process())
        env.run()
        return self._dataset()

    def _dataset(self) -> xr.Dataset:
        """All years stacked with numpy, then one Dataset. Before a merger, histories are
        carried onto the merged footprint: money, patients, population and shares summed
        along `merger_share`; ratios (need index, distance from target) recomputed."""
        final = self.record[self.years[-1]].footprint

        def icb_axis(values: np.ndarray, axis: int, rec: _Year) -> np.ndarray:
            if rec.footprint is final:
                return values
            moved = np.tensordot(values, final.matrix, axes=([axis], [0]))
            return np.moveaxis(moved, -1, axis)

        cols: dict[str, list[np.ndarray]] = {}
        alloc_dims: dict[str, tuple[str, ...]] = {}
        for year in self.years:
            rec, st = self.record[year], self.stoch[year]
            mask = rec.delegated.values
            row = {
                "spend": icb_axis(st["spend"], 1, rec),
                "patients": icb_axis(st["patients"], 1, rec),
                "variance_to_budget": icb_axis(st["variance"], 1, rec),
                "pooled_variance": icb_axis(st["after"], 1, rec),
                "expected_spend": icb_axis(by_portfolio(rec.expected, mask), 0, rec),
                "budget": icb_axis(rec.budget, 0, rec),
                "delegated_share": icb_axis(mask.astype(float), 0, rec),
                "population": final.matrix.T.dot(
                    self.population[year].values.reshape(self.footprint.matrix.shape[0], -1)
                ).reshape(final.matrix.shape[1], *self.population[year].shape[1:]),
            }
            alloc = rec.allocation
            for name, da in alloc.data_vars.items():
                alloc_dims[name] = da.dims
                values = np.asarray(da.transpose(*da.dims).values)
                if "icb" in da.dims and name not in _RATIOS:
                    values = icb_axis(
                        values.astype(float) if rec.footprint is not final else values,
                        da.dims.index("icb"),
                        rec,
                    )
                row[name] = values
            if rec.footprint is not final:
                _carry_ratios(row, alloc, final.matrix)
            for name, values in row.items():
                cols.setdefault(name, []).append(values)
        sizes = {
            "replicate": self.replicates,
            "icb": final.table["icb"].to_numpy(),
            "portfolio": np.array(PORTFOLIOS),
            "service": self.services,
            "sex": self.population[self.years[0]]["sex"].values,
            "age": self.population[self.years[0]]["age"].values,
        }
        dims = {
            "spend": ("replicate", "icb", "portfolio"),
            "patients": ("replicate", "icb", "portfolio"),
            "variance_to_budget": ("replicate", "icb", "portfolio"),
            "pooled_variance": ("replicate", "icb"),
            "expected_spend": ("icb", "portfolio"),
            "budget": ("icb", "portfolio"),
            "delegated_share": ("icb", "service"),
            "population": ("icb", "sex", "age"),
            **alloc_dims,
        }
        attrs = {k: v.attrs for k, v in self.record[self.years[-1]].allocation.data_vars.items()}
        ds = xr.Dataset(
            {k: (("year", *dims[k]), np.stack(v), attrs.get(k, {})) for k, v in cols.items()},
            coords={"year": self.years, **sizes},
        )
        ds["delegated"] = ds["delegated_share"] > 0.5
        ds = final.label(ds.drop_vars("delegated_share"))
        ds["population"].attrs.update(self.population[self.years[0]].attrs)
        ds["population"].attrs.pop("year", None)
        return _finish(ds, self.funded)


_RATIOS = {"need_index", "distance_from_target"}


def _carry_ratios(row: dict[str, np.ndarray], alloc: xr.Dataset, matrix: np.ndarray) -> None:
    """Need index and distance from target of a pre-merger year, on the merged footprint."""
    heads = row["population"].sum(axis=(1, 2))
    if "need_index" in row:
        row["need_index"] = row["weighted_population"] / heads
    if "distance_from_target" in row:
        old = alloc["notional_allocation"].values
        target = matrix.T.dot(old / (1.0 + alloc["distance_from_target"].values))
        row["distance_from_target"] = row["notional_allocation"] / target - 1.0


def _finish(ds: xr.Dataset, funded: list[dict[str, Any]]) -> xr.Dataset:
    """Risk fractions, attrs and the CPAG/NICE log."""
    alloc = ds["budget"].sel(portfolio="delegated")
    ratio = alloc.where(alloc > 0)
    ds["overspend_before_pooling"] = ds["variance_to_budget"].sel(portfolio="delegated") / ratio
    ds["overspend_after_pooling"] = ds["pooled_variance"] / ratio
    ds = ds.drop_vars("pooled_variance")
    for name, (units, long_name) in _ATTRS.items():
        if name in ds:
            ds[name].attrs.update(units=units, long_name=long_name)
    ds.attrs["new_treatments"] = json.dumps(funded)
    return ds


_ATTRS = {
    "spend": ("GBP", "spend on the ICB's residents by portfolio"),
    "patients": ("patients", "patients treated, by ICB of residence and portfolio"),
    "variance_to_budget": ("GBP", "spend minus budget (delegated: allocation; retained: notional)"),
    "expected_spend": ("GBP", "expected spend by ICB of residence and portfolio"),
    "budget": ("GBP", "delegated allocation and notional retained budget per ICB"),
    "delegated": ("1", "service delegated to the ICB in that year"),
    "population": ("persons", "resident population by ICB, sex and single year of age"),
    "overspend_before_pooling": ("1", "delegated overspend as a fraction of the allocation"),
    "overspend_after_pooling": (
        "1",
        "delegated overspend after the risk-pool rule, as a fraction of the allocation",
    ),
}


def by_portfolio(values: np.ndarray, delegated: np.ndarray) -> np.ndarray:
    """(..., icb, service) -> (..., icb, portfolio). One code path for expected and drawn
    values, so a run without randomness reproduces the expectation to the last bit."""
    return np.stack([(values * delegated).sum(-1), (values * ~delegated).sum(-1)], axis=-1)


def pool(
    scenario: Scenario,
    variance: np.ndarray,
    hc_excess: np.ndarray,
    allocation: np.ndarray,
    region: np.ndarray,
) -> np.ndarray:
    """Delegated variance (replicate, icb) that each ICB still carries after the risk pool.

    none: all of it. regional: a share of every ICB's variance goes into its region's pool,
    shared back by allocation (regional totals conserved). national_high_cost: the part of
    each high-cost case above the threshold is paid by a national pool funded by every ICB in
    proportion to allocation (national total conserved). nhse_absorbs: NHS England absorbs
    overspend beyond the given fraction of allocation (not conserved: NHS England pays).
    """
    cfg = scenario.settlement
    if cfg.risk_pool == "none":
        return variance.copy()
    if cfg.risk_pool == "regional":
        s = cfg.regional_pool_share
        out = (1.0 - s) * variance
        for reg in np.unique(region):
            m = region == reg
            weight = allocation[m] / allocation[m].sum() if allocation[m].sum() > 0 else 0.0
            out[:, m] += s * variance[:, m].sum(axis=1, keepdims=True) * weight
        return out
    if cfg.risk_pool == "national_high_cost":
        weight = allocation / allocation.sum() if allocation.sum() > 0 else 0.0
        return variance - hc_excess + hc_excess.sum(axis=1, keepdims=True) * weight
    cap = cfg.nhse_absorbs_above * allocation
    return np.minimum(variance, cap)


def run_engine(
    scenario: Scenario, inputs: Inputs, replicates: Sequence[int], seed: int
) -> xr.Dataset:
    """Run the calendar on given inputs (the seam tests use with synthetic data)."""
    ds = Engine(scenario, inputs, replicates, seed).run()
    ds.attrs["seed"] = seed
    return ds


_DETERMINISTIC: dict[tuple[str, str], dict[tuple, Any]] = {}


def _reference_key(ref: xr.Dataset) -> str:
    """Identifies reference data across the shallow copies `load_reference` hands out."""
    version = ref.attrs.get("data_version")
    return f"{version}:{sorted(ref.sizes.items())}" if version else f"id:{id(ref)}"


def simulate(
    scenario: Scenario, replicates: Sequence[int], seed: int, reference: xr.Dataset | None = None
) -> xr.Dataset:
    """Simulate `replicates` (global indices) of `scenario` with streams keyed by `seed`.

    Wires the packaged reference data, the population model, the delegation rules and the
    allocation round into the calendar.
    """
    from sim import allocation, delegation, population
    from sim import reference as refdata

    ref = reference if reference is not None else refdata.load_reference()
    services = refdata.load_services()
    profiles = refdata.load_profiles()

    # The allocation path is deterministic: a worker running many chunks of one scenario
    # computes each round once (the rounds are pure functions of scenario and year).
    memo = _DETERMINISTIC.setdefault((scenario.model_dump_json(), _reference_key(ref)), {})
    while len(_DETERMINISTIC) > 4:
        _DETERMINISTIC.pop(next(iter(_DETERMINISTIC)))

    def status(year: int, table: pd.DataFrame) -> xr.DataArray:
        key = ("status", year, len(table))
        if key not in memo:
            memo[key] = delegation.delegation_status(scenario, services, table, [year]).sel(
                year=year
            )
        return memo[key]

    def allocate(year: int, pop: xr.DataArray, held: xr.DataArray, previous: xr.Dataset | None):
        key = ("allocation", year, pop.sizes["icb"])
        if key not in memo:
            memo[key] = allocation.allocation_round(
                year, pop, held, previous, scenario, ref, services, profiles
            )
        return memo[key]

    inputs = Inputs(
        reference=ref,
        services=services,
        profiles=profiles,
        population=population.PopulationModel(scenario, ref),
        icbs={2023: refdata.load_icbs(2023), 2026: refdata.load_icbs(2026)},
        status=status,
        allocate=allocate,
        pipeline=load_pipeline(known_services=services["service_id"]),
        area_cost=market_forces_index(ref["region_name"], ref["gp_registered"].sum(("sex", "age"))),
    )
    return run_engine(scenario, inputs, replicates, seed)
