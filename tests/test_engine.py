"""The SimPy calendar on a small synthetic England (6 ICBs, 4 services) with fixed seeds.

The synthetic plans stand in for population, delegation and allocation so each property is
checked on numbers small enough to work by hand (the demand chain and the calendar are the
real ones); `test_full_engine_*` run the real modules on the packaged data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim.allocation import Round, largest_remainder
from sim.demand import build_demand
from sim.engine import Calendar
from sim.footprint import Footprint, footprint_year
from sim.outputs import assemble
from sim.pipeline import COLUMNS as PIPELINE_COLUMNS
from sim.plan import (
    AllocationPath,
    ScenarioPlan,
    YearPlan,
    demand_spread,
    new_treatments,
    with_demand,
)
from sim.reference import NEED_GROUPS
from sim.scenario import Scenario
from sim.settlement import PoolInputs, settle
from sim.years import month_index

ICBS = ["E1", "E2", "E3", "E4", "E5", "E6"]
REGIONS = ["R1", "R1", "R1", "R2", "R2", "R2"]
SIZE = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]) * 20_000
SERVICES = ["a", "b", "c", "d"]
DELEGATED = {"a", "b"}
IMD = np.array([10.0, 15.0, 20.0, 25.0, 30.0, 35.0])


def _services() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "service_id": SERVICES,
            "baseline_spend_gbp": [2e8, 3e8, 2e8, 3e8],
            "age_profile": ["young", "old", "old", "young"],
            "non_demographic_growth": [0.03, 0.05, 0.0, 0.02],
            "mean_cost_gbp": [20_000.0, 8_000.0, 50_000.0, 10_000.0],
            "cost_cv": [1.0, 0.8, 1.2, 0.5],
            "high_cost_share": [0.2, 0.0, 0.5, 0.0],
            "high_cost_mean_gbp": [400_000.0, 0.0, 900_000.0, 0.0],
            "need_group": ["cancer", "cardiac", "renal", "other_physical"],
        }
    )


def _footprints() -> dict[int, Footprint]:
    share = np.zeros((6, 4))
    share[0, 0] = share[1, 0] = 1.0
    share[2, 1] = 1.0
    share[3, 2], share[3, 3] = 0.7, 0.3
    share[4, 3] = share[5, 3] = 1.0
    regions26 = ["R1", "R1", "R2", "R2"]
    table23 = pd.DataFrame({"icb": ICBS, "region": REGIONS, "region_name": REGIONS})
    table26 = pd.DataFrame(
        {"icb": ["M1", "M2", "M3", "M4"], "region": regions26, "region_name": regions26}
    )
    return {2023: Footprint(2023, table23, np.eye(6)), 2026: Footprint(2026, table26, share)}


PROFILES = np.array([[[1.0, 0.5, 0.2]] * 2, [[0.1, 0.6, 1.5]] * 2])  # (profile, sex, age)
PROFILE_INDEX = np.array([0, 1, 1, 0])  # young, old, old, young


class _Population:
    """Grows 1% a year, same age structure everywhere."""

    def __init__(self, base_year: int, end_year: int = 2043) -> None:
        self.year = base_year
        self.end_year = end_year

    def current(self) -> np.ndarray:
        per_age = np.array([0.3, 0.5, 0.2]) / 2
        values = SIZE[:, None, None] * per_age[None, None, :] * np.ones((1, 2, 1))
        return values * 1.01 ** (self.year - 2024)

    def advance(self) -> None:
        self.year += 1


def _by_group(delegated: np.ndarray) -> np.ndarray:
    """The delegated services a (cancer) and b (cardiac) share the target by population."""
    out = np.zeros((delegated.size, len(NEED_GROUPS)))
    out[:, NEED_GROUPS.index("cancer")] = out[:, NEED_GROUPS.index("cardiac")] = delegated / 2
    return out


def _round(scenario: Scenario, year: int, population: np.ndarray, fp: Footprint) -> Round:
    """Envelope grows at the scenario rate; half retained; delegated half by population."""
    envelope = scenario.envelope.base_gbp * (1 + scenario.envelope.growth) ** (year - 2024)
    pop = fp.counts(population).sum(axis=(1, 2))
    delegated = largest_remainder(0.5 * envelope * pop / pop.sum(), int(round(0.5 * envelope)))
    share = scenario.envelope.development_fund_share
    nothing = np.zeros(pop.size)
    return Round(
        envelope=np.int64(round(envelope)),
        development_fund=np.int64(round(envelope * share)),
        retained_budget=np.int64(round(envelope) - delegated.sum()),
        allocation=delegated,
        target_allocation=delegated,
        target_by_group=_by_group(delegated),
        notional_target_by_group=_by_group(2.0 * delegated),
        weighted_population=pop,
        need_index=np.ones(pop.size),
        target_share=pop / pop.sum(),
        distance_from_target=nothing,
        notional_allocation=2.0 * delegated,
    )


def _plan(scenario: Scenario, pipeline: pd.DataFrame | None = None) -> ScenarioPlan:
    """The synthetic England's plan: each year's population, footprint, delegation and round,
    completed with the real demand chain (`sim.plan.with_demand`)."""
    fps = _footprints()
    time, mergers = scenario.time, scenario.mergers
    held = np.array([s in DELEGATED for s in SERVICES])
    years = []
    for year in range(time.base_year, time.end_year + 1):
        fp = fps[footprint_year(year, mergers.enabled, mergers.year, time.base_year)]
        population = _Population(year).current()
        delegated = np.broadcast_to(held, (len(fp.table), len(SERVICES))).copy()
        years.append(
            YearPlan(year, fp, population, delegated, _round(scenario, year, population, fp))
        )
    empty = pd.DataFrame(columns=list(PIPELINE_COLUMNS))
    demand = build_demand(
        scenario.demand, _services(), PROFILES, PROFILE_INDEX, IMD, years[0].population,
        time.base_year, np.ones(6),
    )  # fmt: skip
    pipeline = empty if pipeline is None else pipeline
    populations = np.stack([y.population for y in years])
    envelope = np.array([float(y.round.envelope) for y in years])
    treatments = new_treatments(scenario, pipeline, demand, populations, envelope)
    path = AllocationPath(tuple(years), treatments)
    spread = demand_spread(scenario, _services(), IMD, demand)
    no_variants = np.empty((0,))
    return with_demand(
        "synthetic", path, demand, spread, no_variants, np.array(["f", "m"]), np.arange(3)
    )


def _scenario(**sections) -> Scenario:
    base = {
        "name": "synthetic",
        "time": {"base_year": 2024, "end_year": 2027},
        "envelope": {"base_gbp": 1.1e9, "growth": 0.03},
        "cpag": {"enabled": False},
    }
    base.update(sections)
    return Scenario.model_validate(base)


def _run(scenario: Scenario, replicates, seed=7, pipeline=None) -> xr.Dataset:
    calendar = Calendar(scenario, _plan(scenario, pipeline), replicates, seed).run()
    return assemble(calendar)


@pytest.mark.parametrize("period", ["month", "year"])
def test_chunking_does_not_change_results(period):
    s = _scenario(demand={"draw_period": period})
    whole = _run(s, [0, 1, 2, 3])
    first, second = _run(s, [0, 1]), _run(s, [2, 3])
    for name in ("spend", "patients", "variance_to_budget", "overspend_after_pooling"):
        parts = xr.concat([first[name], second[name]], dim="replicate")
        xr.testing.assert_identical(whole[name], parts)


def test_same_seed_same_numbers_other_seed_other_numbers():
    s = _scenario()
    a, b, c = _run(s, [5], seed=1), _run(s, [5], seed=1), _run(s, [5], seed=2)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a["spend"].values, c["spend"].values)


@pytest.mark.parametrize("period", ["month", "year"])
def test_spend_mean_within_confidence_interval_of_expectation(period):
    ds = _run(_scenario(demand={"draw_period": period}), range(300))
    spend = ds["spend"]
    mean, se = spend.mean("replicate"), spend.std("replicate") / np.sqrt(spend.sizes["replicate"])
    z = np.abs((mean - ds["expected_spend"]) / se)
    # 6 ICBs x 2 portfolios x 4 years = 48 cells: allow the odd 3-sigma cell, never 4.5
    assert float(z.max()) < 4.5
    assert float((z > 3).mean()) < 0.05


def test_relative_volatility_falls_as_population_grows():
    ds = _run(_scenario(), range(300))
    spend = ds["spend"].sel(year=2024, portfolio="delegated")
    cv = (spend.std("replicate") / spend.mean("replicate")).values
    assert np.all(np.diff(cv) < 0)
    # Poisson-gamma: cv scales as 1/sqrt(population); 32x population -> about 1/5.7
    assert 4.0 < cv[0] / cv[-1] < 8.0


def test_deterministic_run_spends_exactly_the_expectation():
    s = _scenario(demand={"stochastic": False})
    ds = _run(s, [0, 1])
    for r in (0, 1):
        xr.testing.assert_equal(ds["spend"].sel(replicate=r, drop=True), ds["expected_spend"])
    assert np.array_equal(
        ds["variance_to_budget"].sel(replicate=0).values,
        (ds["expected_spend"] - ds["budget"]).values,
    )


def test_zero_growth_base_year_matches_catalogue_and_allocation():
    s = _scenario(
        demand={"stochastic": False, "growth_multiplier": 0.0, "demographic_growth": False}
    )
    ds = _run(s, [0])
    cat = _services()
    grown = (cat["baseline_spend_gbp"] * (1 + cat["non_demographic_growth"])).sum()
    totals = ds["expected_spend"].sum(("icb", "portfolio")).values
    np.testing.assert_allclose(totals, grown, rtol=1e-12)  # flat: no growth of any kind
    for plan in _plan(s).years:
        assert np.array_equal(ds["allocation"].sel(year=plan.year).values, plan.round.allocation)


def test_nice_approval_adds_spend_from_its_month_only():
    base = _scenario(demand={"stochastic": False})
    nice = _scenario(
        demand={"stochastic": False},
        nice_approvals=[
            {"name": "x", "service": "b", "year": 2025, "month": 11, "annual_cost_gbp": 12e6}
        ],
    )
    a, b = _run(base, [0]), _run(nice, [0])
    diff = (b["expected_spend"] - a["expected_spend"]).sum(("icb", "portfolio"))
    assert diff.sel(year=2024) == 0
    # November to March: 5 of 12 months of the annual cost in 2025/26
    np.testing.assert_allclose(diff.sel(year=2025), 12e6 * 5 / 12, rtol=1e-9)
    # then a full year, growing with the service (5%/yr non-demographic, 1%/yr population)
    assert 12e6 < float(diff.sel(year=2026)) < 12e6 * 1.07


def test_cpag_funded_treatment_raises_spend_only_from_its_start():
    pipeline = pd.DataFrame(
        {
            "candidate_id": ["t1", "t2", "t3"],
            "name": ["good", "poor", "too big"],
            "service_id": ["a", "c", "b"],
            "available_year": [2025, 2025, 2025],
            "benefit_score": [10.0, 1.0, 50.0],
            "annual_cost_gbp": [4e6, 4e6, 1e9],
        }
    )
    off = _scenario()
    on = _scenario(
        cpag={"enabled": True, "round_months": [11], "candidates_per_round": 3},
        envelope={"base_gbp": 1.1e9, "growth": 0.03, "development_fund_share": 0.01},
    )
    a, b = _run(off, range(4), pipeline=pipeline), _run(on, range(4), pipeline=pipeline)
    # the same streams up to the funding month: 2024/25 identical to the pound
    xr.testing.assert_identical(a["spend"].sel(year=2024), b["spend"].sel(year=2024))
    diff = (b["expected_spend"] - a["expected_spend"]).sum(("icb", "portfolio"))
    # fund 1% of 1.133bn = 11.33m: t1 (best per pound, 4m) and t2 (4m) fit, t3 does not
    np.testing.assert_allclose(diff.sel(year=2025), 8e6 * 5 / 12, rtol=1e-9)
    assert "too big" not in b.attrs["new_treatments"]


def test_month_index_calendar():
    assert month_index(2024, 4, 2024) == 0
    assert month_index(2025, 3, 2024) == 11
    assert month_index(2026, 1, 2024) == 21


def test_mergers_conserve_population_and_budget():
    plain = _run(_scenario(demand={"stochastic": False}), [0])
    merged = _run(_scenario(demand={"stochastic": False}, mergers={"enabled": True}), [0])
    assert list(merged["icb"].values) == ["M1", "M2", "M3", "M4"]
    for name in ("population", "expected_spend", "allocation", "budget"):
        np.testing.assert_allclose(
            merged[name].sum(merged[name].dims[1:]),
            plain[name].sum(plain[name].dims[1:]),
            rtol=1e-12,
        )
    # before the merger the history of M4 is 30% of E4 plus E5 and E6
    pop = plain["population"].sum(("sex", "age")).sel(year=2024)
    m4 = merged["population"].sum(("sex", "age")).sel(year=2024, icb="M4")
    np.testing.assert_allclose(m4, 0.3 * pop.sel(icb="E4") + pop.sel(icb=["E5", "E6"]).sum())


def _overspend_probability(ds: xr.Dataset, icb: str) -> float:
    return float((ds["overspend_after_pooling"].sel(icb=icb) > 0.01).mean())


def test_regional_pool_lowers_overspend_probability_of_small_icbs():
    # need-neutral demand and allocation = expected delegated spend (2e8*1.03 + 3e8*1.05 in
    # 2024/25), so over- and underspends are about equally likely everywhere
    common = {
        "time": {"base_year": 2024, "end_year": 2024},
        "envelope": {"base_gbp": 2 * 521e6, "growth": 0.0},
        "demand": {"deprivation_multiplier": 0.0},
    }
    none = _run(_scenario(**common), range(200))
    pooled = _run(
        _scenario(**common, settlement={"risk_pool": "regional", "regional_pool_share": 0.8}),
        range(200),
    )
    xr.testing.assert_identical(none["spend"], pooled["spend"])
    assert _overspend_probability(pooled, "E1") < _overspend_probability(none, "E1")
    # the regional pool only moves money inside a region
    for reg in ("R1", "R2"):
        icbs = [i for i, r in zip(ICBS, REGIONS, strict=True) if r == reg]
        before = none["overspend_after_pooling"] * none["budget"].sel(portfolio="delegated")
        after = pooled["overspend_after_pooling"] * pooled["budget"].sel(portfolio="delegated")
        np.testing.assert_allclose(
            before.sel(icb=icbs).sum("icb"), after.sel(icb=icbs).sum("icb"), rtol=1e-9
        )


def test_pool_rules_by_hand():
    config = _scenario().settlement
    inputs = PoolInputs(
        variance=np.array([[10.0, -4.0, 2.0]]),
        hc_excess=np.array([[6.0, 0.0, 0.0]]),
        allocation=np.array([100.0, 100.0, 200.0]),
        region=np.array(["R1", "R1", "R2"]),
    )
    np.testing.assert_array_equal(settle(inputs, config), inputs.variance)
    config.risk_pool = "national_high_cost"
    np.testing.assert_allclose(settle(inputs, config), [[5.5, -2.5, 5.0]])
    config.risk_pool = "nhse_absorbs"
    config.nhse_absorbs_above = 0.05
    np.testing.assert_allclose(settle(inputs, config), [[5.0, -4.0, 2.0]])
    config.risk_pool = "regional"
    config.regional_pool_share = 0.5
    np.testing.assert_allclose(settle(inputs, config), [[6.5, -0.5, 2.0]])


@pytest.mark.parametrize(
    "name",
    [
        "spend",
        "patients",
        "variance_to_budget",
        "expected_spend",
        "overspend_after_pooling",
        "overspend_before_pooling",
    ],
)
def test_every_result_variable_has_units_and_long_name(name):
    ds = _run(_scenario(), [0])
    assert {"units", "long_name"} <= set(ds[name].attrs)


# --- the real modules: packaged data, population, delegation, allocation ------------------


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("h5py")  # reading reference.nc needs it (h5netcdf backend)
    from sim.reference import load_data

    return load_data()


def _real(**sections) -> Scenario:
    from sim.scenario import load_scenario

    s = load_scenario("scenarios/baseline.toml").model_dump()
    s["time"] = {"base_year": 2024, "end_year": 2027}
    for key, value in sections.items():
        s[key] = {**s.get(key, {}), **value} if isinstance(value, dict) else value
    return Scenario.model_validate(s)


def test_full_engine_chunking_is_bit_identical(reference):
    from sim.simulate import simulate

    s = _real()
    whole = simulate(s, [0, 1, 2, 3], 99, reference)
    first, second = simulate(s, [0, 1], 99, reference), simulate(s, [2, 3], 99, reference)
    for name in ("spend", "patients", "variance_to_budget", "overspend_after_pooling"):
        xr.testing.assert_identical(
            whole[name], xr.concat([first[name], second[name]], dim="replicate")
        )


def test_full_engine_without_growth_or_noise_reproduces_the_allocation(reference):
    from sim.plan import allocation_dataset
    from sim.simulate import simulate

    s = _real(
        demand={"stochastic": False, "growth_multiplier": 0.0, "national_variation": 0.0},
        cpag={"enabled": False},
        population={"demand_variants": [], "demand_variant_weights": []},
    )
    ds = simulate(s, [0, 1], 5, reference)
    services = reference.services
    plain = allocation_dataset(s, reference)
    for name in ("allocation", "target_allocation", "envelope", "retained_budget"):
        assert np.array_equal(ds[name].values, plain[name].values), name
    assert (ds["allocation"].sum("icb") + ds["retained_budget"] == ds["envelope"]).all()
    xr.testing.assert_equal(ds["spend"].sel(replicate=1, drop=True), ds["expected_spend"])
    grown = (services["baseline_spend_gbp"] * (1 + services["non_demographic_growth"])).sum()
    np.testing.assert_allclose(ds["expected_spend"].sel(year=2024).sum(), grown, rtol=1e-9)


def test_full_engine_merger_conserves_population_and_budget(reference):
    from sim.simulate import simulate

    common = {"demand": {"stochastic": False}, "cpag": {"enabled": False}}
    plain = simulate(_real(**common), [0], 5, reference)
    merged = simulate(_real(**common, mergers={"enabled": True, "year": 2026}), [0], 5, reference)
    assert merged.sizes["icb"] == 36 and plain.sizes["icb"] == 42
    np.testing.assert_allclose(
        merged["population"].sum(("icb", "sex", "age")),
        plain["population"].sum(("icb", "sex", "age")),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        merged["expected_spend"].sum(("icb", "portfolio")),
        plain["expected_spend"].sum(("icb", "portfolio")),
        rtol=1e-12,
    )
    total = merged["allocation"].sum("icb") + merged["retained_budget"]
    np.testing.assert_allclose(total, merged["envelope"], rtol=0, atol=1e-3)
