"""Tests for sim.report: one self-contained HTML file whose every figure is a valid PNG,
checked by parsing and, when Chromium is installed, by rendering it headless."""

from __future__ import annotations

import base64
import html
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from test_compare import make_results

from sim import disclosure
from sim.comparison import compare
from sim.report import (
    _gainers_losers_html,
    _risk_caption,
    change_figures,
    distance_view,
    render_report,
    sensitivity_figures,
    uniform_change,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The report's figures for two scenarios, in the order of its sections.
FIGURES = [
    "change-reform",
    "delegated-vs-retained",
    "distance-baseline",
    "per-head-baseline",
    "distance-reform",
    "per-head-reform",
    "variations-baseline-cancer",
    "variations-baseline-renal",
    "variations-baseline-mental_health",
    "variations-reform-cancer",
    "variations-reform-renal",
    "variations-reform-mental_health",
    "overspend-by-size",
    "pyramid-baseline",
    "pyramid-reform",
]


class ReportParser(HTMLParser):
    """Collects figures, images, captions and anything that would load an external resource."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        self.images: list[dict[str, str]] = []
        self.captions: list[str] = []
        self.external: list[str] = []
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self.figures.append(a.get("id", ""))
        if tag == "img":
            self.images.append(a)
        if tag == "figcaption":
            self._in_caption = True
            self.captions.append("")
        if tag in ("link", "script", "iframe") or any(
            k in ("src", "href") and not str(v).startswith(("data:", "#")) for k, v in attrs
        ):
            self.external.append(f"{tag} {a}")

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self.captions[-1] += data


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, object]:
    base = make_results("baseline")
    small = base.copy(deep=True)
    small["patients_mean"].loc[{"portfolio": "retained", "icb": base["icb"].values[:2]}] = 4.0
    comparison = compare(small, make_results("reform", shift=0.05))
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(comparison, path)
    return path, comparison


def test_every_figure_is_an_embedded_png_with_alt_and_caption(report):
    path, _ = report
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    assert parser.figures == [f"fig-{key}" for key in FIGURES]
    assert len(parser.images) == len(FIGURES) == len(parser.captions)
    for img in parser.images:
        assert img["alt"].strip()
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        width, height = png_size(base64.b64decode(img["src"][len(prefix) :]))
        assert width >= 600 and height >= 300
    assert all(c.strip() for c in parser.captions)
    assert parser.external == []


def test_report_says_who_gains_and_loses_and_applies_disclosure(report):
    path, comparison = report
    text = path.read_text(encoding="utf-8")
    gainers, losers = comparison.gainers_losers(5)
    assert "Who gains, who loses" in text
    for name in list(gainers["icb_name"]) + list(losers["icb_name"]):
        assert name.removeprefix("NHS ") in text
    assert disclosure.FOOTNOTE.split(" (")[0] in text
    assert "<td>*</td>" in text


def test_report_with_suppression_switched_off_says_so(tmp_path):
    comparison = compare(make_results("baseline"), suppress_small_counts=False)
    text = write_report(comparison, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "SWITCHED OFF" in text
    assert "Only one scenario" in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = (
    "<script>window.addEventListener('load',()=>{for(const i of document.images)"
    "{i.setAttribute('data-rendered',i.complete&&i.naturalWidth>0?'yes':'no')}});</script>"
)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_every_figure_in_headless_chromium(report, tmp_path):
    """Chromium decodes each embedded PNG (naturalWidth > 0) with the network disabled."""
    path, _ = report
    probe = tmp_path / "probe.html"
    probe.write_text(
        path.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--virtual-time-budget=5000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    parser = ReportParser()
    parser.feed(result.stdout)
    assert len(parser.images) == len(FIGURES)
    assert [img.get("data-rendered") for img in parser.images] == ["yes"] * len(parser.images)


def test_transition_only_difference_is_shown_in_its_year(tmp_path):
    a = make_results("baseline")
    b = a.copy(deep=True)
    b.attrs["scenario_name"] = "transition"
    first, second = a["icb"].values[:2]
    b["allocation"].loc[{"year": 2026, "icb": first}] += 1_000_000
    b["allocation"].loc[{"year": 2026, "icb": second}] -= 1_000_000
    text = write_report(compare(a, b), tmp_path / "r.html").read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(text)
    changes = [f for f in parser.figures if f.startswith("fig-change-")]
    assert changes == ["fig-change-transition-2026"]  # no empty chart for the end year
    assert "In 2026/27 (the year the scenarios differ most)" in text


def test_distance_chart_shows_the_base_year_once_every_icb_has_converged():
    """An end year at target everywhere would be an empty chart: the base year is drawn and
    the caption names the year convergence completed; otherwise the end year is drawn."""
    ds = make_results("baseline")
    assert distance_view(ds) == (2028, "in the end year")
    converged = ds.copy(deep=True)
    converged["distance_from_target"].loc[{"year": [2026, 2027, 2028]}] = 0.0
    year, note = distance_view(converged)
    assert year == 2024
    assert "from 2026/27" in note


def test_patients_print_as_whole_numbers_with_thousands_separators(report):
    path, comparison = report
    text = path.read_text(encoding="utf-8")
    section = text[text.index("<h2>Patients") : text.index("<h2>Provenance")]
    value = comparison.patients["patients delegated"].iloc[0]
    assert value >= 1000 and f"<td>{value:,.0f}</td>" in section
    assert ".00</td>" not in section


def test_variations_section_explains_and_tables_every_icb(report):
    path, comparison = report
    text = path.read_text(encoding="utf-8")
    section = text[text.index("<h2>Variations") : text.index("<h2>Financial risk")]
    assert "access &times; intensity" in section and "five other ICBs" in section
    assert "reform has other patients or spend: its view follows." in section
    assert section.count("<details>") == 6  # a table per group and scenario shown
    table = section[section.index("<table") : section.index("</table>")]
    assert table.count("<tr>") == 42  # every ICB (the header row has a style)


def test_a_uniform_change_is_said_once_without_ranking_or_chart():
    a = make_results("baseline")
    b = a.copy(deep=True)
    b.attrs["scenario_name"] = "more"
    b["allocation"] = a["allocation"] * 1.1
    comparison = compare(a, b)
    said = uniform_change(comparison, 1, 2028)
    assert said.startswith("Every ICB's allocation in 2028/29 changes by +10.0% under more")
    assert change_figures(comparison) == []
    text = _gainers_losers_html(comparison)
    assert html.escape(said) in text and "ICBs that gain most" not in text
    assert uniform_change(compare(a, make_results("reform", shift=0.05)), 1, 2028) is None


def test_equal_allocations_per_head_are_said_not_drawn():
    ds = make_results("equal")
    ds["allocation"] = ds["weighted_population"] * 515.1385
    text = render_report(compare(ds))
    assert 'id="note-per-head-equal"' in text and "£515.14 per weighted head" in text
    assert 'id="fig-per-head-equal"' not in text


def test_captions_explain_the_90_plus_bar_and_the_spread_at_target():
    ds = make_results("baseline")
    ds["target_allocation"] = ds["allocation"]
    ds["distance_from_target"] = ds["distance_from_target"] * 0.0
    parser = ReportParser()
    parser.feed(render_report(compare(ds)))
    captions = dict(zip(parser.figures, parser.captions, strict=True))
    assert "pools everyone aged 90 and over" in captions["fig-pyramid-baseline"]
    assert "Every ICB is at its target" in captions["fig-per-head-baseline"]


def test_results_without_need_groups_say_so():
    ds = make_results("old").drop_vars(["expected_spend_by_group", "expected_patients_by_group"])
    text = render_report(compare(ds))
    assert "no spend and patients by need group" in text
    assert 'id="fig-variations-' not in text


def test_risk_caption_says_size_matters_only_when_it_does():
    """The synthetic risk falls with ICB size (rank correlation -1); shuffled across ICBs it
    does not, and the caption no longer claims that smaller ICBs carry more risk."""
    ds = make_results("baseline")
    assert "Smaller ICBs carry more relative risk." in _risk_caption(compare(ds))
    flat = ds.copy(deep=True)
    order = np.random.default_rng(3).permutation(42)
    flat["p_overspend_5pct"] = ds["p_overspend_5pct"].copy(
        data=ds["p_overspend_5pct"].values[:, order]
    )
    caption = _risk_caption(compare(flat))
    assert "Risk depends little on ICB size." in caption and "Smaller" not in caption


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """Two short real runs: the baseline (with its parameter intervals) and a health
    inequalities uplift, 40 replicates each."""
    import sim
    from sim.scenario import load_scenario

    root = Path(__file__).resolve().parents[1] / "scenarios"
    runs = []
    for name in ("baseline", "health_inequalities"):
        sc = load_scenario(root / f"{name}.toml")
        sc.time.end_year = 2027
        runs.append(sim.run(sc, replications=40, seed=9, progress=False))
    comparison = compare(*runs)
    return render_report(comparison), comparison


def test_report_names_the_lever_behind_each_spend_gap(real_report):
    text, _ = real_report
    section = text[text.index("Expected spend against allocation, and why") :]
    section = section[: section.index("<h2>")]
    assert "health inequalities" in section and "calibration lag" in section
    assert "ICBs beyond 2%" in section  # the uplift moves some ICBs past 2%


def test_report_gives_englands_band_the_common_share_and_a_tornado(real_report):
    text, comparison = real_report
    risk = text[text.index("<h2>Financial risk</h2>") :]
    assert "90% band" in risk and "Common share of the ICBs' risk" in risk
    assert "demand.growth_multiplier" in risk
    assert "Table: what drives spend and overspend" in risk and "ICB overspend, median" in risk
    keys = [item.key for item in sensitivity_figures(comparison)]
    assert keys == ["tornado-baseline", "tornado-health_inequalities"]
