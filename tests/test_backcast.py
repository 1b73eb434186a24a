"""The back-cast (`scripts/backcast.py`, `docs/backcast.md`): the model run from 2018/19
against the published national series, with stated tolerances.

What was measured (packaged data as of this commit; published growth 2018/19-2023/24 is
x1.458, 7.83% a year), and how each tolerance was chosen: wide enough for the plausible
alternatives listed (each measured with the script's own scenario), narrow enough that the
named wrong models fail.

- The full model's growth: 62.3% of the published log growth (4.80% a year). Band 50-80%.
  `[demand] growth_multiplier` 0.8 / 1.2 (the catalogue's rates scaled by a fifth) gives
  51.6% / 72.9%; the eleven projection variants 60.1-64.1%; the 2018 basis 62.5%. Outside:
  no non-demographic growth (9.1%) or growth 1.5 times the catalogue's (88.7%).
- The same from 2019/20, after the published series' jump: 84.2%. Band 65-105%. The
  multiplier 0.8 / 1.2 gives 69.8% / 98.7%, the variants 80.6-87.2%, and reading "about
  £20bn" as £19.5bn / £20.5bn 76% / 95%. Outside: no non-demographic growth (12.0%), or
  the multiplier 1.5 (120%).
- Demography alone: 9.1% of the published log growth. Band 5-14%: the variants give 6.9%
  (low population) to 10.9% (high population), the 2018 basis 9.3%. Outside: demography
  off (0) or every service on the steep general-and-acute curve (16.7%).
- Demography a year: 0.69%, of which age and sex structure +0.01 points. Bands 0.40-1.00%
  a year and +-0.10 points: the variants give 0.52-0.83% and -0.03..+0.04 points.
  Outside: the steep curve (1.26% a year, structure +0.58 points) or no demography.
- Non-demographic growth: 53.2% of the published log growth. Band 40-70%: the multiplier
  0.8 / 1.2 gives 42.5% / 63.8%; the variants move it by less than 0.1 point. Outside:
  none (0) or 1.5 times (79.6%).
- Levels: the model's 2018/19 is 1.193 times the published 17,151. Band 1.12-1.28. The
  level is the catalogue deflated by its own rates (no multiplier or variant moves it);
  deflating at the catalogue's rates x0.8 / x1.2 would give 1.240 / 1.149, deflating at
  the published growth 1.0 and not deflating 1.458. Its 2023/24 is 3.52% above 25,000,
  which is the demography path's growth 2018/19-2023/24 (3.48%; the two differ only by
  the weights of the services): equal within 0.1 point. With a multiplier other than 1
  the deflation and the growth no longer cancel and that fails (0.8 gives -0.5%). With
  base year 2023 the calibration gives 25,000 (measured to 1e-15).
- New treatments: none before 2024/25 (the packaged pipeline starts then; measured 0).
- The formula does not feed expected spend: the back-cast's `calibration = "perfect"` and
  the lagged calibration with no lags give the same expected spend (measured 0 apart).
- The multipliers the page quotes reproduce the published growth (bisection, 14 steps).

The back-cast starts in the first year of the packaged population; that the packaged
data have no earlier year is tested in tests/test_reference.py, and here that
sim/data/README.md says why. Finally the page's tables must be what the script writes now
(regenerate with `.venv/bin/python scripts/backcast.py`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.population import coverage
from sim.reference import load_data
from sim.simulate import deterministic_path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("backcast", ROOT / "scripts" / "backcast.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["backcast"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


backcast = _script()


@pytest.fixture(scope="module")
def bc():
    return backcast.run()


@pytest.fixture(scope="module")
def parts(bc):
    return backcast.shares(bc)


def per_year(bc, column: str, start: int = backcast.FIRST) -> float:
    return backcast.cagr(backcast.growth(bc.paths[column], start), backcast.LAST - start)


def test_the_backcast_starts_in_the_first_year_with_population() -> None:
    assert backcast.FIRST == coverage(load_data().dataset, 2022)[0] == 2018


def test_the_data_readme_says_why_there_are_no_earlier_years() -> None:
    text = " ".join((ROOT / "sim" / "data" / "README.md").read_text(encoding="utf-8").split())
    assert "mid-year estimates 2000-2017, is not packaged" in text
    assert "repeats the mid-2018 population in all 18 years" in text


def test_published_growth_is_the_sources(bc) -> None:
    assert backcast.growth(bc.paths["published"]) == pytest.approx(25_000 / 17_151)
    assert bc.paths.loc[backcast.CONTEXT_START : backcast.FIRST - 1, "full"].isna().all()


def test_model_growth_is_within_its_band_of_the_published(bc, parts) -> None:
    assert 0.50 <= parts["**the model**"] <= 0.80
    assert 0.65 <= backcast.shares(bc, backcast.LATER_BASIS)["**the model**"] <= 1.05


def test_demography_explains_what_was_measured(parts) -> None:
    assert 0.05 <= parts["**demography**"] <= 0.14


def test_demography_follows_the_headcount(bc) -> None:
    assert 0.004 <= per_year(bc, "demography") <= 0.010
    structure = (1 + per_year(bc, "demography")) / (1 + per_year(bc, "size")) - 1
    assert abs(structure) <= 0.001


def test_non_demographic_growth_share(parts) -> None:
    assert 0.40 <= parts["non-demographic growth"] <= 0.70


def test_parts_multiply_to_the_published_growth(parts) -> None:
    assert parts["**the model**"] + parts["**unexplained**"] == pytest.approx(1.0)
    assert parts["population size"] + parts["age and sex structure"] == pytest.approx(
        parts["**demography**"]
    )
    named = ["**demography**", "non-demographic growth", "new treatments (CPAG)"]
    assert sum(parts[name] for name in named) == pytest.approx(parts["**the model**"])


def test_levels(bc) -> None:
    p, first, last = bc.paths, backcast.FIRST, backcast.LAST
    assert 1.12 <= p.loc[first, "full"] / p.loc[first, "published"] <= 1.28
    demography = backcast.growth(p["demography"])
    assert p.loc[last, "full"] / 25_000 == pytest.approx(demography, abs=1e-3)
    assert bc.base_2023_check == pytest.approx(25_000, rel=1e-9)


def test_no_new_treatments_before_the_pipeline(bc) -> None:
    p = bc.paths.loc[backcast.FIRST : backcast.LAST]
    assert (p["full"] / p["no_new_treatments"] - 1).abs().max() <= 1e-12
    assert bc.paths.loc[2030, "full"] > bc.paths.loc[2030, "no_new_treatments"]


def test_switching_everything_off_holds_spend(bc) -> None:
    nothing = bc.paths["nothing"].dropna()
    assert (nothing / nothing.loc[backcast.FIRST] - 1).abs().max() < 1e-9


def test_the_formula_calibration_does_not_move_expected_spend() -> None:
    data = load_data()
    end = {"end_year": backcast.LAST}
    perfect = deterministic_path(backcast.scenario(time=end), data)
    lagged = backcast.scenario(
        time=end,
        allocation={"calibration": "lagged", "data_lag_years": 0, "split_lag_years": 0},
    )
    other = deterministic_path(lagged, data)
    assert not np.array_equal(perfect["target_share"], other["target_share"])
    assert float(abs(perfect["expected_spend"] - other["expected_spend"]).max()) < 1.0


@pytest.mark.parametrize("start", [backcast.FIRST, backcast.LATER_BASIS])
def test_the_quoted_multipliers_reproduce_the_published_growth(bc, start) -> None:
    multiplier = bc.matching_multiplier[start]
    path = backcast.scenario(
        "no_new_treatments",
        time={"end_year": backcast.LAST},
        demand={"growth_multiplier": multiplier},
    )
    model = backcast.national_gbp_m(deterministic_path(path, load_data()))
    published = backcast.growth(bc.paths["published"], start)
    assert backcast.growth(model, start) == pytest.approx(published, rel=1e-3)


def test_the_page_is_what_the_script_writes(bc) -> None:
    page = backcast.doc_blocks(backcast.DOC.read_text(encoding="utf-8"))
    fresh = backcast.render(bc)
    for name, body in fresh.items():
        assert page[name] == body, (
            f"docs/backcast.md block '{name}' is stale: run .venv/bin/python scripts/backcast.py"
        )


def test_the_figure_draws(bc) -> None:
    fig = backcast.figure(bc)
    assert len(fig.axes) == 2
    assert (ROOT / "docs" / "figures" / "backcast.png").is_file()
