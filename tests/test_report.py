"""Tests for sim.report: one self-contained HTML file whose every figure is a valid PNG,
checked by parsing and, when Chromium is installed, by rendering it headless."""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_compare import make_results

from sim import disclosure
from sim.comparison import compare
from sim.report import distance_view, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The report's figures for two scenarios, in the order of its sections.
FIGURES = [
    "change-reform",
    "delegated-vs-retained",
    "distance-baseline",
    "per-head-baseline",
    "distance-reform",
    "per-head-reform",
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
