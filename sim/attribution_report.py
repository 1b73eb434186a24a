"""The attribution as a self-contained HTML page (`specsim explain ... --report FILE`).

One file, figures embedded, no external resources, like the comparison report
(`sim.report`, whose style and figure type it shares). `explanation_figures` and
`explanation_html` are the parts another report can include: the England waterfall, one
per chosen ICB, and the tables.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sim import plots
from sim.atomic import atomic_path
from sim.attribution import MEASURES, Explanation
from sim.report import STYLE, ReportFigure, figure_to_png
from sim.years import financial_year as fy

DEFAULT_ICBS = 5
"""ICBs shown when none are chosen: those whose allocation changes most."""


def chosen_icbs(
    explanation: Explanation, icbs: Sequence[str] = (), year: int | None = None
) -> list[str]:
    """E54 codes of the ICBs to show: those named (code, ODS code or name), else the
    `DEFAULT_ICBS` whose allocation changes most in `year`."""
    return explanation.icbs(icbs) if icbs else explanation.biggest(DEFAULT_ICBS, year)


def explanation_figures(
    explanation: Explanation, icbs: Sequence[str] = (), year: int | None = None
) -> list[ReportFigure]:
    """England's waterfall, then one per ICB (E54 codes), for `year` (default: the last)."""
    year = explanation.year(year)
    a, b = explanation.names
    items = [
        ReportFigure(
            "explain-england",
            plots.waterfall(explanation, year=year),
            f"Waterfall charts of England's change from {a} to {b} by factor",
            f"England, {fy(year)}: the change from {a} to {b} in the delegated allocation, "
            "the target allocation and expected delegated spend, step by step by factor.",
        )
    ]
    for code in icbs:
        name = _name(explanation, code)
        items.append(
            ReportFigure(
                f"explain-{code}",
                plots.waterfall(explanation, icb=code, year=year),
                f"Waterfall charts of {name}'s change from {a} to {b} by factor",
                f"{name}, {fy(year)}: the same split for this ICB.",
            )
        )
    return items


def _name(explanation: Explanation, code: str) -> str:
    from sim.accessor import short_icb_name

    return short_icb_name(str(explanation.dataset["icb_name"].sel(icb=code).values))


def _figure(item: ReportFigure) -> str:
    data = base64.b64encode(figure_to_png(item.figure)).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(item.key)}">'
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(item.alt)}">'
        f"<figcaption>{html.escape(item.caption)}</figcaption></figure>"
    )


def _millions(frame: pd.DataFrame, skip: Sequence[str]) -> pd.DataFrame:
    """Pounds shown as £m with one decimal (the CSV keeps whole pounds)."""
    shown = frame.copy()
    for column in shown.columns:
        if column not in skip:
            shown[column] = shown[column].map(lambda v: f"{v / 1e6:,.1f}")
    return shown


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="")


def all_icbs_table(explanation: Explanation, year: int | None = None) -> pd.DataFrame:
    """Every ICB's change in `year` per measure (£, whole pounds), with its largest factor."""
    year = explanation.year(year)
    ds = explanation.dataset.sel(year=year)
    total = explanation.total().sel(year=year)
    switched = list(explanation.switched)
    frame = pd.DataFrame({"ICB": ds["icb_name"].values, "region": ds["region_name"].values})
    for measure in MEASURES:
        frame[f"{measure} change £m"] = total.sel(measure=measure).values / 1e6
    if switched:
        parts = ds["attribution"].sel(measure="allocation", factor=switched)
        largest = abs(parts).argmax("factor").values
        frame["largest factor (allocation)"] = [switched[k] for k in largest]
    return frame.sort_values("allocation change £m", key=abs, ascending=False)


def explanation_html(
    explanation: Explanation, icbs: Sequence[str] = (), year: int | None = None
) -> str:
    """The explanation's sections (headings, notes, figures and tables) as HTML."""
    year = explanation.year(year)
    figures = explanation_figures(explanation, icbs, year)
    try:
        shown = [_figure(item) for item in figures]
    finally:
        for item in figures:  # free each figure's memory once encoded
            item.figure.clear()
    a, b = explanation.names
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in explanation.notes(year))
    summary = _millions(explanation.summary(year, icbs), skip=("area", "measure"))
    wide = all_icbs_table(explanation, year).round(2)
    parts = [
        f"<h2>What is split ({fy(year)})</h2><ul>{notes}</ul>",
        "<h2>England</h2>",
        shown[0],
        f"<h2>ICBs</h2><p>{'Chosen ICBs' if icbs else 'The ICBs whose allocation changes most'}"
        f" ({len(icbs)}); every ICB is in the table below and in attribution.csv.</p>",
        *shown[1:],
        f"<h2>Table: {html.escape(b)} minus {html.escape(a)}, £ million</h2>",
        _table(summary),
        "<details><summary>Every ICB: change per measure and the factor that moves its "
        "allocation most</summary>",
        _table(wide),
        "</details>",
    ]
    return "\n".join(parts)


def render_explanation(
    explanation: Explanation, icbs: Sequence[str] = (), year: int | None = None
) -> str:
    """The whole HTML page."""
    a, b = explanation.names
    title = f"specsim explain: why {b} differs from {a}"
    body = explanation_html(explanation, icbs, year)
    stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Generated {stamp}. A = <b>{html.escape(a)}</b>, "
        f"B = <b>{html.escape(b)}</b>; money in cash terms. Method: see docs/explain.md.</p>"
        f"{body}</body></html>"
    )


def write_explanation_report(
    explanation: Explanation,
    path: str | Path,
    icbs: Sequence[str] = (),
    year: int | None = None,
) -> Path:
    """Write the page atomically and return its path."""
    path = Path(path)
    text = render_explanation(explanation, icbs, year)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
