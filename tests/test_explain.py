"""Attribution (`sim.explain`, `specsim explain`): the factors add up to the pound, each
factor alone reproduces a hand-worked case, a scenario against itself gives zeros, and bad
input is one line and exit code 2.

Short horizons (three years) keep every explanation to a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from sim import plots
from sim.atomic import write_netcdf
from sim.attribution import (
    CSV_COLUMNS,
    ENGLAND,
    FACTORS,
    Side,
    attribute,
    explain,
    one_at_a_time,
    shapley,
    split_pounds,
)
from sim.cli import app
from sim.errors import SpecsimError
from sim.experiment import run
from sim.plan import PopulationInput, plan_of_population, scenario_population
from sim.provenance import scenario_from_text
from sim.reference import load_data
from sim.scenario import Scenario, load_scenario
from sim.simulate import deterministic_of_plan

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
END = 2026
runner = CliRunner()


@pytest.fixture(scope="module")
def data():
    return load_data()


def short(name: str, parent: str = "baseline", **sections) -> Scenario:
    """`parent` from the library, 2024..2026, with `sections` overlaid."""
    body = {"extends": f"{parent}.toml", "name": name, "time": {"end_year": END}, **sections}
    return Scenario.from_dict(body, path=SCENARIOS / f"{name}.toml")


def own_path(scenario: Scenario, data, population: PopulationInput | None = None):
    """A scenario's deterministic path computed directly, for independent checks."""
    population = population if population is not None else scenario_population(scenario, data)
    return deterministic_of_plan(scenario, plan_of_population(scenario, data, population))


def measures(ds: xr.Dataset) -> xr.DataArray:
    """(measure, year, icb) the three measures of a deterministic path."""
    spend = ds["expected_spend"].sel(portfolio="delegated", drop=True)
    parts = [ds["allocation"], ds["target_allocation"], spend]
    names = ["allocation", "target_allocation", "expected_spend"]
    return xr.concat(parts, dim=pd.Index(names, name="measure")).transpose("measure", "year", "icb")


def scaled(population: PopulationInput, factor) -> PopulationInput:
    factor = np.asarray(factor, float)
    factor = factor[:, None, None] if factor.ndim else factor
    before = {year: people * factor for year, people in population.before.items()}
    return PopulationInput(population.path * factor, before)


def assert_exact(explanation) -> None:
    """Every ICB's factors add up to B - A to the pound; England is the sum of the ICBs."""
    ds = explanation.dataset
    assert ds["attribution"].dtype == np.int64 and ds["level"].dtype == np.int64
    assert (ds["attribution"].sum("factor") == explanation.total()).all()
    table = explanation.table()
    england = table[table["icb"] == ENGLAND[0]].set_index(["measure", "factor"])["value_gbp"]
    icbs = table[table["icb"] != ENGLAND[0]].groupby(["measure", "factor"])["value_gbp"].sum()
    pd.testing.assert_series_equal(england.sort_index(), icbs.sort_index(), check_names=False)


# ---- the arithmetic, on hand-worked games --------------------------------------------------


def test_shapley_and_one_at_a_time_on_a_hand_worked_game():
    # v(none) = 0, v(x) = 1, v(y) = 2, v(x, y) = 5: x and y together add 2 more
    game = {0: np.array(0.0), 1: np.array(1.0), 2: np.array(2.0), 3: np.array(5.0)}
    assert shapley(game.__getitem__, 2).tolist() == [2.0, 3.0]  # 1 + 2/2, 2 + 2/2
    assert one_at_a_time(game.__getitem__, 2).tolist() == [1.0, 2.0, 2.0]  # + interaction
    # relabelling the factors relabels their values: the split does not depend on order
    swapped = {0: game[0], 1: game[2], 2: game[1], 3: game[3]}
    assert shapley(swapped.__getitem__, 2).tolist() == [3.0, 2.0]
    # three symmetric factors that only count together share equally
    glove = {s: np.array(float(s == 7)) for s in range(8)}
    assert np.allclose(shapley(glove.__getitem__, 3), 1 / 3)


def test_split_pounds_adds_up_exactly_and_stays_within_a_pound():
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1e6, size=(500, 4))
    for offset in (0, -1, 1):  # the whole-pound total may sit a pound off the float sum
        total = np.rint(values.sum(axis=1)).astype(np.int64) + offset
        out = split_pounds(values, total)
        assert out.dtype == np.int64
        assert (out.sum(axis=1) == total).all()
        assert np.abs(out - values).max() < 2
    exact = np.array([[3.0, -2.0, 0.0]])
    assert split_pounds(exact, np.array([1])).tolist() == [[3, -2, 0]]
    assert split_pounds(np.zeros((2, 0)), np.zeros(2)).shape == (2, 0)


# ---- hand-worked cases: each factor alone ------------------------------------------------


def test_a_scenario_against_itself_gives_zeros(data):
    a = short("a")
    explanation = explain(a, short("a"), data=data)
    assert explanation.switched == ()
    assert (explanation.dataset["attribution"] == 0).all()
    assert (explanation.table()["value_gbp"] == 0).all()


def test_ten_percent_more_people_everywhere_changes_nothing(data):
    """Demand is calibrated to national catalogue spend and the envelope is fixed, so only
    relative sizes matter: a uniform 10% more people moves no pound."""
    a = short("a")
    people = scenario_population(a, data)
    explanation = attribute(Side(a, people), Side(a, scaled(people, 1.1)), data)
    assert explanation.switched == ("population_size",)
    assert (explanation.total() == 0).all()


def test_one_icb_growing_is_all_population_size_and_the_direct_difference(data):
    a = short("a")
    people = scenario_population(a, data)
    grow = np.ones(people.path.shape[1])
    grow[5] = 1.1  # one ICB has 10% more people, same age/sex mix
    bigger = scaled(people, grow)
    explanation = attribute(Side(a, people), Side(a, bigger), data)
    assert explanation.switched == ("population_size",)
    assert_exact(explanation)
    attribution = explanation.dataset["attribution"]
    direct = measures(own_path(a, data, bigger)) - measures(own_path(a, data, people))
    size = attribution.sel(factor="population_size")
    assert (size.sel(measure=["allocation", "target_allocation"]) == direct[:2]).all()
    assert float(abs(size.sel(measure="expected_spend") - direct[2]).max()) <= 1.0
    assert (attribution.drop_sel(factor="population_size") == 0).all()
    # the ICB gains, every other ICB gives way, England's target barely moves
    target = size.sel(measure="target_allocation", year=END)
    assert target.isel(icb=5) > 20e6
    assert (target.drop_isel(icb=5) < 0).all()
    level = explanation.dataset["level"].sel(side="a", measure="target_allocation", year=END)
    assert abs(float(target.sum())) < 1e-5 * float(level.sum())


def test_age_structure_alone_is_all_age_sex_structure(data):
    a, older = short("a"), short("older", "older_population")
    mine, theirs = scenario_population(a, data), scenario_population(older, data)

    def resized(shares: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        return (
            shares
            / shares.sum(axis=(-2, -1), keepdims=True)
            * sizes.sum(axis=(-2, -1), keepdims=True)
        )

    before = {y: resized(theirs.before[y], mine.before[y]) for y in mine.before}
    b = PopulationInput(resized(theirs.path, mine.path), before)
    explanation = attribute(Side(a, mine), Side(a, b), data)
    assert explanation.switched == ("age_sex_structure",)
    assert_exact(explanation)
    direct = measures(own_path(a, data, b)) - measures(own_path(a, data, mine))
    structure = explanation.dataset["attribution"].sel(factor="age_sex_structure")
    assert (structure.sel(measure="allocation") == direct.sel(measure="allocation")).all()


def test_a_larger_envelope_scales_allocations_and_is_all_envelope_growth(data):
    """10% more money from the base year (no CPAG, so no extra treatments): every
    allocation and target is 10% larger, to the pound, and expected spend does not move."""
    a = short("a", cpag={"enabled": False})
    b = short("b", cpag={"enabled": False}, envelope={"base_gbp": 26.5e9 * 1.1})
    explanation = explain(a, b, data=data)
    assert explanation.switched == ("envelope_growth",)
    assert explanation.fields["envelope_growth"] == ["envelope.base_gbp"]
    level = explanation.dataset["level"].sel(measure=["allocation", "target_allocation"])
    assert float(abs(level.sel(side="b") - 1.1 * level.sel(side="a")).max()) <= 1.0
    assert (explanation.total().sel(measure="expected_spend") == 0).all()


def test_convergence_alone_is_the_direct_difference(data):
    base, fast = short("base"), short("fast", "fast_convergence")
    explanation = explain(base, fast, data=data)
    assert explanation.switched == ("convergence",)
    assert set(explanation.fields["convergence"]) == {
        "convergence.gap_closure",
        "convergence.max_below_target",
    }
    direct = measures(own_path(fast, data)) - measures(own_path(base, data))
    convergence = explanation.dataset["attribution"].sel(factor="convergence")
    assert (convergence.sel(measure="allocation") == direct.sel(measure="allocation")).all()
    assert (convergence.sel(measure=["target_allocation", "expected_spend"]) == 0).all()
    # the levels are the paths' own whole pounds
    level = explanation.dataset["level"].sel(side="b", measure="allocation")
    assert (level == fast_allocation(fast, data)).all()


def fast_allocation(scenario: Scenario, data) -> xr.DataArray:
    return own_path(scenario, data)["allocation"].transpose("year", "icb")


def test_two_factors_split_as_the_four_corner_scenarios_say(data):
    """Shapley by hand from four independently computed scenarios: convergence's share is
    the mean of its effect without and with the health inequalities adjustment."""
    hi = {"allocation": {"health_inequalities": True}}
    corners = {
        "none": short("c0"),
        "conv": short("c1", "fast_convergence"),
        "need": short("c2", **hi),
        "both": short("c3", "fast_convergence", **hi),
    }
    v = {k: measures(own_path(s, data)).astype(float) for k, s in corners.items()}
    explanation = explain(corners["none"], corners["both"], data=data)
    assert explanation.switched == ("need_adjustments", "convergence")
    assert_exact(explanation)
    by_hand = {
        "convergence": ((v["conv"] - v["none"]) + (v["both"] - v["need"])) / 2,
        "need_adjustments": ((v["need"] - v["none"]) + (v["both"] - v["conv"])) / 2,
    }
    for factor, expected in by_hand.items():
        got = explanation.dataset["attribution"].sel(factor=factor)
        assert float(abs(got - expected).max()) < 1.0
    # one at a time: each alone from A, the rest is the interaction
    oat = explain(corners["none"], corners["both"], method="one-at-a-time", data=data)
    assert oat.switched == ("need_adjustments", "convergence", "interaction")
    assert_exact(oat)
    alone = oat.dataset["attribution"].sel(factor="convergence", measure="allocation")
    assert float(abs(alone - (v["conv"] - v["none"]).sel(measure="allocation")).max()) < 1.0
    # and explaining A against B is minus B against A (to within a pound of rounding)
    back = explain(corners["both"], corners["none"], data=data)
    gap = back.dataset["attribution"] + explanation.dataset["attribution"]
    assert int(abs(gap).max()) <= 1


def test_delegation_and_mergers_are_exact_on_the_merged_footprint(data):
    base = short("base")
    full = explain(base, short("full", "full_delegation"), data=data)
    assert full.switched == ("delegation",)
    assert_exact(full)
    delegated = full.dataset["attribution"].sel(factor="delegation", year=END).sum("icb")
    assert delegated.sel(measure="expected_spend") > 1e9  # services move to ICBs in 2026
    merged = explain(base, short("merged", "icb_mergers_2026"), data=data)
    assert merged.switched == ("mergers",)
    assert merged.dataset.sizes["icb"] == 36
    assert_exact(merged)
    # moving ICBs onto 36 changes no national target; the delegated allocation only by
    # the mix of merged ICBs' delegated shares (pounds, not millions)
    national = merged.total().sum("icb")
    assert (national.sel(measure="target_allocation") == 0).all()
    assert float(abs(national.sel(measure="allocation")).max()) < 1e5


def test_differences_no_factor_covers_are_refused(data):
    with pytest.raises(SpecsimError, match=r"different years \(time.end_year"):
        explain(short("a"), short("b", time={"end_year": END + 1}), data=data)
    with pytest.raises(SpecsimError, match="demand.high_cost_cases, which is not one of"):
        explain(short("a"), short("b", demand={"high_cost_cases": False}), data=data)
    # a mix the model cannot fund: A's 5% growth floor with B's 3% envelope growth
    poorer = short("b", envelope={"growth": 0.03}, convergence={"floor_growth": 0.02})
    with pytest.raises(SpecsimError, match="these factors cannot be separated: a with "):
        explain(short("a"), poorer, data=data)
    # settlement changes none of the three measures: zeros, and said so
    pooled = explain(short("a"), short("b", "risk_pool_national"), data=data)
    assert pooled.switched == ()
    assert (pooled.dataset["attribution"] == 0).all()
    assert "settlement.risk_pool" in pooled.fields["unread"]


def test_the_scenario_is_rebuilt_from_every_kind_of_provenance_text():
    chain = load_scenario(SCENARIOS / "full_delegation.toml")
    built = short("built", "fast_convergence")
    coded = Scenario(name="coded")
    coded.envelope.growth_by_year = {2030: 0.02}
    for scenario in (chain, built, coded):
        rebuilt = scenario_from_text(scenario.source_text)
        assert rebuilt.model_dump() == scenario.model_dump()


def test_waterfall_has_a_bar_per_factor_and_the_total(data):
    hi = {"allocation": {"health_inequalities": True}}
    explanation = explain(short("a"), short("b", "fast_convergence", **hi), data=data)
    code = str(explanation.dataset["icb"].values[0])
    fig = plots.waterfall(explanation, icb=code, year=END)
    axes = fig.get_axes()
    assert len(axes) == 3
    for ax, measure in zip(axes, ["allocation", "target_allocation", "expected_spend"],
                           strict=True):  # fmt: skip
        bars = ax.patches
        assert len(bars) == len(explanation.switched) + 1
        steps = sum(bar.get_height() for bar in bars[:-1])
        total = float(explanation.total().sel(measure=measure, year=END, icb=code)) / 1e6
        assert steps == pytest.approx(bars[-1].get_height()) == pytest.approx(total)


# ---- results files and the CLI -------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    """Two short results files with two replicates each, and one holding both."""
    folder = tmp_path_factory.mktemp("explain")
    a, b = short("base"), short("fast", "fast_convergence")
    out = {}
    for scenario in (a, b):
        ds = run(scenario, replications=2, seed=1, progress=False)
        out[scenario.name] = write_netcdf(ds, folder / f"{scenario.name}.nc")
    both = run([a, b], replications=2, seed=1, progress=False)
    out["both"] = write_netcdf(both, folder / "both.nc")
    out["folder"] = folder
    return out


def invoke(*args):
    return runner.invoke(app, ["explain", *[str(a) for a in args]])


def test_cli_writes_the_csv_and_the_report(files, tmp_path):
    result = invoke(files["base"], files["fast"], "--year", 2025, "--icb", "QU9",
                    "--csv", tmp_path / "csv", "--report", tmp_path / "explain.html")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fast minus base, 2025/26" in result.stdout
    table = pd.read_csv(tmp_path / "csv" / "attribution.csv")
    assert list(table.columns) == CSV_COLUMNS
    assert table["icb"].iloc[0] == ENGLAND[0]
    assert set(table["factor"]) == set(FACTORS)
    assert table["icb"].nunique() == 43
    # to the pound: each ICB's factors add up to the files' own allocations
    with xr.open_dataset(files["base"]) as a, xr.open_dataset(files["fast"]) as b:
        change = (b["allocation"] - a["allocation"]).sel(year=2025).to_series()
    sums = table[table["measure"] == "allocation"].groupby("icb")["value_gbp"].sum()
    assert (sums.drop(ENGLAND[0]) == change.astype(np.int64)).all()
    assert sums[ENGLAND[0]] == int(change.sum())
    notes = (tmp_path / "csv" / "attribution_notes.txt").read_text()
    assert "2025/26" in notes and "convergence.gap_closure" in notes
    with xr.open_dataset(files["base"]) as a:
        assert f"A: base, scenario sha256 {a.attrs['scenario_sha256']}" in notes
    page = (tmp_path / "explain.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 2  # England and QU9
    assert "Buckinghamshire" in page


def test_cli_explains_the_two_scenarios_of_one_file(files):
    result = invoke(files["both"], "--method", "one-at-a-time", "--csv", files["folder"] / "csv")
    assert result.exit_code == 0, result.output
    assert "fast minus base" in result.stdout and "(one-at-a-time)" in result.stdout
    table = pd.read_csv(files["folder"] / "csv" / "attribution.csv")
    assert (table.loc[table["factor"] == "interaction", "value_gbp"] == 0).all()  # one factor


def tamper(path: Path, folder: Path, edit) -> Path:
    with xr.open_dataset(path) as ds:
        changed = edit(ds.load())
    return write_netcdf(changed, folder / f"tampered_{path.name}")


def bump_allocation(ds: xr.Dataset) -> xr.Dataset:
    ds["allocation"][0, 0] += 1  # one pound
    return ds


def edit_text(ds: xr.Dataset) -> xr.Dataset:
    """A file that records only its scenario's text (no `scenario_json`), edited."""
    del ds.attrs["scenario_json"]
    ds.attrs["scenario_text"] = ds.attrs["scenario_text"].replace("0.50", "0.75")
    return ds


def break_json(ds: xr.Dataset) -> xr.Dataset:
    ds.attrs["scenario_json"] = ds.attrs["scenario_json"].replace('"convergence"', '"converge"')
    return ds


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "results file not found"),
        ("not_netcdf", "not a readable NetCDF results file"),
        ("one_scenario", "explain needs two scenarios"),
        ("three", "give two results files"),
        ("method", "--method best: unknown method; allowed: shapley, one-at-a-time"),
        ("icb", "--icb Narnia: no such ICB"),
        ("year", "--year 2040: the scenarios cover 2024..2026"),
        ("csv_is_file", "exists and is not a folder"),
        ("pound", "no longer reproduces the file's allocations to the pound"),
        ("text", "scenario_text does not match scenario_sha256"),
        ("json", "its recorded scenario does not load here"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(case, expected, files, tmp_path):
    base, fast = files["base"], files["fast"]
    text = tmp_path / "notes.txt"
    text.write_text("not a results file")
    args = {
        "missing": lambda: [tmp_path / "nope.nc", fast],
        "not_netcdf": lambda: [text, fast],
        "one_scenario": lambda: [base],
        "three": lambda: [base, fast, base],
        "method": lambda: [base, fast, "--method", "best"],
        "icb": lambda: [base, fast, "--icb", "Narnia"],
        "year": lambda: [base, fast, "--year", 2040, "--csv", tmp_path / "out"],
        "csv_is_file": lambda: [base, fast, "--csv", text],
        "pound": lambda: [tamper(base, tmp_path, bump_allocation), fast],
        "text": lambda: [base, tamper(fast, tmp_path, edit_text)],
        "json": lambda: [base, tamper(fast, tmp_path, break_json)],
    }[case]()
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expected in line
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing written
