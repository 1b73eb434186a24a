"""Tests for sim.plots: each figure draws the numbers it claims to, from a synthetic Dataset."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from test_compare import make_results

import sim
from sim import plots


@pytest.fixture(scope="module")
def ds():
    return make_results("baseline")


def _bars(fig: Figure) -> list[Rectangle]:
    return [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]


def test_distance_from_target_bars_are_sorted_percentages(ds):
    fig = plots.distance_from_target(ds)
    widths = [b.get_width() for b in _bars(fig)]
    assert len(widths) == 42
    assert widths == sorted(widths)
    expected = np.sort(ds["distance_from_target"].sel(year=2028).values * 100)
    np.testing.assert_allclose(widths, expected)
    region = {str(r) for r in ds["region_name"].values}
    assert {t.get_text() for t in fig.axes[0].get_legend().get_texts()} == region


def test_allocation_per_head_reference_line_is_england_average(ds):
    fig = plots.allocation_per_head(ds, year=2026)
    alloc = ds["allocation"].sel(year=2026)
    england = float(alloc.sum() / ds["weighted_population"].sel(year=2026).sum())
    ref = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert ref[0].get_xdata()[0] == pytest.approx(england)
    per_head = alloc / ds["weighted_population"].sel(year=2026)
    bars = _bars(fig)  # drawn from the England average line
    assert all(b.get_x() == pytest.approx(england) for b in bars)
    ends = [b.get_x() + b.get_width() for b in bars]
    np.testing.assert_allclose(ends, np.sort(per_head.values))
    target = (ds["target_allocation"] / ds["weighted_population"]).sel(year=2026).values
    ticks = fig.axes[0].collections[0].get_offsets()[:, 0]  # one per bar, in bar order
    np.testing.assert_allclose(ticks, target[np.argsort(per_head.values)])


def test_allocation_per_head_says_so_when_every_icb_gets_the_same():
    """Allocations proportional to weighted population differ only by rounding: the figure
    says what every ICB receives instead of drawing bars on an axis offset by 1e-6."""
    equal = make_results("equal")
    equal["allocation"] = equal["weighted_population"] * 515.1385 + 1e-7 * np.arange(42)
    fig = plots.allocation_per_head(equal)
    assert _bars(fig) == []
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "Every ICB receives £515.14 per weighted head" in text


def test_delegated_vs_retained_plots_budgets_and_bands(ds):
    other = make_results("reform", shift=0.05)
    fig = plots.delegated_vs_retained([ds, other])
    ax = fig.axes[0]
    budget_lines = [line for line in ax.get_lines() if "budget" in str(line.get_label())]
    assert len(budget_lines) == 4  # two portfolios x two scenarios
    delegated = ds["allocation"].sum("icb").values / 1e9
    np.testing.assert_allclose(budget_lines[0].get_ydata(), delegated)
    np.testing.assert_allclose(budget_lines[1].get_ydata(), ds["retained_budget"].values / 1e9)
    assert len(ax.collections) == 4  # one 90% band per portfolio and scenario


def test_national_band_is_englands_own_quantiles(ds):
    """The shading is England's 5%-95% (`national_spend_quantile`), never a band built from
    the ICBs' spreads (most of the risk is common to all ICBs)."""
    low, high = plots._national_band(ds, "delegated")
    q = ds["national_spend_quantile"].sel(portfolio="delegated")
    np.testing.assert_array_equal(low, q.sel(quantile=0.05).values)
    np.testing.assert_array_equal(high, q.sel(quantile=0.95).values)
    mean = ds["spend_mean"].sel(portfolio="delegated").sum("icb").values
    assert (low < mean).all() and (mean < high).all()
    assert plots._national_band(ds.drop_vars("national_spend_quantile"), "delegated") is None


def test_overspend_by_size_one_point_per_icb_and_pooling(ds):
    fig = plots.overspend_by_size(ds)
    scatters = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in scatters] == [42, 42]
    before = scatters[0].get_offsets()[:, 1]
    np.testing.assert_allclose(
        before, ds["p_overspend_5pct"].sel(year=2028, pooling="before").values * 100
    )


def test_population_pyramid_totals_match(ds):
    fig = plots.population_pyramid(ds)
    bars = _bars(fig)
    total_end = ds["population"].sel(year=2028).sum().item() / 1e3
    assert sum(abs(b.get_width()) for b in bars) == pytest.approx(total_end)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "90+"  # the top bar pools everyone aged 90 and over
    one = plots.population_pyramid(ds, years=(2024, 2026), icb="E54000003")
    assert "Test ICB 3" in one.axes[0].get_title()


def test_allocation_change_widths_are_pounds_per_head(ds):
    """Bars: the change in allocation per head; ticks: the change in expected delegated
    spend per head, in the same order; the title gives the range of % changes."""
    other = make_results("reform", shift=0.05)
    fig = plots.allocation_change(ds, other)
    heads = ds["population"].sel(year=2028).sum(("sex", "age"))
    change = ((other["allocation"] - ds["allocation"]).sel(year=2028) / heads).values
    widths = [b.get_width() for b in _bars(fig)]
    np.testing.assert_allclose(widths, np.sort(change), rtol=1e-12)
    spend = other["expected_spend"] - ds["expected_spend"]
    spend = (spend.sel(year=2028, portfolio="delegated") / heads).values
    ticks = fig.axes[0].collections[0].get_offsets()[:, 0]
    np.testing.assert_allclose(ticks, spend[np.argsort(change)], rtol=1e-12)
    pct = ((other["allocation"] / ds["allocation"] - 1) * 100).sel(year=2028)
    assert f"{float(pct.min()):+.1f}% to {float(pct.max()):+.1f}%" in fig.axes[0].get_title()


def test_a_uniform_change_is_said_not_drawn(ds):
    """Every allocation 10% higher: 42 equal bars would say nothing, so the figure says it."""
    more = ds.copy(deep=True)
    more["allocation"] = ds["allocation"] * 1.1
    fig = plots.allocation_change(ds, more)
    assert _bars(fig) == []
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "Every ICB's allocation changes by +10.0%" in text


def test_public_namespace_and_png_rendering(ds, tmp_path):
    for make in (sim.plots.distance_from_target, sim.plots.population_pyramid):
        fig = make(ds)
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / "f.png")
        assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fy_labels():
    assert plots.fy(2024) == "2024/25"
    assert plots.fy(2099) == "2099/00"
    assert plots.short_icb_name("NHS Kent and Medway Integrated Care Board") == "Kent and Medway"
