"""Demand model: the chain of factors, calibration to the catalogue, cost distributions,
draws, CPAG rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim.demand import (
    build_demand,
    demographic_exposure,
    deprivation_multiplier,
    expected_patients,
    non_demographic_trend,
)
from sim.draws import CellCosts, CostModel, draw, expected_outcome
from sim.pipeline import CpagQueue, load_pipeline, prioritise
from sim.reference import CATALOGUE_YEAR, load_data, load_services
from sim.scenario import DemandConfig


def cost_model(services: pd.DataFrame, high_cost_cases: bool) -> CostModel:
    return CostModel.from_catalogue(services, high_cost_cases)


def expected(lam, costs, threshold, cost_index=1.0):
    """The expectation of `draw` for a per-case threshold."""
    return expected_outcome(lam, costs, costs.hc_expected_excess(threshold), cost_index)


def demand(config, services, population, imd, base_year, area=None):
    """`build_demand` on the packaged profiles for a made-up population."""
    profiles = load_data().service_profiles
    area = np.ones(population.sizes["icb"]) if area is None else np.asarray(area)
    return build_demand(
        config,
        services,
        profiles.profiles,
        profiles.index,
        np.asarray(imd),
        population.values,
        base_year,
        area,
    )


@pytest.fixture(scope="module")
def services() -> pd.DataFrame:
    return load_services()


@pytest.fixture(scope="module")
def population() -> xr.DataArray:
    """A made-up England: 42 ICBs of different sizes and age structures."""
    rng = np.random.default_rng(3)
    ages = np.arange(91)
    shape = np.exp(-ages / rng.uniform(30, 60, size=(42, 1, 1))) * rng.uniform(0.8, 1.2, (42, 2, 1))
    size = rng.uniform(0.5e6, 3e6, size=42)
    values = shape / shape.sum(axis=(1, 2), keepdims=True) * size[:, None, None]
    return xr.DataArray(
        values,
        dims=("icb", "sex", "age"),
        coords={"icb": [f"E{i:02d}" for i in range(42)], "sex": ["f", "m"], "age": ages},
    )


@pytest.fixture(scope="module")
def imd(population) -> xr.DataArray:
    rng = np.random.default_rng(4)
    return xr.DataArray(rng.uniform(8, 40, 42), dims="icb", coords={"icb": population["icb"]})


def test_base_year_expected_spend_matches_catalogue_grown_to_base_year(services, population, imd):
    model = demand(DemandConfig(), services, population, imd, 2025)
    spend = model.annual_patients(population.values, 2025).sum(axis=0) * model.costs.mean
    target = services["baseline_spend_gbp"] * (1 + services["non_demographic_growth"]) ** (
        2025 - CATALOGUE_YEAR
    )
    np.testing.assert_allclose(spend, target, rtol=1e-10)


def test_market_forces_price_ordinary_cases_by_area_and_keep_national_spend(
    services, population, imd
):
    """Dearer areas pay more per ordinary case; each service's national spend is unchanged,
    because the area index is normalised over that service's own patients."""
    area = np.where(np.arange(42) < 5, 1.08, 0.98)
    model = demand(DemandConfig(), services, population, imd, 2025, area)
    lam = model.annual_patients(population.values, 2025)
    spend = expected(lam, model.costs, 1e9, model.cost_index).spend
    target = services["baseline_spend_gbp"] * (1 + services["non_demographic_growth"]) ** (
        2025 - CATALOGUE_YEAR
    )
    np.testing.assert_allclose(spend.sum(axis=0), target, rtol=1e-10)
    ratio = model.cost_index[0] / model.cost_index[-1]
    np.testing.assert_allclose(ratio, 1.08 / 0.98)
    ordinary = services["high_cost_share"].fillna(0).to_numpy() == 0
    per_patient = spend / lam
    assert (per_patient[0, ordinary] > per_patient[-1, ordinary]).all()


def test_growth_multiplier_scales_non_demographic_growth_only(services, population, imd):
    flat = demand(DemandConfig(growth_multiplier=0.0), services, population, imd, 2024)
    double = demand(DemandConfig(growth_multiplier=2.0), services, population, imd, 2024)
    pop = population.values
    np.testing.assert_allclose(flat.annual_patients(pop, 2030), flat.annual_patients(pop, 2024))
    g = services["non_demographic_growth"].to_numpy()
    ratio = double.annual_patients(pop, 2027) / double.annual_patients(pop, 2024)
    np.testing.assert_allclose(ratio, np.broadcast_to((1 + 2 * g) ** 3, ratio.shape))


def test_need_multiplier_has_weighted_mean_one_and_rises_with_deprivation(population, imd):
    weight = population.sum(("sex", "age")).values
    mult = deprivation_multiplier(imd.values, weight, 0.15)
    assert float((mult * weight).sum() / weight.sum()) == pytest.approx(1.0, rel=1e-12)
    order = np.argsort(imd.values)
    assert np.all(np.diff(mult[order]) > 0)
    assert np.allclose(deprivation_multiplier(imd.values, weight, 0.0), 1.0)


def test_each_need_group_has_its_own_deprivation_response(services, population, imd):
    """Renal use rises more steeply with deprivation than cancer use (the groups'
    elasticities), every group's multiplier has weighted mean 1, and the scenario's
    multiplier scales them all (0 switches the link off)."""
    from sim.demand import DEPRIVATION_ELASTICITY

    model = demand(DemandConfig(), services, population, imd, 2024)
    groups = services["need_group"].to_numpy()
    weight = population.sum(("sex", "age")).values
    most, least = int(np.argmax(imd.values)), int(np.argmin(imd.values))
    spread = {g: model.deprivation[most, groups == g][0] / model.deprivation[least, groups == g][0]
              for g in ("renal", "cancer")}  # fmt: skip
    assert spread["renal"] > spread["cancer"] > 1.0
    expected = (imd.values[most] / imd.values[least]) ** DEPRIVATION_ELASTICITY["renal"]
    assert spread["renal"] == pytest.approx(expected)
    np.testing.assert_allclose((model.deprivation * weight[:, None]).sum(0) / weight.sum(), 1.0)
    off = demand(DemandConfig(deprivation_multiplier=0.0), services, population, imd, 2024)
    np.testing.assert_allclose(off.deprivation, 1.0)


def test_expected_patients_is_the_product_of_its_named_factors(services, population, imd):
    """The chain: exposure x deprivation x rate x trend, each factor its own function, so
    switching one to its base-year value attributes change to it."""
    model = demand(DemandConfig(), services, population, imd, 2024)
    older = population.values * np.linspace(0.9, 1.3, 91)
    exposure = demographic_exposure(older, model.profiles, model.profile_index)
    trend = non_demographic_trend(model.growth, 2030, 2024)
    by_hand = exposure * model.deprivation * model.rate * trend
    chained = expected_patients(exposure, model.deprivation, model.rate, trend)
    np.testing.assert_allclose(chained, by_hand, rtol=1e-14)
    np.testing.assert_array_equal(model.annual_patients(older, 2030), chained)
    # the demographic factor alone: more older people raise the old-age services most
    base = demographic_exposure(population.values, model.profiles, model.profile_index)
    ratio = (exposure / base).sum(axis=0)
    assert np.argmax(ratio) != np.argmin(ratio)
    np.testing.assert_array_equal(non_demographic_trend(model.growth, 2024, 2024), 1.0)


def test_high_cost_cases_take_their_catalogue_share_of_spend(services):
    costs = cost_model(services, high_cost_cases=True)
    hc_spend = costs.hc_share * costs.hc_mean / costs.mean
    np.testing.assert_allclose(hc_spend, services["high_cost_share"], atol=1e-12)
    off = cost_model(services, high_cost_cases=False)
    np.testing.assert_allclose(off.mean, costs.mean, rtol=1e-12)
    assert not off.hc_share.any()


def _small_costs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mean_cost_gbp": [10_000.0, 40_000.0, 5_000.0],
            "cost_cv": [1.0, 1.5, 0.5],
            "high_cost_share": [0.0, 0.4, 0.0],
            "high_cost_mean_gbp": [0.0, 600_000.0, 0.0],
        }
    )


def test_draws_agree_with_analytic_mean_and_variance():
    costs = cost_model(_small_costs(), high_cost_cases=True)
    lam = np.array([[0.5, 3.0, 40.0], [8.0, 0.2, 2.0]])  # (icb, service) patients a month
    cells = CellCosts.for_footprint(costs, 2)
    threshold = 500_000.0
    rng = np.random.default_rng(11)
    n = 6000
    draws = [draw(rng, lam.ravel(), cells, threshold, per_case=True) for _ in range(n)]
    expect = expected(lam, costs, threshold)
    for field in ("patients", "spend", "hc_excess"):
        sample = np.stack([getattr(d, field) for d in draws]).reshape(n, *lam.shape)
        mean, se = sample.mean(0), sample.std(0) / np.sqrt(n)
        ok = np.where(
            se > 0, np.abs(mean - getattr(expect, field)) < 4 * se, mean == getattr(expect, field)
        )
        assert ok.all(), field
    # compound Poisson: Var(spend) = lambda x E[cost^2], cell by cell (cells with at least one
    # patient a month: for rarer ones the sample variance itself is too noisy at this n)
    second = (1 - costs.hc_share) * costs.reg_mean**2 * (1 + 1 / costs.reg_shape) + (
        costs.hc_share * costs.hc_mean**2 * (1 + 1 / costs.hc_shape)
    )
    spend = np.stack([d.spend for d in draws]).reshape(n, *lam.shape)
    busy = lam >= 1
    np.testing.assert_allclose(spend.var(0)[busy], (lam * second)[busy], rtol=0.15)


def test_one_gamma_per_high_cost_cell_has_the_per_case_distribution():
    """Without a per-case pool the high-cost cases' total is one gamma per cell: the same
    mean and variance of spend, and patient counts, as drawing each case (compound
    Poisson-gamma), on 20,000 draws."""
    costs = cost_model(_small_costs(), high_cost_cases=True)
    lam = np.array([[0.5, 3.0, 40.0], [8.0, 0.2, 2.0]]).ravel()
    cells = CellCosts.for_footprint(costs, 2)
    n = 20_000
    samples = {}
    for per_case in (True, False):
        rng = np.random.default_rng(5)
        out = [draw(rng, lam, cells, 5e5, per_case) for _ in range(n)]
        samples[per_case] = (np.stack([o.spend for o in out]), np.stack([o.patients for o in out]))
    for k in range(2):
        a, b = samples[True][k], samples[False][k]
        se = np.sqrt(a.var(0) / n + b.var(0) / n)
        assert (np.abs(a.mean(0) - b.mean(0)) < 4.5 * se + 1e-9).all()
        busy = lam >= 1
        np.testing.assert_allclose(a.var(0)[busy], b.var(0)[busy], rtol=0.1)
    assert not np.stack([draw(np.random.default_rng(1), lam, cells, 5e5, False).hc_excess]).any()


def test_zero_expected_patients_draw_nothing():
    costs = cost_model(_small_costs(), high_cost_cases=True)
    cells = CellCosts.for_footprint(costs, 1)
    outcome = draw(np.random.default_rng(0), np.zeros(3), cells, 1e5, per_case=True)
    assert not outcome.patients.any() and not outcome.spend.any()
    assert not outcome.hc_excess.any()


def test_prioritise_funds_best_value_first_within_budget():
    benefit = np.array([10.0, 30.0, 5.0, 8.0])
    cost = np.array([10.0, 20.0, 10.0, 2.0])  # value: 1.0, 1.5, 0.5, 4.0
    # order 3 (2), 1 (20), 0 (10) -> 32 > 30: skip 0, then 2 (10) does not fit either
    assert list(prioritise(benefit, cost, 30.0)) == [3, 1]
    assert list(prioritise(benefit, cost, 100.0)) == [3, 1, 0, 2]
    assert list(prioritise(benefit, cost, 1.0)) == []


def test_cpag_queue_waits_for_availability_and_keeps_the_unfunded():
    table = pd.DataFrame(
        {
            "candidate_id": ["a", "b", "c"],
            "name": ["a", "b", "c"],
            "service_id": ["s", "s", "s"],
            "available_year": [2024, 2024, 2026],
            "benefit_score": [1.0, 2.0, 9.0],
            "annual_cost_gbp": [5.0, 5.0, 1.0],
        }
    )
    queue = CpagQueue(table)
    assert list(queue.names[queue.run_round(2024, 6.0, 3)]) == ["b"]
    assert list(queue.names[queue.run_round(2025, 6.0, 3)]) == ["a"]
    assert list(queue.names[queue.run_round(2025, 6.0, 3)]) == []
    assert list(queue.names[queue.run_round(2026, 6.0, 3)]) == ["c"]


def test_packaged_pipeline_names_catalogue_services(services):
    pipeline = load_pipeline(known_services=services["service_id"])
    assert len(pipeline) > 0
    assert (pipeline["annual_cost_gbp"] > 0).all()
