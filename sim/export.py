"""Analyst exports: a results Dataset as the tables and files analysts take into Excel.

`workbook_tables(ds)` turns a results Dataset (one scenario or a `scenario` dimension) into
`Table`s laid out like NHS England's allocation workbooks: ICBs as rows (code, ODS code,
name, region first), one column per financial year ("2024/25"), an England row at the
bottom of sheets whose rows add up. `long_table(ds)` is the same content as one tidy table
(`scenario, icb, region, variable, unit, year, value`). Both are pure functions of the
Dataset; `write_xlsx` and `write_csv` write them atomically (`sim.atomic.atomic_path`), so
an error never leaves a partial file, and `export_file` is the CLI's entry point.

Money is stored in pounds, exactly as in the NetCDF (whole pounds for allocations and
targets), and displayed in £m by a number format; fractions are stored as fractions and
displayed as percentages. A workbook total can therefore be checked against the NetCDF to
the pound.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sim.accessor import as_list, scenario_name
from sim.atomic import atomic_path
from sim.years import financial_year

OGL = "Contains public sector information licensed under the Open Government Licence v3.0."
KEY_COLUMNS = ("ICB code", "ODS code", "ICB name", "Region name")
GROUP_COLUMN = "Service group"
ENGLAND = "England"
LONG_COLUMNS = ("scenario", "icb", "region", "variable", "unit", "year", "value")
LONG_CSV = "results_long.csv"
MAX_SHEET_NAME = 31  # Excel's limit
MAX_BASE_NAME = 24  # leaves room for " S99" on files with several scenarios
MAX_ROWS_ONE_PAGE = 60  # a data sheet this long or shorter prints one page tall
NOTES_WIDTH = 120  # characters of the Notes sheet's text column before a line wraps

# Number formats: pounds shown in £m (each trailing comma divides by 1,000 on display).
MONEY = "#,##0.0,,"
MONEY_FINE = "#,##0.00,,"
PERCENT = "0.0%"
PERCENT_FINE = "0.00%"
PERSONS = "#,##0"

MONEY_NOTE = (
    "Money cells hold pounds (the NetCDF values: whole pounds for allocations, targets, "
    "envelope and retained budget) with the number format #,##0.0,, which displays them in "
    "£m; a cell's value (or a SUM over cells) is in pounds."
)
PERCENT_NOTE = "Percentages are stored as fractions (0.05) with a % number format (5.0%)."
TOTAL_NOTE = (
    "England rows (bold, below the ICBs) are the sum of the ICB rows above, stored as values."
)
RISK_MEASURES = (
    ("p_overspend_5pct", "Risk 5%", "Probability that delegated overspend exceeds 5% of the "
     "ICB's delegated allocation"),
    ("p_overspend_1pct", "Risk 1%", "Probability that delegated overspend exceeds 1% of the "
     "ICB's delegated allocation"),
    ("expected_shortfall", "Shortfall", "Expected shortfall: mean over replicates of "
     "max(delegated overspend, 0)"),
)  # fmt: skip
_LAYER = re.compile(r"^# ===== .* =====$", re.MULTILINE)


@dataclass(frozen=True)
class Table:
    """One sheet of the workbook.

    `frame` holds `keys` label columns then one column per financial year; when `total`, its
    last row is the England total of the rows above. `unit` is what the numbers display in
    ("£m", "%", "persons"), `number_format` the Excel format of the year columns.
    """

    sheet: str
    base: str
    title: str
    contents: str
    unit: str
    number_format: str
    frame: pd.DataFrame
    keys: int
    total: bool
    scenario: str


# ---- the scenarios of a results Dataset -----------------------------------------------------


def scenarios(ds: xr.Dataset) -> list[xr.Dataset]:
    """One Dataset per scenario, each with its own provenance attrs (`scenario_name`,
    `scenario_text`, `scenario_sha256`, `scenario_description` when known) and only the
    ICBs of its footprint (a file combining footprints has blank ICBs for the others)."""
    out = []
    names = [str(n) for n in ds["scenario"].values] if "scenario" in ds.dims else [None]
    for one, name in zip(as_list(ds), names, strict=True):
        attrs = dict(one.attrs)
        for key in ("scenario_text", "scenario_sha256", "scenario_json"):
            if name is not None and key in ds.coords:
                attrs[key] = str(ds[key].sel(scenario=name).values)
        attrs.setdefault("scenario_name", scenario_name(ds))
        description = attrs.get("scenario_description") or _description(
            str(attrs.get("scenario_text", ""))
        )
        if description:
            attrs["scenario_description"] = description
        present = one["allocation"].notnull().any("year")
        one = one.isel(icb=np.flatnonzero(present.values))
        one.attrs = attrs
        out.append(_fill_labels(one))
    return out


def _description(text: str) -> str:
    """The `description` of the scenario's own file: the last layer of an `extends` chain
    (`description` is never inherited), or '' when the text says none."""
    layers = _LAYER.split(text)
    try:
        value = tomllib.loads(layers[-1]).get("description", "")
    except (tomllib.TOMLDecodeError, ValueError):
        return ""
    return value if isinstance(value, str) else ""


def _fill_labels(ds: xr.Dataset) -> xr.Dataset:
    """ICB names and regions, from the packaged ICB tables where the Dataset has them blank
    (scenarios on different footprints combined in one file carry only the first's)."""
    labels = ("icb_ods", "icb_name", "region", "region_name")
    blank = any(c not in ds.coords or (ds[c].astype(str) == "").any().item() for c in labels)
    if not blank:
        return ds
    from sim.reference import load_icbs

    known = pd.concat([load_icbs(2023), load_icbs(2026)]).drop_duplicates("icb")
    known = known.set_index("icb").reindex([str(c) for c in ds["icb"].values])
    coords = {}
    for c in labels:
        have = ds[c].astype(str).values if c in ds.coords else np.full(ds.sizes["icb"], "")
        coords[c] = ("icb", np.where(have == "", known[c].fillna("").values, have))
    return ds.assign_coords(coords)


# ---- tables ---------------------------------------------------------------------------------


def icb_labels(ds: xr.Dataset) -> pd.DataFrame:
    """The ICB label columns (code, ODS code, name, region name), one row per ICB."""

    def column(name: str) -> list[str]:
        return [str(v) for v in ds[name].values] if name in ds.coords else [""] * ds.sizes["icb"]

    return pd.DataFrame(
        dict(zip(KEY_COLUMNS, (column("icb"), column("icb_ods"), column("icb_name"),
                               column("region_name")), strict=True))
    )  # fmt: skip


def year_columns(da: xr.DataArray) -> pd.DataFrame:
    """A (year, ...) DataArray as rows (its other dims, in order) by financial-year columns."""
    other = [d for d in da.dims if d != "year"]
    frame = da.transpose(*other, "year").to_pandas() if other else da.to_pandas().to_frame().T
    frame = pd.DataFrame(frame)
    frame.columns = [financial_year(y) for y in da["year"].values]
    return frame.reset_index(drop=True)


def icb_year_table(ds: xr.Dataset, da: xr.DataArray, total: bool) -> pd.DataFrame:
    """ICB label columns then one column per financial year; an England row when `total`."""
    frame = pd.concat([icb_labels(ds), year_columns(da.transpose("icb", "year"))], axis=1)
    return _with_total(frame, len(KEY_COLUMNS)) if total else frame


def _with_total(frame: pd.DataFrame, keys: int) -> pd.DataFrame:
    total = frame.iloc[:, keys:].sum(axis=0, min_count=1)
    row = pd.DataFrame([[ENGLAND] + [""] * (keys - 1) + list(total.values)], columns=frame.columns)
    return pd.concat([frame, row], ignore_index=True)


def distance_fraction(ds: xr.Dataset) -> xr.DataArray:
    """Distance from target as a fraction of target, whatever the stored units."""
    dft = ds["distance_from_target"]
    if str(dft.attrs.get("units", "1")).lower() in ("1", "fraction", "ratio", ""):
        return dft
    return dft / ds["target_allocation"]


def total_population(ds: xr.Dataset) -> xr.DataArray:
    """Population summed over sex and age, keeping the units."""
    da = ds["population"]
    summed = da.sum([d for d in ("sex", "age") if d in da.dims])
    summed.attrs = dict(da.attrs)
    return summed


def budget_source(ds: xr.Dataset) -> str | None:
    """Which budget variable the export uses: `budget_by_group` if present, else `budget`."""
    for name in ("budget_by_group", "budget"):
        if name in ds.data_vars:
            return name
    return None


def _icb_tables(ds: xr.Dataset) -> list[tuple[str, str, str, str, str, xr.DataArray, bool]]:
    """(base sheet name, title, contents, unit, format, DataArray(year, icb), total) for the
    single-row-per-ICB sheets, in workbook order."""
    specs = [
        ("Allocations", "Delegated allocations to ICBs", "allocation", "£m", MONEY,
         ds["allocation"], True),
        ("Targets", "Needs-based target allocations", "target_allocation", "£m", MONEY,
         ds.get("target_allocation"), True),
        ("Distance from target", "Distance from target: (allocation - target) / target",
         "distance_from_target", "%", PERCENT_FINE, distance_fraction(ds), False),
        ("Weighted population", "Need-weighted population for specialised services",
         "weighted_population", "persons", PERSONS, ds.get("weighted_population"), True),
        ("Population", "Resident population (all ages, both sexes)", "population",
         "persons", PERSONS, total_population(ds), True),
    ]  # fmt: skip
    out = []
    for sheet, title, var, unit, fmt, da, total in specs:
        if da is None:
            continue
        contents = f"{title} (`{var}`), per ICB and financial year"
        if var == "distance_from_target":
            contents += (
                "; for an ICB holding no delegated services, the distance of its notional "
                "whole-portfolio allocation from its notional target"
            )
        out.append((sheet, title, contents, unit, fmt, da, total))
    return out


def group_dim(da: xr.DataArray) -> str:
    """The service-group dimension of `budget_by_group` (`need_group`)."""
    (dim,) = [d for d in da.dims if d not in ("year", "icb", "portfolio")]
    return str(dim)


def workbook_tables(ds: xr.Dataset) -> list[Table]:
    """Every data sheet of the workbook, for every scenario of `ds` (sheets of one table
    next to each other; with several scenarios the sheet names end in S1, S2, ...)."""
    parts = scenarios(ds)
    by_kind: list[list[Table]] = []
    for i, one in enumerate(parts, start=1):
        tag = f" S{i}" if len(parts) > 1 else ""
        by_kind.append(_scenario_tables(one, tag))
    bases = list(dict.fromkeys(t.base for tables in by_kind for t in tables))
    ordered = [t for base in bases for tables in by_kind for t in tables if t.base == base]
    names = [t.sheet for t in ordered]
    if len(set(names)) != len(names) or max(map(len, names)) > MAX_SHEET_NAME:
        raise ValueError(f"sheet names must be unique and short: {names}")  # a bug here
    return ordered


def _scenario_tables(ds: xr.Dataset, tag: str) -> list[Table]:
    name = scenario_name(ds)
    tables = []

    def add(sheet: str, title: str, contents: str, unit: str, fmt: str,
            frame: pd.DataFrame, keys: int, total: bool) -> None:  # fmt: skip
        assert len(sheet) <= MAX_BASE_NAME, sheet
        tables.append(
            Table(sheet + tag, sheet, title, contents, unit, fmt, frame, keys, total, name)
        )

    for sheet, title, contents, unit, fmt, da, total in _icb_tables(ds):
        add(sheet, title, contents, unit, fmt, icb_year_table(ds, da, total), 4, total)

    source = budget_source(ds)
    if source == "budget_by_group":
        da = ds["budget_by_group"]
        for portfolio in da["portfolio"].values:
            group = group_dim(da)
            part = da.sel(portfolio=portfolio).transpose("icb", group, "year")
            n_groups = part.sizes[group]
            labels = icb_labels(ds).loc[np.repeat(np.arange(ds.sizes["icb"]), n_groups)]
            labels = labels.reset_index(drop=True)  # ICB-major, groups within, like `values`
            labels[GROUP_COLUMN] = np.tile([str(g) for g in part[group].values], ds.sizes["icb"])
            values = year_columns(part.stack(row=("icb", group)).transpose("row", "year"))
            frame = _with_total(pd.concat([labels, values], axis=1), 5)
            add(f"{str(portfolio).capitalize()} by group",
                f"{str(portfolio).capitalize()} budgets by service (need) group",
                f"{str(portfolio).capitalize()} budget by ICB and service group "
                "(`budget_by_group`)",
                "£m", MONEY, frame, 5, True)  # fmt: skip
    elif source == "budget":
        da = ds["budget"]
        for portfolio in da["portfolio"].values:
            frame = icb_year_table(ds, da.sel(portfolio=portfolio), total=True)
            label = str(portfolio).capitalize()
            add(f"{label} budget", f"{label} budget by ICB",
                f"{label} budget by ICB (`budget`; not split by service group)",
                "£m", MONEY, frame, 4, True)  # fmt: skip

    for var, base, meaning in RISK_MEASURES:
        if var not in ds.data_vars:
            continue
        da = ds[var]
        money = var == "expected_shortfall"
        for pooling in da["pooling"].values if "pooling" in da.dims else [None]:
            one = da.sel(pooling=pooling) if pooling is not None else da
            suffix = f" {pooling} pooling" if pooling is not None else ""
            add(f"{base}{suffix}", f"{meaning}{suffix}",
                f"{meaning}{suffix} (`{var}`), per ICB and financial year",
                "£m" if money else "%", MONEY_FINE if money else PERCENT,
                icb_year_table(ds, one, total=money), 4, money)  # fmt: skip

    national = national_table(ds)
    add("National", "National budgets, England", "Envelope, delegated (sum of ICB "
        "allocations), retained budget and mean simulated spend by portfolio",
        "£m", MONEY, national, 1, False)  # fmt: skip
    return tables


def national_rows(ds: xr.Dataset) -> list[tuple[str, str, xr.DataArray]]:
    """(label, variable name in the long table, DataArray(year) in GBP) of the national
    table: envelope, delegated, retained budget, mean spend by portfolio when present."""
    rows = [
        ("Envelope", "envelope", ds["envelope"]),
        ("Delegated (sum of ICB allocations)", "delegated_total", ds["allocation"].sum("icb")),
        ("Retained budget", "retained_budget", ds["retained_budget"]),
    ]
    if "spend_mean" in ds.data_vars:
        for portfolio in ds["spend_mean"]["portfolio"].values:
            spend = ds["spend_mean"].sel(portfolio=portfolio).sum("icb")
            rows.append(
                (f"Mean spend, {portfolio} (mean over replicates)", f"spend_mean:{portfolio}",
                 spend)
            )  # fmt: skip
    return rows


def national_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per national measure, one column per financial year (GBP)."""
    frames = [year_columns(da) for _, _, da in national_rows(ds)]
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "Measure", [label for label, _, _ in national_rows(ds)])
    return frame


# ---- the tidy long table --------------------------------------------------------------------


def long_variables(ds: xr.Dataset) -> list[tuple[str, str, xr.DataArray]]:
    """(variable label, unit, DataArray(year, icb)) of every per-ICB series in the long table.

    Extra dimensions become part of the label: `budget:delegated`,
    `budget_by_group:delegated:cancer`, `p_overspend_5pct:before`.
    """
    out = []
    for name in ("allocation", "target_allocation", "distance_from_target",
                 "weighted_population"):  # fmt: skip
        if name in ds.data_vars:
            out.append((name, _units(ds[name]), ds[name]))
    if "population" in ds.data_vars:
        out.append(("population", _units(ds["population"]), total_population(ds)))
    source = budget_source(ds)
    if source is not None:
        da = ds[source]
        for portfolio in da["portfolio"].values:
            part = da.sel(portfolio=portfolio)
            if source == "budget_by_group":
                dim = group_dim(da)
                for group in part[dim].values:
                    out.append((f"{source}:{portfolio}:{group}", _units(da),
                                part.sel({dim: group})))  # fmt: skip
            else:
                out.append((f"{source}:{portfolio}", _units(da), part))
    for var, _, _ in RISK_MEASURES:
        if var not in ds.data_vars:
            continue
        da = ds[var]
        for pooling in da["pooling"].values if "pooling" in da.dims else [None]:
            label = f"{var}:{pooling}" if pooling is not None else var
            out.append((label, _units(da), da.sel(pooling=pooling) if pooling is not None else da))
    return out


def _units(da: xr.DataArray) -> str:
    return str(da.attrs.get("units", ""))


def long_table(ds: xr.Dataset) -> pd.DataFrame:
    """Every exported series as rows `scenario, icb, region, variable, unit, year, value`.

    One row per ICB and year for each per-ICB variable (`icb` the E54 code, `region` the
    E40 code), then national rows with blank `icb` and `region`. `year` is the start of the
    financial year (2024 = 2024/25); values are in the variable's own `unit` (GBP, persons,
    1 = a fraction).
    """
    frames = []
    for one in scenarios(ds):
        name = scenario_name(one)
        regions = (
            one["region"].astype(str).values if "region" in one.coords else [""] * one.sizes["icb"]
        )
        region_of = dict(zip(one["icb"].astype(str).values, regions, strict=True))
        for label, unit, da in long_variables(one):
            series = da.transpose("year", "icb").to_series()
            frame = series.rename("value").reset_index()
            frame["icb"] = frame["icb"].astype(str)
            frame.insert(1, "region", frame["icb"].map(region_of))
            frames.append(frame.assign(scenario=name, variable=label, unit=unit))
        for _, label, da in national_rows(one):
            frame = da.to_series().rename("value").reset_index()
            frames.append(
                frame.assign(scenario=name, icb="", region="", variable=label, unit="GBP")
            )
    table = pd.concat(frames, ignore_index=True)[list(LONG_COLUMNS)]
    table["year"] = table["year"].astype(int)
    return table.dropna(subset=["value"]).reset_index(drop=True)


# ---- the notes sheet ------------------------------------------------------------------------


def notes(ds: xr.Dataset, tables: list[Table], source: str | None = None) -> list[list[Any]]:
    """The rows of the Notes sheet: provenance, what each sheet holds, licence, scenario text."""
    parts = scenarios(ds)
    rows: list[list[Any]] = [["specsim results export"], []]
    if source is not None:
        rows.append(["Results file", source])
    for i, one in enumerate(parts, start=1):
        label = f"Scenario S{i}" if len(parts) > 1 else "Scenario"
        rows.append([label, scenario_name(one)])
        if one.attrs.get("scenario_description"):
            rows.append(["Description", one.attrs["scenario_description"]])
        rows.append(["Scenario sha256", str(one.attrs.get("scenario_sha256", "not recorded"))])
    if len(parts) > 1:
        rows.append(["Sheet names", "Sheets ending in S1, S2, ... hold that scenario's figures."])
    for key, label in (("seed", "Seed"), ("replications", "Replications"),
                       ("specsim_version", "specsim version"),
                       ("data_version", "Data version")):  # fmt: skip
        value = ds.attrs.get(key)
        rows.append([label, _plain(value) if value is not None else "not recorded"])
    years = [int(y) for y in ds["year"].values]
    rows.append(["Years", f"{financial_year(years[0])} to {financial_year(years[-1])} "
                 "(financial years, April to March)"])  # fmt: skip
    rows += [[], ["Units"], ["Money", MONEY_NOTE], ["Percentages", PERCENT_NOTE],
             ["Totals", TOTAL_NOTE]]  # fmt: skip
    budgets = {budget_source(one) for one in parts}
    if budgets == {"budget_by_group"}:
        text = (
            "Delegated and retained budgets are split by service (need) group (`budget_by_group`)."
        )
    elif "budget" in budgets and "budget_by_group" not in budgets:
        text = (
            "This results file has no budgets by service group (`budget_by_group`): the "
            "delegated and retained budget sheets show the budget by portfolio only (`budget`)."
        )
    elif budgets == {None}:
        text = "This results file has no budget variable: no budget sheets."
    else:
        text = "Budgets by service group where the scenario has them, else by portfolio only."
    rows.append(["Budgets", text])
    rows.append(
        ["Risk", "Probabilities are shares of the replicates; with n replications their "
         "standard error is at most sqrt(0.25 / n). 'before'/'after' pooling: before and "
         "after the scenario's year-end risk-pool rule."]
    )  # fmt: skip
    rows += [[], ["Sheets", "Contents", "Units"]]
    rows.append(["Notes", "this sheet: provenance, units, sources, licence, scenario text", ""])
    for table in tables:
        scenario = f" [{table.scenario}]" if len(parts) > 1 else ""
        rows.append([table.sheet, table.contents + scenario, table.unit])
    rows += [[], ["Sources"]]
    for item in str(ds.attrs.get("sources", "not recorded")).split("; "):
        rows.append(["", item])
    rows += [[], ["Licence", OGL]]
    for one in parts:
        rows += [[], [f"Scenario text: {scenario_name(one)}"]]
        text = str(one.attrs.get("scenario_text", "not recorded"))
        rows += [["", line] for line in text.splitlines()]
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---- writers --------------------------------------------------------------------------------


def build_workbook(ds: xr.Dataset, source: str | None = None) -> Any:
    """An openpyxl Workbook: the Notes sheet, then one sheet per `Table`."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    tables = workbook_tables(ds)
    book = Workbook()
    sheet = book.active
    sheet.title = "Notes"
    bold = Font(bold=True)
    for row in notes(ds, tables, source):
        sheet.append([_text(v) for v in row])
        heading = len(row) == 1 or row[:1] == ["Sheets"]
        for cell in sheet[sheet.max_row][: len(row) if heading else 1]:
            cell.font = Font(bold=True, size=13 if sheet.max_row == 1 else 11)
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 110
    sheet.column_dimensions["C"].width = 10
    for row in sheet.iter_rows():
        for cell in row:
            cell.alignment = Alignment(vertical="top", horizontal="left")
        text = row[1].value if len(row) > 1 else None
        if isinstance(text, str) and len(text) > NOTES_WIDTH:
            row[1].alignment = Alignment(wrap_text=True, vertical="top")
            lines = math.ceil(len(text) / NOTES_WIDTH)
            sheet.row_dimensions[row[1].row].height = 15 * lines  # LibreOffice does not autofit
    _as_text(sheet)
    _print_setup(sheet, fit_width=True)

    header_fill = PatternFill("solid", fgColor="DCE6F1")
    top = Border(top=Side(style="thin"))
    for table in tables:
        ws = book.create_sheet(table.sheet)
        ws.append([f"{table.title} ({table.unit}), scenario {table.scenario}"])
        ws["A1"].font = Font(bold=True, size=13)
        ws.append([_unit_line(table)])
        ws["A2"].font = Font(italic=True)
        header = 3
        ws.append(list(table.frame.columns))
        for cell in ws[header]:
            cell.font = bold
            cell.fill = header_fill
            cell.alignment = Alignment(horizontal="right" if cell.column > table.keys else "left")
        for values in table.frame.itertuples(index=False):
            ws.append([_text(v) for v in values[: table.keys]] +
                      [_number(v) for v in values[table.keys:]])  # fmt: skip
        last = ws.max_row
        for row in ws.iter_rows(min_row=header + 1, max_row=last, min_col=table.keys + 1):
            for cell in row:
                cell.number_format = table.number_format
        if table.total:
            for cell in ws[last]:
                cell.font = bold
                cell.border = top
        _as_text(ws, min_row=header + 1, max_col=table.keys)
        ws.freeze_panes = ws.cell(row=header + 1, column=table.keys + 1).coordinate
        end_filter = last - 1 if table.total else last
        ws.auto_filter.ref = f"A{header}:{get_column_letter(ws.max_column)}{end_filter}"
        _print_setup(ws, fit_width=False)
        ws.print_title_rows = f"{header}:{header}"
        ws.print_title_cols = f"A:{get_column_letter(table.keys)}"
        for i, column in enumerate(table.frame.columns, start=1):
            if i <= table.keys:
                longest = max([len(str(column))] + [len(str(v)) for v in table.frame[column]])
                width = min(longest + 2, 80)
            else:
                width = 11
            ws.column_dimensions[get_column_letter(i)].width = width
    return book


def _print_setup(ws: Any, fit_width: bool) -> None:
    """Landscape A4; the Notes fit the page width; a sheet of one row per ICB fits one page
    tall (its years run on over pages that repeat the header and ICB columns), a longer one
    (ICB by service group) at 60%, pages down and across."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    if fit_width or ws.max_row <= MAX_ROWS_ONE_PAGE:
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_setup.fitToWidth = 1 if fit_width else 0
        ws.page_setup.fitToHeight = 0 if fit_width else 1
    else:
        ws.page_setup.scale = 60


def _unit_line(table: Table) -> str:
    if table.unit == "£m":
        what = "£m (cells hold pounds, displayed in millions)"
    elif table.unit == "%":
        what = "% (cells hold fractions, displayed as percentages)"
    else:
        what = "persons"
    total = "; England = sum of the ICB rows" if table.total else ""
    return f"Units: {what}{total}. Financial years April to March. See the Notes sheet."


_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _text(value: Any) -> Any:
    """A label cell: strings without the control characters Excel refuses."""
    if isinstance(value, str):
        return _ILLEGAL.sub("", value)
    return _plain(value)


def _as_text(ws: Any, min_row: int = 1, max_col: int | None = None) -> None:
    """Keep strings strings: openpyxl would otherwise store a text starting with '=' (a line
    of scenario text, a hostile name) as a formula."""
    for row in ws.iter_rows(min_row=min_row, max_col=max_col):
        for cell in row:
            if cell.data_type == "f":
                cell.data_type = "s"


def _number(value: Any) -> Any:
    """A number cell: None for missing, a whole number as int (money in whole pounds)."""
    if value is None or isinstance(value, str):
        return None if value in (None, "") else value
    value = float(value)
    if not math.isfinite(value):
        return None
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def write_xlsx(ds: xr.Dataset, path: str | Path, source: str | None = None) -> Path:
    """Write the analyst workbook atomically at `path`."""
    return _save_book(build_workbook(ds, source), Path(path))


def _save_book(book: Any, path: Path) -> Path:
    with atomic_path(path) as temporary:
        book.save(temporary)
    return path


def write_csv(ds: xr.Dataset, directory: str | Path) -> Path:
    """Write `results_long.csv` (the tidy long table) atomically into `directory`."""
    table = long_table(ds)
    return _write_long(table, Path(directory))


def _write_long(table: pd.DataFrame, directory: Path) -> Path:
    path = directory / LONG_CSV
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)
    return path


def export_file(
    results: str | Path, xlsx: str | Path | None = None, csv_dir: str | Path | None = None
) -> list[Path]:
    """Open a results file and write the workbook and/or the long CSV; the written paths.

    Both are built in memory before the first file is written (a bad results file leaves
    nothing behind), and each file is written atomically.
    """
    from sim.comparison import open_results

    ds = open_results(results)
    book = build_workbook(ds, source=Path(results).name) if xlsx is not None else None
    long = long_table(ds) if csv_dir is not None else None
    written = []
    if book is not None and xlsx is not None:
        written.append(_save_book(book, Path(xlsx)))
    if long is not None and csv_dir is not None:
        written.append(_write_long(long, Path(csv_dir)))
    return written


__all__ = [
    "LONG_COLUMNS",
    "OGL",
    "Table",
    "build_workbook",
    "export_file",
    "long_table",
    "notes",
    "workbook_tables",
    "write_csv",
    "write_xlsx",
]
