"""Parameter uncertainty: intervals, per-replicate streams, and what a draw does to demand."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sim.parameters import (
    Interval,
    UncertainParameters,
    annual_shocks,
    central,
    draw_parameters,
    uncertain_parameters,
)
from sim.scenario import Scenario, load_scenario

SHORT = {"time": {"base_year": 2024, "end_year": 2026}}
CERTAIN = {
    "population": {"demand_variants": [], "demand_variant_weights": []},
    "cpag": {"enabled": False},
}


def _scenario(**sections) -> Scenario:
    merged = {**SHORT, **CERTAIN, **sections}
    return Scenario.model_validate({"name": "p", **merged})


def test_an_interval_is_an_80_percent_interval_on_10000_draws():
    """Normal with the 10th and 90th percentiles at low and high: 80% of 10,000 draws fall
    inside (binomial sd 0.4 points; the bound is 2.5 sd), half below the centre."""
    params = UncertainParameters((Interval("demand.growth_multiplier", 0.75, 1.25, 0.0, 3.0),))
    values = draw_parameters(params, 2024, range(10_000))[:, 0]
    inside = np.mean((values >= 0.75) & (values <= 1.25))
    assert abs(inside - 0.80) < 0.01
    assert abs(np.mean(values < 1.0) - 0.5) < 0.0125
    assert abs(values.std() - 0.5 / (2 * 1.2815515655446004)) < 0.005


def test_draws_are_clipped_to_the_fields_range():
    params = UncertainParameters((Interval("demand.new_treatment_cost", 0.0, 0.4, 0.0, 5.0),))
    values = draw_parameters(params, 1, range(10_000))[:, 0]
    assert values.min() == 0.0 and np.mean(values == 0.0) > 0.05  # the lower tail sits on 0


def test_draws_are_identical_for_any_chunking_and_do_not_depend_on_other_parameters():
    one = Interval("demand.growth_multiplier", 0.8, 1.2, 0.0, 3.0)
    two = Interval("demand.deprivation_multiplier", 0.5, 1.5, 0.0, 3.0)
    both = UncertainParameters((two, one), ("low_migration", "principal"), (0.3, 0.7))
    whole = draw_parameters(both, 7, range(300))
    pieces = [draw_parameters(both, 7, range(a, min(a + 37, 300))) for a in range(0, 300, 37)]
    np.testing.assert_array_equal(whole, np.concatenate(pieces))
    alone = draw_parameters(UncertainParameters((one,)), 7, range(300))
    np.testing.assert_array_equal(whole[:, 1], alone[:, 0])
    assert not np.array_equal(draw_parameters(both, 8, range(300)), whole)  # the seed counts


def test_variants_are_drawn_with_their_weights():
    params = UncertainParameters(
        (), ("high_migration", "low_migration", "principal"), (0.2, 0.2, 0.6)
    )
    index = draw_parameters(params, 3, range(10_000))[:, 0].astype(int)
    shares = np.bincount(index, minlength=3) / index.size
    np.testing.assert_allclose(shares, [0.2, 0.2, 0.6], atol=0.015)


def test_scenario_intervals_and_their_centres():
    sc = _scenario(demand={"growth_multiplier": [0.75, 1.25], "new_treatment_cost": 1.2})
    params = uncertain_parameters(sc)
    assert params.names == ("demand.growth_multiplier",)
    assert central(sc.demand.growth_multiplier) == 1.0 and central(1.2) == 1.2
    base = load_scenario("scenarios/baseline.toml")
    assert uncertain_parameters(base).names == (
        "demand.growth_multiplier",
        "demand.new_treatment_cost",
        "population.variant",
    )


@pytest.mark.parametrize(
    ("sections", "field", "says"),
    [
        ({"demand": {"growth_multiplier": [1.3, 1.2]}}, "demand.growth_multiplier", "low <= high"),
        ({"demand": {"growth_multiplier": [0.5, 3.5]}}, "demand.growth_multiplier", "0..3"),
        ({"demand": {"growth_multiplier": [1.0]}}, "demand.growth_multiplier", "[low, high]"),
        (
            {"population": {"demand_variants": ["low_migration"], "demand_variant_weights": [1.0]}},
            "population.demand_variants",
            "must include `variant`",
        ),
        (
            {"population": {"demand_variants": ["principal"], "demand_variant_weights": [1, 2]}},
            "population.demand_variant_weights",
            "one weight per entry",
        ),
    ],
)
def test_bad_intervals_are_one_line_naming_the_field(sections, field, says):
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict({"name": "p", **sections})
    assert caught.value.field == field and says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_shocks_have_mean_one_and_their_stated_spread():
    shocks = annual_shocks(5, range(10_000), 2, 0.01)
    assert abs(shocks.mean() - 1.0) < 0.0005
    assert abs(np.log(shocks).std() - 0.01) < 0.0003
    np.testing.assert_array_equal(annual_shocks(5, range(3), 2, 0.0), np.ones((3, 2)))


# --- what a replicate's draws do, on the real engine ----------------------------------------


@pytest.fixture(scope="module")
def data():
    from sim.reference import load_data

    return load_data()


def _run(sc: Scenario, data, replicates=range(4)) -> xr.Dataset:
    from sim.simulate import simulate

    return simulate(sc, replicates, 11, data)


def test_a_growth_draw_gives_the_spend_of_that_growth(data):
    """Without noise or new treatments, a replicate's spend is the expected spend of the
    scenario run with its drawn growth multiplier as a plain number."""
    from sim.simulate import deterministic_path

    sc = _scenario(demand={"stochastic": False, "growth_multiplier": [0.5, 1.5]})
    ds = _run(sc, data)
    for r in range(2):
        drawn = float(ds["parameter_value"].sel(replicate=r, parameter="demand.growth_multiplier"))
        plain = deterministic_path(
            _scenario(demand={"stochastic": False, "growth_multiplier": drawn}), data
        )
        np.testing.assert_allclose(
            ds["spend"].sel(replicate=r), plain["expected_spend"], rtol=1e-10
        )


def test_a_cost_draw_scales_only_the_new_treatments(data):
    """The new treatments' extra spend scales by the drawn cost over the centre."""
    funded = {"cpag": {"enabled": True}, "population": CERTAIN["population"]}
    sc = _scenario(demand={"stochastic": False, "new_treatment_cost": [0.5, 1.5]}, **funded)
    none = _scenario(demand={"stochastic": False}, cpag={"enabled": False})
    ds, base = _run(sc, data), _run(none, data, [0])
    extra = ds["spend"].sum(("icb", "portfolio")) - base["spend"].sel(replicate=0).sum(
        ("icb", "portfolio")
    )
    planned = ds["expected_spend"].sum(("icb", "portfolio")) - base["expected_spend"].sum(
        ("icb", "portfolio")
    )
    ratio = ds["parameter_value"].sel(parameter="demand.new_treatment_cost", drop=True)
    assert float(planned.sel(year=2026)) > 1e6  # something was funded
    xr.testing.assert_allclose(extra, (planned * ratio).transpose(*extra.dims), rtol=1e-9)


def test_a_national_shock_moves_every_icb_alike(data):
    sc = _scenario(demand={"stochastic": False, "national_variation": 0.05})
    ds = _run(sc, data)
    ratio = ds["spend"] / ds["expected_spend"]
    spread = ratio.max(("icb", "portfolio")) - ratio.min(("icb", "portfolio"))
    assert float(spread.max()) < 1e-12 and float(ratio.std()) > 0.01


def test_a_variant_draw_follows_that_variants_population(data):
    """Replicates drawing the high-migration variant spend more by the end than those on the
    low one; budgets (the principal) are the same for all."""
    sc = _scenario(
        time={"base_year": 2024, "end_year": 2040},
        demand={"stochastic": False},
        population={
            "demand_variants": ["principal", "high_migration", "low_migration"],
            "demand_variant_weights": [1.0, 1.0, 1.0],
        },
    )
    ds = _run(sc, data, range(12))
    scale = dict(item.split("=") for item in ds["parameter_value"].attrs["variants"].split(", "))
    by_value = {round(float(v), 5): name for name, v in scale.items()}
    assert float(scale["principal"]) == 1.0 and float(scale["high_migration"]) > 1.0
    values = ds["parameter_value"].sel(parameter="population.variant").values
    drawn = [by_value[round(float(v), 5)] for v in values]
    total = ds["spend"].sel(year=2040).sum(("icb", "portfolio")).values
    high = [t for t, v in zip(total, drawn, strict=True) if v == "high_migration"]
    low = [t for t, v in zip(total, drawn, strict=True) if v == "low_migration"]
    assert high and low and min(high) > max(low)


def test_partial_rank_correlations_hold_the_other_parameters():
    """With one parameter it is Spearman's; with two whose draws happen to correlate, the
    one with no effect gets about 0 where a plain rank correlation lends it the other's."""
    from scipy.stats import spearmanr

    from sim.results import partial_rank_correlations

    rng = np.random.default_rng(4)
    x0 = rng.normal(size=500)
    y = (x0**3 + 0.1 * rng.normal(size=500))[:, None]
    alone = partial_rank_correlations(x0[:, None], y)
    assert alone[0, 0] == pytest.approx(spearmanr(x0, y[:, 0]).statistic, abs=1e-12)
    x1 = 0.3 * x0 + rng.normal(size=500)  # no effect, but correlated with x0 in this sample
    both = partial_rank_correlations(np.column_stack([x0, x1]), y)
    assert spearmanr(x1, y[:, 0]).statistic > 0.2
    assert both[0, 0] > 0.9 and abs(both[1, 0]) < 0.1


def test_sensitivity_names_the_parameter_that_drives_spend(data):
    """Only growth and the new treatments' cost are uncertain: by the end year growth
    drives England's spend (rank correlation near 1); the cost only the retained part."""
    import sim

    sc = _scenario(
        time={"base_year": 2024, "end_year": 2035},
        demand={"growth_multiplier": [0.75, 1.25], "new_treatment_cost": [0.5, 1.5]},
        cpag={"enabled": True},
    )
    ds = sim.run(sc, replications=120, seed=3, progress=False)
    s = ds["sensitivity_national_spend"].sel(year=2035)
    assert float(s.sel(parameter="demand.growth_multiplier", portfolio="delegated")) > 0.9
    cost = s.sel(parameter="demand.new_treatment_cost")
    assert float(cost.sel(portfolio="retained")) > float(abs(cost.sel(portfolio="delegated")))
    assert ds["sensitivity_overspend"].attrs["replicates"] == 120
