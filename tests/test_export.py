"""The analyst exports (`sim.export`, `specsim export`): the workbook and the tidy CSV are
read back and checked against the NetCDF they came from.

The results are built once per module by short real runs (the baseline to 2027/28, three
replicates; and the same with a faster pace of change, both in one file).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from openpyxl import load_workbook
from typer.testing import CliRunner

import sim
from sim import export
from sim.atomic import write_netcdf
from sim.cli import app
from sim.comparison import open_results
from sim.years import financial_year

HEADER = 3  # the header row of every data sheet; data start below it
KEYS = ["ICB code", "ODS code", "ICB name", "Region name"]
YEARS = [2024, 2025, 2026, 2027]
GROUPED = ("Delegated by group", "Retained by group")
SINGLE_SHEETS = [
    "Notes",
    "Allocations",
    "Targets",
    "Distance from target",
    "Weighted population",
    "Population",
    "Delegated by group",
    "Retained by group",
    "Risk 5% before pooling",
    "Risk 5% after pooling",
    "Risk 1% before pooling",
    "Risk 1% after pooling",
    "Shortfall before pooling",
    "Shortfall after pooling",
    "National",
]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory, scenarios_dir) -> Path:
    folder = tmp_path_factory.mktemp("export")
    baseline = json.dumps(str(scenarios_dir / "baseline.toml"))
    (folder / "short.toml").write_text(
        f'extends = {baseline}\nname = "short"\ndescription = "Baseline to 2027/28."\n\n'
        "[time]\nend_year = 2027\n",
        encoding="utf-8",
    )
    (folder / "fast.toml").write_text(
        'extends = "short.toml"\nname = "fast_convergence_to_2027"\n\n'
        "[convergence]\ngap_closure = 0.5\n",
        encoding="utf-8",
    )
    write_netcdf(
        sim.run(folder / "short.toml", replications=3, seed=7, progress=False),
        folder / "short.nc",
    )
    two = sim.run([folder / "short.toml", folder / "fast.toml"], 3, seed=7, progress=False)
    write_netcdf(two, folder / "two.nc")
    return folder


@pytest.fixture(scope="module")
def ds(folder) -> xr.Dataset:
    return open_results(folder / "short.nc")


@pytest.fixture(scope="module")
def written(folder) -> dict[str, Path]:
    out = folder / "out"
    paths = export.export_file(folder / "short.nc", xlsx=out / "short.xlsx", csv_dir=out / "csv")
    return {"xlsx": paths[0], "csv": paths[1]}


@pytest.fixture(scope="module")
def book(written):
    return load_workbook(written["xlsx"])


@pytest.fixture(scope="module")
def long(written) -> pd.DataFrame:
    return pd.read_csv(written["csv"], dtype={"icb": str, "region": str}, keep_default_na=False)


def rows(ws, keys: int = 4) -> dict[str, list]:
    """Data rows of a sheet by their first cell (ICB code, 'England' or measure)."""
    values = list(ws.iter_rows(min_row=HEADER + 1, values_only=True))
    return {str(r[0]): list(r[keys:]) for r in values}


def header(ws) -> list:
    return [c.value for c in ws[HEADER]]


# ---- the workbook ---------------------------------------------------------------------------


def test_sheets_and_their_names(book):
    assert book.sheetnames == SINGLE_SHEETS
    assert all(len(name) <= 31 for name in book.sheetnames)


def test_icb_columns_first_then_financial_years(book, ds):
    for name in SINGLE_SHEETS[1:-1]:
        ws = book[name]
        group = ["Service group"] if name in GROUPED else []
        assert header(ws) == KEYS + group + [financial_year(y) for y in YEARS], name
        first = [c.value for c in ws[HEADER + 1]][:4]
        icb = ds["icb"].values[0]
        assert first == [
            str(icb),
            str(ds["icb_ods"].values[0]),
            str(ds["icb_name"].values[0]),
            str(ds["region_name"].values[0]),
        ]
    assert header(book["National"]) == ["Measure"] + [financial_year(y) for y in YEARS]


def test_allocations_match_the_netcdf_to_the_pound(book, ds):
    table = rows(book["Allocations"])
    assert len(table) == ds.sizes["icb"] + 1
    for icb in ds["icb"].values:
        expected = ds["allocation"].sel(icb=icb).values
        assert table[str(icb)] == [int(v) for v in expected], icb
    england = table["England"]
    assert england == [int(v) for v in ds["allocation"].sum("icb").values]
    assert england == [
        int(e - r) for e, r in zip(ds["envelope"].values, ds["retained_budget"].values, strict=True)
    ]
    assert list(table)[-1] == "England"  # the total row is at the bottom


@pytest.mark.parametrize(
    ("sheet", "variable"),
    [
        ("Targets", "target_allocation"),
        ("Weighted population", "weighted_population"),
        ("Population", "population"),
        ("Shortfall before pooling", "expected_shortfall"),
        ("Shortfall after pooling", "expected_shortfall"),
    ],
)
def test_summed_sheets_match_the_netcdf_and_total_to_england(book, ds, sheet, variable):
    da = ds[variable]
    if variable == "population":
        da = da.sum(("sex", "age"))
    if "portfolio" in da.dims:
        da = da.sel(portfolio=sheet.split()[0].lower())
    if "pooling" in da.dims:
        da = da.sel(pooling=sheet.split()[1])
    table = rows(book[sheet])
    got = np.array([table[str(icb)] for icb in ds["icb"].values], dtype=float)
    np.testing.assert_allclose(got, da.transpose("icb", "year").values, rtol=1e-12)
    np.testing.assert_allclose(table["England"], da.sum("icb").values, rtol=1e-12)


def test_distance_from_target_is_a_percentage_of_target(book, ds):
    ws = book["Distance from target"]
    table = rows(ws)
    assert "England" not in table  # fractions do not add up
    got = np.array([table[str(icb)] for icb in ds["icb"].values], dtype=float)
    stored = ds["distance_from_target"].transpose("icb", "year").values
    np.testing.assert_allclose(got, stored, rtol=1e-15)  # Excel keeps 15-16 digits
    target = ds["target_allocation"].transpose("icb", "year").values
    formula = (ds["allocation"].transpose("icb", "year").values - target) / np.where(
        target > 0, target, np.nan
    )
    delegated = target > 0  # before delegation the distance is on the notional allocation
    assert delegated.sum() > ds.sizes["icb"]
    np.testing.assert_allclose(got[delegated], formula[delegated], atol=1e-8)
    assert ws.cell(HEADER + 1, 5).number_format.endswith("%")


@pytest.mark.parametrize("measure", ["5", "1"])
@pytest.mark.parametrize("pooling", ["before", "after"])
def test_risk_sheets_hold_the_overspend_probabilities(book, ds, measure, pooling):
    ws = book[f"Risk {measure}% {pooling} pooling"]
    table = rows(ws)
    assert "England" not in table
    da = ds[f"p_overspend_{measure}pct"].sel(pooling=pooling).transpose("icb", "year")
    got = np.array([table[str(icb)] for icb in ds["icb"].values], dtype=float)
    np.testing.assert_allclose(got, da.values, rtol=1e-15)
    assert ws.cell(HEADER + 1, 5).number_format == "0.0%"


def test_national_sheet(book, ds):
    table = rows(book["National"], keys=1)
    assert table["Envelope"] == [int(v) for v in ds["envelope"].values]
    assert table["Delegated (sum of ICB allocations)"] == [
        int(v) for v in ds["allocation"].sum("icb").values
    ]
    assert table["Retained budget"] == [int(v) for v in ds["retained_budget"].values]
    for portfolio in ("delegated", "retained"):
        spend = ds["spend_mean"].sel(portfolio=portfolio).sum("icb").values
        np.testing.assert_allclose(table[f"Mean spend, {portfolio} (mean over replicates)"], spend)


def test_panes_frozen_below_the_header_right_of_the_icb_columns(book):
    for name in SINGLE_SHEETS[1:-1]:
        assert book[name].freeze_panes == ("F4" if name in GROUPED else "E4"), name
    assert book["National"].freeze_panes == "B4"


def test_number_formats_show_pounds_in_millions_and_fractions_in_percent(book):
    for name in ("Allocations", "Targets", *GROUPED, "National"):
        ws = book[name]
        first = HEADER + 1
        last = ws.max_row
        for row in (first, last):
            cell = ws.cell(row, ws.max_column)
            assert cell.number_format == "#,##0.0,,", (name, row)
        assert "£m" in ws["A1"].value and "£m" in ws["A2"].value
    for name in ("Shortfall before pooling",):
        assert book[name].cell(HEADER + 1, 5).number_format == "#,##0.00,,"
    assert book["Population"].cell(HEADER + 1, 5).number_format == "#,##0"
    assert book["Allocations"].column_dimensions["C"].width > 40  # names readable
    assert book["Allocations"].cell(book["Allocations"].max_row, 1).font.bold


def test_notes_sheet_holds_provenance_and_the_licence(book, ds):
    ws = book["Notes"]
    cells = [str(c) for row in ws.iter_rows(values_only=True) for c in row if c is not None]
    text = "\n".join(cells)
    assert ds.attrs["scenario_sha256"] in cells
    assert export.OGL in cells
    assert "Baseline to 2027/28." in cells  # the scenario's description
    for key in ("seed", "replications"):
        assert int(ds.attrs[key]) in [c for row in ws.iter_rows(values_only=True) for c in row]
    for key in ("specsim_version", "data_version"):
        assert str(ds.attrs[key]) in cells
    for source in ds.attrs["sources"].split("; "):
        assert source in cells
    lines = ds.attrs["scenario_text"].splitlines()
    assert 'name = "short"' in lines and 'name = "short"' in cells
    assert sum(line in cells for line in lines if line.strip()) == len([x for x in lines if x])
    assert "split by service (need) group" in text
    assert "pounds" in text and "£m" in text  # how money is stored
    for sheet in SINGLE_SHEETS[1:]:
        assert sheet in cells, sheet


def test_a_scenario_text_line_that_looks_like_a_formula_stays_text(ds, tmp_path):
    hostile = ds.copy()
    hostile.attrs = {**ds.attrs, "scenario_text": '=HYPERLINK("http://x")\n\x07bell = 1\n'}
    path = export.write_xlsx(hostile, tmp_path / "h.xlsx")
    ws = load_workbook(path)["Notes"]
    cells = [c for row in ws.iter_rows() for c in row if c.value is not None]
    (formula,) = [c for c in cells if str(c.value).startswith("=HYPERLINK")]
    assert formula.data_type == "s"
    assert "bell = 1" in [c.value for c in cells]


# ---- the tidy CSV ---------------------------------------------------------------------------


def test_long_csv_has_exactly_the_columns(long):
    assert list(long.columns) == ["scenario", "icb", "region", "variable", "unit", "year", "value"]
    assert set(long["scenario"]) == {"short"}
    assert sorted(set(long["year"])) == YEARS


def test_long_csv_allocation_rows_sum_to_the_netcdf(long, ds):
    alloc = long[long["variable"] == "allocation"]
    assert len(alloc) == ds.sizes["icb"] * len(YEARS)
    assert set(alloc["unit"]) == {"GBP"}
    totals = alloc.groupby("year")["value"].sum()
    assert list(totals.values) == [float(v) for v in ds["allocation"].sum("icb").values]
    one = alloc[(alloc["icb"] == "E54000008") & (alloc["year"] == 2026)]
    assert one["region"].item() == str(ds["region"].sel(icb="E54000008").values)
    assert one["value"].item() == float(ds["allocation"].sel(icb="E54000008", year=2026))


def test_long_csv_national_rows_have_blank_icb_and_region(long, ds):
    national = long[long["icb"] == ""]
    assert (national["region"] == "").all()
    assert set(national["variable"]) == {
        "envelope",
        "delegated_total",
        "retained_budget",
        "spend_mean:delegated",
        "spend_mean:retained",
    }
    envelope = national[national["variable"] == "envelope"].sort_values("year")
    assert list(envelope["value"]) == [float(v) for v in ds["envelope"].values]
    assert (long[long["icb"] != ""]["region"] != "").all()


def test_long_csv_units_come_from_the_variables(long, ds):
    units = long.groupby("variable")["unit"].agg(set).to_dict()
    assert units["distance_from_target"] == {ds["distance_from_target"].attrs["units"]}
    assert units["population"] == {"persons"}
    assert units["p_overspend_5pct:before"] == {"1"}
    assert units["expected_shortfall:after"] == {"GBP"}
    per_icb = long[long["icb"] != ""].groupby("variable").size()
    assert (per_icb == ds.sizes["icb"] * len(YEARS)).all()


# ---- budgets by service group (the variable the model is gaining) ---------------------------


def test_budget_by_group_gives_a_sheet_per_portfolio_with_icb_by_group_rows(book, ds):
    groups = [str(g) for g in ds["need_group"].values]
    for sheet in GROUPED:
        portfolio = sheet.split()[0].lower()
        data = list(book[sheet].iter_rows(min_row=HEADER + 1, values_only=True))
        assert len(data) == ds.sizes["icb"] * len(groups) + 1
        icb = str(ds["icb"].values[1])
        row = [r for r in data if r[0] == icb and r[4] == "renal"][0]
        expected = ds["budget_by_group"].sel(icb=icb, need_group="renal", portfolio=portfolio)
        np.testing.assert_allclose(row[5:], expected.values, rtol=1e-12)
        # the groups of an ICB add up to its budget, and the England row to England's
        mine = np.array([r[5:] for r in data if r[0] == icb], dtype=float).sum(axis=0)
        budget = ds["budget"].sel(portfolio=portfolio)
        np.testing.assert_allclose(mine, budget.sel(icb=icb).values, rtol=1e-9)
        assert data[-1][0] == "England"
        np.testing.assert_allclose(data[-1][5:], budget.sum("icb").values, rtol=1e-12)


def test_results_without_budget_by_group_fall_back_to_budget(ds, tmp_path):
    """A results file written before `budget_by_group` existed still exports, by portfolio."""
    path = export.write_xlsx(ds.drop_vars("budget_by_group"), tmp_path / "old.xlsx")
    book = load_workbook(path)
    assert "Delegated budget" in book.sheetnames and "Delegated by group" not in book.sheetnames
    table = rows(book["Retained budget"])
    np.testing.assert_allclose(
        table["England"], ds["budget"].sel(portfolio="retained").sum("icb").values, rtol=1e-12
    )
    notes = "\n".join(str(c) for r in book["Notes"].iter_rows(values_only=True) for c in r if c)
    assert "no budgets by service group" in notes


def test_budget_by_group_in_the_long_table(ds):
    table = export.long_table(ds)
    cancer = table[table["variable"] == "budget_by_group:delegated:cancer"]
    assert len(cancer) == ds.sizes["icb"] * len(YEARS)
    expected = ds["budget_by_group"].sel(portfolio="delegated", need_group="cancer").sum("icb")
    np.testing.assert_allclose(cancer.groupby("year")["value"].sum().values, expected.values)
    assert not table["variable"].str.fullmatch(r"budget:.*").any()


# ---- several scenarios, footprints ---------------------------------------------------------


def test_several_scenarios_have_tagged_sheets_and_their_own_figures(folder, tmp_path):
    two = open_results(folder / "two.nc")
    out = export.export_file(folder / "two.nc", xlsx=tmp_path / "two.xlsx", csv_dir=tmp_path)
    book = load_workbook(out[0])
    names = book.sheetnames
    assert len(names) == 1 + 2 * (len(SINGLE_SHEETS) - 1) and len(set(names)) == len(names)
    assert all(len(n) <= 31 for n in names)
    assert names[1:3] == ["Allocations S1", "Allocations S2"]
    fast = "fast_convergence_to_2027"
    assert fast in book["Allocations S2"]["A1"].value
    for tag, scenario in (("S1", "short"), ("S2", fast)):
        table = rows(book[f"Allocations {tag}"])
        expected = two["allocation"].sel(scenario=scenario).sum("icb").values
        assert table["England"] == [int(v) for v in expected]
    alloc1 = two["allocation"].sel(scenario="short")
    assert not np.array_equal(alloc1.values, two["allocation"].sel(scenario=fast).values)
    notes = [c for r in book["Notes"].iter_rows(values_only=True) for c in r if c is not None]
    for scenario in ("short", fast):
        assert str(two["scenario_sha256"].sel(scenario=scenario).values) in notes
    long = pd.read_csv(out[1], keep_default_na=False)
    assert set(long["scenario"]) == {"short", fast}
    fast_alloc = long[(long["scenario"] == fast) & (long["variable"] == "allocation")]
    totals = fast_alloc.groupby("year")["value"].sum().values
    np.testing.assert_array_equal(totals, two["allocation"].sel(scenario=fast).sum("icb").values)


def test_icbs_off_a_scenarios_footprint_are_dropped_and_blank_names_filled(ds):
    odd = ds.copy()
    alloc = odd["allocation"].astype(float)
    alloc[:, 0] = np.nan  # as a combined file has for ICBs of another footprint
    names = odd["icb_name"].values.astype(object)
    names[1] = ""
    odd = odd.assign(allocation=alloc).assign_coords(icb_name=("icb", names.astype(str)))
    (one,) = export.scenarios(odd)
    assert one.sizes["icb"] == ds.sizes["icb"] - 1
    assert str(ds["icb"].values[0]) not in one["icb"].values
    assert one["icb_name"].values[0] == ds["icb_name"].values[1]  # filled from the data


# ---- writing and the command line -----------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_cli_writes_both_and_says_so(folder, tmp_path):
    result = invoke("export", folder / "short.nc", "--xlsx", tmp_path / "a.xlsx",
                    "--csv", tmp_path / "tables")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'a.xlsx'}" in result.stdout
    assert f"wrote {tmp_path / 'tables' / 'results_long.csv'}" in result.stdout
    assert leftovers(tmp_path) == ["a.xlsx", "tables", "tables/results_long.csv"]


def test_cli_csv_alone(folder, tmp_path):
    result = invoke("export", folder / "short.nc", "--csv", tmp_path)
    assert result.exit_code == 0, result.output
    assert leftovers(tmp_path) == ["results_long.csv"]


def cli_error(result) -> str:
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    return line


def test_cli_needs_an_output(folder, tmp_path):
    line = cli_error(invoke("export", folder / "short.nc"))
    assert "--xlsx" in line and "--csv" in line


@pytest.mark.parametrize("kind", ["missing", "text", "netcdf_without_results"])
def test_cli_unreadable_or_non_results_file(tmp_path, kind):
    bad = tmp_path / "bad.nc"
    if kind == "text":
        bad.write_text("not a netcdf\n")
    elif kind == "netcdf_without_results":
        write_netcdf(xr.Dataset({"x": ("y", [1.0, 2.0])}), bad)
    out = tmp_path / "out"
    line = cli_error(invoke("export", bad, "--xlsx", out / "a.xlsx", "--csv", out))
    assert str(bad) in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "target"),
    [("--xlsx", "afile/a.xlsx"), ("--csv", "afile"), ("--csv", "afile/tables"),
     ("--xlsx", "a.csv"), ("--xlsx", "folder")],
)  # fmt: skip
def test_cli_bad_output_path_fails_before_work(folder, tmp_path, option, target):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    before = leftovers(tmp_path)
    line = cli_error(invoke("export", folder / "short.nc", option, tmp_path / target))
    assert option in line
    assert leftovers(tmp_path) == before


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(folder, tmp_path, monkeypatch):
    target = tmp_path / "a.xlsx"
    target.write_bytes(b"previous")

    def broken_save(self, filename):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("openpyxl.Workbook.save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export.export_file(folder / "short.nc", xlsx=target, csv_dir=tmp_path / "csv")
    assert target.read_bytes() == b"previous"
    assert leftovers(tmp_path) == ["a.xlsx"]  # no temporary, and no CSV half of the pair
