"""The gap between expected spend and allocation, by named lever: exact, and each lever's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.gaps import GAP_SOURCES, LEVERS, gap_terms, lever_configs
from sim.scenario import AllocationConfig, load_scenario


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    formula=st.sampled_from(["needs", "age_sex", "capitation", "historic"]),
    calibration=st.sampled_from(["lagged", "perfect"]),
    flags=st.lists(st.booleans(), min_size=4, max_size=4),
    base=st.sampled_from(["resident", "registered"]),
    weight=st.floats(0.0, 1.0),
)
def test_moving_every_lever_reaches_the_scenarios_own_formula(
    formula, calibration, flags, base, weight
):
    """Whatever the settings, the last configuration in the chain is the scenario's: no
    field of `[allocation]` is outside a lever."""
    config = AllocationConfig(
        formula=formula,
        calibration=calibration,
        deprivation=flags[0],
        market_forces=flags[1],
        health_inequalities=flags[2],
        unmet_need=flags[3],
        health_inequalities_weight=weight,
        population_base=base,
    )
    chain = lever_configs(config)
    assert len(chain) == len(LEVERS) + 1
    last = next(c for c in reversed(chain) if c is not None)
    assert last == config
    assert chain[0].calibration == "perfect" and chain[0].formula == "needs"


def test_gap_terms_by_hand():
    """Two ICBs. England: E 200, A 200. ICB 0: E 110, T0 100, T1 (after the one lever) 90,
    A 95: residual log(110/100) - log(200/200), lever log(100/90) - log(200/200), pace
    log(90/95) - log(200/200); they add to log(110/95) - log(200/200)."""
    expected = np.array([110.0, 90.0])
    allocation = np.array([95.0, 105.0])
    targets = np.array([[100.0, 100.0], [90.0, 110.0]])
    out = gap_terms(expected, allocation, targets)
    np.testing.assert_allclose(out[:, 0], np.log([110 / 100, 100 / 90, 90 / 95]))
    np.testing.assert_allclose(out.sum(axis=0), np.log(expected / allocation))
    held = gap_terms(expected, np.array([95.0, 0.0]), targets)
    assert np.isnan(held[:, 1]).all() and np.isfinite(held[:, 0]).all()


@pytest.fixture(scope="module")
def data():
    from sim.reference import load_data

    return load_data()


def _gaps(name: str, data):
    from sim.plan import PlanCache, plan_scenario
    from sim.simulate import deterministic_of_plan

    sc = load_scenario(f"scenarios/{name}.toml")
    return deterministic_of_plan(sc, plan_scenario(sc, data, PlanCache()))


def test_the_sources_add_up_to_the_whole_gap(data):
    ds = _gaps("icb_mergers_2026", data)  # across a footprint change
    spend = ds["expected_spend"].sel(portfolio="delegated")
    allocation = ds["allocation"].where(ds["allocation"] > 0)
    england = spend.where(allocation > 0).sum("icb") / allocation.sum("icb")
    direct = np.log(spend / allocation) - np.log(england)
    np.testing.assert_allclose(ds["spend_gap"].sum("gap_source", skipna=False), direct, atol=1e-12)
    assert list(ds["gap_source"].values) == list(GAP_SOURCES)


def test_the_baseline_has_no_gap_above_2_percent_and_names_what_it_has(data):
    """The issue's bar: in the end year no ICB's expected delegated spend differs from its
    allocation by more than 2% relative to England's ratio (measured: 0.05%), and what
    there is comes from the calibration lag."""
    gap = _gaps("baseline", data)["spend_gap"].sel(year=2043)
    assert float(abs(gap.sum("gap_source")).max()) < 0.02
    biggest = abs(gap).max("icb")
    assert str(biggest.idxmax("gap_source").values) == "calibration_lag"
    assert float(biggest.sel(gap_source="perfect_formula_residual")) < 1e-5


def test_a_policy_uplift_is_named_as_the_cause_of_its_gap(data):
    """health_inequalities: deprived ICBs are funded above their expected spend and the
    others below it (measured -5.7% to +5.6%), and the spend_gap says it is that lever."""
    gap = _gaps("health_inequalities", data)["spend_gap"].sel(year=2043)
    total = gap.sum("gap_source")
    assert float(abs(total).max()) > 0.04
    uplift = gap.sel(gap_source="health_inequalities")
    np.testing.assert_allclose(uplift, total, atol=0.002)
