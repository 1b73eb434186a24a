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
from sim.errors import ScenarioError
from sim.reference import load_profiles, load_services
from sim.scenario import ConvergenceConfig, Scenario

REGIONS = ["London", "North West", "Midlands", "South West", "East of England", "South East"]
AGES = np.arange(91)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def catalogue() -> tuple[pd.DataFrame, xr.DataArray]:
    return load_services(), load_profiles()


def synthetic(
    pop: np.ndarray,
    regions: list[str],
    imd: np.ndarray,
    health: np.ndarray,
    icbs: list[str] | None = None,
) -> tuple[xr.DataArray, xr.Dataset]:
    """Population (icb, sex, age) from `pop` and a reference Dataset for the same ICBs."""
    icbs = icbs or [f"E54{i:06d}" for i in range(pop.shape[0])]
    coords = {"icb": icbs, "sex": ["f", "m"], "age": AGES}
    population = xr.DataArray(pop, dims=("icb", "sex", "age"), coords=coords)
    projection = population.expand_dims(variant=["principal"], year=[A.REGISTERED_LIST_YEAR])
    reference = xr.Dataset(
        {
            "imd_score": ("icb", imd),
            "imd_health_score": ("icb", health),
            "gp_registered": population * 1.05,
            "population_projection": projection,
        }
    )
    return population.assign_coords(region_name=("icb", regions)), reference


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
    assert list(A.budget_shares(services, 2023).values) == [0.5, 0.5]
    later = A.budget_shares(services, 2030)
    assert float(later.sum()) == pytest.approx(1.0, abs=1e-15)
    assert float(later.sel(service="a") / later.sel(service="b")) == pytest.approx(1.1**7)


def status_of(icbs, services: pd.DataFrame, held: list[str]) -> xr.DataArray:
    ids = services["service_id"].to_numpy()
    values = np.broadcast_to(np.isin(ids, held), (len(icbs), len(ids)))
    return xr.DataArray(values, dims=("icb", "service"), coords={"icb": icbs, "service": ids})


def scenario(**sections) -> Scenario:
    return Scenario(name="test", **sections)


def check_totals(ds: xr.Dataset) -> None:
    """Whole pounds that add up exactly: the contract of every allocation round."""
    for name in A.MONEY:
        assert ds[name].dtype == np.int64, name
        assert ds[name].attrs["units"] == "GBP"
    assert int(ds["allocation"].sum()) + int(ds["retained_budget"]) == int(ds["envelope"])
    assert (ds["allocation"] >= 0).all() and int(ds["retained_budget"]) >= 0
    assert float(ds["target_share"].sum()) == pytest.approx(1.0, abs=1e-12)


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
    population, reference = synthetic(pop, REGIONS[:3], np.ones(3), np.zeros(3))
    sc = scenario(
        time={"base_year": 2025, "end_year": 2026},
        envelope={"base_gbp": 120e9, "development_fund_share": 0.0},
        allocation={"formula": "capitation"},
        convergence={"floor_growth": 0.02},
    )
    previous = xr.Dataset(
        {"notional_allocation": ("icb", np.array([30e9, 40e9, 30e9]))},
        coords={"icb": population["icb"].values},
    )
    status = status_of(population["icb"].values, services, ["a"])
    ds = A.allocation_round(2025, population, status, previous, sc, reference, services, profiles)
    check_totals(ds)
    assert ds["allocation"].values.tolist() == [22_950_000_000, 44_100_000_000, 22_950_000_000]
    assert ds["target_allocation"].values.tolist() == [
        22_500_000_000,
        45_000_000_000,
        22_500_000_000,
    ]
    assert int(ds["retained_budget"]) == 30_000_000_000
    np.testing.assert_allclose(ds["distance_from_target"], [0.02, -0.02, 0.02], atol=1e-12)
    np.testing.assert_allclose(ds["need_index"], [1.0, 1.0, 1.0])


def test_shortfall_breaks_the_cap_not_the_floor():
    """Same ICBs, but the portfolio is only 110 (targets 27.5, 55, 27.5).

    A and C get the floor 30.6 each. B wants 0.95 x 55 = 52.25, total 113.45 > 110, so the
    cap cannot be funded: B gets what is left above the floors, 110 - 61.2 = 48.8
    (11.3% below target). The floor (40.8) holds.
    """
    out = A.converge(
        np.array([30.0, 40.0, 30.0]),
        np.array([27.5, 55.0, 27.5]),
        ConvergenceConfig(floor_growth=0.02),
    ).allocation
    np.testing.assert_allclose(out, [30.6, 48.8, 30.6])


def test_floor_that_cannot_be_funded_is_a_scenario_error(catalogue):
    _, profiles = catalogue
    services = two_services()
    pop = np.full((3, 2, 91), 10.0)
    population, reference = synthetic(pop, REGIONS[:3], np.ones(3), np.zeros(3))
    sc = scenario(envelope={"growth": 0.01}, convergence={"floor_growth": 0.03})
    status = status_of(population["icb"].values, services, ["a"])
    with pytest.raises(ScenarioError) as caught:
        A.allocation_round(2025, population, status, None, sc, reference, services, profiles)
    message = str(caught.value)
    assert "convergence.floor_growth" in message and "2025/26" in message
    assert "\n" not in message


def test_inputs_checked_before_a_run(catalogue):
    from sim.reference import load_icbs

    services, _ = catalogue
    icbs = load_icbs(2023)
    A.check_allocation_inputs(scenario(), services, icbs)
    short = scenario(envelope={"growth_by_year": {2030: 0.01}})
    with pytest.raises(ScenarioError, match=r"convergence.floor_growth: 2030/31"):
        A.check_allocation_inputs(short, services, icbs)
    unknown = scenario(delegation={"also_retain": ["renal_dialisys"]})
    with pytest.raises(ScenarioError, match="did you mean 'renal_dialysis'"):
        A.check_allocation_inputs(unknown, services, icbs)


def test_envelope_growth_path():
    sc = scenario(
        time={"base_year": 2024},
        envelope={"base_gbp": 100.0, "growth": 0.1, "growth_by_year": {2026: 0.0}},
    )
    env = A.national_envelope(sc, [2023, 2024, 2025, 2026, 2027])
    np.testing.assert_allclose(env.values, [100 / 1.1, 100, 110, 110, 121])
    assert env.attrs["units"] == "GBP"


def test_largest_remainder_is_exact_and_close():
    values = np.array([0.4, 0.4, 0.4, 1.8])
    out = A.largest_remainder(values, 3)
    assert out.tolist() == [1, 0, 0, 2]  # floors 0,0,0,1; two more pounds by remainder
    assert out.sum() == 3 and np.all(np.abs(out - values) < 1)


# --- the target formula -------------------------------------------------------------------


def test_specialised_curve_flatter_than_general_and_acute(catalogue):
    services, profiles = catalogue
    flat_pop = xr.ones_like(profiles.isel(profile=0, drop=True))
    curve = A.cost_curve(services, profiles, flat_pop).mean("sex")
    ga = profiles.sel(profile="general_acute_reference").mean("sex")
    old, young = slice(75, 85), slice(25, 45)
    special_ratio = float(curve.sel(age=old).mean() / curve.sel(age=young).mean())
    ga_ratio = float(ga.sel(age=old).mean() / ga.sel(age=young).mean())
    assert 1.0 < special_ratio < ga_ratio


def test_health_inequalities_weight_moves_money_to_deprived_icb(catalogue):
    services, profiles = catalogue
    pop = np.full((2, 2, 91), 100.0)
    population, reference = synthetic(
        pop, ["Midlands", "Midlands"], np.array([10.0, 40.0]), np.zeros(2)
    )
    need = A.need_inputs(population, reference)
    shares = []
    for weight in (0.0, 0.1, 0.3):
        config = scenario(allocation={"health_inequalities_weight": weight}).allocation
        curve = A.cost_curve(services, profiles, population.sum("icb"))
        hist = A.historic_share(population, need, curve)
        shares.append(
            float(A.target_formula(config, population, need, curve, hist)["target_share"][1])
        )
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
    population, reference = world
    services, profiles = two_services(0.6), load_profiles()
    sc = scenario(
        envelope={"base_gbp": base, "growth": growth, "development_fund_share": dev},
        allocation=allocation,
        convergence=convergence,
    )
    status = status_of(
        population["icb"].values, services, [s for s, h in zip("ab", held, strict=True) if h]
    )
    previous = None
    for year in (2024, 2025):
        try:
            previous = A.allocation_round(
                year, population, status, previous, sc, reference, services, profiles
            )
        except ScenarioError as error:
            assert "convergence.floor_growth" in str(error)
            assert growth < convergence["floor_growth"] + 1e-9
            return
        check_totals(previous)
        assert int(previous["envelope"]) == round(float(A.national_envelope(sc, [year])[0]))


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
    out, growth = A.converge(base, target, config)
    tol = 1e-9 * target.sum()
    assert out.sum() == pytest.approx(target.sum(), rel=1e-12)
    assert np.all(out >= floor - tol)
    # Never crosses target from the side uniform growth would leave it on (the floor may
    # keep an ICB above target; the cap only lifts toward target).
    core = base * (1 + growth)
    above = np.maximum.reduce([target, core, floor]) if over_target == "converge" else None
    if over_target == "floor":
        held = target <= floor
        np.testing.assert_allclose(out[held], floor[held], rtol=1e-9)
        assert np.all(out[~held] <= target[~held] + tol)
    else:
        assert np.all(out <= above + tol)
        was_above = core > target + tol
        assert np.all(out[was_above] >= target[was_above] - tol)


def test_no_gap_closure_with_converging_over_target_is_a_roll_forward():
    base, target = np.array([30.0, 40.0, 30.0]), np.array([27.0, 56.0, 27.0])
    config = ConvergenceConfig(gap_closure=0.0, max_below_target=1.0, over_target="converge")
    out, growth = A.converge(base, target, config)
    np.testing.assert_allclose(out, base * 1.1)
    assert growth == pytest.approx(0.1)


@FAST
@given(world=worlds(), allocation=allocation_configs)
def test_target_shares_sum_to_one(world, allocation, catalogue):
    population, reference = world
    services, profiles = catalogue
    config = scenario(allocation=allocation).allocation
    need = A.need_inputs(population, reference)
    base = A.formula_population(population, config, reference)
    curve = A.cost_curve(services, profiles, base.sum("icb"))
    out = A.target_formula(config, base, need, curve, A.historic_share(population, need, curve))
    assert float(out["target_share"].sum()) == pytest.approx(1.0, abs=1e-12)
    assert (out["target_share"] > 0).all()
    assert float(out["weighted_population"].sum()) == pytest.approx(float(base.sum()), rel=1e-9)


@FAST
@given(
    sizes=st.lists(st.floats(1e3, 1e6), min_size=2, max_size=6),
    formula=st.sampled_from(["needs", "age_sex", "capitation"]),
    base=st.sampled_from(["resident", "registered"]),
)
def test_uniform_population_gives_equal_per_capita_targets(sizes, formula, base, catalogue):
    services, profiles = catalogue
    n = len(sizes)
    per_head = np.random.default_rng(1).gamma(2.0, 1.0, (2, 91))
    pop = per_head[None] / per_head.sum() * np.array(sizes)[:, None, None]
    population, reference = synthetic(pop, ["Midlands"] * n, np.full(n, 20.0), np.full(n, 0.3))
    config = scenario(allocation={"formula": formula, "population_base": base}).allocation
    need = A.need_inputs(population, reference)
    pop_base = A.formula_population(population, config, reference)
    curve = A.cost_curve(services, profiles, pop_base.sum("icb"))
    hist = A.historic_share(population, need, curve)
    share = A.target_formula(config, pop_base, need, curve, hist)["target_share"].values
    np.testing.assert_allclose(share / np.array(sizes), 1.0 / sum(sizes), rtol=1e-9)


@FAST
@given(
    world=worlds(),
    allocation=allocation_configs.filter(lambda c: c["formula"] != "historic"),
    moved=st.floats(0.01, 0.9),
    pick=st.integers(0, 100),
)
def test_moving_population_in_never_lowers_target(world, allocation, moved, pick, catalogue):
    population, reference = world
    services, profiles = catalogue
    n = population.sizes["icb"]
    into, out_of = pick % n, (pick + 1) % n
    config = scenario(allocation=allocation).allocation

    def share(pop: xr.DataArray) -> float:
        need = A.need_inputs(pop, reference)
        base = A.formula_population(pop, config, reference)
        curve = A.cost_curve(services, profiles, base.sum("icb"))
        hist = A.historic_share(pop, need, curve)
        return float(A.target_formula(config, base, need, curve, hist)["target_share"][into])

    after = population.copy()
    movers = after.isel(icb=out_of) * moved
    after[{"icb": out_of}] = after.isel(icb=out_of) - movers
    after[{"icb": into}] = after.isel(icb=into) + movers
    assert share(after) >= share(population) - 1e-12


def test_like_for_like_allocation_keeps_the_floor(catalogue):
    services, profiles = catalogue
    rng = np.random.default_rng(7)
    pop = rng.gamma(2.0, 50.0, (5, 2, 91))
    population, reference = synthetic(
        pop, REGIONS[:5], rng.uniform(5, 45, 5), rng.uniform(-1, 1, 5)
    )
    sc = scenario(envelope={"growth": 0.03}, convergence={"floor_growth": 0.02})
    status = status_of(population["icb"].values, services, list(services["service_id"][:60]))
    first = A.allocation_round(2024, population, status, None, sc, reference, services, profiles)
    second = A.allocation_round(2025, population, status, first, sc, reference, services, profiles)
    check_totals(first)
    check_totals(second)
    # the floor guarantees each ICB's whole-portfolio (notional) share ...
    notional = second["notional_allocation"].values / first["notional_allocation"].values
    assert np.all(notional >= 1.02 - 1e-9)
    # ... and its delegated budget follows it times the national cost-mix drift of the
    # services it holds (their catalogue growth against the whole portfolio's)
    drift = A.delegated_fraction(status, services, 2025) / A.delegated_fraction(
        status, services, 2024
    )
    ratio = second["allocation"].values / first["allocation"].values
    np.testing.assert_allclose(ratio, notional * drift.values, rtol=1e-8)
    assert np.abs(first["distance_from_target"]).max() < 0.15


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


def england_like(years: list[int]) -> tuple[xr.DataArray, xr.Dataset]:
    """Random populations on the real 42 ICBs, and a merger map onto the real 36.

    Each 2023 ICB goes wholly to the 2026 ICB with its code, or else to a new 2026 ICB of
    its region (a stand-in for the published practice-based shares).
    """
    from sim.reference import load_icbs

    icbs, icbs26 = load_icbs(2023), load_icbs(2026)
    rng = np.random.default_rng(3)
    pop = rng.gamma(3.0, 300.0, (len(icbs), 2, 91))
    population, reference = synthetic(
        pop,
        list(icbs["region_name"]),
        rng.uniform(8, 40, len(icbs)),
        rng.uniform(-1, 1, len(icbs)),
        list(icbs["icb"]),
    )
    new = icbs26[~icbs26["icb"].isin(icbs["icb"])]
    share = np.zeros((len(icbs), len(icbs26)))
    used: dict[str, int] = {}
    for i, (code, region) in enumerate(zip(icbs["icb"], icbs["region_name"], strict=True)):
        if code in set(icbs26["icb"]):
            share[i, icbs26.index[icbs26["icb"] == code][0]] = 1.0
        else:  # round-robin over the region's new ICBs, so each gets some population
            options = new.index[new["region_name"] == region]
            share[i, options[used.get(region, 0) % len(options)]] = 1.0
            used[region] = used.get(region, 0) + 1
    reference["merger_share"] = xr.DataArray(
        share, dims=("icb", "icb26"), coords={"icb": icbs["icb"], "icb26": icbs26["icb"]}
    )
    growth = xr.DataArray(1.0 + 0.005 * np.arange(len(years)), dims="year", coords={"year": years})
    return (population.drop_vars("region_name") * growth).transpose("year", ...), reference


def test_allocate_years_switches_footprint_and_conserves(catalogue):
    services, profiles = catalogue
    years = [2024, 2025, 2026, 2027]
    path, reference = england_like(years)
    sc = scenario(mergers={"enabled": True, "year": 2026})
    ds = A.allocate_years(sc, path, reference, services, profiles)
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
