"""Tests for sim.variations, the variations view: spend per head = access x intensity against
a benchmark of the five ICBs of most similar modelled need, on the packaged data and on
cases small enough to work by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PathCollection
from test_compare import make_results

from sim import plots
from sim.comparison import compare
from sim.scenario import load_scenario
from sim.simulate import deterministic_path
from sim.variations import (
    PEERS,
    benchmark_need,
    furthest_from_benchmark,
    largest_groups,
    log_mean,
    nearest_peers,
    split_gap,
    variations,
)


@pytest.fixture(scope="module")
def baseline(scenarios_dir) -> xr.Dataset:
    """The baseline's deterministic results on the packaged data (no draws needed)."""
    ds = deterministic_path(load_scenario(scenarios_dir / "baseline.toml"))
    ds.attrs["scenario_name"] = "baseline"
    return ds


def raw_rates(ds: xr.Dataset, year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spend, patients (icb, group) and population (icb,) straight from the results."""
    spend = ds["expected_spend_by_group"].sel(year=year).sum("portfolio")
    patients = ds["expected_patients_by_group"].sel(year=year).sum("portfolio")
    heads = ds["population"].sel(year=year).sum(("sex", "age"))
    return spend.values, patients.values, heads.values


# ---------------------------------------------------------------- the identity, real data


def test_access_times_intensity_is_spend_per_head(baseline):
    """For every ICB and group, and for every benchmark: patients / population times
    spend / patients equals spend / population, computed here from the raw results."""
    year = int(baseline["year"].max())
    view = variations(baseline)
    spend, patients, heads = raw_rates(baseline, year)
    assert (patients > 0).all()  # every ICB treats someone in every group in the baseline
    np.testing.assert_allclose(view["spend_per_head"], spend / heads[:, None], rtol=1e-13)
    np.testing.assert_allclose(
        view["access"] * view["intensity"], spend / heads[:, None], rtol=1e-13
    )
    np.testing.assert_allclose(
        view["benchmark_access"] * view["benchmark_intensity"],
        view["benchmark_spend_per_head"],
        rtol=1e-13,
    )
    assert view.attrs["year"] == year and view.attrs["portfolio"] == "all"


def test_benchmark_is_five_other_icbs_nearest_in_need(baseline):
    """Five distinct ICBs, never the ICB itself, nearest first, and no ICB left out is
    nearer than the furthest one taken (distances recomputed here pair by pair)."""
    year = int(baseline["year"].max())
    view = variations(baseline)
    need, weight, used, _ = benchmark_need(baseline, year)
    # the whole-portfolio targets: every group, delegated or not (mental health is not)
    assert len(used) == 8 and "mental_health" in used
    codes = list(view["icb"].values)
    for i, code in enumerate(codes):
        peers = [str(c) for c in view["benchmark"].sel(icb=code).values]
        assert len(peers) == PEERS == len(set(peers)) and code not in peers
        distance = {
            other: math.sqrt(float((weight * (need[i] - need[j]) ** 2).sum()))
            for j, other in enumerate(codes)
            if other != code
        }
        taken = [distance[p] for p in peers]
        assert taken == sorted(taken)
        np.testing.assert_allclose(view["need_distance"].sel(icb=code), taken, rtol=1e-12)
        left_out = [d for other, d in distance.items() if other not in peers]
        assert min(left_out) >= max(taken)


def test_benchmark_pools_its_five_members(baseline):
    """The benchmark's access and intensity are its members' patients, spend and population
    summed: a pooled rate, not a mean of rates."""
    year = int(baseline["year"].max())
    view = variations(baseline)
    spend, patients, heads = raw_rates(baseline, year)
    at = {c: i for i, c in enumerate(view["icb"].values)}
    for code in view["icb"].values[:5]:
        members = [at[str(c)] for c in view["benchmark"].sel(icb=code).values]
        np.testing.assert_allclose(
            view["benchmark_access"].sel(icb=code),
            patients[members].sum(axis=0) / heads[members].sum(),
            rtol=1e-13,
        )
        np.testing.assert_allclose(
            view["benchmark_intensity"].sel(icb=code),
            spend[members].sum(axis=0) / patients[members].sum(axis=0),
            rtol=1e-13,
        )


def test_gap_parts_add_up_to_the_gap(baseline):
    view = variations(baseline)
    np.testing.assert_allclose(
        view["gap"], view["spend_per_head"] - view["benchmark_spend_per_head"], atol=1e-10
    )
    np.testing.assert_allclose(view["gap_access"] + view["gap_intensity"], view["gap"], atol=1e-9)
    more = np.sign(np.log(view["access"] / view["benchmark_access"]))
    assert (np.sign(view["gap_access"]) == more).all()  # more patients: a positive access part


def test_portfolio_changes_the_rates_not_the_benchmark(baseline):
    both, delegated = variations(baseline), variations(baseline, portfolio="delegated")
    assert (both["benchmark"] == delegated["benchmark"]).all()
    assert delegated.attrs["portfolio"] == "delegated"
    assert (delegated["spend"] < both["spend"] + 1e-6).all()


def test_the_benchmark_does_not_move_with_delegation(baseline):
    """Need is measured on the whole-portfolio targets, so 2024/25 (three regions
    delegated) uses every group, and each ICB's benchmark is the same as when every region
    holds the services."""
    early, later = variations(baseline, year=2024), variations(baseline, year=2025)
    assert len(early.attrs["benchmark_groups"].split(", ")) == 8
    assert early.attrs["benchmark_groups"] == later.attrs["benchmark_groups"]


def test_older_results_fall_back_to_the_need_index_when_no_group_is_held_everywhere(baseline):
    """Results without whole-portfolio targets by group measure need on the delegated
    targets; in 2024/25 only three regions hold them, so the benchmark is the five ICBs
    nearest in the formula's overall need index."""
    view = variations(baseline.drop_vars("notional_target_by_group"), year=2024)
    assert view.attrs["benchmark_groups"] == ""
    assert "overall need index" in view.attrs["benchmark_basis"]
    index = baseline["need_index"].sel(year=2024)
    code = str(view["icb"].values[0])
    gap = abs(index - index.sel(icb=code)).drop_sel(icb=code)
    nearest = set(gap.sortby(gap)["icb"].values[:PEERS])
    assert set(view["benchmark"].sel(icb=code).values) == nearest


# ---------------------------------------------------------------- worked by hand


def test_three_groups_worked_by_hand():
    """One ICB against a benchmark, three groups:
    cancer: access 0.02 x £1,000 = £20 per head against 0.01 x £1,500 = £15: gap £5, of
    which access L ln 2 and intensity L ln(2/3), L = 5 / ln(20/15) the log mean;
    renal: twice the access at half the intensity, the same £10 per head: gap 0, parts
    +/- 10 ln 2; mental health: no patients against £8 per head: all of -£8 is access."""
    access = np.array([0.02, 0.004, 0.0])
    intensity = np.array([1000.0, 2500.0, np.nan])
    bench_access = np.array([0.01, 0.002, 0.0001])
    bench_intensity = np.array([1500.0, 5000.0, 80_000.0])
    gap, by_access, by_intensity = split_gap(access, intensity, bench_access, bench_intensity)
    lm = 5 / math.log(20 / 15)
    np.testing.assert_allclose(gap, [5.0, 0.0, -8.0], atol=1e-12)
    np.testing.assert_allclose(by_access, [lm * math.log(2), 10 * math.log(2), -8.0])
    np.testing.assert_allclose(by_intensity, [lm * math.log(2 / 3), -10 * math.log(2), 0.0])
    assert by_access[0] == pytest.approx(12.047, abs=1e-3)
    assert by_intensity[0] == pytest.approx(-7.047, abs=1e-3)


def test_log_mean_is_symmetric_and_tends_to_the_value():
    assert log_mean(20.0, 15.0) == pytest.approx(5 / math.log(4 / 3))
    assert log_mean(15.0, 20.0) == pytest.approx(log_mean(20.0, 15.0))
    assert log_mean(7.0, 7.0) == 7.0
    assert log_mean(7.0, 7.0 * (1 + 1e-14)) == pytest.approx(7.0)


def tiny_results(patients: np.ndarray, spend: np.ndarray, need: np.ndarray) -> xr.Dataset:
    """One year of results for len(patients) ICBs of 1,000 people each, three groups:
    expected patients and spend (icb, group, all in the delegated portfolio) and the
    delegated target (icb, group) from the need indices `need`."""
    n = patients.shape[0]
    groups = ["cancer", "renal", "mental_health"]
    zero = np.zeros_like(spend)
    return xr.Dataset(
        {
            "population": (("year", "icb", "sex", "age"), np.full((1, n, 2, 1), 500.0)),
            "need_index": (("year", "icb"), need.mean(axis=1)[None]),
            "target_by_group": (("year", "icb", "need_group"), need[None] * 1000.0),
            "expected_spend_by_group": (
                ("year", "icb", "need_group", "portfolio"),
                np.stack([spend, zero], -1)[None],
            ),
            "expected_patients_by_group": (
                ("year", "icb", "need_group", "portfolio"),
                np.stack([patients, zero], -1)[None],
            ),
        },
        coords={
            "year": [2030],
            "icb": [f"E54{i:06d}" for i in range(n)],
            "need_group": groups,
            "portfolio": ["delegated", "retained"],
        },
        attrs={"scenario_name": "tiny"},
    )


def test_benchmark_of_a_hand_made_england():
    """Seven ICBs whose need differs in cancer only, by 0.045, 0.03, 0.025, 0.30, 0.01 and
    0.04 from ICB 0's: its benchmark is ICBs 5, 3, 2, 6, 1 (not 4), pooling 5,000 people."""
    cancer = np.array([1.00, 1.045, 1.03, 0.975, 1.30, 1.01, 0.96])
    need = np.stack([cancer, np.ones(7), np.ones(7)], axis=1)
    patients = np.tile([20.0, 4.0, 1.0], (7, 1)) * (1 + np.arange(7))[:, None]
    spend = patients * np.array([1000.0, 2500.0, 90_000.0])
    view = variations(tiny_results(patients, spend, need))
    first = view.sel(icb="E54000000")
    assert list(first["benchmark"].values) == [f"E54{i:06d}" for i in (5, 3, 2, 6, 1)]
    pooled = patients[[1, 2, 3, 5, 6]].sum(axis=0) / 5000.0
    np.testing.assert_allclose(first["benchmark_access"], pooled, rtol=1e-13)
    np.testing.assert_allclose(first["benchmark_intensity"], [1000.0, 2500.0, 90_000.0])
    np.testing.assert_allclose(first["access"], [0.02, 0.004, 0.001])


# ---------------------------------------------------------------- no patients


def test_a_group_without_patients_needs_no_warning_and_no_nan_trap():
    """ICB 0 treats no one in mental health; no ICB treats anyone in renal. No warning;
    access and spend per head are 0 and intensity undefined (NaN) only there; the gap is
    all access; a benchmark containing ICB 0 still has a finite intensity."""
    need = np.ones((7, 3)) + np.linspace(0, 0.3, 7)[:, None] * np.array([1.0, 0.0, 0.5])
    patients = np.tile([20.0, 0.0, 2.0], (7, 1))
    patients[0, 2] = 0.0
    spend = patients * np.array([1000.0, 2500.0, 90_000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view = variations(tiny_results(patients, spend, need))
        fig = plots.access_intensity(tiny_results(patients, spend, need), group="mental_health")
    mh, renal = view.sel(need_group="mental_health"), view.sel(need_group="renal")
    assert float(mh["access"].sel(icb="E54000000")) == 0.0
    assert np.isnan(float(mh["intensity"].sel(icb="E54000000")))
    assert np.isfinite(mh["intensity"].drop_sel(icb="E54000000")).all()
    icb0 = mh.sel(icb="E54000000")
    assert float(icb0["gap"]) == pytest.approx(-float(icb0["benchmark_spend_per_head"]))
    assert float(icb0["gap_access"]) == float(icb0["gap"])
    assert float(icb0["gap_intensity"]) == 0.0
    with_zero = [c for c in view["icb"].values if "E54000000" in view["benchmark"].sel(icb=c)]
    assert with_zero and np.isfinite(mh["benchmark_intensity"].sel(icb=with_zero)).all()
    assert (renal["access"] == 0).all() and np.isnan(renal["benchmark_intensity"]).all()
    assert (renal[["gap", "gap_access", "gap_intensity"]].to_array() == 0).all()
    dots = fig.axes[0].collections[0]
    assert isinstance(dots, PathCollection) and len(dots.get_offsets()) == 6  # ICB 0 left out
    assert any("without patients" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_equal_need_goes_to_the_icbs_closest_in_size():
    need = np.ones((7, 1))
    size = np.array([1.0, 1.1, 5.0, 0.9, 3.0, 1.3, 2.0]) * 1e6
    order, distance = nearest_peers(need, np.ones(1), size)
    assert list(order[0]) == [1, 3, 5, 6, 4]
    assert (distance == 0).all()
    with pytest.raises(ValueError, match="more than 5"):
        nearest_peers(need[:5], np.ones(1), size[:5])


# ---------------------------------------------------------------- the figure and the report


def test_figure_draws_the_view_with_iso_spend_curves(baseline):
    view = variations(baseline)
    group = largest_groups(view, 1)[0]
    icb = furthest_from_benchmark(view, group)
    fig = plots.access_intensity(baseline, group=group, icb=icb)
    ax = fig.axes[0]
    one = view.sel(need_group=group)
    dots = ax.collections[0].get_offsets()
    np.testing.assert_allclose(dots[:, 0], one["access"] * 1000)
    np.testing.assert_allclose(dots[:, 1], one["intensity"])
    star = [c for c in ax.collections if len(c.get_offsets()) == 1][-1].get_offsets()[0]
    me = one.sel(icb=icb)
    np.testing.assert_allclose(star, [float(me["access"]) * 1000, float(me["intensity"])])
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    levels = [line.get_xdata() * line.get_ydata() / 1000 for line in curves]
    assert all(np.ptp(level) < 1e-9 * level[0] for level in levels)  # spend per head is constant
    mine = float(one["spend_per_head"].sel(icb=icb))
    assert any(abs(level[0] - mine) < 1e-9 * mine for level in levels)
    assert "gap" in ax.get_title()


def test_comparison_table_and_sameness(baseline):
    other = baseline.copy()
    other.attrs["scenario_name"] = "copy"
    comparison = compare(baseline, other)
    table = comparison.variations
    assert len(table) == 2 * 42 * 8
    assert comparison.variations_against(1) == (True, 0)
    row = table[(table["scenario"] == "copy") & (table["need_group"] == "cancer")].iloc[0]
    assert row["access_per_1000"] * row["intensity_gbp"] / 1000 == pytest.approx(
        row["spend_per_head_gbp"], rel=1e-12
    )
    assert len(row["benchmark_icbs"].split()) == PEERS


def test_results_without_groups_have_no_variations_table():
    ds = make_results("old").drop_vars(["expected_spend_by_group", "expected_patients_by_group"])
    assert compare(ds).variations.empty
    with pytest.raises(ValueError, match="expected_spend_by_group"):
        variations(ds)


def test_accessor_gives_the_same_view(baseline):
    via = baseline.specsim.variations(year=2030, portfolio="retained")
    xr.testing.assert_identical(via, variations(baseline, 2030, "retained"))
    assert baseline.specsim.plot("access_intensity", group="renal").axes
