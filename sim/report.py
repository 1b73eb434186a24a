"""A self-contained HTML report of a comparison: one file, figures embedded, no external
resources, so it can be emailed or attached to a board paper and opened offline."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from sim import plots
from sim.accessor import base_year, end_year, icb_labels, need_group_label, short_icb_name
from sim.atomic import atomic_path
from sim.comparison import Comparison, allocation_change_per_head, compare
from sim.variations import furthest_from_benchmark, largest_groups, variations
from sim.years import financial_year as fy

AT_TARGET = 1e-9
"""Distances from target within this of zero are at target."""
WORD_JOINER = "\N{WORD JOINER}"
"""Between a sign and a pound sign in HTML text, so that a line never breaks there."""
SIZE_MATTERS = 0.3
"""A rank correlation of overspend risk with population below minus this says size matters."""
VIEW_GROUPS = 3
"""How many need groups the report's variations view shows (the largest by spend)."""

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
.gain{color:#006d2c}.lose{color:#a50f15}details{margin:1em 0}
table.peers td:last-child{text-align:left;font-size:.9em}
"""


@dataclass
class ReportFigure:
    """A figure as it appears in the report: id, alt text and caption for readers. Without a
    figure, the caption is said in its place (a chart with nothing to show)."""

    key: str
    figure: Figure | None
    alt: str
    caption: str


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _anchor(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", key)


def _img(item: ReportFigure) -> str:
    if item.figure is None:
        return f'<p class="note" id="note-{_anchor(item.key)}">{html.escape(item.caption)}</p>'
    data = base64.b64encode(figure_to_png(item.figure)).decode("ascii")
    return (
        f'<figure id="fig-{_anchor(item.key)}">'
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(item.alt)}">'
        f"<figcaption>{html.escape(item.caption)}</figcaption></figure>"
    )


def _end(comparison: Comparison) -> int:
    return int(comparison.icb["year"].iloc[0])


def change_years(comparison: Comparison, k: int) -> list[int]:
    """Years in which to show who gains and loses for scenario k: the end year, plus the year
    in which the scenarios differ most when that is another one (a policy may matter most
    in the transition and not at all by the end year)."""
    end, peak = _end(comparison), comparison.largest_change_year(k)
    return [end] if peak == end else [end, peak]


def distance_view(ds: xr.Dataset) -> tuple[int, str]:
    """The year whose distances from target are worth drawing, and a note on why.

    A scenario that converges fully has every distance at zero by the end year, an empty
    chart; it then shows the base year (where the starting gaps are) and says when every
    ICB reached target."""
    gap = abs(ds["distance_from_target"]).max("icb")
    years = [int(y) for y in ds["year"].values]
    if float(gap.sel(year=years[-1])) > AT_TARGET:
        return years[-1], "in the end year"
    converged = next(y for y in years if float(gap.sel(year=y)) <= AT_TARGET)
    return years[0], f"in the base year (every ICB is at target from {fy(converged)})"


# --- figures, section by section ----------------------------------------------------------


def _range(values: xr.DataArray, fmt: str) -> str:
    return f"{fmt.format(float(values.min()))} to {fmt.format(float(values.max()))}"


def _pounds(x: float) -> str:
    """A signed amount of £ per head for HTML text: a word joiner keeps '-£' on one line."""
    return plots.signed_pounds(x).replace("£", f"{WORD_JOINER}£")


def _pounds_range(values: xr.DataArray) -> str:
    """'-£4.31 to -£1.91' (£ per head, signed, to the penny)."""
    return f"{_pounds(float(values.min()))} to {_pounds(float(values.max()))}"


def _change_caption(a: str, b: str, year: int, change: xr.Dataset) -> str:
    """What moved between a and b: the allocation per head and, when it moves too, the
    expected delegated spend that comes with newly delegated services or other demand."""
    text = (
        f"Who gains and who loses: change in each ICB's delegated allocation per head of "
        f"population in {fy(year)} under {b} compared with {a}: "
        f"{_pounds_range(change['change'])} per head "
        f"({_range(change['percent'], '{:+.1f}%')} of the allocation)."
    )
    services = change.attrs["services"]
    if services:
        more = "more" if services > 0 else "fewer"
        text += (
            f" {b} delegates {abs(services)} {more} services than {a}: their budget moves "
            "with the spend on their patients."
        )
    if float(abs(change["spend"]).max()) >= plots.PENNY:
        text += (
            f" Expected delegated spend changes by {_pounds_range(change['spend'])} per head "
            "(ticks), so allocation minus expected spend changes by "
            f"{_pounds_range(change['net'])} per head."
        )
    return text


def uniform_change(comparison: Comparison, k: int, year: int) -> str | None:
    """When every ICB's allocation changes by the same % (to 0.05 points) in scenario k, the
    sentence that says so and why, in place of a ranking of ties and a chart of equal bars."""
    a, b = comparison.datasets[0], comparison.datasets[k]
    change = allocation_change_per_head(a, b, year)
    same = plots.uniform_value(change["percent"].values, plots.UNIFORM_POINTS)
    if same is None:
        return None
    totals = [float(d["allocation"].sel(year=year).sum()) / 1e9 for d in (a, b)]
    services = change.attrs["services"]
    why = f" ({comparison.names[k]} delegates {services:+d} services)" if services else ""
    return (
        f"Every ICB's allocation in {fy(year)} changes by {same:+.1f}% under "
        f"{comparison.names[k]} compared with {comparison.names[0]}: each ICB keeps its share "
        f"of the delegated total, which goes from £{totals[0]:,.2f}bn to £{totals[1]:,.2f}bn"
        f"{why}. No ICB gains or loses relative to the others, so there is no ranking or chart."
    )


def _change_item(comparison: Comparison, k: int, year: int) -> ReportFigure:
    a, b = comparison.datasets[0], comparison.datasets[k]
    ref, name = comparison.names[0], comparison.names[k]
    return ReportFigure(
        f"change-{name}" + ("" if year == _end(comparison) else f"-{year}"),
        plots.allocation_change(a, b, year=year),
        f"Bar chart of the change in each ICB's allocation per head in {fy(year)}, {name} vs {ref}",
        _change_caption(ref, name, year, allocation_change_per_head(a, b, year)),
    )


def change_figures(comparison: Comparison) -> list[ReportFigure]:
    """Who gains and who loses, for every scenario against the reference, in each year of
    `change_years` in which ICBs' allocations change by different amounts (no change, or
    the same % for all, is said in the text: a chart would add nothing)."""
    items = []
    for k in range(1, len(comparison.datasets)):
        for year in change_years(comparison, k):
            if all(t.empty for t in comparison.gainers_losers(1, against=k, year=year)):
                continue
            if uniform_change(comparison, k, year) is None:
                items.append(_change_item(comparison, k, year))
    return items


def budget_figures(comparison: Comparison) -> list[ReportFigure]:
    return [
        ReportFigure(
            "delegated-vs-retained",
            plots.delegated_vs_retained(comparison.datasets),
            "Line chart of national delegated and retained budgets by year for each scenario",
            "Delegated (sum of ICB allocations) and retained (NHS England) budgets by year, "
            "with mean simulated spend and its 90% range across replicates.",
        )
    ]


def _per_head_item(ds: xr.Dataset, name: str) -> ReportFigure:
    """Allocation per weighted head, or a sentence when every ICB gets the same; at target,
    the caption says why ICBs still differ."""
    year = end_year(ds)
    per_head, _, _ = plots.per_weighted_head(ds, year)
    same = plots.uniform_value(per_head.values, plots.PENNY)
    key = f"per-head-{name}"
    if same is not None:
        return ReportFigure(
            key,
            None,
            "",
            f"Allocation per weighted head ({name}): every ICB receives £{same:,.2f} per "
            f"weighted head in {fy(year)}, to the penny; allocations are proportional to "
            "weighted population, so there is no chart.",
        )
    caption = (
        f"Delegated allocation per weighted head of population in {fy(year)} ({name}), "
        "from £{:,.0f} to £{:,.0f}; ticks: each ICB's target per weighted head."
    ).format(float(per_head.min()), float(per_head.max()))
    if float(abs(ds["distance_from_target"].sel(year=year)).max()) <= AT_TARGET:
        caption += (
            " Every ICB is at its target, so the spread is not under- or over-funding: the "
            "weighted population measures need for the whole portfolio, the allocation pays "
            "for delegated services only, and an ICB with more of its need in delegated "
            "services receives more per weighted head."
        )
    return ReportFigure(
        key,
        plots.allocation_per_head(ds, year=year),
        f"Sorted bar chart of allocation per weighted head per ICB under {name}",
        caption,
    )


def distance_figures(comparison: Comparison) -> list[ReportFigure]:
    """Per scenario: distance from target, then allocation per weighted head."""
    items = []
    for ds, name in zip(comparison.datasets, comparison.names, strict=True):
        year, when = distance_view(ds)
        items.append(
            ReportFigure(
                f"distance-{name}",
                plots.distance_from_target(ds, year=year),
                f"Sorted bar chart of distance from target per ICB under {name}",
                f"Distance from the needs-based target per ICB {when} ({name}); "
                "bars left of zero are below target. Colours are NHS regions.",
            )
        )
        items.append(_per_head_item(ds, name))
    return items


def variation_groups(comparison: Comparison) -> list[str]:
    """The need groups the report shows: the three with the most spend (reference, end
    year)."""
    if comparison.variations.empty:
        return []
    return largest_groups(variations(comparison.datasets[0], _end(comparison)), VIEW_GROUPS)


def _variations_shown(comparison: Comparison) -> list[int]:
    """The scenarios whose variations view is drawn: the reference, and any other whose
    access, intensity or spend per head differ from it."""
    if comparison.variations.empty:
        return []
    others = range(1, len(comparison.datasets))
    return [0, *(k for k in others if not comparison.variations_against(k)[0])]


def variation_figures(comparison: Comparison) -> list[ReportFigure]:
    """Access against intensity for the largest need groups, each highlighting the ICB
    furthest from its benchmark."""
    year, items = _end(comparison), []
    for k in _variations_shown(comparison):
        ds, name = comparison.datasets[k], comparison.names[k]
        view = variations(ds, year)
        for group in variation_groups(comparison):
            icb = furthest_from_benchmark(view, group)
            label = need_group_label(group)
            who = dict(zip(view["icb"].values, icb_labels(view), strict=True))[icb]
            items.append(
                ReportFigure(
                    f"variations-{name}-{group}",
                    plots.access_intensity(ds, group=group, icb=icb, year=year),
                    f"Scatter plot of access against intensity per ICB for {label}, {name}",
                    f"{label.capitalize()} in {fy(year)} ({name}): each dot is an ICB, its "
                    "patients per 1,000 population (access) against its spend per patient "
                    "(intensity); on each curve spend per head is the same. Highlighted: "
                    f"{who}, the ICB whose spend per head differs most from its benchmark's, "
                    "and its benchmark.",
                )
            )
    return items


@dataclass(frozen=True)
class SizeRisk:
    """One scenario's P(overspend > 5%) across ICBs in a year: its range, its rank
    (Spearman) correlation with ICB population, and whether pooling leaves it unchanged."""

    low: float
    high: float
    rho: float
    pooling_inert: bool


def size_risk(ds: xr.Dataset, year: int) -> SizeRisk:
    risk = ds["p_overspend_5pct"].sel(year=year)
    before = risk.sel(pooling="before") if "pooling" in risk.dims else risk
    heads = ds["population"].sel(year=year).sum(("sex", "age"))
    rho = pd.Series(before.values).corr(pd.Series(heads.values), method="spearman")
    inert = "pooling" in risk.dims and bool((risk.sel(pooling="after") == before).all())
    return SizeRisk(float(before.min()), float(before.max()), round(float(rho), 2) + 0.0, inert)


GAP_SHOWN = 0.02
"""Gaps beyond this (relative to England) are listed with their lever."""


def _risk_caption(comparison: Comparison) -> str:
    """What the financial-risk chart shows, measured: smaller ICBs carry more risk only when
    the rank correlation with population says so."""
    year = _end(comparison)
    parts, rhos = [], []
    for ds, name in zip(comparison.datasets, comparison.names, strict=True):
        if "p_overspend_5pct" not in ds:
            continue
        risk = size_risk(ds, year)
        rhos.append(risk.rho)
        inert = "; the same after pooling, which moves no ICB's risk" if risk.pooling_inert else ""
        parts.append(
            f"{name}: {risk.low:.0%} to {risk.high:.0%}, rank correlation with population "
            f"{risk.rho:+.2f}{inert}."
        )
    size = (
        "Smaller ICBs carry more relative risk."
        if rhos and max(rhos) <= -SIZE_MATTERS
        else "Risk depends little on ICB size."
    )
    return (
        "Probability that an ICB overspends its delegated budget by more than 5% in "
        f"{fy(year)}, against its population. {' '.join(parts)} {size}"
    )


def risk_figures(comparison: Comparison) -> list[ReportFigure]:
    return [
        ReportFigure(
            "overspend-by-size",
            plots.overspend_by_size(comparison.datasets),
            "Scatter plot of overspend probability against ICB population size",
            _risk_caption(comparison),
        )
    ]


def sensitivity_figures(comparison: Comparison) -> list[ReportFigure]:
    """A tornado per scenario with uncertain parameters."""
    year = _end(comparison)
    return [
        ReportFigure(
            f"tornado-{name}",
            plots.tornado(ds, year),
            f"Tornado chart of what drives spend and overspend under {name}",
            f"{name}: partial rank correlation (PRCC), across replicates, of each uncertain "
            f"parameter's draws with England's spend in {fy(year)} (bars) and with each ICB's "
            "delegated overspend (dot: median ICB; line: range). Near 1: that parameter "
            "decides the outcome; near 0: it does not move it.",
        )
        for ds, name in zip(comparison.datasets, comparison.names, strict=True)
        if "sensitivity_national_spend" in ds
    ]


def pyramid_figures(comparison: Comparison) -> list[ReportFigure]:
    return [
        ReportFigure(
            f"pyramid-{name}",
            plots.population_pyramid(ds),
            f"Population pyramid for England, base and end year, under {name}",
            f"England population by sex and age: base year (outline) and end year (filled) "
            f"under {name}. The top bar pools everyone aged 90 and over (ONS's top age "
            "group), which is why it is taller than the bar for 89.",
        )
        for ds, name in zip(comparison.datasets, comparison.names, strict=True)
    ]


FIGURES = (
    change_figures,
    budget_figures,
    distance_figures,
    variation_figures,
    risk_figures,
    sensitivity_figures,
    pyramid_figures,
)
"""The report's figure builders, in the order of its sections."""


def report_figures(comparison: Comparison) -> list[ReportFigure]:
    """Every figure of the report, in order."""
    return [item for build in FIGURES for item in build(comparison)]


def _money_m(x: float) -> str:
    return "" if pd.isna(x) else f"{x / 1e6:,.1f}"


def _signed_money(x: float) -> str:
    """-27.8e6 -> '-£27.8m' (the sign before the pound sign, as analysts write it; a word
    joiner keeps them on one line)."""
    return f"{'-' if x < 0 else '+'}{WORD_JOINER}£{abs(x) / 1e6:,.1f}m"


def _headline_html(comparison: Comparison) -> str:
    """The headline table with each row in its own format (years, counts, £m, %)."""
    shown = comparison.headline.astype(object).copy()
    for metric, row in comparison.headline.iterrows():
        if metric.startswith(("number", "ICBs")):
            shown.loc[metric] = [f"{v:,.0f}" for v in row]
        else:
            shown.loc[metric] = [f"{v:,.1f}" for v in row]
    return _table(shown, index=True)


def _table(frame: pd.DataFrame, index: bool = False, classes: str | None = None) -> str:
    return frame.to_html(
        index=index, na_rep="", border=0, float_format=lambda v: f"{v:,.2f}", classes=classes
    )


def _gainers_losers_html(comparison: Comparison) -> str:
    parts = []
    names = comparison.names
    for k in range(1, len(names)):
        name = names[k]
        parts.append(f"<h3>{html.escape(name)} compared with {html.escape(names[0])}</h3>")
        years = change_years(comparison, k)
        for year in years:
            if len(years) > 1:
                why = "end year" if year == years[0] else "the year the scenarios differ most"
                parts.append(f"<h4>In {fy(year)} ({why})</h4>")
            parts.append(_gainers_losers_year(comparison, k, year))
    if not parts:
        return "<p>Only one scenario: add a second to see who gains and who loses.</p>"
    return "\n".join(parts)


def _gainers_losers_year(comparison: Comparison, k: int, year: int) -> str:
    name = comparison.names[k]
    uniform = uniform_change(comparison, k, year)
    if uniform is not None:
        return f"<p class='note'>{html.escape(uniform)}</p>"
    gainers, losers = comparison.gainers_losers(5, against=k, year=year)
    per_head = allocation_change_per_head(comparison.datasets[0], comparison.datasets[k], year)
    per_head = per_head["change"].to_series()
    parts = []
    for label, table, css in (("gain most", gainers, "gain"), ("lose most", losers, "lose")):
        if table.empty:
            parts.append(f"<p>No ICB's allocation {label.split()[0]}s.</p>")
            continue
        rows = "".join(
            f"<li><b>{html.escape(short_icb_name(str(r['icb_name'])))}</b> "
            f"({html.escape(str(r['region_name']))}): "
            f"<span class='{css}'>{r[f'change % {name}']:+.1f}%</span>, "
            f"{_signed_money(r[f'change {name}'])} a year "
            f"({_pounds(per_head[r['icb']])} per head)</li>"
            for _, r in table.iterrows()
        )
        parts.append(f"<p>ICBs that {label}:</p><ol>{rows}</ol>")
    return "\n".join(parts)


def _provenance(comparison: Comparison) -> str:
    rows = []
    for ds, name in zip(comparison.datasets, comparison.names, strict=True):
        a = ds.attrs
        rows.append(
            {
                "scenario": name,
                "years": f"{fy(base_year(ds))} to {fy(end_year(ds))}",
                "replications": a.get("replications", ""),
                "seed": a.get("seed", ""),
                "scenario sha256": str(a.get("scenario_sha256", ""))[:12],
                "specsim": a.get("specsim_version", ""),
                "data": a.get("data_version", ""),
            }
        )
    return _table(pd.DataFrame(rows))


def _national_html(comparison: Comparison) -> str:
    nat = comparison.national
    shown = pd.DataFrame(
        {
            "scenario": nat["scenario"],
            "year": nat["year"].map(plots.fy),
            "envelope £m": nat["envelope_gbp"].map(_money_m),
            "delegated £m": nat["delegated_gbp"].map(_money_m),
            "retained £m": nat["retained_gbp"].map(_money_m),
            "delegated %": (nat["delegated_share"] * 100).map("{:.1f}".format),
            "delegated change £m": nat["delegated_change_gbp"].map(_money_m),
            "retained change £m": nat["retained_change_gbp"].map(_money_m),
        }
    )
    return _table(shown)


def _icb_html(comparison: Comparison) -> str:
    table = comparison.icb.copy()
    for col in [c for c in table if c.startswith(("allocation ", "change ")) and "%" not in c]:
        table[col] = table[col].map(_money_m)
    table = table.rename(
        columns=lambda c: f"{c} £m" if c.startswith(("allocation ", "change ")) and "%" not in c
        else c
    )  # fmt: skip
    return _table(table.drop(columns=["year"]))


def _risk_html(comparison: Comparison) -> str:
    table = comparison.risk.copy()
    for col in [c for c in table if c.startswith("p_overspend")]:
        table[col] = (table[col] * 100).map("{:.1f}".format)
    for col in [c for c in table if c.startswith("expected_shortfall")]:
        table[col] = table[col].map(_money_m)
    table["population"] = table["population"].map("{:,.0f}".format)
    table = table.rename(
        columns=lambda c: (
            c.replace("p_overspend_", "P(overspend >")
            .replace("pct", "%) %")
            .replace("expected_shortfall", "expected shortfall £m")
        )
    )
    return _table(table.drop(columns=["year"]))


def _patients_html(comparison: Comparison) -> str:
    """Mean patients as whole numbers with thousands separators (suppressed cells stay *)."""
    table = comparison.patients.copy()
    if table.empty:
        return "<p>No patient counts.</p>"
    for col in [c for c in table if c.startswith("patients ")]:
        table[col] = table[col].map(lambda v: v if isinstance(v, str) else f"{v:,.0f}")
    return _table(table)


def _variations_table_html(comparison: Comparison, k: int, group: str) -> str:
    """Every ICB of scenario k in one need group against its benchmark, largest gap first."""
    table = comparison.variations
    rows = table[(table["scenario"] == comparison.names[k]) & (table["need_group"] == group)]
    rows = rows.sort_values("gap_gbp", ascending=False)
    names = dict(zip(table["icb"], table["icb_name"].map(short_icb_name), strict=False))
    money = "{:,.2f}".format
    shown = pd.DataFrame(
        {
            "ICB": rows["icb_name"].map(short_icb_name),
            "region": rows["region_name"],
            "patients per 1,000": rows["access_per_1000"].map("{:,.2f}".format),
            "£ per patient": rows["intensity_gbp"].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}"),
            "£ per head": rows["spend_per_head_gbp"].map(money),
            "benchmark £ per head": rows["benchmark_spend_per_head_gbp"].map(money),
            "gap £ per head": rows["gap_gbp"].map("{:+,.2f}".format),
            "of which access": rows["gap_access_gbp"].map("{:+,.2f}".format),
            "of which intensity": rows["gap_intensity_gbp"].map("{:+,.2f}".format),
            "benchmark ICBs": rows["benchmark_icbs"].map(
                lambda codes: ", ".join(names.get(c, c) for c in codes.split())
            ),
        }
    )
    return _table(shown, classes="peers")


def _variations_intro(comparison: Comparison) -> str:
    need = variations(comparison.datasets[0], _end(comparison)).attrs["benchmark_basis"]
    return (
        "<p>As in NHS England's Variations Tool, for each ICB and need group:</p><ul>"
        "<li><b>spend per head = access &times; intensity</b>: patients per head of "
        "population times spend per patient;</li>"
        "<li>against a <b>benchmark</b>: the five other ICBs with the most similar modelled "
        "need, their patients, spend and population pooled. Modelled need: "
        f"{html.escape(need)};</li>"
        "<li>the <b>gap</b> to the benchmark (£ per head) is split into an access part and an "
        "intensity part that add up to it: ln(spend ratio) = ln(access ratio) + "
        "ln(intensity ratio), each log part weighted by the logarithmic mean of the two "
        "spends per head.</li></ul>"
        f"<p>Spend and patients are the model's expected values in {fy(_end(comparison))}, "
        "delegated and retained services together, by ICB of residence. Every ICB and "
        "group: <code>variations.csv</code> (<code>--csv</code>), or in Python "
        "<code>sim.variations.variations(ds, year=..., portfolio=...)</code> and "
        "<code>sim.plots.access_intensity(ds, group=..., icb=...)</code>.</p>"
    )


def _variations_others(comparison: Comparison) -> str:
    """One sentence per other scenario: its view is drawn below, or is the reference's."""
    parts = []
    ref = html.escape(comparison.names[0])
    for k in range(1, len(comparison.datasets)):
        same, moved = comparison.variations_against(k)
        name = html.escape(comparison.names[k])
        if not same:
            parts.append(f"<p>{name} has other patients or spend: its view follows.</p>")
            continue
        text = f"<p>Under {name}, access, intensity and spend per head are the same as under {ref}"
        if moved:
            basis = variations(comparison.datasets[k], _end(comparison)).attrs["benchmark_basis"]
            text += (
                f"; its benchmark ICBs differ for {moved} ICBs, because the formula's "
                "modelled need differs (it depends on the formula and on the services each "
                f"scenario delegates; here: {html.escape(basis)}; see "
                "<code>variations.csv</code>)"
            )
        parts.append(text + ", so its view is not repeated.</p>")
    return "\n".join(parts)


def _variations_section(comparison: Comparison, figs: dict[str, str]) -> str:
    parts = ["<h2>Variations: access and intensity</h2>"]
    if comparison.variations.empty:
        return parts[0] + (
            "<p>These results have no spend and patients by need group (written by an "
            "earlier specsim): run the scenarios again to see this view.</p>"
        )
    parts += [_variations_intro(comparison), _variations_others(comparison)]
    for k in _variations_shown(comparison):
        for group in variation_groups(comparison):
            key = f"variations-{comparison.names[k]}-{group}"
            parts += [
                figs[key],
                f"<details><summary>Table: {html.escape(need_group_label(group))}, every ICB "
                f"against its benchmark, {fy(_end(comparison))} "
                f"({html.escape(comparison.names[k])})</summary>",
                _variations_table_html(comparison, k, group),
                "</details>",
            ]
    return "\n".join(parts)


def _shown(figs: dict[str, str], *prefixes: str) -> str:
    """The figures whose keys start with one of `prefixes`, in report order."""
    return "\n".join(v for k, v in figs.items() if k.startswith(prefixes))


def _intro(comparison: Comparison, title: str) -> str:
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in comparison.notes)
    return (
        f"<h1>{html.escape(title)}</h1>\n"
        f"<p>Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Reference scenario: "
        f"<b>{html.escape(comparison.names[0])}</b>; differences are the other scenarios "
        f"minus it. End year: {fy(_end(comparison))}. Money in cash terms.</p>\n"
        f"<div class='note'><b>Disclosure control.</b> {notes}</div>"
    )


def _headline_section(comparison: Comparison, figs: dict[str, str]) -> str:
    return "<h2>Headline</h2>\n" + _headline_html(comparison)


def _gains_section(comparison: Comparison, figs: dict[str, str]) -> str:
    return (
        "<h2>Who gains, who loses</h2>\n<p>The five ICBs whose delegated allocation changes "
        "most, in % of the reference allocation.</p>\n"
        + _gainers_losers_html(comparison)
        + "\n"
        + _shown(figs, "change-")
    )


def _budgets_section(comparison: Comparison, figs: dict[str, str]) -> str:
    return (
        "<h2>Delegated and retained budgets</h2>\n"
        + figs["delegated-vs-retained"]
        + "\n<details><summary>Table: national budgets by year (£ million)</summary>"
        + _national_html(comparison)
        + "</details>"
    )


def _distance_section(comparison: Comparison, figs: dict[str, str]) -> str:
    year = fy(_end(comparison))
    return (
        "<h2>Distance from target and allocation per head</h2>\n"
        + _shown(figs, "distance-", "per-head-")
        + f"\n<details><summary>Table: allocation and distance from target per ICB, {year}"
        + "</summary>"
        + _icb_html(comparison)
        + "</details>"
    )


def _national_risk_html(ds: xr.Dataset, name: str, year: int) -> str:
    """England's band of spend, its chance of overspending and how common ICBs' risk is."""
    if "national_spend_quantile" not in ds:
        return ""
    q = ds["national_spend_quantile"].sel(year=year)
    parts = []
    for portfolio in ("delegated", "retained"):
        one = q.sel(portfolio=portfolio)
        low, mid, high = (float(one.sel(quantile=p)) for p in (0.05, 0.5, 0.95))
        if mid <= 0:
            parts.append(f"{portfolio}: nothing spent")
            continue
        part = (
            f"{portfolio}: median {_money_bn(mid)}, 90% band {_money_bn(low)} to "
            f"{_money_bn(high)} ({(high - low) / mid:.0%} of the median)"
        )
        if "p_national_overspend" in ds:
            over = ds["p_national_overspend"].sel(year=year, threshold=0.0, portfolio=portfolio)
            part += f", {float(over):.0%} chance of spending more than its budget"
        parts.append(part)
    text = f"<p><b>{html.escape(name)}</b>, England's spend in {fy(year)}: {'; '.join(parts)}."
    common = ds["common_risk_share"].sel(year=year) if "common_risk_share" in ds else None
    if common is not None and bool(common.notnull().any()):
        text += (
            " Common share of the ICBs' risk (what moves with England's: growth, costs, "
            "national shocks, which no pooling between ICBs removes): "
            f"{float(common.min()):.0%} to {float(common.max()):.0%}, the rest is each ICB's "
            "own patients."
        )
    if "parameter_value" in ds and ds.sizes.get("parameter", 0):
        text += (
            " Parameters drawn per replicate: "
            + ", ".join(html.escape(str(p)) for p in ds["parameter"].values)
            + " (scenario file: 80% intervals)."
        )
    return text + "</p>"


def _sensitivity_html(ds: xr.Dataset, name: str, year: int) -> str:
    """The tornado's numbers: each parameter's rank correlation with England's spend by
    portfolio and with the ICBs' overspend (median and range)."""
    if "sensitivity_national_spend" not in ds:
        return ""
    national = ds["sensitivity_national_spend"].sel(year=year)
    overspend = ds["sensitivity_overspend"].sel(year=year)
    rows = [
        {
            "parameter": str(p),
            "England delegated": f"{float(national.sel(parameter=p, portfolio='delegated')):+.2f}",
            "England retained": f"{float(national.sel(parameter=p, portfolio='retained')):+.2f}",
            "ICB overspend, median": f"{float(overspend.sel(parameter=p).median()):+.2f}",
            "ICB overspend, range": f"{float(overspend.sel(parameter=p).min()):+.2f} to "
            f"{float(overspend.sel(parameter=p).max()):+.2f}",
        }
        for p in national["parameter"].values
    ]
    n = ds["sensitivity_national_spend"].attrs.get("replicates", "?")
    return (
        f"<p>{html.escape(name)}, {fy(year)}: partial rank correlations (each parameter's "
        f"Spearman correlation once the others' ranks are regressed out) over the first {n} "
        "replicates (standard error about 1 / &radic;n near 0).</p>" + _table(pd.DataFrame(rows))
    )


def _money_bn(x: float) -> str:
    return f"£{x / 1e9:,.1f}bn"


def _risk_section(comparison: Comparison, figs: dict[str, str]) -> str:
    year = _end(comparison)
    national = "".join(
        _national_risk_html(ds, name, year)
        for ds, name in zip(comparison.datasets, comparison.names, strict=True)
    )
    return (
        "<h2>Financial risk</h2>\n"
        + national
        + figs["overspend-by-size"]
        + _shown(figs, "tornado-")
        + f"\n<details><summary>Table: what drives spend and overspend, {fy(year)}</summary>"
        + "".join(
            _sensitivity_html(ds, name, year)
            for ds, name in zip(comparison.datasets, comparison.names, strict=True)
        )
        + "</details>"
        + f"\n<details><summary>Table: financial risk per ICB, {fy(year)}</summary>"
        + _risk_html(comparison)
        + "</details>"
    )


def _gap_html(ds: xr.Dataset, name: str, year: int) -> str:
    """Where expected delegated spend and allocation differ by more than GAP_SHOWN relative
    to England, and the named lever behind each (`sim.gaps`)."""
    if "spend_gap" not in ds:
        return ""
    gap = ds["spend_gap"].sel(year=year)
    total = gap.sum("gap_source", skipna=False)
    if int(total.notnull().sum()) == 0:
        return f"<p><b>{html.escape(name)}</b>: no ICB holds delegated services in {fy(year)}.</p>"
    largest = float(abs(total).max())
    cause = str(abs(gap).max("icb").idxmax("gap_source").values)
    head = (
        f"<p><b>{html.escape(name)}</b>, {fy(year)}: expected delegated spend over allocation, "
        f"relative to England's ratio, is within {largest:.2%} for every ICB (largest "
        f"contribution: {cause.replace('_', ' ')}).</p>"
    )
    shown = total.where(abs(total) > GAP_SHOWN, drop=True)
    if shown.sizes["icb"] == 0:
        return head
    rows = []
    for icb in shown.sortby(shown)["icb"].values:
        parts = gap.sel(icb=icb)
        lever = str(abs(parts).idxmax("gap_source").values)
        rows.append(
            {
                "ICB": short_icb_name(str(ds["icb_name"].sel(icb=icb).values)),
                "gap": f"{float(total.sel(icb=icb)):+.1%}",
                "main lever": lever.replace("_", " "),
                "its part": f"{float(parts.sel(gap_source=lever)):+.1%}",
            }
        )
    lead = f"<p>ICBs beyond {GAP_SHOWN:.0%}, and the lever that causes it:</p>"
    return head + lead + _table(pd.DataFrame(rows))


def _gap_section(comparison: Comparison, figs: dict[str, str]) -> str:
    year = _end(comparison)
    body = "".join(
        _gap_html(ds, name, year)
        for ds, name in zip(comparison.datasets, comparison.names, strict=True)
    )
    if not body:
        return ""
    return (
        "<h2>Expected spend against allocation, and why</h2>\n<p>With perfect calibration "
        "and no policy uplift the formula gives every ICB at target the same ratio of "
        "expected spend to allocation as England. Each gap below is traced to the lever "
        "that causes it: the calibration lag, a formula choice, a need term left out, a "
        "policy uplift, or the pace of change (<code>spend_gap</code> in the results).</p>" + body
    )


def _population_section(comparison: Comparison, figs: dict[str, str]) -> str:
    return "<h2>Population</h2>\n" + _shown(figs, "pyramid-")


def _patients_section(comparison: Comparison, figs: dict[str, str]) -> str:
    note = html.escape(comparison.patients.attrs.get("disclosure_note", ""))
    return (
        f"<h2>Patients ({fy(_end(comparison))}, mean over replicates)</h2>\n"
        + _patients_html(comparison)
        + f"\n<p><small>{note}</small></p>"
    )


def _provenance_section(comparison: Comparison, figs: dict[str, str]) -> str:
    return "<h2>Provenance</h2>\n" + _provenance(comparison)


SECTIONS = (
    _headline_section,
    _gains_section,
    _budgets_section,
    _distance_section,
    _gap_section,
    _variations_section,
    _risk_section,
    _population_section,
    _patients_section,
    _provenance_section,
)
"""The report's sections in order, each (comparison, encoded figures by key) -> HTML."""


def encode_figures(items: list[ReportFigure]) -> dict[str, str]:
    """Each figure as its HTML (PNG embedded), by key; every figure's memory is freed."""
    try:
        return {item.key: _img(item) for item in items}
    finally:
        for item in items:
            if item.figure is not None:
                item.figure.clear()


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def render_report(comparison: Comparison, title: str | None = None) -> str:
    """The report as one HTML string (figures as base64 PNG, styles inline)."""
    title = title or f"specsim comparison: {' vs '.join(comparison.names)}"
    figs = encode_figures(report_figures(comparison))
    sections = [_intro(comparison, title), *(section(comparison, figs) for section in SECTIONS)]
    return _page(title, "\n".join(sections))


def write_report(comparison: Comparison, path: str | Path, title: str | None = None) -> Path:
    """Write the HTML report atomically and return its path."""
    path = Path(path)
    text = render_report(comparison, title)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


def compare_files(
    paths: Sequence[str | Path],
    report: str | Path | None = None,
    csv_dir: str | Path | None = None,
    suppress_small_counts: bool = True,
) -> pd.DataFrame:
    """The CLI's `specsim compare`: open results files, write the report and CSVs if asked,
    and return the headline table to print."""
    comparison = compare(*[Path(p) for p in paths], suppress_small_counts=suppress_small_counts)
    if report is not None:
        write_report(comparison, report)
    if csv_dir is not None:
        comparison.to_csv(csv_dir)
    return comparison.headline
