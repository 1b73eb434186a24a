"""Allocation formulas, convergence and exact totals, on small synthetic inputs.

The synthetic reference holds only what `sim.allocation` reads (IMD scores, GP lists and
the 2026 resident population), so these tests do not need the packaged reference data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import allocation as A
from sim.convergence import FloorNotFundable, converge
from sim.envelope import budget_shares, delegated_fraction, national_envelope
from sim.errors import ScenarioError
from sim.need import NeedInputs, cost_curve, historic_share, target_formula
from sim.reference import load_data, load_profiles, load_services
from sim.scenario import ConvergenceConfig, Scenario

REGIONS = ["London", "North West", "Midlands", "South West", "East of England", "South East"]
AGES = np.arange(91)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIST_INFLATION = 1.05


@pytest.fixture(scope="module")
def catalogue() -> tuple[pd.DataFrame, xr.DataArray]:
    return load_services(), load_profiles()


def synthetic(
    pop: np.ndarray, regions: list[str], imd: np.ndarray, health: np.ndarray
) -> tuple[np.ndarray, NeedInputs]:
    """Population (icb, sex, age) and its need signals; GP lists are 5% above residents."""
    weight = (pop * LIST_INFLATION).sum(axis=(1, 2))
    return pop, NeedInputs(
        np.asarray(imd, float), np.asarray(health, float), weight, np.array(regions)
    )


def formula(
    need: NeedInputs, services: pd.DataFrame, profiles: xr.DataArray, base: str = "resident"
) -> A.FormulaInputs:
    names = list(profiles["profile"].values)
    index = [names.index(p) for p in services["age_profile"]]
    by_service = profiles.transpose("profile", "sex", "age").values[index]
    inflation = None
    if base == "registered":
        inflation = np.full((need.weight.size, 2, 91), LIST_INFLATION)
    return A.FormulaInputs(need, inflation, by_service, budget_shares(services))


def round_(sc, year, population, delegated, previous, inputs, services) -> A.Round:
    """One round of scenario `sc` (its envelope, formula and convergence sections)."""
    envelope = national_envelope(sc.envelope, sc.time.base_year, [year - 1, year])
    return A.allocation_round(
        year,
        population,
        delegated,
        previous,
        (envelope[0], envelope[1]),
        sc.envelope.development_fund_share,
        sc.allocation,
        sc.convergence,
        inputs,
        services,
    )


def two_services(delegated_share: float = 0.75) -> pd.DataFrame:
    """Two flat-profile services; the first holds `delegated_share` of the spend."""
    return pd.DataFrame(
        {
            "service_id": ["a", "b"],
            "delegation_group": ["wave_59", "retained"],
            "baseline_spend_gbp": [delegated_share * 100.0, (1 - delegated_share) * 100.0],
            "age_profile": ["flat", "flat"],
            "non_demographic_growth": [0.0, 0.0],
        }
    )


def test_budget_shares_follow_each_services_own_growth():
    """A service growing 10% a year against 0% doubles its relative slice in ~7.3 years;
    shares always sum to one, and the catalogue year gives the catalogue's split."""
    services = two_services(0.5).assign(non_demographic_growth=[0.10, 0.0])
    assert list(budget_shares(services, 2023)) == [0.5, 0.5]
    later = budget_shares(services, 2030)
    assert float(later.sum()) == pytest.approx(1.0, abs=1e-15)
    assert later[0] / later[1] == pytest.approx(1.1**7)


def status_of(n_icb: int, services: pd.DataFrame, held: list[str]) -> np.ndarray:
    ids = services["service_id"].to_numpy()
    return np.broadcast_to(np.isin(ids, held), (n_icb, len(ids))).copy()


def scenario(**sections) -> Scenario:
    return Scenario(name="test", **sections)


def check_totals(result: A.Round) -> None:
    """Whole pounds that add up exactly: the contract of every allocation round."""
    for name in A.MONEY:
        assert np.asarray(getattr(result, name)).dtype == np.int64, name
        assert A.ROUND_ATTRS[name][0] == "GBP"
    assert int(result.allocation.sum()) + int(result.retained_budget) == int(result.envelope)
    assert (result.allocation >= 0).all() and int(result.retained_budget) >= 0
    assert float(result.target_share.sum()) == pytest.approx(1.0, abs=1e-12)


# --- hand-worked cases --------------------------------------------------------------------


def test_three_icb_round_worked_on_paper(catalogue):
    """Three ICBs of 1,000, 2,000 and 1,000 people (capitation formula).

    Last year's notional allocations: A 30, B 40, C 30 (GBP bn; total 100). This year the
    portfolio is 120 (no development fund), so targets are 30, 60, 30.
    Floor (+2%): 30.6, 40.8, 30.6. A and C are over target (30 < 30.6): held to the floor.
    B is under: gap closure 40.8 + 0.25 x (60 - 40.8) = 45.6; the 5% cap lifts it to
    0.95 x 60 = 57. Spent so far 30.6 + 57 + 30.6 = 118.2; the 1.8 left goes to B (the
    only ICB with room below target): B = 58.8. Distances: +2%, -2%, +2%.
    Service "a" (75% of the catalogue) is delegated to all three, "b" retained, so
    allocations are 0.75 x notional = 22.95, 44.1, 22.95; targets 22.5, 45, 22.5; and
    NHS England retains 120 - 90 = 30.
    """
    _, profiles = catalogue
    services = two_services(0.75)
    pop = np.ones((3, 2, 91)) * np.array([1000, 2000, 1000])[:, None, None] / 182
    population, need = synthetic(pop, REGIONS[:3], np.ones(3), np.zeros(3))
    sc = scenario(
        time={"base_year": 2025, "end_year": 2026},
        envelope={"base_gbp": 120e9, "development_fund_share": 0.0},
        allocation={"formula": "capitation"},
        convergence={"floor_growth": 0.02},
    )
    previous = np.array([[30e9, 40e9, 30e9]])
    status = status_of(3, services, ["a"])
    result = round_(
        sc, 2025, population, status, previous, formula(need, services, profiles), services
    )
    check_totals(result)
    assert result.allocation.tolist() == [22_950_000_000, 44_100_000_000, 22_950_000_000]
    assert result.target_allocation.tolist() == [22_500_000_000, 45_000_000_000, 22_500_000_000]
    assert int(result.retained_budget) == 30_000_000_000
    np.testing.assert_allclose(result.distance_from_target, [0.02, -0.02, 0.02], atol=1e-12)
    np.testing.assert_allclose(result.need_index, [1.0, 1.0, 1.0])


def test_shortfall_breaks_the_cap_not_the_floor():
    """Same ICBs, but the portfolio is only 110 (targets 27.5, 55, 27.5).

    A and C get the floor 30.6 each. B wants 0.95 x 55 = 52.25, total 113.45 > 110, so the
    cap cannot be funded: B gets what is left above the floors, 110 - 61.2 = 48.8
    (11.3% below target). The floor (40.8) holds.
    """
    out = converge(
        np.array([30.0, 40.0, 30.0]),
        np.array([27.5, 55.0, 27.5]),
        ConvergenceConfig(floor_growth=0.02),
    )
    np.testing.assert_allclose(out, [30.6, 48.8, 30.6])


def test_floor_that_cannot_be_funded_is_a_scenario_error(catalogue):
    _, profiles = catalogue
    services = two_services()
    population, need = synthetic(np.full((3, 2, 91), 10.0), REGIONS[:3], np.ones(3), np.zeros(3))
    sc = scenario(envelope={"growth": 0.01}, convergence={"floor_growth": 0.03})
    with pytest.raises(FloorNotFundable):
        round_(sc, 2025, population, status_of(3, services, ["a"]), None,
               formula(need, services, profiles), services)  # fmt: skip
    from sim.plan import allocation_path

    with pytest.raises(ScenarioError) as caught:
        allocation_path(scenario(time={"end_year": 2026}, **_floor_too_high()), load_data())
    message = str(caught.value)
    assert "convergence.floor_growth" in message and "2024/25" in message
    assert "\n" not in message


def _floor_too_high() -> dict:
    return {"envelope": {"growth": 0.01}, "convergence": {"floor_growth": 0.03}}


def test_inputs_checked_before_a_run():
    from sim.checks import check_scenario

    data = load_data()
    check_scenario(scenario(time={"end_year": 2026}), data)
    short = scenario(envelope={"growth_by_year": {2030: 0.01}})
    with pytest.raises(ScenarioError, match=r"convergence.floor_growth: 2030/31"):
        check_scenario(short, data)
    unknown = scenario(delegation={"also_retain": ["renal_dialisys"]})
    with pytest.raises(ScenarioError, match="did you mean 'renal_dialysis'"):
        check_scenario(unknown, data)


def test_envelope_growth_path():
    sc = scenario(
        time={"base_year": 2024},
        envelope={"base_gbp": 100.0, "growth": 0.1, "growth_by_year": {2026: 0.0}},
    )
    env = national_envelope(sc.envelope, 2024, [2023, 2024, 2025, 2026, 2027])
    np.testing.assert_allclose(env, [100 / 1.1, 100, 110, 110, 121])


def test_largest_remainder_is_exact_and_close():
    values = np.array([0.4, 0.4, 0.4, 1.8])
    out = A.largest_remainder(values, 3)
    assert out.tolist() == [1, 0, 0, 2]  # floors 0,0,0,1; two more pounds by remainder
    assert out.sum() == 3 and np.all(np.abs(out - values) < 1)


# --- the target formula -------------------------------------------------------------------


def test_specialised_curve_flatter_than_general_and_acute(catalogue):
    services, profiles = catalogue
    inputs = formula(
        synthetic(np.ones((1, 2, 91)), ["London"], [1.0], [0.0])[1], services, profiles
    )
    curve = cost_curve(inputs.profiles, inputs.catalogue_shares, np.ones((2, 91))).mean(axis=0)
    ga = profiles.sel(profile="general_acute_reference").mean("sex").values
    old, young = slice(75, 86), slice(25, 46)
    special_ratio = curve[old].mean() / curve[young].mean()
    ga_ratio = ga[old].mean() / ga[young].mean()
    assert 1.0 < special_ratio < ga_ratio


def test_health_inequalities_weight_moves_money_to_deprived_icb(catalogue):
    services, profiles = catalogue
    pop = np.full((2, 2, 91), 100.0)
    population, need = synthetic(pop, ["Midlands", "Midlands"], np.array([10.0, 40.0]), np.zeros(2))
    inputs = formula(need, services, profiles)
    shares = []
    for weight in (0.0, 0.1, 0.3):
        config = scenario(allocation={"health_inequalities_weight": weight}).allocation
        curve = cost_curve(inputs.profiles, inputs.catalogue_shares, population.sum(axis=0))
        hist = historic_share(population, need, curve)
        shares.append(float(target_formula(config, population, need, curve, hist).target_share[1]))
    assert shares[0] == pytest.approx(0.5) and shares[0] < shares[1] < shares[2]


# --- properties ---------------------------------------------------------------------------


@st.composite
def worlds(draw):
    """A random small England: ICB sizes, age structures, deprivation and regions."""
    n = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = draw(st.lists(st.floats(1e3, 3e6), min_size=n, max_size=n))
    shape = rng.gamma(2.0, 1.0, (n, 2, 91))
    pop = shape / shape.sum(axis=(1, 2), keepdims=True) * np.array(sizes)[:, None, None]
    regions = [REGIONS[i] for i in rng.integers(0, len(REGIONS), n)]
    return synthetic(pop, regions, rng.uniform(5, 45, n), rng.uniform(-1.5, 1.5, n))


allocation_configs = st.fixed_dictionaries(
    {
        "formula": st.sampled_from(["needs", "age_sex", "capitation", "historic"]),
        "population_base": st.sampled_from(["resident", "registered"]),
        "health_inequalities_weight": st.floats(0, 1),
        "unmet_need_weight": st.floats(0, 1),
        "market_forces": st.booleans(),
    }
)
convergence_configs = st.fixed_dictionaries(
    {
        "floor_growth": st.floats(-0.05, 0.05),
        "gap_closure": st.floats(0, 1),
        "max_below_target": st.floats(0, 0.2),
    }
)


@FAST
@given(
    world=worlds(),
    allocation=allocation_configs,
    convergence=convergence_configs,
    base=st.floats(1e6, 1e11),
    growth=st.floats(-0.1, 0.3),
    dev=st.floats(0, 0.5),
    held=st.lists(st.booleans(), min_size=2, max_size=2),
)
def test_totals_conserve_to_the_pound(world, allocation, convergence, base, growth, dev, held):
    population, need = world
    services, profiles = two_services(0.6), load_profiles()
    sc = scenario(
        envelope={"base_gbp": base, "growth": growth, "development_fund_share": dev},
        allocation=allocation,
        convergence=convergence,
    )
    inputs = formula(need, services, profiles, allocation["population_base"])
    held_ids = [s for s, h in zip("ab", held, strict=True) if h]
    status = status_of(population.shape[0], services, held_ids)
    state = None
    for year in (2024, 2025):
        try:
            result = round_(sc, year, population, status, state, inputs, services)
        except FloorNotFundable:
            assert growth < convergence["floor_growth"] + 1e-9
            return
        check_totals(result)
        envelope = national_envelope(sc.envelope, 2024, [year])[0]
        assert int(result.envelope) == round(envelope)
        fp = load_data().footprints[2023]  # any footprint: state carries over unchanged
        state = A.carry_state(result, allocation["formula"], fp, fp)


@FAST
@given(
    baseline=st.lists(st.floats(1.0, 1e9), min_size=1, max_size=12),
    noise=st.integers(0, 2**32 - 1),
    slack=st.floats(0.0, 0.3),
    convergence=convergence_configs,
    over_target=st.sampled_from(["floor", "converge"]),
)
def test_convergence_never_overshoots_or_breaks_the_floor(
    baseline, noise, slack, convergence, over_target
):
    config = ConvergenceConfig(**convergence, over_target=over_target)
    base = np.array(baseline)
    floor = base * (1 + config.floor_growth)
    weights = np.random.default_rng(noise).uniform(0.2, 5.0, base.size)
    target = weights / weights.sum() * floor.sum() * (1 + slack)
    out = converge(base, target, config)
    tol = 1e-9 * target.sum()
    assert out.sum() == pytest.approx(target.sum(), rel=1e-12)
    assert np.all(out >= floor - tol)
    if over_target == "floor":  # over-target ICBs get the floor; the others never pass target
        held = target <= floor
        np.testing.assert_allclose(out[held], floor[held], rtol=1e-9)
        assert np.all(out[~held] <= target[~held] + tol)
    # Every ICB that no floor, cap or target binds sits at (1 - g) x base x (1 + c) + g x
    # target for one uniform growth c: (out - g x target) / base is the same for all of them.
    g = config.gap_closure
    cap = (1 - config.max_below_target) * target
    free = (out > floor + tol) & (out > cap + tol)
    if over_target == "floor":
        free &= out < target - tol
    if g < 1 and free.sum() >= 2:
        best = np.flatnonzero(free)[np.argmax(base[free])]  # the best-conditioned ICB
        core = (out[best] - g * target[best]) / ((1 - g) * base[best])
        expected = (1 - g) * base[free] * core + g * target[free]
        np.testing.assert_allclose(out[free], expected, rtol=0, atol=1e-9 * target.sum())


def test_no_gap_closure_with_converging_over_target_is_a_roll_forward():
    base, target = np.array([30.0, 40.0, 30.0]), np.array([27.0, 56.0, 27.0])
    config = ConvergenceConfig(gap_closure=0.0, max_below_target=1.0, over_target="converge")
    np.testing.assert_allclose(converge(base, target, config), base * 1.1)


def _target(population, need, config, services, profiles):
    inputs = formula(need, services, profiles, config.population_base)
    base = population if inputs.list_inflation is None else population * inputs.list_inflation
    curve = cost_curve(inputs.profiles, inputs.catalogue_shares, base.sum(axis=0))
    hist = historic_share(population, need, curve)
    return base, target_formula(config, base, need, curve, hist)


@FAST
@given(world=worlds(), allocation=allocation_configs)
def test_target_shares_sum_to_one(world, allocation, catalogue):
    population, need = world
    services, profiles = catalogue
    config = scenario(allocation=allocation).allocation
    base, out = _target(population, need, config, services, profiles)
    assert float(out.target_share.sum()) == pytest.approx(1.0, abs=1e-12)
    assert (out.target_share > 0).all()
    assert float(out.weighted_population.sum()) == pytest.approx(float(base.sum()), rel=1e-9)


@FAST
@given(
    sizes=st.lists(st.floats(1e3, 1e6), min_size=2, max_size=6),
    formula_name=st.sampled_from(["needs", "age_sex", "capitation"]),
    base=st.sampled_from(["resident", "registered"]),
)
def test_uniform_population_gives_equal_per_capita_targets(sizes, formula_name, base, catalogue):
    services, profiles = catalogue
    n = len(sizes)
    per_head = np.random.default_rng(1).gamma(2.0, 1.0, (2, 91))
    pop = per_head[None] / per_head.sum() * np.array(sizes)[:, None, None]
    population, need = synthetic(pop, ["Midlands"] * n, np.full(n, 20.0), np.full(n, 0.3))
    config = scenario(allocation={"formula": formula_name, "population_base": base}).allocation
    share = _target(population, need, config, services, profiles)[1].target_share
    np.testing.assert_allclose(share / np.array(sizes), 1.0 / sum(sizes), rtol=1e-9)


@FAST
@given(
    world=worlds(),
    allocation=allocation_configs.filter(lambda c: c["formula"] != "historic"),
    moved=st.floats(0.01, 0.9),
    pick=st.integers(0, 100),
)
def test_moving_population_in_never_lowers_target(world, allocation, moved, pick, catalogue):
    population, need = world
    services, profiles = catalogue
    n = population.shape[0]
    into, out_of = pick % n, (pick + 1) % n
    config = scenario(allocation=allocation).allocation

    def share(pop: np.ndarray) -> float:
        return float(_target(pop, need, config, services, profiles)[1].target_share[into])

    after = population.copy()
    movers = after[out_of] * moved
    after[out_of] -= movers
    after[into] += movers
    assert share(after) >= share(population) - 1e-12


def test_like_for_like_allocation_keeps_the_floor(catalogue):
    services, profiles = catalogue
    rng = np.random.default_rng(7)
    pop = rng.gamma(2.0, 50.0, (5, 2, 91))
    population, need = synthetic(pop, REGIONS[:5], rng.uniform(5, 45, 5), rng.uniform(-1, 1, 5))
    sc = scenario(envelope={"growth": 0.03}, convergence={"floor_growth": 0.02})
    inputs = formula(need, services, profiles)
    status = status_of(5, services, list(services["service_id"][:60]))
    first = round_(sc, 2024, population, status, None, inputs, services)
    second = round_(sc, 2025, population, status, first.notional_allocation[None], inputs, services)
    check_totals(first)
    check_totals(second)
    # the floor guarantees each ICB's whole-portfolio (notional) share ...
    notional = second.notional_allocation / first.notional_allocation
    assert np.all(notional >= 1.02 - 1e-9)
    # ... and its delegated budget follows it times the national cost-mix drift of the
    # services it holds (their catalogue growth against the whole portfolio's)
    drift = delegated_fraction(status, budget_shares(services, 2025)) / delegated_fraction(
        status, budget_shares(services, 2024)
    )
    ratio = second.allocation / first.allocation
    np.testing.assert_allclose(ratio, notional * drift, rtol=1e-8)
    assert np.abs(first.distance_from_target).max() < 0.15


# --- the catalogue ------------------------------------------------------------------------


def test_catalogue_matches_published_totals(catalogue):
    services, profiles = catalogue
    spend = services.groupby("delegation_group")["baseline_spend_gbp"].sum()
    assert spend.sum() == 25_000_000_000
    assert spend["wave_59"] + spend["wave_70"] == 14_000_000_000
    assert (services["delegation_group"] == "wave_70").sum() == 11
    assert 60 <= len(services) <= 150
    assert set(services["basis"]) <= {"published", "derived", "assumption"}
    assert (services["basis_note"].str.len() > 0).all()
    assert set(services["age_profile"]) <= set(profiles["profile"].values)
    assert services["high_cost_share"].between(0, 1).all()
    assert float(profiles.max()) == pytest.approx(1.0)


def test_allocation_path_switches_footprint_and_conserves():
    from sim.plan import allocation_dataset

    years = [2024, 2025, 2026, 2027]
    sc = scenario(time={"end_year": years[-1]}, mergers={"enabled": True, "year": 2026})
    ds = allocation_dataset(sc, load_data())
    for year in years:
        one = ds.sel(year=year)
        alloc = one["allocation"].dropna("icb")
        assert alloc.sizes["icb"] == (42 if year < 2026 else 36)
        assert int(alloc.sum()) + int(one["retained_budget"]) == int(one["envelope"])
        assert float(one["target_share"].sum()) == pytest.approx(1.0)
    assert ds["delegated"].dtype == bool and ds["delegated"].dims == ("year", "icb", "service")
    assert np.abs(ds["distance_from_target"].sel(year=2024)).max() < 0.15
    totals = A.allocation_totals(ds)
    national = totals[(totals["level"] == "national") & (totals["variable"] == "allocation")]
    regional = totals[(totals["level"] == "region") & (totals["variable"] == "allocation")]
    assert (regional.groupby("year")["gbp"].sum().values == national["gbp"].values).all()
    for name in A.MONEY + ("delegated", "need_index", "distance_from_target"):
        assert {"units", "long_name"} <= set(ds[name].attrs), name
