"""Build specsim's packaged reference data (`sim/data/reference.nc`, `icbs*.csv`).

Reads the public files in `shared/data/raw` and `shared/data/derived` (see their
SOURCES.md), reshapes them onto the model's coordinates (42 ICBs of April 2023, sex f/m,
single ages 0..90 with 90 meaning 90+; the 2022-based SNPP also on the 36 ICBs of April
2026), checks the results against published totals and writes one compressed NetCDF file.
Any failed check stops the build with a non-zero exit, so a packaged file always passed
them. Needs `pip install -e '.[build-data]'` (xlrd, openpyxl).

Usage: python scripts/build_reference_data.py [--raw PATH] [--derived PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sim.scenario import PROJECTION_VARIANTS

REPO = Path(__file__).resolve().parents[1]
RELEASE = "2026.11.0"

AGES = np.arange(91)
TOP_AGE = 90
SEXES = ["f", "m"]
YEARS = np.arange(2018, 2044)
YEARS_2022 = np.arange(2022, 2048)  # ONS 2022-based SNPP mid-years
NPP_YEARS = np.arange(2018, 2048)  # NPP assumptions long enough for a cohort model to 2047
FERTILITY_AGES = np.arange(15, 47)
AIF_YEARS = np.arange(2022, 2029)
AIF_COMPONENTS = [
    "general_acute",
    "community",
    "mental_health",
    "maternity",
    "health_inequalities",
    "prescribing",
    "core",
]
AIF_WP_COLUMNS = ["G&A WP", "CS WP", "MH WP", "Mat WP", "Health Ineq WP", "Prescr WP"]

# ONS 2018-based NPP file codes for the variants in sim.scenario.PROJECTION_VARIANTS (same order).
NPP_CODES = ("ppp", "hpp", "lpp", "php", "plp", "pph", "ppl", "hhh", "lll", "hlh", "lhl")
SNPP_SERIES = tuple(f"v{i}" for i in range(1, 12))

# The 2026/27+ AIF files give merged ICBs temporary codes; SOURCES.md §4 matched them.
AIF_TEMPORARY_ICB = {
    "T01": "S1Y5D",
    "T02": "D7T5G",
    "T03": "T6Y0W",
    "T04": "Z9B2Z",
    "T05": "S0E4D",
    "T07": "S9B9J",
}

# Published figures the outputs must reproduce (SOURCES.md §2-§3).
ENGLAND_2018_ICB_SUM = 55_977_169
ENGLAND_2043 = {  # principal exact; the variants as published, to 0.01 million
    "principal": 61_744_098,
    "high_migration": 64.24e6,
    "low_migration": 59.25e6,
    "low_population": 57.20e6,
}
GP_REGISTERED_ENGLAND = 63_237_908

# ONS 2022-based SNPP (migration-category variant), SOURCES.md §3b.
SNPP2022_FOLDER = "population_projections_2022"
SNPP2022_SICB_FILE = "popprojsicb5yrmigcat22based.xls"
SNPP2022_REGION_FILE = "popprojreg5yrmigcat22based.xls"
SNPP2022_SHEETS = {"f": "Females", "m": "Males"}
AGE_GROUPS = tuple(f"{a}-{a + 4}" for a in range(0, 90, 5)) + ("90+",)
AGE_GROUP_OF_AGE = np.minimum(AGES // 5, len(AGE_GROUPS) - 1)  # 0..89 -> their band, 90 -> 90+
ENGLAND_2022_BASED = {  # ONS England row, rounded (DOMAIN.md "Population")
    2022: 57_112_542,
    2032: 60_759_854,
    2043: 63_494_464,
    2047: 64_388_887,
}
# Sums of published rows (each rounded to 0.1 person) may differ from the ONS England and NHS
# region rows by a few persons: in this release at most 3.7 in an England year total, and
# 1.1e-7 (England) and 4.2e-7 (a region) relative by year and sex.
SNPP2022_REL_TOL = 1e-6
SINGLE_YEAR_METHOD = (
    "ONS publishes five-year groups 0-4..85-89 and 90+. Each group is split into single years "
    "0..89 in proportion to the ONS 2018-based SNPP principal (population_projection) for the "
    "same 2023 ICB, sex and mid-year (the 2043 shape for 2044..2047), so every published group "
    "total is kept exactly (to float rounding); age 90 is the published 90+ group."
)
PER_VARIANT_CHUNKS = ("population_projection",)
# The sub-ICB locations (April 2023) whose patients are in more than one April 2026 ICB.
STRADDLING_SICBS = {"E38000252": "D4U1Y", "E38000258": "15E"}
ICB26_METHOD = (
    "Each 2023 sub-ICB location is split to single years by its 2023 ICB's 2018-based shape "
    "and added to its April 2026 ICB. Two sub-ICB locations straddle 2026 ICBs and are shared "
    "by their 2022/23 GP-registered patients (AIF practices joined to the Aug 2026 practice "
    "map, as merger_share), the same share at every sex and age: D4U1Y (Frimley, E38000252) "
    "and 15E (Birmingham and Solihull, E38000258). Every other sub-ICB location lies wholly in "
    "one 2026 ICB, so Suffolk and North East Essex and Hertfordshire and West Essex split along "
    "sub-ICB boundaries by resident population (not by merger_share's patient shares); a 2026 "
    "ICB made of whole 2023 ICBs equals the sum of their population_projection_2022."
)
# Net migration and the health-deprivation score (centred on 0) may be negative; nothing else.
SIGNED_VARIABLES = ("npp_net_migration", "imd_health_score")
# Sub-ICB locations reshaped by Frimley's split (Aug 2026 ODS code -> home 2023 ICB ODS code).
SICBL_RESHAPED = {"U2G6B": "QNQ", "92A": "QXU", "D9Y0V": "QRL"}

ATTRIBUTION = "Contains public sector information licensed under the Open Government Licence v3.0"
LICENCE = (
    f"{ATTRIBUTION}. Sources: ONS (2018-based SNPP and NPP, 2022-based SNPP for sub-ICB "
    "locations, mid-year estimates, geography lookups), NHS England (GP-registered patients, "
    "AIF weighted populations), MHCLG (English Indices of Deprivation 2019). Aggregation of "
    "the 2018-based SNPP to ICBs, its variant series and the split of ages 90-100: The "
    "Strategy Unit (NHS Midlands and Lancashire), 'How much healthcare' app."
)
SOURCES = (
    "population_projection: ONS 2018-based SNPP by ICB via The "
    "Strategy Unit (aging_pop_web_app @8c68c30); population_projection_2022*: ONS 2022-based "
    "SNPP for sub-ICB locations, migration-category variant (24 Jun 2025), summed to ICBs and "
    "split to single years with the 2018-based shape; npp_*: ONS 2018-based NPP England open data "
    "workbooks (21 Oct 2019); gp_registered: NHS England Patients Registered at a GP Practice, "
    "1 Aug 2026; imd_*: MHCLG IoD 2019 File 10 (LAD summaries); aif_*: NHS England ICB "
    "allocation tool GP-practice weighted populations 2022/23-2028/29; merger_share: GP "
    "practice patients 2022/23 joined to the Aug 2026 practice map; ICB lookup: ONS April 2023."
)


class BuildError(Exception):
    """A raw input or an output check that does not meet expectations."""


@dataclass(frozen=True)
class Paths:
    raw: Path
    derived: Path
    out: Path


# --------------------------------------------------------------------------- geography


def icb_lookup(paths: Paths) -> pd.DataFrame:
    """The April 2023 sub-ICB -> ICB -> region lookup (106 rows)."""
    name = (
        "Sub_ICB_Locations_to_Integrated_Care_Boards_to_NHS_England_(Region)_(April_2023)"
        "_Lookup_in_England.csv"
    )
    return pd.read_csv(paths.raw / "geography" / name, encoding="utf-8-sig", dtype=str)


def icbs_2023(lookup: pd.DataFrame) -> pd.DataFrame:
    cols = {
        "ICB23CD": "icb",
        "ICB23CDH": "icb_ods",
        "ICB23NM": "icb_name",
        "NHSER23CD": "region",
        "NHSER23CDH": "region_ods",
        "NHSER23NM": "region_name",
    }
    table = lookup[list(cols)].drop_duplicates().rename(columns=cols)
    return table.sort_values("icb").reset_index(drop=True)


def gp_practice_map(paths: Paths) -> pd.DataFrame:
    with zipfile.ZipFile(paths.raw / "gp_registered" / "gp-reg-pat-prac-map_2026-08.zip") as z:
        return pd.read_csv(z.open("gp-reg-pat-prac-map.csv"), dtype=str)


def icbs_2026(practice_map: pd.DataFrame) -> pd.DataFrame:
    cols = {
        "ONS_ICB_CODE": "icb",
        "ICB_CODE": "icb_ods",
        "ICB_NAME": "icb_name",
        "ONS_COMM_REGION_CODE": "region",
        "COMM_REGION_CODE": "region_ods",
        "COMM_REGION_NAME": "region_name",
    }
    table = practice_map[list(cols)].drop_duplicates().rename(columns=cols)
    return table.sort_values("icb").reset_index(drop=True)


# --------------------------------------------------------------------------- SNPP by ICB


def snpp_by_icb(paths: Paths, icbs: list[str]) -> np.ndarray:
    """projection[variant, year, icb, sex, age], 90+ summed.

    The source's series `v0`, labelled mid-year estimates 2000..2017, is left out: in every
    ICB, sex and age it repeats the mid-2018 population (England 55,977,178 in each year),
    so it carries no demographic change and would make a back-cast before 2018 pretend.
    """
    path = paths.raw / "population_projections" / "su_snpp2018_variants_icb23_england_sya.csv.gz"
    df = pd.read_csv(
        path,
        usecols=["area_code", "variant", "year", "sex", "age", "population"],
        dtype={"area_code": str, "variant": str, "sex": str},
    )
    df = df[df["area_code"].isin(icbs) & (df["variant"] != "v0")]
    icb_i = pd.Index(icbs).get_indexer(df["area_code"])
    sex_i = pd.Index(SEXES).get_indexer(df["sex"])
    age_i = np.minimum(df["age"].to_numpy(), TOP_AGE)
    values = df["population"].to_numpy(np.int64)

    proj = np.zeros((len(SNPP_SERIES), len(YEARS), len(icbs), 2, len(AGES)), np.int64)
    var_i = pd.Index(SNPP_SERIES).get_indexer(df["variant"].to_numpy())
    year_i = pd.Index(YEARS).get_indexer(df["year"].to_numpy())
    if (var_i < 0).any() or (year_i < 0).any():
        raise BuildError(f"{path.name}: unexpected variant or year outside 2018..2043")
    np.add.at(proj, (var_i, year_i, icb_i, sex_i, age_i), values)
    return proj


def england_snpp_2043(paths: Paths) -> dict[str, int]:
    """England totals in 2043 from the source's own E92 rows, per variant name."""
    path = paths.raw / "population_projections" / "su_snpp2018_variants_icb23_england_sya.csv.gz"
    df = pd.read_csv(path, usecols=["area_code", "variant", "year", "population"])
    df = df[(df["area_code"] == "E92000001") & (df["year"] == 2043) & (df["variant"] != "v0")]
    totals = df.groupby("variant")["population"].sum()
    return {PROJECTION_VARIANTS[SNPP_SERIES.index(v)]: int(t) for v, t in totals.items()}


# --------------------------------------------------------------------------- NPP England


def _npp_rows(sheet, flow: str | None = None) -> tuple[list[tuple[int, str]], np.ndarray]:
    """Row labels (sex, age label) and the 2018..2047 (NPP_YEARS) values of one NPP sheet."""
    header = [str(h).strip() for h in sheet.row_values(0)]
    first = 3 if flow is not None else 2
    starts = [int(h.split("-")[0]) for h in header[first:]]
    missing = sorted(set(NPP_YEARS.tolist()) - set(starts))
    if missing:
        raise BuildError(f"NPP sheet {sheet.name}: no columns for years {missing}")
    cols = [first + starts.index(y) for y in NPP_YEARS]
    labels, values = [], []
    for r in range(1, sheet.nrows):
        row = sheet.row_values(r)
        if flow is not None and row[2] != flow:
            continue
        age = str(row[1]).strip()
        age = age[:-2] if age.endswith(".0") else age
        labels.append((int(row[0]), age))
        values.append([row[c] for c in cols])
    return labels, np.asarray(values, dtype=float)


def _by_sex_age(labels, values, ages: list[str]) -> np.ndarray:
    """Pick rows into [year, sex(f, m), len(ages)]; NPP codes sex 1 = male, 2 = female."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.empty((values.shape[1], 2, len(ages)))
    for s, code in enumerate((2, 1)):
        for a, age in enumerate(ages):
            out[:, s, a] = values[index[(code, age)]]
    return out


def _fold_top(x: np.ndarray) -> np.ndarray:
    """Sum the last axis from TOP_AGE upward into one 90+ cell."""
    return np.concatenate([x[..., :TOP_AGE], x[..., TOP_AGE:].sum(-1, keepdims=True)], -1)


def npp_variant(path: Path) -> dict[str, np.ndarray]:
    """Population, mortality, fertility and net migration for one NPP variant workbook."""
    import xlrd

    book = xlrd.open_workbook(file_contents=gzip.decompress(path.read_bytes()))
    labels, values = _npp_rows(book.sheet_by_name("Population"))
    pop_labels = [str(a) for a in range(105)] + ["105 - 109", "110 and over"]
    pop = _by_sex_age(labels, values, pop_labels)  # year, sex, 107 groups

    labels, values = _npp_rows(book.sheet_by_name("Mortality_assumptions"))
    q = _by_sex_age(labels, values, [str(a) for a in range(126)]) / 1e5
    birth = _by_sex_age(labels, values, ["Birth"])[..., 0] / 1e5
    # 90+: mean of q over the single ages 90..104, 105-109 (its mean q) and 110+ (its mean q),
    # weighted by the NPP population at the start of the period (mid-year `year`).
    q_groups = np.concatenate(
        [
            q[..., 90:105],
            q[..., 105:110].mean(-1, keepdims=True),
            q[..., 110:].mean(-1, keepdims=True),
        ],
        -1,
    )
    weights = pop[..., 90:]
    q90 = (q_groups * weights).sum(-1) / weights.sum(-1)
    mortality = np.concatenate([q[..., :TOP_AGE], q90[..., None]], -1)

    labels, values = _npp_rows(book.sheet_by_name("Fertility_assumptions"))
    index = {lab: i for i, lab in enumerate(labels)}
    fertility = values[[index[(2, str(a))] for a in FERTILITY_AGES]].T / 1e3

    labels, values = _npp_rows(book.sheet_by_name("Total_migration"), flow="Net")
    mig_labels = [str(a) for a in range(105)] + ["105+"]
    migration = _by_sex_age(labels, values, mig_labels)
    return {
        "population": _fold_top(pop),
        "mortality": mortality,
        "mortality_birth": birth,
        "fertility": fertility,
        "migration": _fold_top(migration),
    }


def npp_all(paths: Paths) -> dict[str, np.ndarray]:
    folder = paths.raw / "national_projections_npp"
    parts = [npp_variant(folder / f"en_{code}_opendata2018.xls.gz") for code in NPP_CODES]
    return {key: np.stack([p[key] for p in parts]) for key in parts[0]}


# --------------------------------------------------------------------------- SNPP 2022-based


def snpp2022_workbook(path: Path) -> xr.DataArray:
    """One ONS 2022-based SNPP workbook (five-year groups) as DataArray(area, sex, age_group,
    year_2022), float64 exactly as published.

    Reads the `Females` and `Males` sheets (header row 4: CODE, AREA, AGE GROUP, 2022..2047).
    Coordinates on `area`: `area_name` and `area_parent`, the code of the nearest E40 (NHS
    region) row above an area's rows ("" for areas above the first region row), which is how
    the sub-ICB workbook nests sub-ICB locations in regions. Each area's `All ages` row must
    equal the sum of its groups to within 1 person (the workbook rounds every cell to 0.1).
    """
    import xlrd

    book = xlrd.open_workbook(str(path))
    expected = ["CODE", "AREA", "AGE GROUP", *[float(y) for y in YEARS_2022]]
    by_sex, areas = {}, None
    for sex, sheet_name in SNPP2022_SHEETS.items():
        sheet = book.sheet_by_name(sheet_name)
        if sheet.row_values(3) != expected:
            raise BuildError(f"{path.name} {sheet_name}: header row 4 is not {expected[:4]}..2047")
        rows = [sheet.row_values(r) for r in range(4, sheet.nrows)]
        table = pd.DataFrame(rows, columns=["code", "name", "group", *YEARS_2022.tolist()])
        table = table[table["code"] != ""]
        order = list(dict.fromkeys(table["code"]))
        if areas is None:
            areas = table.drop_duplicates("code").set_index("code")["name"].reindex(order)
        elif order != list(areas.index):
            raise BuildError(f"{path.name}: the Males and Females sheets list different areas")
        values = table.set_index(["code", "group"])[YEARS_2022.tolist()].astype(float)
        if values.index.duplicated().any():
            raise BuildError(f"{path.name} {sheet_name}: duplicate (area, age group) rows")
        full = pd.MultiIndex.from_product([order, [*AGE_GROUPS, "All ages"]])
        if len(values) != len(full) or not values.index.isin(full).all():
            raise BuildError(f"{path.name} {sheet_name}: each area needs {AGE_GROUPS} and All ages")
        groups = values.reindex(pd.MultiIndex.from_product([order, AGE_GROUPS])).to_numpy()
        groups = groups.reshape(len(order), len(AGE_GROUPS), len(YEARS_2022))
        total = values.xs("All ages", level="group").reindex(order).to_numpy()
        if np.abs(groups.sum(1) - total).max() > 1.0:
            raise BuildError(f"{path.name} {sheet_name}: All ages differs from the sum of groups")
        by_sex[sex] = groups
    parents, current = [], ""
    for code in areas.index:
        current = code if code.startswith("E40") else current
        parents.append(current if code.startswith("E38") else "")
    return xr.DataArray(
        np.stack([by_sex[s] for s in SEXES], axis=1),
        dims=("area", "sex", "age_group", "year_2022"),
        coords={
            "area": list(areas.index),
            "area_name": ("area", list(areas.to_numpy())),
            "area_parent": ("area", parents),
            "sex": SEXES,
            "age_group": list(AGE_GROUPS),
            "year_2022": YEARS_2022,
        },
        name="population",
    )


def age_group_sums(single: np.ndarray) -> np.ndarray:
    """Single ages [..., 91] summed into the 19 five-year groups [..., 19] (90+ is age 90)."""
    lead = single.shape[:-1]
    fives = single[..., :TOP_AGE].reshape(*lead, TOP_AGE // 5, 5).sum(-1)
    return np.concatenate([fives, single[..., TOP_AGE:]], -1)


def split_single_years(groups: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Split five-year totals [..., 19 groups] into single ages [..., 91] by `shape`.

    `shape[..., 91]` (non-negative, same leading dims) gives the within-group age pattern:
    each age gets its group's total times its share of the group in `shape`, so every group
    total is kept exactly (to float rounding). A group whose `shape` sums to 0 is split
    evenly. Age 90 is the 90+ group unchanged.
    """
    if groups.shape[-1] != len(AGE_GROUPS) or shape.shape[-1] != len(AGES):
        raise ValueError("expected 19 age groups and 91 single ages")
    if (shape < 0).any():
        raise ValueError("the single-year shape has negative cells")
    shape = np.asarray(shape, dtype=float)
    band_total = age_group_sums(shape)
    width = np.bincount(AGE_GROUP_OF_AGE).astype(float)
    total = band_total[..., AGE_GROUP_OF_AGE]
    weight = np.divide(shape, total, out=np.zeros_like(shape), where=total > 0)
    weight = np.where(total > 0, weight, 1.0 / width[AGE_GROUP_OF_AGE])
    return np.asarray(groups, dtype=float)[..., AGE_GROUP_OF_AGE] * weight


def sicb_icb26_share(
    paths: Paths, lookup: pd.DataFrame, practice_map: pd.DataFrame, icbs26: list[str]
) -> np.ndarray:
    """Share of each April 2023 sub-ICB location's patients in each April 2026 ICB [sicb, icb26].

    The same basis as `merger_share` (SOURCES.md §8): AIF 2022/23 practices (`LOC22` is the
    sub-ICB location, on the April 2023 codes) joined to the August 2026 practice map by
    practice code, weighted by 2022/23 registered patients. Rows follow `lookup` order.
    """
    aif22 = pd.read_csv(
        paths.raw / "nhse_allocations" / "aif_gp_practice_weighted_population_2022_23.csv",
        usecols=["Practice_Code", "LOC22", "Patients"],
        dtype={"Practice_Code": str, "LOC22": str},
    )
    joined = aif22.merge(
        practice_map[["PRACTICE_CODE", "ONS_ICB_CODE"]],
        left_on="Practice_Code",
        right_on="PRACTICE_CODE",
    )
    i = pd.Index(lookup["SICBL23CDH"]).get_indexer(joined["LOC22"])
    j = pd.Index(icbs26).get_indexer(joined["ONS_ICB_CODE"])
    if (i < 0).any() or (j < 0).any():
        raise BuildError("AIF 2022/23: sub-ICB or 2026 ICB codes outside the lookups")
    share = np.zeros((len(lookup), len(icbs26)))
    np.add.at(share, (i, j), joined["Patients"].to_numpy(float))
    if (share.sum(1) <= 0).any():
        raise BuildError("AIF 2022/23: a sub-ICB location has no practice in the 2026 map")
    return share / share.sum(1, keepdims=True)


def snpp2022(
    paths: Paths,
    lookup: pd.DataFrame,
    codes: list[str],
    practice_map: pd.DataFrame,
    codes26: list[str],
    principal_2018: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The 2022-based SNPP by single year on the 42 (2023) and 36 (2026) ICBs.

    `principal_2018[year(2018..2043), icb, sex, age]` is the 2018-based single-year shape.
    Returns (pop[year_2022, icb, sex, age], pop26[year_2022, icb26, sex, age], report).
    42 ICBs: the sub-ICB groups are summed to their April 2023 ICB, then split by that ICB's
    2018-based shape in the same mid-year (the 2043 shape for 2044..2047). 36 ICBs: each
    sub-ICB location is split by its 2023 ICB's shape and added to its 2026 ICB; a sub-ICB
    location that straddles 2026 ICBs is shared by `sicb_icb26_share`, evenly across sex and
    age.
    """
    folder = paths.raw / SNPP2022_FOLDER
    raw = snpp2022_workbook(folder / SNPP2022_SICB_FILE)
    regional = snpp2022_workbook(folder / SNPP2022_REGION_FILE)
    codes_in = [c for c in raw["area"].values if c.startswith("E38")]
    if sorted(codes_in) != sorted(lookup["SICBL23CD"]):
        raise BuildError(f"{SNPP2022_SICB_FILE}: sub-ICB codes differ from the April 2023 lookup")
    sub = lookup.set_index("SICBL23CD")
    names = pd.Series(raw["area_name"].values, index=raw["area"].values)
    parent = pd.Series(raw["area_parent"].values, index=raw["area"].values)
    nested = names.reindex(parent.reindex(sub.index).to_numpy()).to_numpy()
    if not (nested == sub["NHSER23NM"].to_numpy()).all():
        raise BuildError(f"{SNPP2022_SICB_FILE}: sub-ICBs nested in other regions than the lookup")

    # [sicb, year, sex, group] in lookup order, and the parent ICB index of each sub-ICB.
    groups = raw.sel(area=list(sub.index)).transpose("area", "year_2022", "sex", "age_group")
    groups = groups.to_numpy()
    parent_icb = pd.Index(codes).get_indexer(sub["ICB23CD"])
    shape_year = np.minimum(YEARS_2022, YEARS[-1]) - YEARS[0]
    shape = principal_2018[shape_year].astype(float)  # [year_2022, icb, sex, age]

    icb_groups = np.zeros((len(YEARS_2022), len(codes), 2, len(AGE_GROUPS)))
    np.add.at(icb_groups, (slice(None), parent_icb), groups.transpose(1, 0, 2, 3))
    pop = split_single_years(icb_groups, shape)

    by_sicb = split_single_years(groups, shape[:, parent_icb].transpose(1, 0, 2, 3))
    share = sicb_icb26_share(paths, lookup, practice_map, codes26)
    pop26 = np.einsum("sj,syxa->yjxa", share, by_sicb)

    band_total = age_group_sums(shape)
    straddling = {
        code: {codes26[j]: round(float(share[i, j]), 4) for j in np.flatnonzero(share[i])}
        for i, code in enumerate(sub.index)
        if (share[i] > 0).sum() > 1
    }
    report = {
        "snpp2022_raw": raw,
        "snpp2022_regional_raw": regional,
        "snpp2022_sicb_icb": sub["ICB23CD"],
        "snpp2022_sicb_icb26_share": share,
        "snpp2022_straddling_sicbs": straddling,
        "snpp2022_even_split_groups": int((band_total == 0).sum()),
    }
    return pop, pop26, report


# --------------------------------------------------------------------------- GP registered


def gp_registered(
    paths: Paths, lookup: pd.DataFrame, practice_map: pd.DataFrame, icbs: list[str]
) -> np.ndarray:
    """Aug 2026 registered patients [icb, sex, age] on the 2023 ICBs.

    Sub-ICB locations map whole through the April 2023 lookup, except the three that Frimley's
    break-up changed (SICBL_RESHAPED): U2G6B replaced Frimley's D4U1Y, and 92A (Surrey
    Heartlands) and D9Y0V (Hampshire & IoW) took in former Frimley practices. Those three are
    rebuilt from their PCN rows, each PCN going to the 2023 ICB of its practices in the 2025/26
    AIF file (every such PCN lies in one 2023 ICB); patients of practices outside any PCN stay
    with the sub-ICB location's home ICB.
    """
    zpath = paths.raw / "gp_registered" / "gp-reg-pat-prac-sing-age-regions_2026-08.zip"
    with zipfile.ZipFile(zpath) as z:
        df = pd.read_csv(z.open("gp-reg-pat-prac-sing-age-regions.csv"), dtype=str)
    df = df[(df["SEX"] != "ALL") & (df["AGE"] != "ALL")].copy()
    df["sex_i"] = pd.Index(["FEMALE", "MALE"]).get_indexer(df["SEX"])
    df["age_i"] = np.minimum(df["AGE"].str.rstrip("+").astype(int), TOP_AGE)
    df["n"] = df["NUMBER_OF_PATIENTS"].astype(np.int64)

    def cells(rows: pd.DataFrame) -> pd.Series:
        return rows.groupby(["sex_i", "age_i"])["n"].sum()

    to_icb = lookup.set_index("SICBL23CDH")["ICB23CD"]
    sicbl = df[df["ORG_TYPE"] == "SUB_ICB_LOCATION_CODE"]
    unknown = sorted(set(sicbl["ORG_CODE"]) - set(to_icb.index) - set(SICBL_RESHAPED))
    if unknown:
        raise BuildError(f"{zpath.name}: sub-ICB locations not in the April 2023 lookup: {unknown}")
    whole = sicbl[~sicbl["ORG_CODE"].isin(SICBL_RESHAPED)]
    parts = [whole.assign(icb=whole["ORG_CODE"].map(to_icb))]

    aif = _aif_file(paths, 2025)
    practice_icb = aif.set_index("practice")["icb_ods"].map(
        lookup.drop_duplicates("ICB23CDH").set_index("ICB23CDH")["ICB23CD"]
    )
    pcn_rows = df[df["ORG_TYPE"] == "PCN"]
    for code, home_ods in SICBL_RESHAPED.items():
        practices = practice_map[
            (practice_map["SUB_ICB_LOCATION_CODE"] == code) & (practice_map["PCN_CODE"] != "U")
        ]
        residual = cells(sicbl[sicbl["ORG_CODE"] == code])
        for pcn, members in practices.groupby("PCN_CODE"):
            owners = set(practice_icb.reindex(members["PRACTICE_CODE"]))
            if len(owners) != 1 or pd.isna(next(iter(owners))):
                raise BuildError(f"{zpath.name}: PCN {pcn} in {code} has no single 2023 ICB")
            rows = pcn_rows[pcn_rows["ORG_CODE"] == pcn]
            parts.append(rows.assign(icb=owners.pop()))
            residual = residual.sub(cells(rows), fill_value=0)
        if (residual < 0).any():
            raise BuildError(f"{zpath.name}: PCN rows exceed sub-ICB location {code}")
        home = lookup.drop_duplicates("ICB23CDH").set_index("ICB23CDH").loc[home_ods, "ICB23CD"]
        parts.append(residual.rename("n").reset_index().assign(icb=home))
    rows = pd.concat(parts, ignore_index=True)
    out = np.zeros((len(icbs), 2, len(AGES)), np.int64)
    icb_i = pd.Index(icbs).get_indexer(rows["icb"])
    np.add.at(
        out, (icb_i, rows["sex_i"].to_numpy(), rows["age_i"].to_numpy()), rows["n"].to_numpy()
    )
    return out


# --------------------------------------------------------------------------- deprivation


def imd_scores(paths: Paths, icbs: list[str]) -> dict[str, np.ndarray]:
    """IoD 2019 LAD average scores, population-weighted to LAD23 and then to the 2023 ICBs.

    LAD19 -> LAD23 (whole-district merges) weights each old district by the GP-registered
    patients of its practices in 2022/23 (AIF `Patients` by `LAD21`), since the SNPP file
    only has LAD23 codes. Buckinghamshire (2020) and the Northamptonshires (2021) had already
    merged by LAD21, so their old districts get equal weights: the only approximation here.
    LAD23 -> ICB weights each district by its 2018 SNPP population (best-fit lookup).
    """
    book = (
        paths.raw
        / "deprivation"
        / "File_10_-_IoD2019_Local_Authority_District_Summaries__lower-tier__.xlsx"
    )
    code = "Local Authority District code (2019)"
    scores = {}
    for var, sheet, column in [
        ("imd_score", "IMD", "IMD - Average score "),
        ("imd_income_score", "Income", "Income - Average score "),
        ("imd_health_score", "Health", "Health Deprivation and Disability - Average score "),
    ]:
        scores[var] = pd.read_excel(book, sheet_name=sheet).set_index(code)[column]
    lad19 = pd.read_csv(paths.derived / "lad19_to_lad23.csv").set_index("LAD19CD")

    aif = pd.read_csv(
        paths.raw / "nhse_allocations" / "aif_gp_practice_weighted_population_2022_23.csv"
    )
    patients = aif.groupby("LAD21")["Patients"].sum()
    w19 = patients.reindex(lad19.index).fillna(1.0)
    merged_early = ~lad19.index.isin(patients.index)
    w19[merged_early] = 1.0

    lad_pop = pd.read_csv(
        paths.raw / "population_projections" / "su_snpp2018_principal_lad23_sya.csv.gz",
        usecols=["area_code", "year", "population"],
    )
    pop23 = lad_pop[lad_pop["year"] == 2018].groupby("area_code")["population"].sum()
    bestfit = pd.read_csv(paths.derived / "lad23_to_icb23_bestfit.csv").set_index("LAD23CD")

    out = {}
    for var, score in scores.items():
        frame = pd.DataFrame(
            {"score": score.reindex(lad19.index), "w": w19, "lad23": lad19["LAD23CD"]}
        )
        if frame["score"].isna().any():
            raise BuildError(f"{book.name}: {var} missing for some LAD19 codes")
        frame["sw"] = frame["score"] * frame["w"]
        g = frame.groupby("lad23")[["sw", "w"]].sum()
        lad23 = pd.DataFrame({"score": g["sw"] / g["w"]})
        lad23["pop"] = pop23.reindex(lad23.index)
        lad23["icb"] = bestfit["ICB23CD"].reindex(lad23.index)
        if lad23.isna().any().any():
            raise BuildError(f"{var}: LAD23 codes without a 2018 population or an ICB")
        lad23["sp"] = lad23["score"] * lad23["pop"]
        by_icb = lad23.groupby("icb")[["sp", "pop"]].sum()
        out[var] = (by_icb["sp"] / by_icb["pop"]).reindex(icbs).to_numpy()
    return out


# --------------------------------------------------------------------------- AIF


def _aif_file(paths: Paths, year: int) -> pd.DataFrame:
    """One AIF year as Practice_Code, icb_ods, population, and the seven components."""
    name = f"aif_gp_practice_weighted_population_{year}_{(year + 1) % 100:02d}.csv"
    df = pd.read_csv(paths.raw / "nhse_allocations" / name, encoding="utf-8-sig")
    if year <= 2024:
        icb_col, pop_col, core_col = "ICS22", "pop 2022/23", "Final WP"
    elif year == 2025:
        icb_col, pop_col, core_col = "ICB", "Population", "Final WP"
    else:
        icb_col, pop_col, core_col = "ICB", "Registered Patients", "Core WP"
    out = df[["Practice_Code", icb_col, pop_col, *AIF_WP_COLUMNS, core_col]].copy()
    out.columns = ["practice", "icb_ods", "population", *AIF_COMPONENTS]
    if out[["practice", "icb_ods", "population"]].isna().any().any():
        raise BuildError(f"{name}: blank practice, ICB or population cells")
    # A few tiny practices (e.g. 17 in 2022/23) leave Mat WP blank: no maternity need counted.
    return out.fillna(dict.fromkeys(AIF_COMPONENTS, 0.0))


def aif(
    paths: Paths, icbs: pd.DataFrame, icbs26: pd.DataFrame, merger_rows: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """AIF population[aif_year, icb] and weighted population[aif_year, icb, component].

    Practices in the 36-ICB files (2026/27+) take their 2023 ICB from the latest earlier
    file that lists them; a practice in none of them has its values split across the 2023
    ICBs that formed its 2026 ICB, in proportion to the 2022/23 patients behind the merger
    shares. Returns, per year, how many practices needed that split.
    """
    ods_to_icb = icbs.set_index("icb_ods")["icb"]
    codes = list(icbs["icb"])
    pop = np.zeros((len(AIF_YEARS), len(codes)))
    wp = np.zeros((len(AIF_YEARS), len(codes), len(AIF_COMPONENTS)))
    known: dict[str, str] = {}
    split_counts = {}
    values = ["population", *AIF_COMPONENTS]
    icb26_by_ods = icbs26.set_index("icb_ods")["icb"]
    pair = merger_rows.groupby(["ICB26CD", "ICB23CD"])["gp_registered_patients_2022_23"].sum()
    icb26_split = (pair / pair.groupby(level=0).transform("sum")).rename("share")
    for y_i, year in enumerate(AIF_YEARS):
        df = _aif_file(paths, year)
        if year <= 2025:
            df["icb"] = df["icb_ods"].map(ods_to_icb)
            if df["icb"].isna().any():
                raise BuildError(f"AIF {year}: ICB codes not in the 2023 lookup")
            known.update(zip(df["practice"], df["icb"], strict=True))
            parts = df
        else:
            df["icb"] = df["practice"].map(known)
            df["icb26"] = df["icb_ods"].replace(AIF_TEMPORARY_ICB).map(icb26_by_ods)
            if df["icb26"].isna().any():
                raise BuildError(f"AIF {year}: ICB codes not in the August 2026 practice map")
            matched = df[df["icb"].notna()]
            pairs = pd.MultiIndex.from_arrays([matched["icb26"], matched["icb"]])
            if not pairs.isin(pair.index).all():
                raise BuildError(
                    f"AIF {year}: practices whose 2023 ICB never became their 2026 ICB"
                )
            orphans = df[df["icb"].isna()]
            split_counts[int(year)] = len(orphans)
            parts = pd.concat([matched, spread_unmatched(orphans, icb26_split)], ignore_index=True)
        totals = parts.groupby("icb")[values].sum().reindex(codes)
        if totals.isna().any().any():
            raise BuildError(f"AIF {year}: some 2023 ICBs have no practices")
        pop[y_i] = totals["population"].to_numpy()
        wp[y_i] = totals[AIF_COMPONENTS].to_numpy()
    return pop, wp, split_counts


def spread_unmatched(practices: pd.DataFrame, icb26_split: pd.Series) -> pd.DataFrame:
    """Split practices known only by their 2026 ICB across the 2023 ICBs that formed it.

    `icb26_split` is indexed by (ICB26CD, ICB23CD) and sums to 1 within each ICB26CD. Returns
    one row per (practice, 2023 ICB) with column `icb` and every value column scaled by the
    share, so totals are conserved.
    """
    values = ["population", *AIF_COMPONENTS]
    shares = icb26_split.rename_axis(["icb26", "icb"]).reset_index()
    rows = practices[["practice", "icb26", *values]].merge(shares, on="icb26", how="left")
    if rows["share"].isna().any():
        raise BuildError("unmatched AIF practices in a 2026 ICB with no merger shares")
    rows[values] = rows[values].mul(rows["share"], axis=0)
    return rows[["practice", "icb", *values]]


# --------------------------------------------------------------------------- mergers


def merger_share(
    paths: Paths, icbs: list[str], icbs26: list[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    rows = pd.read_csv(paths.derived / "icb23_to_icb26_gp_practice_patient_shares.csv")
    share = np.zeros((len(icbs), len(icbs26)))
    i = pd.Index(icbs).get_indexer(rows["ICB23CD"])
    j = pd.Index(icbs26).get_indexer(rows["ICB26CD"])
    if (i < 0).any() or (j < 0).any():
        raise BuildError("icb23_to_icb26 shares: codes not in the 2023 or 2026 ICB lists")
    np.add.at(share, (i, j), rows["share_of_icb23_patients"].to_numpy())
    return share / share.sum(1, keepdims=True), rows


# --------------------------------------------------------------------------- assembly


def _int32(x: np.ndarray) -> np.ndarray:
    """Integers as int32 when that is exact (checked), so the file stays small."""
    if not np.array_equal(x, np.round(x)) or np.abs(x).max() >= 2**31:
        raise BuildError("expected whole numbers that fit in int32")
    return np.round(x).astype(np.int32)


def assemble(paths: Paths) -> tuple[xr.Dataset, pd.DataFrame, pd.DataFrame, dict]:
    lookup = icb_lookup(paths)
    icbs = icbs_2023(lookup)
    codes = list(icbs["icb"])
    practice_map = gp_practice_map(paths)
    icbs26 = icbs_2026(practice_map)
    codes26 = list(icbs26["icb"])

    proj = snpp_by_icb(paths, codes)
    npp = npp_all(paths)
    gp = gp_registered(paths, lookup, practice_map, codes)
    imd = imd_scores(paths, codes)
    share, merger_rows = merger_share(paths, codes, codes26)
    aif_pop, aif_wp, aif_splits = aif(paths, icbs, icbs26, merger_rows)
    principal = proj[list(PROJECTION_VARIANTS).index("principal")]
    pop22, pop22_26, snpp22_report = snpp2022(
        paths, lookup, codes, practice_map, codes26, principal
    )

    coords = {
        "variant": list(PROJECTION_VARIANTS),
        "year": YEARS.astype(np.int32),
        "year_2022": YEARS_2022.astype(np.int32),
        "npp_year": NPP_YEARS.astype(np.int32),
        "aif_year": AIF_YEARS.astype(np.int32),
        "icb": codes,
        "icb_ods": ("icb", list(icbs["icb_ods"])),
        "icb_name": ("icb", list(icbs["icb_name"])),
        "region": ("icb", list(icbs["region"])),
        "region_name": ("icb", list(icbs["region_name"])),
        "icb26": codes26,
        "icb26_ods": ("icb26", list(icbs26["icb_ods"])),
        "icb26_name": ("icb26", list(icbs26["icb_name"])),
        "icb26_region": ("icb26", list(icbs26["region"])),
        "sex": SEXES,
        "age": AGES.astype(np.int32),
        "fertility_age": FERTILITY_AGES.astype(np.int32),
        "aif_component": AIF_COMPONENTS,
    }
    v = ("variant", "npp_year", "sex", "age")
    data = {
        "population_projection": (
            ("variant", "year", "icb", "sex", "age"),
            _int32(proj),
            "persons",
            "ONS 2018-based SNPP at mid-year `year` by 2023 ICB (The Strategy Unit aggregation), "
            "principal and 10 variants",
        ),
        "population_projection_2022": (
            ("year_2022", "icb", "sex", "age"),
            pop22,
            "persons",
            "ONS 2022-based SNPP (migration-category variant, the principal) at mid-year "
            "`year_2022` by 2023 ICB: sub-ICB locations summed, five-year groups split to single "
            "years (unrounded)",
        ),
        "population_projection_2022_icb26": (
            ("year_2022", "icb26", "sex", "age"),
            pop22_26,
            "persons",
            "ONS 2022-based SNPP (migration-category variant, the principal) at mid-year "
            "`year_2022` by April 2026 ICB: sub-ICB locations summed, split to single years "
            "(unrounded)",
        ),
        "gp_registered": (
            ("icb", "sex", "age"),
            _int32(gp),
            "persons",
            "Patients registered at a GP practice on 1 Aug 2026, by 2023 ICB",
        ),
        "npp_mortality": (
            v,
            npp["mortality"],
            "probability",
            "ONS NPP 2018 England: probability that a person aged `age` at mid-year `npp_year` "
            "dies before mid-year `npp_year`+1",
        ),
        "npp_mortality_birth": (
            ("variant", "npp_year", "sex"),
            npp["mortality_birth"],
            "probability",
            "ONS NPP 2018 England: probability that a baby born between mid-year `npp_year` and "
            "`npp_year`+1 dies before mid-year `npp_year`+1",
        ),
        "npp_fertility": (
            ("variant", "npp_year", "fertility_age"),
            npp["fertility"],
            "births per woman",
            "ONS NPP 2018 England: births in mid-year `npp_year` to `npp_year`+1 per woman aged "
            "`fertility_age` (mean of women that age at the two mid-years)",
        ),
        "npp_net_migration": (
            v,
            _int32(npp["migration"]),
            "persons",
            "ONS NPP 2018 England: net migration (international + cross-border) between mid-year "
            "`npp_year` and `npp_year`+1, by age at migration",
        ),
        "npp_population": (
            v,
            _int32(npp["population"]),
            "persons",
            "ONS NPP 2018 England population at mid-year `npp_year`",
        ),
        "imd_score": (
            ("icb",),
            imd["imd_score"],
            "score",
            "IoD 2019 IMD average score, LAD summaries population-weighted to ICB",
        ),
        "imd_income_score": (
            ("icb",),
            imd["imd_income_score"],
            "score",
            "IoD 2019 income domain average score (share of people income-deprived), "
            "population-weighted to ICB",
        ),
        "imd_health_score": (
            ("icb",),
            imd["imd_health_score"],
            "score",
            "IoD 2019 health deprivation and disability average score, population-weighted to ICB",
        ),
        "aif_population": (
            ("aif_year", "icb"),
            aif_pop,
            "persons",
            "NHS England AIF projected GP-registered population for financial year `aif_year`, "
            "summed to 2023 ICBs",
        ),
        "aif_weighted_population": (
            ("aif_year", "icb", "aif_component"),
            aif_wp,
            "persons",
            "NHS England AIF need-weighted population by component, summed to 2023 ICBs",
        ),
        "merger_share": (
            ("icb", "icb26"),
            share,
            "fraction",
            "share of each 2023 ICB's GP-registered patients (2022/23) in each April 2026 ICB",
        ),
    }
    ds = xr.Dataset(
        {
            name: xr.DataArray(arr, dims=dims, attrs={"units": units, "long_name": long})
            for name, (dims, arr, units, long) in data.items()
        },
        coords=coords,
    )
    ds["npp_fertility"].attrs["male_births_per_female_birth"] = 1.05
    for name in ("population_projection_2022", "population_projection_2022_icb26"):
        ds[name].attrs["single_year_method"] = SINGLE_YEAR_METHOD
        ds[name].attrs["source"] = (
            f"ONS, {SNPP2022_SICB_FILE} (24 June 2025), Tables 3 Males/Females; OGL v3"
        )
    ds["population_projection_2022_icb26"].attrs["footprint"] = ICB26_METHOD
    ds.attrs = {"sources": SOURCES, "licence": LICENCE}
    report = {"aif_practices_split_by_merger_share": aif_splits, **snpp22_report}
    report["england_2043_source"] = england_snpp_2043(paths)
    return ds, icbs, icbs26, report


def content_hash(ds: xr.Dataset) -> str:
    """SHA-256 of every variable's name, dims, dtype and values, and the attrs (not file bytes)."""
    h = hashlib.sha256()
    for name in sorted(ds.variables):
        var = ds.variables[name]
        h.update(f"{name}|{var.dims}|{var.dtype}|{sorted(var.attrs.items())}".encode())
        values = var.values
        if values.dtype.kind in "OUS":
            h.update("\x1f".join(map(str, values.ravel())).encode())
        else:
            h.update(np.ascontiguousarray(values).tobytes())
    attrs = {k: v for k, v in ds.attrs.items() if k != "data_version"}
    h.update(repr(sorted(attrs.items())).encode())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------- checks


def check(ds: xr.Dataset, icbs26: pd.DataFrame, report: dict) -> list[str]:
    """Every failed check as one line; an empty list means the data can be packaged."""
    problems = []

    def expect(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    expect(ds.sizes["icb"] == 42, f"expected 42 ICBs, found {ds.sizes['icb']}")
    expect(len(set(ds["region"].values)) == 7, "expected 7 NHS regions")
    expect(ds.sizes["icb26"] == 36, f"expected 36 ICBs in 2026, found {ds.sizes['icb26']}")
    for name, var in ds.data_vars.items():
        values = var.values
        expect(not np.isnan(values).any(), f"{name} has missing cells")
        if name not in SIGNED_VARIABLES:
            expect((values >= 0).all(), f"{name} has negative cells")
        expect("units" in var.attrs and "long_name" in var.attrs, f"{name} lacks units/long_name")

    proj = ds["population_projection"].sum(["icb", "sex", "age"])
    total_2018 = int(proj.sel(variant="principal", year=2018))
    expect(
        abs(total_2018 - ENGLAND_2018_ICB_SUM) <= 5,
        f"2018 ICB sum {total_2018:,} != {ENGLAND_2018_ICB_SUM:,} (SOURCES.md)",
    )
    for variant, target in ENGLAND_2043.items():
        got = int(proj.sel(variant=variant, year=2043))
        tolerance = 100 if variant == "principal" else 5_000
        expect(abs(got - target) <= tolerance, f"{variant} 2043 ICB sum {got:,} vs {target:,.0f}")
    for variant, source_total in report["england_2043_source"].items():
        got = int(proj.sel(variant=variant, year=2043))
        expect(
            abs(got - source_total) <= 100,
            f"{variant} 2043: ICBs {got:,} vs England {source_total:,}",
        )
    npp_2043 = int(ds["npp_population"].sel(variant="principal", npp_year=2043).sum())
    expect(abs(npp_2043 - ENGLAND_2043["principal"]) <= 5, f"NPP principal 2043 = {npp_2043:,}")

    gp_total = int(ds["gp_registered"].sum())
    expect(gp_total == GP_REGISTERED_ENGLAND, f"GP registered total {gp_total:,} != 63,237,908")
    expect((ds["gp_registered"].sum(["sex", "age"]) > 0).all(), "an ICB has no GP patients")

    rows = ds["merger_share"].sum("icb26").values
    expect(np.allclose(rows, 1.0, rtol=0, atol=1e-12), "merger_share rows do not sum to 1")
    expect(
        set(ds["icb26"].values) == set(icbs26["icb"]), "merger_share icb26 differs from icbs_2026"
    )

    national = ds["aif_weighted_population"].sum("icb")
    pop = ds["aif_population"].sum("icb")
    for year in ds["aif_year"].values:
        gap = float(abs(national.sel(aif_year=year) - pop.sel(aif_year=year)).max())
        expect(gap < 1.0, f"AIF {year}: a component sums to {gap:.2f} away from the population")

    q = ds["npp_mortality"]
    expect(bool((q <= 1).all()), "a mortality probability exceeds 1")
    expect(bool((q.sel(age=90) > q.sel(age=89)).all()), "90+ mortality should exceed age 89")
    tfr = ds["npp_fertility"].sel(variant="principal", npp_year=2043).sum().item()
    expect(1.5 < tfr < 2.0, f"principal 2043 total fertility rate {tfr:.2f} is implausible")
    for var in ("imd_score", "imd_income_score", "imd_health_score"):
        expect(ds[var].notnull().all().item(), f"{var} missing for some ICBs")
    expect(list(ds["npp_year"].values) == NPP_YEARS.tolist(), "npp_year should run 2018..2047")
    problems += check_snpp2022(ds, report)
    return problems


def _worst_relative(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| / max(|want|, 1); infinite when there is nothing to compare."""
    if np.size(want) == 0:
        return float("inf")
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)))


def check_snpp2022(ds: xr.Dataset, report: dict) -> list[str]:
    """Checks of the 2022-based SNPP variables; against the raw workbooks when `report` has them.

    Also records the largest deviation of each check in `report["snpp2022_deviation"]`.
    """
    problems = []
    worst = report.setdefault("snpp2022_deviation", {})

    def expect(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    pop = ds["population_projection_2022"]
    pop26 = ds["population_projection_2022_icb26"]
    expect(pop.dtype == np.float64 and pop26.dtype == np.float64, "2022-based SNPP is not float64")
    expect(list(ds["year_2022"].values) == YEARS_2022.tolist(), "year_2022 should run 2022..2047")
    england = pop.sum(["icb", "age"])  # sex, year_2022
    for year, published in ENGLAND_2022_BASED.items():
        got = float(england.sel(year_2022=year).sum())
        expect(abs(got - published) <= 5, f"2022-based England {year}: {got:,.1f} vs {published:,}")
    by_sex26 = pop26.sum(["icb26", "age"]).transpose(*england.dims).values
    worst["icb26_vs_icb_england_relative"] = _worst_relative(by_sex26, england.values)
    expect(
        worst["icb26_vs_icb_england_relative"] <= 1e-12,
        "2022-based SNPP: the 36-ICB England totals differ from the 42-ICB ones",
    )
    # A 2026 ICB formed only of whole 2023 ICBs must be exactly their sum.
    share = ds["merger_share"]
    whole = ((share == 0) | (share == 1)).all("icb") & (share == 1).any("icb")
    summed = xr.dot(pop, share.where(whole, 0), dim="icb").sel(icb26=whole)
    mine = pop26.sel(icb26=whole).transpose(*summed.dims)
    worst["icb26_whole_vs_icb_relative"] = _worst_relative(mine.values, summed.values)
    report["snpp2022_icb26_whole"] = int(whole.sum())
    expect(
        bool(whole.sum() >= 28) and worst["icb26_whole_vs_icb_relative"] <= 1e-12,
        "2022-based SNPP: 2026 ICBs made of whole 2023 ICBs differ from their sum",
    )
    straddling = report.get("snpp2022_straddling_sicbs")
    if straddling is not None:
        expect(
            set(straddling) == set(STRADDLING_SICBS),
            f"sub-ICB locations straddling 2026 ICBs {sorted(straddling)} differ from "
            f"STRADDLING_SICBS {sorted(STRADDLING_SICBS)} (update ICB26_METHOD and the docs)",
        )
    raw = report.get("snpp2022_raw")
    if raw is None:  # e.g. a test that checks the packaged file alone
        return problems

    order = ("year_2022", "sex", "age_group")
    codes = raw["area"].values
    eng_row = raw.sel(area="E92000001").transpose(*order).values
    for year, published in ENGLAND_2022_BASED.items():
        row = eng_row[YEARS_2022.tolist().index(year)].sum()
        expect(round(row) == published, f"ONS England row {year}: {row:,.1f} vs {published:,}")
    single = pop.transpose("year_2022", "icb", "sex", "age").values
    grouped = age_group_sums(single)  # [year, icb, sex, group]
    sub_to_icb = report["snpp2022_sicb_icb"]
    sub = raw.sel(area=list(sub_to_icb.index)).transpose("area", *order).values
    icb_i = pd.Index(ds["icb"].values).get_indexer(sub_to_icb.to_numpy())
    from_raw = np.zeros_like(grouped)
    np.add.at(from_raw, (slice(None), icb_i), sub.transpose(1, 0, 2, 3))
    worst["regroup_abs"] = float(np.abs(grouped - from_raw).max())
    worst["regroup_relative"] = _worst_relative(grouped, from_raw)
    expect(
        worst["regroup_relative"] <= 1e-12,
        "2022-based SNPP: single years do not re-aggregate to the published five-year groups",
    )
    grouped26 = age_group_sums(pop26.transpose("year_2022", "icb26", "sex", "age").values)
    from_raw26 = np.einsum("nj,nyxg->yjxg", report["snpp2022_sicb_icb26_share"], sub)
    worst["regroup_icb26_relative"] = _worst_relative(grouped26, from_raw26)
    expect(
        worst["regroup_icb26_relative"] <= 1e-12,
        "2022-based SNPP (36 ICBs): single years do not re-aggregate to the sub-ICB groups",
    )

    totals = grouped.sum((1, 3))  # [year, sex]
    eng_totals = eng_row.sum(-1)
    worst["england_year_relative"] = _worst_relative(totals.sum(1), eng_totals.sum(1))
    worst["england_year_sex_relative"] = _worst_relative(totals, eng_totals)
    worst["england_year_abs"] = float(np.abs(totals.sum(1) - eng_totals.sum(1)).max())
    expect(
        worst["england_year_sex_relative"] <= SNPP2022_REL_TOL,
        "2022-based SNPP: ICB sums differ from the ONS England row "
        f"(relative {worst['england_year_sex_relative']:.1e})",
    )
    regions = ds["region_name"].values
    name_of = pd.Series(raw["area_name"].values, index=codes)
    worst_region = 0.0
    for code in (c for c in codes if c.startswith("E40")):
        row = raw.sel(area=code).transpose(*order).values.sum(-1)  # [year, sex]
        mine = grouped[:, regions == name_of[code]].sum((1, 3))
        worst_region = max(worst_region, _worst_relative(mine, row))
        expect(mine.size > 0 and (regions == name_of[code]).any(), f"no ICBs in region {code}")
    worst["region_year_sex_relative"] = worst_region
    expect(
        worst_region <= SNPP2022_REL_TOL,
        f"2022-based SNPP: ICB sums differ from the NHS region rows (relative {worst_region:.1e})",
    )

    regional = report["snpp2022_regional_raw"]
    reg_eng = regional.sel(area="E92000001").transpose(*order).values
    expect(np.array_equal(reg_eng, eng_row), "the two 2022-based workbooks' England rows differ")
    e12 = [c for c in regional["area"].values if c.startswith("E12")]
    e12_sum = regional.sel(area=e12).sum("area").transpose(*order).values
    worst["e12_regions_vs_england_relative"] = _worst_relative(e12_sum, reg_eng)
    expect(
        len(e12) == 9 and worst["e12_regions_vs_england_relative"] <= SNPP2022_REL_TOL,
        "2022-based SNPP: the 9 English regions do not add up to England",
    )
    return problems


# --------------------------------------------------------------------------- writing


def encoding(ds: xr.Dataset) -> dict[str, dict]:
    """zlib level 9 with byte shuffle, one chunk per variable except `population_projection`.

    `population_projection` gets one chunk per variant, so a reader can take one variant
    without decompressing all 11. That costs about 0.8 MB against whole-array chunks (deflate
    then also finds the values the variants share), so the small England-only `npp_*` arrays
    stay in one chunk each (0.3 MB less than per-variant chunks).
    """
    return {
        name: {
            "zlib": True,
            "complevel": 9,
            "shuffle": True,
            "chunksizes": tuple(
                1 if dim == "variant" and name in PER_VARIANT_CHUNKS else n
                for dim, n in var.sizes.items()
            ),
        }
        for name, var in ds.data_vars.items()
    }


def write(ds: xr.Dataset, icbs: pd.DataFrame, icbs26: pd.DataFrame, out: Path) -> Path:
    """Write atomically (temp name then rename) so a failed build never leaves half a file."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / "reference.nc"
    fd, tmp = tempfile.mkstemp(suffix=".nc", dir=out)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding(ds))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the package file must be readable
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for table, name in ((icbs, "icbs.csv"), (icbs26, "icbs_2026.csv")):
        buffer = io.StringIO()
        table.to_csv(buffer, index=False, lineterminator="\n")
        (out / name).write_text(buffer.getvalue(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=REPO.parent / "shared" / "data" / "raw")
    parser.add_argument("--derived", type=Path, default=REPO.parent / "shared" / "data" / "derived")
    parser.add_argument("--out", type=Path, default=REPO / "sim" / "data")
    args = parser.parse_args(argv)
    paths = Paths(args.raw, args.derived, args.out)
    try:
        ds, icbs, icbs26, report = assemble(paths)
    except ImportError as error:
        print(f"build_reference_data: {error} (pip install -e '.[build-data]')", file=sys.stderr)
        return 1
    except (BuildError, FileNotFoundError, KeyError) as error:
        print(f"build_reference_data: {error}", file=sys.stderr)
        return 1
    problems = check(ds, icbs26, report)
    if problems:
        print("build_reference_data: checks failed:", file=sys.stderr)
        for line in problems:
            print(f"  - {line}", file=sys.stderr)
        return 1
    ds.attrs["data_version"] = f"{RELEASE}+{content_hash(ds)}"
    target = write(ds, icbs, icbs26, paths.out)
    size = target.stat().st_size / 1e6
    print(f"wrote {target} ({size:.2f} MB), data_version {ds.attrs['data_version']}")
    print(f"AIF practices split by merger share: {report['aif_practices_split_by_merger_share']}")
    england = ds["population_projection_2022"].sum(["icb", "sex", "age"])
    shown = {int(y): f"{float(england.sel(year_2022=y)):,.1f}" for y in ENGLAND_2022_BASED}
    print(f"2022-based SNPP England (sum of ICBs): {shown}")
    print(f"2022-based SNPP sub-ICBs straddling 2026 ICBs: {report['snpp2022_straddling_sicbs']}")
    print(
        f"2022-based SNPP groups split evenly (no 2018 shape): "
        f"{report['snpp2022_even_split_groups']}"
    )
    deviation = {k: f"{v:.2e}" for k, v in report["snpp2022_deviation"].items()}
    print(f"2022-based SNPP largest deviations: {deviation}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
