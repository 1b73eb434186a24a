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
from sim.accessor import base_year, end_year, short_icb_name
from sim.atomic import atomic_path
from sim.comparison import Comparison, compare
from sim.years import financial_year as fy

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
"""


@dataclass
class ReportFigure:
    """A figure as it appears in the report: id, alt text and caption for readers."""

    key: str
    figure: Figure
    alt: str
    caption: str


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _img(item: ReportFigure) -> str:
    data = base64.b64encode(figure_to_png(item.figure)).decode("ascii")
    return (
        f'<figure id="fig-{re.sub(r"[^A-Za-z0-9_-]+", "-", item.key)}">'
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
    if float(gap.sel(year=years[-1])) > 1e-9:
        return years[-1], "in the end year"
    converged = next(y for y in years if float(gap.sel(year=y)) <= 1e-9)
    return years[0], f"in the base year (every ICB is at target from {fy(converged)})"


def report_figures(comparison: Comparison) -> list[ReportFigure]:
    """Every figure of the report, in order."""
    ds_list = comparison.datasets
    ref = ds_list[0]
    names = comparison.names
    items = [
        ReportFigure(
            "delegated-vs-retained",
            plots.delegated_vs_retained(ds_list),
            "Line chart of national delegated and retained budgets by year for each scenario",
            "Delegated (sum of ICB allocations) and retained (NHS England) budgets by year, "
            "with mean simulated spend and its 90% range across replicates.",
        )
    ]
    for k, (ds, name) in enumerate(zip(ds_list[1:], names[1:], strict=True), start=1):
        for year in change_years(comparison, k):
            if all(t.empty for t in comparison.gainers_losers(1, against=k, year=year)):
                continue  # no ICB changes that year: the text says so, an empty chart adds nothing
            items.append(
                ReportFigure(
                    f"change-{name}" + ("" if year == _end(comparison) else f"-{year}"),
                    plots.allocation_change(ref, ds, year=year),
                    f"Bar chart of the % change in each ICB's allocation in {fy(year)}, "
                    f"{name} vs {names[0]}",
                    f"Who gains and who loses: change in each ICB's delegated allocation in "
                    f"{fy(year)} under {name} compared with {names[0]}.",
                )
            )
    for ds, name in zip(ds_list, names, strict=True):
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
        items.append(
            ReportFigure(
                f"per-head-{name}",
                plots.allocation_per_head(ds),
                f"Sorted bar chart of allocation per weighted head per ICB under {name}",
                f"Delegated allocation per weighted head of population in the end year ({name}).",
            )
        )
    items.append(
        ReportFigure(
            "overspend-by-size",
            plots.overspend_by_size(ds_list),
            "Scatter plot of overspend probability against ICB population size",
            "Probability that an ICB overspends its delegated budget by more than 5% in the "
            "end year, against its population: smaller ICBs carry more relative risk.",
        )
    )
    for ds, name in zip(ds_list, names, strict=True):
        items.append(
            ReportFigure(
                f"pyramid-{name}",
                plots.population_pyramid(ds),
                f"Population pyramid for England, base and end year, under {name}",
                f"England population by sex and age: base year (outline) and end year "
                f"(filled) under {name}.",
            )
        )
    return items


def _money_m(x: float) -> str:
    return "" if pd.isna(x) else f"{x / 1e6:,.1f}"


def _signed_money(x: float) -> str:
    """-27.8e6 -> '-£27.8m' (the sign before the pound sign, as analysts write it)."""
    return f"{'-' if x < 0 else '+'}£{abs(x) / 1e6:,.1f}m"


def _headline_html(comparison: Comparison) -> str:
    """The headline table with each row in its own format (years, counts, £m, %)."""
    shown = comparison.headline.astype(object).copy()
    for metric, row in comparison.headline.iterrows():
        if metric.startswith(("number", "ICBs")):
            shown.loc[metric] = [f"{v:,.0f}" for v in row]
        else:
            shown.loc[metric] = [f"{v:,.1f}" for v in row]
    return _table(shown, index=True)


def _table(frame: pd.DataFrame, index: bool = False) -> str:
    return frame.to_html(index=index, na_rep="", border=0, float_format=lambda v: f"{v:,.2f}")


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
    gainers, losers = comparison.gainers_losers(5, against=k, year=year)
    parts = []
    for label, table, css in (("gain most", gainers, "gain"), ("lose most", losers, "lose")):
        if table.empty:
            parts.append(f"<p>No ICB's allocation {label.split()[0]}s.</p>")
            continue
        rows = "".join(
            f"<li><b>{html.escape(short_icb_name(str(r['icb_name'])))}</b> "
            f"({html.escape(str(r['region_name']))}): "
            f"<span class='{css}'>{r[f'change % {name}']:+.1f}%</span>, "
            f"{_signed_money(r[f'change {name}'])} a year</li>"
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


def render_report(comparison: Comparison, title: str | None = None) -> str:
    """The report as one HTML string (figures as base64 PNG, styles inline)."""
    names = comparison.names
    title = title or f"specsim comparison: {' vs '.join(names)}"
    figures = report_figures(comparison)
    try:
        figs_html = {item.key: _img(item) for item in figures}
    finally:
        for item in figures:  # free the figures' memory as soon as they are encoded
            item.figure.clear()
    year = fy(int(comparison.icb["year"].iloc[0]))
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in comparison.notes)
    patients = comparison.patients
    patients_html = _table(patients) if not patients.empty else "<p>No patient counts.</p>"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Reference scenario: "
        f"<b>{html.escape(names[0])}</b>; differences are the other scenarios minus it. "
        f"End year: {year}. Money in cash terms.</p>",
        f"<div class='note'><b>Disclosure control.</b> {notes}</div>",
        "<h2>Headline</h2>",
        _headline_html(comparison),
        "<h2>Who gains, who loses</h2>",
        "<p>The five ICBs whose delegated allocation changes most, in % of the reference "
        "allocation.</p>",
        _gainers_losers_html(comparison),
        *[figs_html[f.key] for f in figures if f.key.startswith("change-")],
        "<h2>Delegated and retained budgets</h2>",
        figs_html["delegated-vs-retained"],
        "<details><summary>Table: national budgets by year (£ million)</summary>",
        _national_html(comparison),
        "</details>",
        "<h2>Distance from target and allocation per head</h2>",
        *[figs_html[f.key] for f in figures if f.key.startswith(("distance-", "per-head-"))],
        f"<details><summary>Table: allocation and distance from target per ICB, {year}</summary>",
        _icb_html(comparison),
        "</details>",
        "<h2>Financial risk</h2>",
        figs_html["overspend-by-size"],
        f"<details><summary>Table: financial risk per ICB, {year}</summary>",
        _risk_html(comparison),
        "</details>",
        "<h2>Population</h2>",
        *[figs_html[f.key] for f in figures if f.key.startswith("pyramid-")],
        f"<h2>Patients ({year}, mean over replicates)</h2>",
        patients_html,
        f"<p><small>{html.escape(patients.attrs.get('disclosure_note', ''))}</small></p>",
        "<h2>Provenance</h2>",
        _provenance(comparison),
    ]
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


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
