"""The standard figures for analysts, each a function of results Dataset(s) -> Figure.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: no display or global
figure registry is needed (headless servers, CI, report generation in a loop), and a notebook
shows the returned figure as its cell output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, ScalarFormatter

from sim.accessor import (
    as_list,
    base_year,
    end_year,
    icb_labels,
    need_group_label,
    scenario_name,
    short_icb_name,
)
from sim.comparison import allocation_change_per_head
from sim.variations import PER, furthest_from_benchmark, largest_groups, variations
from sim.years import financial_year as fy

# One colour per NHS region, identical in every figure (colour-blind-safe Okabe-Ito palette).
REGION_COLOURS = {
    "London": "#0072B2",
    "South East": "#E69F00",
    "South West": "#009E73",
    "East of England": "#CC79A7",
    "Midlands": "#56B4E9",
    "North West": "#D55E00",
    "North East and Yorkshire": "#000000",
}
OTHER_COLOUR = "#999999"
PORTFOLIO_COLOURS = {"delegated": "#0072B2", "retained": "#D55E00"}
LINESTYLES = ["-", "--", ":", "-."]
PENNY = 0.005
"""Per-head values closer than this (GBP) are equal: a chart of their differences would draw
rounding."""
UNIFORM_POINTS = 0.05
"""% changes within this many percentage points of each other are one uniform change."""


def region_colours(ds: xr.Dataset) -> list[str]:
    if "region_name" not in ds.coords:
        return [OTHER_COLOUR] * ds.sizes["icb"]
    return [REGION_COLOURS.get(str(r), OTHER_COLOUR) for r in ds["region_name"].values]


def is_fraction(da: xr.DataArray) -> bool:
    """Whether a variable is a ratio (plotted as %) rather than money or persons."""
    return str(da.attrs.get("units", "1")).lower() in ("1", "fraction", "ratio", "")


def _region_handles(ds: xr.Dataset) -> list[Patch]:
    present = (
        list(dict.fromkeys(str(r) for r in ds["region_name"].values))
        if "region_name" in ds.coords
        else []
    )
    return [Patch(color=REGION_COLOURS.get(r, OTHER_COLOUR), label=r) for r in present]


def _region_legend(ax, ds: xr.Dataset, extra: Sequence = ()) -> None:
    handles = [*_region_handles(ds), *extra]
    if handles:
        ax.legend(  # outside the axes: bars that fill the width would hide under it
            handles=handles,
            title="NHS region",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
            title_fontsize=8,
        )


def _sorted_icb_bars(
    ds: xr.Dataset,
    values: np.ndarray,
    xlabel: str,
    title: str,
    refline: float | None,
    markers: tuple[np.ndarray, str] | None = None,
) -> Figure:
    """Horizontal bars, one per ICB, sorted by value, coloured by region (shared layout);
    `markers` (values, legend label) adds a black tick per ICB, e.g. its target."""
    keep = np.isfinite(values)
    labels = np.array(icb_labels(ds))[keep]
    colours = np.array(region_colours(ds))[keep]
    vals = values[keep]
    order = np.argsort(vals)
    n = len(vals)
    fig = Figure(figsize=(10, max(4.0, 0.22 * n + 1.5)), layout="constrained")
    ax = fig.add_subplot()
    # Bars grow from the reference line, so above/below it reads at a glance.
    base = 0.0 if refline is None else refline
    ax.barh(np.arange(n), vals[order] - base, left=base, color=colours[order])
    ax.set_yticks(np.arange(n), labels[order], fontsize=7)
    ax.set_ylim(-0.7, n - 0.3)
    ax.xaxis.set_major_formatter(ScalarFormatter(useOffset=False))  # never "1e-6 + 5.15e2"
    if refline is not None:
        ax.axvline(refline, color="0.3", lw=1, ls="--")
    if markers is not None and n:
        ax.scatter(
            markers[0][keep][order],
            np.arange(n),
            marker="|",
            s=90,
            c="black",
            linewidths=1.5,
            zorder=3,
        )
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    if n == 0:  # e.g. retain_all: no ICB has a delegated allocation
        return _say(fig, "No values to show\n(no delegated allocation in this scenario)")
    _region_legend(ax, ds, [] if markers is None else [_tick_handle(markers[1])])
    return fig


def _tick_handle(label: str) -> Line2D:
    return Line2D([], [], color="black", marker="|", ls="none", markersize=9, mew=1.5, label=label)


def _say(fig: Figure, text: str) -> Figure:
    """A figure whose message is a sentence, in place of a chart with nothing to show."""
    ax = fig.axes[0] if fig.axes else fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    return fig


def _message(title: str, text: str) -> Figure:
    fig = Figure(figsize=(8.5, 2.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, fontsize=11)
    return _say(fig, text)


def uniform_value(values: np.ndarray, tolerance: float) -> float | None:
    """The common value of `values` (their mean) when all finite ones lie within `tolerance`
    of each other, else None."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or np.ptp(finite) >= tolerance:
        return None
    return float(finite.mean())


def _national_band(ds: xr.Dataset, portfolio: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The 90% band of England's spend on one portfolio: the 5% and 95% quantiles of the
    national total per replicate (`national_spend_quantile`). Never built from the ICBs'
    spreads: most of the risk is common to all ICBs (growth, costs, national shocks), so
    their spreads do not add up as independent ones would."""
    if "national_spend_quantile" not in ds:
        return None
    q = ds["national_spend_quantile"].sel(portfolio=portfolio)
    return q.sel(quantile=0.05).values, q.sel(quantile=0.95).values


def delegated_vs_retained(ds_or_list: xr.Dataset | Sequence[xr.Dataset]) -> Figure:
    """National delegated and retained budgets by year, with simulated spend and 90% bands.

    Solid: budget (delegated = sum of ICB allocations; retained = NHS England's retained
    budget). Dashed with shading: mean simulated spend and its 90% band.
    """
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    scenarios = as_list(ds_or_list)
    for i, ds in enumerate(scenarios):
        years = ds["year"].values
        ls = LINESTYLES[i % len(LINESTYLES)]
        name = scenario_name(ds, f"scenario {i + 1}")
        budgets = {
            "delegated": ds["allocation"].sum("icb").values,
            "retained": ds["retained_budget"].values,
        }
        for portfolio, budget in budgets.items():
            colour = PORTFOLIO_COLOURS[portfolio]
            ax.plot(years, budget / 1e9, color=colour, ls=ls, lw=2,
                    label=f"{name}: {portfolio} budget")  # fmt: skip
            if "spend_mean" in ds:
                spend = ds["spend_mean"].sel(portfolio=portfolio).sum("icb").values
                ax.plot(years, spend / 1e9, color=colour, ls=ls, lw=1, alpha=0.8, marker=".")
                band = _national_band(ds, portfolio)
                if band is not None:
                    ax.fill_between(years, band[0] / 1e9, band[1] / 1e9, color=colour, alpha=0.15)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fy(int(round(x)))))
    ax.set_xlabel("Financial year")
    ax.set_ylabel("£ billion a year (cash)")
    ax.set_title(
        "Delegated (ICB) vs retained (NHS England) budgets\n"
        "lines: budget; dots: mean simulated spend; shading: 90% range of spend",
        fontsize=11,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def distance_from_target(ds: xr.Dataset, year: int | None = None) -> Figure:
    """Each ICB's distance from its needs-based target, sorted, coloured by region."""
    year = end_year(ds) if year is None else year
    da = ds["distance_from_target"].sel(year=year)
    if is_fraction(da):
        values, xlabel = da.values * 100, "Distance from target (% of target; below 0 = under)"
    else:
        values, xlabel = da.values / 1e6, "Distance from target (£ million; below 0 = under)"
    title = f"Distance from target by ICB, {fy(year)} ({scenario_name(ds)})"
    return _sorted_icb_bars(ds, values, xlabel, title, refline=0.0)


def per_weighted_head(ds: xr.Dataset, year: int) -> tuple[xr.DataArray, xr.DataArray, float]:
    """Allocation and target per weighted head (icb,) in `year`, and England's allocation per
    weighted head (ICBs with an allocation only)."""
    alloc = ds["allocation"].sel(year=year)
    weighted = ds["weighted_population"].sel(year=year)
    target = ds["target_allocation"].sel(year=year)
    england = float(alloc.sum() / weighted.where(alloc.notnull()).sum())
    return alloc / weighted, target / weighted, england


def allocation_per_head(ds: xr.Dataset, year: int | None = None) -> Figure:
    """Allocation per weighted head by ICB, with its target per weighted head (ticks) and the
    England average (dashed line).

    The weighted population counts need for the whole portfolio and the allocation pays for
    the delegated services only, so ICBs at target differ by how much of their need lies in
    delegated services; the ticks show that. When every ICB gets the same to the penny, the
    figure says so rather than draw rounding."""
    year = end_year(ds) if year is None else year
    per_head, target, england = per_weighted_head(ds, year)
    title = f"Delegated allocation per weighted head, {fy(year)} ({scenario_name(ds)})"
    same = uniform_value(per_head.values, PENNY)
    if same is not None:
        return _message(
            title,
            f"Every ICB receives £{same:,.2f} per weighted head: "
            "allocations are proportional to weighted population.",
        )
    title += f"\ndashed: England average £{england:,.0f}; ticks: each ICB's target"
    return _sorted_icb_bars(
        ds,
        per_head.values,
        "£ per weighted head",
        title,
        refline=england,
        markers=(target.values, "target per weighted head"),
    )


def allocation_change(a: xr.Dataset, b: xr.Dataset, year: int | None = None) -> Figure:
    """Who gains and who loses: the change in each ICB's allocation per head of population,
    scenario b minus a, with the change in its expected delegated spend per head (ticks) when
    that moves too (b delegates other services, or demand differs).

    A % change that is the same for every ICB (to 0.05 points) says only that the
    delegated total changed: the figure says so rather than draw equal bars."""
    year = min(end_year(a), end_year(b)) if year is None else year
    change = allocation_change_per_head(a, b, year)
    pct = change["percent"].values
    title = f"Change in ICB allocation, {fy(year)}: {scenario_name(b)} vs {scenario_name(a)}"
    same = uniform_value(pct, UNIFORM_POINTS)
    if same is not None:
        totals = [float(d["allocation"].sel(year=year).sum()) / 1e9 for d in (a, b)]
        return _message(
            title,
            f"Every ICB's allocation changes by {same:+.1f}%: each keeps its share of the "
            f"delegated total, which goes from £{totals[0]:,.2f}bn to £{totals[1]:,.2f}bn.",
        )
    spend = change["spend"].values
    markers = None
    if np.nanmax(np.abs(spend), initial=0.0) >= PENNY:
        markers = (spend, "change in expected delegated spend per head")
    title += f"\nchange in % of allocation: {np.nanmin(pct):+.1f}% to {np.nanmax(pct):+.1f}%"
    return _sorted_icb_bars(
        a.sel(icb=change["icb"].values),
        change["change"].values,
        "Change in allocation, £ per head (right = gains)",
        title,
        0.0,
        markers=markers,
    )


def overspend_by_size(
    ds_or_list: xr.Dataset | Sequence[xr.Dataset],
    year: int | None = None,
    threshold: str = "5pct",
) -> Figure:
    """Probability of overspending by more than 1% or 5% against ICB population size.

    Filled markers: before any risk pool; hollow: after pooling. Patient noise alone puts
    more relative risk on small ICBs (rare high-cost patients are a bigger share of a small
    budget); common risk (growth, costs) falls on every ICB alike, so whether size matters
    is read off the figure (the report's caption measures it).
    """
    var = f"p_overspend_{threshold}"
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    markers = ["o", "s", "^", "D"]
    for i, ds in enumerate(as_list(ds_or_list)):
        yr = end_year(ds) if year is None else year
        pop = ds["population"].sel(year=yr).sum(("sex", "age")).values / 1e6
        risk = ds[var].sel(year=yr)
        colours = region_colours(ds)
        name = scenario_name(ds, f"scenario {i + 1}")
        m = markers[i % len(markers)]
        pools = list(risk["pooling"].values) if "pooling" in risk.dims else [None]
        for pooling in pools:
            p = (risk.sel(pooling=pooling) if pooling is not None else risk).values * 100
            filled = pooling in (None, "before")
            label = f"{name}, {pooling} pooling" if pooling is not None else name
            face = colours if filled else "none"
            ax.scatter(pop, p, marker=m, s=36, c=face, edgecolors=colours, label=label)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda x, _: f"{x:g}")  # 0.6, 1, 2 rather than 6x10^-1
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("ICB population (millions, log scale)")
    pct = threshold.replace("pct", "%")
    ax.set_ylabel(f"Probability of overspending by more than {pct} (%)")
    ax.set_title(
        f"Financial risk by ICB size, {fy(yr)}\nfilled: before risk pooling; hollow: after; "
        "colour: NHS region",
        fontsize=11,
    )
    ax.grid(alpha=0.3, which="both")
    leg = ax.legend(fontsize=8, loc="best")
    for handle, text in zip(leg.legend_handles, leg.get_texts(), strict=True):
        handle.set_edgecolor("0.3")  # neutral: in the plot, colour means region
        handle.set_facecolor("none" if text.get_text().endswith("after pooling") else "0.3")
    ax.set_ylim(bottom=0)
    return fig


def access_intensity(
    ds: xr.Dataset,
    group: str | None = None,
    icb: str | None = None,
    year: int | None = None,
    portfolio: str | None = None,
) -> Figure:
    """The variations view (`sim.variations`): access (patients per 1,000 population)
    against intensity (£ per patient) for one need group, a dot per ICB, on curves of equal
    spend per head; `icb` and its benchmark (the five ICBs of most similar need, pooled)
    highlighted.

    Defaults: the end year, the group with the most spend, the ICB whose spend per head is
    furthest from its benchmark's; `portfolio` "delegated" or "retained" for one only."""
    view = variations(as_list(ds)[0], year, portfolio)
    group = largest_groups(view, 1)[0] if group is None else group
    icb = furthest_from_benchmark(view, group) if icb is None else icb
    one = view.sel(need_group=group)
    treated = one["patients"].values > 0
    colours = np.array(region_colours(view))
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    ax = fig.add_subplot()
    x, y = one["access"].values * PER, one["intensity"].values
    ax.scatter(x[treated], y[treated], s=30, c=colours[treated], alpha=0.8, zorder=2)
    peers = _highlight(ax, one, icb, colours)
    me = one.sel(icb=icb)
    _iso_spend(
        ax,
        one["spend_per_head"].values[treated],
        float(me["spend_per_head"]),
        float(me["benchmark_spend_per_head"]),
    )
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.3g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"£{v:,.0f}"))
    ax.set_xlabel(f"Access: patients per {PER:,} population")
    ax.set_ylabel("Intensity: £ per patient")
    names = dict(zip(view["icb"].values, icb_labels(view), strict=True))
    ax.set_title(_variations_title(view, group, me, names[icb]), fontsize=11)
    ax.grid(alpha=0.3)
    same_need = float(me["need_distance"].max()) < 1e-12
    members = [names[c] for c in (icb, *peers)]
    _variations_legend(ax, view, members, int((~treated).sum()), same_need)
    return fig


def _variations_legend(
    ax, view: xr.Dataset, names: list[str], untreated: int, same_need: bool
) -> None:
    """Outside the axes: what each mark means, the benchmark's members by number (`names`:
    the ICB, then its peers nearest first), the regions, and how many ICBs are left out;
    `same_need` when every ICB has the same need and the peers are the closest in size."""
    peers = (
        "its benchmark: all ICBs have the same\nneed, so the 5 closest in population:"
        if same_need
        else "its benchmark, the 5 ICBs of most\nsimilar need (nearest first):"
    )
    handles = [
        Line2D([], [], marker="*", ls="none", ms=14, mfc="white", mec="black", label=names[0]),
        Line2D([], [], marker="o", ls="none", ms=10, mfc="none", mec="black", label=peers),
        *(Patch(color="none", label=f"{k}  {name}") for k, name in enumerate(names[1:], 1)),
        Line2D([], [], marker="X", ls="none", ms=9, color="black", label="benchmark (pooled)"),
        Line2D([], [], color="black", lw=1, label=f"{names[0]}'s spend per head"),
        Line2D([], [], color="black", lw=1, ls="--", label="benchmark's spend per head"),
        Line2D([], [], color="0.6", lw=0.8, label="equal spend per head (£)"),
        *_region_handles(view),
    ]  # fmt: skip
    if untreated:
        handles.append(Patch(color="none", label=f"{untreated} ICBs without patients"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _highlight(ax, one: xr.Dataset, icb: str, colours: np.ndarray) -> list[str]:
    """Mark `icb` (star), its benchmark ICBs (rings numbered nearest first) and the pooled
    benchmark (cross, with an arrow to the ICB); return the benchmark's codes."""
    at = {c: i for i, c in enumerate(one["icb"].values)}
    peers = [str(c) for c in one["benchmark"].sel(icb=icb).values]
    x, y = one["access"].values * PER, one["intensity"].values
    for k, code in enumerate(peers, 1):
        ax.scatter(
            x[at[code]], y[at[code]], s=160, facecolors="none", edgecolors="black", lw=1.2, zorder=3
        )
        ax.annotate(
            str(k),
            (x[at[code]], y[at[code]]),
            xytext=(7, 4),
            textcoords="offset points",
            fontsize=8,
            weight="bold",
        )
    me = one.sel(icb=icb)
    bx, by = float(me["benchmark_access"]) * PER, float(me["benchmark_intensity"])
    mx, my = x[at[icb]], y[at[icb]]
    ax.scatter([bx], [by], marker="X", s=120, c="black", zorder=4)
    ax.scatter(
        [mx], [my], marker="*", s=380, c=colours[at[icb]], edgecolors="black", lw=1, zorder=5
    )
    ax.annotate("", (mx, my), (bx, by), arrowprops={"arrowstyle": "->", "color": "0.2"})
    return peers


def _variations_title(view: xr.Dataset, group: str, me: xr.Dataset, name: str) -> str:
    """Three lines: what is drawn; the ICB against its benchmark; the gap split."""
    where = "" if view.attrs["portfolio"] == "all" else f", {view.attrs['portfolio']} services"
    return (
        f"Access and intensity: {need_group_label(group)}{where}, "
        f"{fy(view.attrs['year'])} ({view.attrs['scenario_name']})\n"
        f"{name}: £{float(me['spend_per_head']):,.2f} per head, its benchmark "
        f"£{float(me['benchmark_spend_per_head']):,.2f}\n"
        f"gap {signed_pounds(float(me['gap']))} = access {signed_pounds(float(me['gap_access']))} "
        f"+ intensity {signed_pounds(float(me['gap_intensity']))} per head"
    )


def signed_pounds(x: float) -> str:
    """-27.8 -> '-£27.80' (£ per head, to the penny; the sign before the pound sign)."""
    return f"{'-' if x < 0 else '+'}£{abs(x):,.2f}"


def _iso_spend(ax, per_head: np.ndarray, mine: float, bench: float) -> None:
    """Curves of equal spend per head, access x intensity = constant, across the axes:
    grey at round values spanning the ICBs, solid through `mine`, dashed through `bench`."""
    ax.margins(0.08)
    ax.autoscale_view()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    xs = np.linspace(x0, x1, 200)
    levels = MaxNLocator(nbins=6).tick_values(per_head.min(), per_head.max())
    for level, style in [
        *((v, {"color": "0.6", "lw": 0.8}) for v in levels if v > 0),
        (mine, {"color": "black", "lw": 1.0}),
        (bench, {"color": "black", "lw": 1.0, "ls": "--"}),
    ]:
        ax.plot(xs, level * PER / xs, zorder=1, **style)
        if style["color"] == "0.6":  # label the round levels where they leave the axes
            lx = min(x1, level * PER / y0) if level * PER / x1 < y0 else x1
            ax.annotate(
                f"£{level:,.0f}",
                (lx, level * PER / lx),
                xytext=(-2, 2),
                textcoords="offset points",
                ha="right",
                fontsize=7,
                color="0.4",
            )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def population_pyramid(
    ds: xr.Dataset, years: Sequence[int] | None = None, icb: str | None = None
) -> Figure:
    """Population by sex and single year of age, base year (outline) vs end year (filled)."""
    ds = as_list(ds)[0]
    years = (base_year(ds), end_year(ds)) if years is None else tuple(years)
    pop = ds["population"]
    where = "England"
    if icb is not None:
        pop = pop.sel(icb=icb)
        where = short_icb_name(str(pop["icb_name"].values)) if "icb_name" in pop.coords else icb
    else:
        pop = pop.sum("icb")
    ages = pop["age"].values
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    ax = fig.add_subplot()
    scale = 1e3
    styles = [
        {"fill": False, "color": "0.2", "lw": 1.2},
        {"fill": True, "color": None, "lw": 0},
    ]
    for k, year in enumerate(years):
        style = styles[min(k, 1)]
        for sex, sign, colour in (("m", -1, "#0072B2"), ("f", 1, "#D55E00")):
            vals = sign * pop.sel(year=year, sex=sex).values / scale
            if style["fill"]:
                ax.barh(ages, vals, height=1.0, color=colour, alpha=0.55, lw=0,
                        label=f"{'males' if sex == 'm' else 'females'} {fy(year)}")  # fmt: skip
            else:
                ax.step(vals, ages, where="mid", color=style["color"], lw=style["lw"],
                        label=f"{fy(year)}" if sex == "m" else None)  # fmt: skip
    ax.axvline(0, color="0.3", lw=0.8)
    ticks = ax.get_xticks()
    ax.set_xticks(ticks, [f"{abs(t):,.0f}" for t in ticks])
    ax.set_xlabel("Thousands of people (males left, females right)")
    ax.set_yticks([*range(0, 90, 10), 90], [*map(str, range(0, 90, 10)), "90+"])
    ax.set_ylabel("Age (90+: 90 and over)")
    ax.set_title(f"Population pyramid, {where}: {fy(years[0])} vs {fy(years[-1])}", fontsize=11)
    # Outside the axes: inside, it would hide the open-ended 90+ bars at the top.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return fig


# --- attribution (`sim.attribution`) ---------------------------------------------------------

GAIN_COLOUR, LOSS_COLOUR, TOTAL_COLOUR = "#0072B2", "#D55E00", "0.35"
MEASURE_TITLES = {
    "allocation": "Delegated allocation",
    "target_allocation": "Target allocation",
    "expected_spend": "Expected delegated spend",
}


def _pounds(value: float) -> str:
    """+£12.3m, -£450k, +£0: the size of a step, signed, in the unit that shows it."""
    sign = "-" if value < 0 else "+"
    size = abs(value)
    if size >= 1e6:
        return f"{sign}£{size / 1e6:,.1f}m"
    if size >= 1e3:
        return f"{sign}£{size / 1e3:,.0f}k"
    return f"{sign}£{size:,.0f}"


def waterfall(
    explanation,
    icb: str | None = None,
    year: int | None = None,
    measures: Sequence[str] = ("allocation", "target_allocation", "expected_spend"),
) -> Figure:
    """Why an ICB's (or, by default, England's) money differs between two scenarios: from
    zero, one step per factor that differs, to the total change (B - A), one panel per
    measure, in £ million. The steps add up to the total exactly (`sim.attribution`).

    `explanation` is a `sim.attribution.Explanation` or its Dataset; `icb` an E54 code.
    """
    ds = getattr(explanation, "dataset", explanation)
    year = int(ds["year"].max()) if year is None else year
    one = ds.sel(year=year)
    if icb is None:
        one, where = one.sum("icb"), "England"
    else:
        one, where = one.sel(icb=icb), short_icb_name(str(one["icb_name"].sel(icb=icb).values))
    factors = [
        str(f) for f, on in zip(ds["factor"].values, ds["switched"].values, strict=True) if on
    ]
    a, b = ds.attrs["scenario_a"], ds.attrs["scenario_b"]
    fig = Figure(figsize=(4.0 * len(measures) + 0.6, 4.9), layout="constrained")
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    for ax, measure in zip(axes, measures, strict=True):
        steps = [float(one["attribution"].sel(measure=measure, factor=f)) for f in factors]
        level = one["level"].sel(measure=measure)
        before, after = float(level.sel(side="a")), float(level.sel(side="b"))
        total = after - before
        starts = np.concatenate([[0.0], np.cumsum(steps)[:-1]]) if steps else np.array([])
        x = np.arange(len(steps) + 1)
        colours = [GAIN_COLOUR if s >= 0 else LOSS_COLOUR for s in steps] + [TOTAL_COLOUR]
        heights = np.array([*steps, total]) / 1e6
        bottoms = np.array([*starts, 0.0]) / 1e6
        ax.bar(x, heights, bottom=bottoms, color=colours, width=0.65)
        for k in range(len(steps)):  # connectors: each step starts where the last ended
            ax.plot([k + 0.33, k + 0.67], [(starts[k] + steps[k]) / 1e6] * 2, color="0.5", lw=0.8)
        for xi, top, value in zip(x, bottoms + heights, [*steps, total], strict=True):
            up = value >= 0
            ax.annotate(
                _pounds(value),
                (xi, top),
                ha="center",
                va="bottom" if up else "top",
                xytext=(0, 2 if up else -2),
                textcoords="offset points",
                fontsize=7,
            )
        labels = [f.replace("_", " ") for f in factors] + ["total change"]
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
        ax.axhline(0, color="0.3", lw=0.8)
        ends = np.concatenate([[0.0], bottoms, bottoms + heights])
        low, high = float(ends.min()), float(ends.max())
        pad = 0.15 * (high - low) if high > low else 1.0  # room for the value labels
        ax.set_ylim(low - pad, high + pad)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        levels = f"£{before / 1e6:,.1f}m ({a}) -> £{after / 1e6:,.1f}m ({b})"
        ax.set_title(f"{MEASURE_TITLES.get(measure, measure)}\n{levels}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if not np.any(heights):
            ax.text(0.5, 0.7, "no change", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel("Change, £ million")
    method = ds.attrs.get("method", "shapley")
    fig.suptitle(
        f"Why {where} differs in {fy(year)}: {b} vs {a} ({method}; blue adds, orange takes away)",
        fontsize=10,
    )
    return fig


def tornado(ds: xr.Dataset, year: int | None = None) -> Figure:
    """Which uncertain parameters drive England's spend and the ICBs' overspend: partial
    rank correlations (PRCC) of each parameter's draws (`sensitivity_national_spend`,
    `sensitivity_overspend`), widest first. Bars: England's spend by portfolio; dots: the
    ICBs' delegated overspend (the median ICB, and the range across ICBs)."""
    yr = end_year(ds) if year is None else year
    if "sensitivity_national_spend" not in ds:
        return _message("Sensitivity", "No uncertain parameters in this scenario.")
    national = ds["sensitivity_national_spend"].sel(year=yr)
    overspend = ds["sensitivity_overspend"].sel(year=yr)
    order = np.argsort(np.abs(national).max("portfolio").values)
    names = [str(p) for p in national["parameter"].values[order]]
    y = np.arange(len(names))
    fig = Figure(figsize=(9, 1.2 + 0.9 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    for k, portfolio in enumerate(("delegated", "retained")):
        values = national.sel(portfolio=portfolio).values[order]
        ax.barh(y + (k - 0.5) * 0.35, values, height=0.33, color=PORTFOLIO_COLOURS[portfolio],
                label=f"England's {portfolio} spend")  # fmt: skip
    icbs = overspend.values[order]
    ax.hlines(y, np.nanmin(icbs, axis=1), np.nanmax(icbs, axis=1), color="0.3", lw=1)
    ax.plot(np.nanmedian(icbs, axis=1), y, "o", color="0.1", label="ICBs' overspend: median, range")
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(y, names)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("partial rank correlation with the parameter's draws (others held)")
    n = ds["sensitivity_national_spend"].attrs.get("replicates", "?")
    ax.set_title(f"What drives spend and overspend, {fy(yr)} ({n} replicates)", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return fig
