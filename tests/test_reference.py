"""Integrity of the packaged reference data and the loaders' error handling.

The packaged files are checked directly (CI need not rebuild them); one test rebuilds them from
`../shared/data` when it is there and checks that the content hash is unchanged.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim import reference
from sim.errors import DataError
from sim.scenario import PROJECTION_VARIANTS

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SIGNED = {"npp_net_migration", "imd_health_score"}


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return reference.load_reference()


def england(ds: xr.Dataset, variant: str, year: int) -> int:
    return int(ds["population_projection"].sel(variant=variant, year=year).sum())


def test_42_icbs_in_7_regions_match_the_csv(ds: xr.Dataset) -> None:
    icbs = reference.load_icbs(2023)
    assert len(icbs) == 42 and icbs["region"].nunique() == 7
    assert list(ds["icb"].values) == sorted(icbs["icb"]) == list(icbs["icb"])
    assert list(ds["icb_ods"].values) == list(icbs["icb_ods"])
    assert list(ds["region_name"].values) == list(icbs["region_name"])
    icbs26 = reference.load_icbs(2026)
    assert len(icbs26) == 36 and list(ds["icb26"].values) == list(icbs26["icb"])


def test_dims_coordinates_and_units(ds: xr.Dataset) -> None:
    for name, dims in reference.REFERENCE_VARIABLES.items():
        assert ds[name].dims == dims, name
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"], name
    assert list(ds["variant"].values) == list(PROJECTION_VARIANTS)
    assert list(ds["year"].values) == list(range(2018, 2044))
    assert list(ds["npp_year"].values) == list(range(2018, 2048))  # NPP runs past the SNPP
    assert list(ds["year_2022"].values) == list(range(2022, 2048))
    assert "population_estimate" not in ds  # the source's 2000..2017 repeat mid-2018
    assert list(ds["age"].values) == list(range(91))
    assert list(ds["sex"].values) == ["f", "m"]
    assert list(ds["fertility_age"].values) == list(range(15, 47))
    assert list(ds["aif_year"].values) == list(range(2022, 2029))
    for attr in ("data_version", "sources", "licence"):
        assert ds.attrs[attr]
    assert "Open Government Licence v3.0" in ds.attrs["licence"]
    assert "Strategy Unit" in ds.attrs["licence"]


def test_no_missing_or_negative_cells(ds: xr.Dataset) -> None:
    for name, var in ds.data_vars.items():
        assert not var.isnull().any(), name
        if name not in SIGNED:
            assert (var >= 0).all(), name
    assert (ds["npp_mortality"] <= 1).all() and (ds["npp_mortality_birth"] < 1).all()


def test_england_totals_match_published_figures(ds: xr.Dataset) -> None:
    assert england(ds, "principal", 2018) == 55_977_169  # ICB sum; ONS MYE 55,977,178
    assert abs(england(ds, "principal", 2043) - 61_744_098) <= 100  # ONS NPP principal
    assert round(england(ds, "high_migration", 2043) / 1e6, 2) == 64.24
    assert round(england(ds, "low_migration", 2043) / 1e6, 2) == 59.25
    assert round(england(ds, "low_population", 2043) / 1e6, 2) == 57.20
    assert int(ds["npp_population"].sel(variant="principal", npp_year=2043).sum()) == 61_744_098
    # every variant starts from the same 2018 base
    base = ds["population_projection"].sel(year=2018)
    assert (base == base.sel(variant="principal")).all()


def test_90_plus_holds_the_whole_tail(ds: xr.Dataset) -> None:
    """England 90+ in 2018 is The Strategy Unit's 499,276 (ages 90..100 summed)."""
    tail = ds["population_projection"].sel(variant="principal", year=2018, age=90).sum()
    assert int(tail) == pytest.approx(499_276, abs=10)


def test_gp_registered_total_and_frimley(ds: xr.Dataset) -> None:
    assert int(ds["gp_registered"].sum()) == 63_237_908
    by_icb = ds["gp_registered"].sum(["sex", "age"])
    resident = ds["population_projection"].sel(variant="principal", year=2026).sum(["sex", "age"])
    ratio = by_icb / resident  # list inflation: registered lists exceed residents, but not wildly
    assert float(ratio.min()) > 0.9 and float(ratio.max()) < 1.4


def test_merger_rows_sum_to_one(ds: xr.Dataset) -> None:
    share = ds["merger_share"]
    np.testing.assert_allclose(share.sum("icb26"), 1.0, rtol=0, atol=1e-12)
    assert (share.sum("icb") > 0).all()  # every 2026 ICB inherits someone
    frimley = share.sel(icb="E54000034")
    assert int((frimley > 0).sum()) == 3


def test_aif_components_sum_to_population(ds: xr.Dataset) -> None:
    national = ds["aif_weighted_population"].sum("icb")
    population = ds["aif_population"].sum("icb")
    np.testing.assert_allclose(national, population.broadcast_like(national), rtol=0, atol=1.0)
    assert float(population.sel(aif_year=2025)) == pytest.approx(63_849_324, abs=1)


def test_imd_scores_are_plausible(ds: xr.Dataset) -> None:
    """LAD average IMD scores run from about 5 to 45; ICB averages fall well inside that."""
    assert 5 < float(ds["imd_score"].min()) < float(ds["imd_score"].max()) < 45
    assert 0 < float(ds["imd_income_score"].min()) < float(ds["imd_income_score"].max()) < 0.3
    # more deprived ICBs are less healthy
    corr = np.corrcoef(ds["imd_score"], ds["imd_health_score"])[0, 1]
    assert corr > 0.7


@pytest.mark.parametrize("variant", ["principal", "high_migration", "old_age_structure"])
@pytest.mark.parametrize("year", [2018, 2030, 2042, 2046])
def test_cohort_component_step_reproduces_the_npp(ds: xr.Dataset, variant: str, year: int) -> None:
    """The timing conventions in sim/data/README.md turn mid-year `npp_year` into `npp_year+1`."""
    npp = ds.sel(variant=variant, npp_year=year)
    pop = npp["npp_population"].values.astype(float)
    nxt = ds["npp_population"].sel(variant=variant, npp_year=year + 1).values.astype(float)
    mig = npp["npp_net_migration"].values.astype(float)
    q = npp["npp_mortality"].values
    joins = np.empty_like(mig)  # migrants by age at the move join two cohorts, half each
    joins[:, :89] = (mig[:, :89] + mig[:, 1:90]) / 2
    joins[:, 89] = mig[:, 89] / 2
    joins[:, 90] = mig[:, 90]
    survivors = pop - q * (pop + joins / 2) + joins
    expected = np.empty_like(pop)
    expected[:, 1:90] = survivors[:, :89]
    expected[:, 90] = survivors[:, 89] + survivors[:, 90]
    rates = npp["npp_fertility"].values
    births = (rates * (pop[0, 15:47] + nxt[0, 15:47]) / 2).sum()
    ratio = npp["npp_fertility"].attrs["male_births_per_female_birth"]
    by_sex = births * np.array([1.0, ratio]) / (1.0 + ratio)
    expected[:, 0] = by_sex * (1 - npp["npp_mortality_birth"].values) + mig[:, 0] / 2
    np.testing.assert_allclose(expected, nxt, rtol=1e-4)


def test_data_version_and_description() -> None:
    version = reference.data_version()
    assert version.startswith("2026.") and "+" in version
    rows = reference.describe_data()
    assert [r["file"] for r in rows] == list(reference.DATA_FILES)
    assert all(r["size"] != "missing" and r["what"] and r["source"] for r in rows)


def test_load_reference_is_cached_and_isolated() -> None:
    first = reference.load_reference()
    first["scratch"] = first["imd_score"] * 2
    assert "scratch" not in reference.load_reference()
    with pytest.raises(ValueError, match="read-only"):
        first["gp_registered"].values[0, 0, 0] = 0


def test_services_and_profiles_load_typed() -> None:
    services = reference.load_services()
    assert list(services.columns) == reference.SERVICE_COLUMNS
    assert services["highly_specialised"].dtype == bool
    assert services["baseline_spend_gbp"].dtype == float
    profiles = reference.load_profiles()
    assert profiles.dims == ("profile", "sex", "age")
    assert set(services["age_profile"]) <= set(profiles["profile"].values)


# ------------------------------------------------------- the catalogue's published anchors


@pytest.fixture(scope="module")
def catalogue_script():
    """scripts/build_service_catalogue.py as a module: its anchors and the docs' tables."""
    path = REPO_ROOT / "scripts" / "build_service_catalogue.py"
    spec = importlib.util.spec_from_file_location("build_service_catalogue", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_packaged_catalogue_is_the_script_output(tmp_path: Path, catalogue_script) -> None:
    path = tmp_path / "services.csv"
    catalogue_script.build_services().to_csv(path, index=False)
    pd.testing.assert_frame_equal(reference.load_services(path), reference.load_services())


def test_catalogue_meets_its_published_anchors(catalogue_script) -> None:
    """The figures docs/service_catalogue.md claims (DOMAIN.md, 'More published figures')."""
    services = reference.load_services()
    gbp = services.set_index("service_id")["baseline_spend_gbp"]
    bn = 1_000_000_000
    assert gbp.sum() == 25 * bn  # 2023/24
    group = services.groupby("delegation_group")["baseline_spend_gbp"].sum()
    # the 59 (Feb 2023 split, excluding high-cost drugs and devices); the 70 (about £14bn)
    assert (group["wave_59"], group["wave_70"], group["retained"]) == (13 * bn, 1 * bn, 11 * bn)
    anchor = services["service_id"].map(catalogue_script.ANCHOR_OF)
    assert anchor.notna().all()
    by_anchor = services.groupby(anchor)["baseline_spend_gbp"].sum() / 1e6
    for key, millions in {
        "ready_59": 13_000,
        "added_11": 1_000,
        "not_ready": 500,  # with the 11: the 29 suitable but not ready, £1.5bn
        "national_89": 1_300,  # the 89 kept national, including the 78 HSS
        "mh_collab": 2_000,  # mental health provider collaboratives
        "funds": 680,  # Cancer Drugs Fund + Innovative Medicines Fund
    }.items():
        assert by_anchor[key] == millions, key
    split = by_anchor[["ready_59", "added_11", "not_ready", "national_89"]].sum()
    assert split == 15_800
    assert by_anchor["ready_59"] / split == pytest.approx(0.80, abs=0.03)  # the 2022 roadmap
    # high-cost drugs and devices: separate rows, all retained, about a quarter of spend (2016)
    hcdd = services[anchor == "hcdd"]
    assert (hcdd["delegation_group"] == "retained").all()
    assert services["service_id"].str.startswith("hcdd_").sum() == 8
    assert set(services.loc[services["service_id"].str.startswith("hcdd_"), "service_id"]) <= set(
        hcdd["service_id"]
    )
    assert 0.18 < hcdd["baseline_spend_gbp"].sum() / gbp.sum() < 0.30
    # chemotherapy (delivery and drugs): over £1.5bn, the biggest service area
    chemo_ids = ["chemotherapy_adult", "hcdd_chemotherapy"]
    chemo = gbp[chemo_ids].sum()
    assert chemo > 1.5 * bn
    areas = services[~services["service_id"].isin([*chemo_ids, "cancer_drugs_fund"])]
    areas = areas[~areas["crg"].str.startswith("Specialised drugs")]
    assert chemo > areas.groupby("crg")["baseline_spend_gbp"].sum().max()
    # dialysis: the published cost per patient, and patients consistent with 43,000 on RRT
    row = services.set_index("service_id").loc["renal_dialysis"]
    assert 24_804 <= row["mean_cost_gbp"] <= 25_116
    on_dialysis = row["baseline_spend_gbp"] / row["mean_cost_gbp"]
    transplant = services.set_index("service_id").loc["renal_transplant_adult"]
    with_transplant = transplant["baseline_spend_gbp"] / transplant["mean_cost_gbp"]
    assert 5_500 < on_dialysis < 43_000
    assert on_dialysis + with_transplant == pytest.approx(43_000, rel=1e-3)
    # the ring-fenced funds and the CAR-T list price
    assert gbp["cancer_drugs_fund"] == gbp["innovative_medicines_fund"] == 340_000_000
    assert services.set_index("service_id").loc["car_t_therapy", "mean_cost_gbp"] == 282_000
    # the £ on each basis (the docs' table)
    basis = services.groupby("basis")["baseline_spend_gbp"].sum()
    assert basis["published"] == 680_000_000
    assert basis["derived"] == gbp["renal_dialysis"]
    assert basis.sum() == gbp.sum()


def test_every_row_has_a_need_group_and_a_basis_note() -> None:
    services = reference.load_services()
    assert set(services["need_group"]) == reference.SERVICE_CHOICES["need_group"]
    assert (
        (services["programme_of_care"] == "Mental health")
        .eq(services["need_group"] == "mental_health")
        .all()
    )
    note = services["basis_note"]
    assert (note.str.split(":").str[0].str.lower() == services["basis"]).all()
    assert note[services["basis"] != "assumption"].str.contains("£").all()
    assert (
        services.loc[services["crg"] == "Neonatal critical care", "need_group"]
        .eq("neonatal_critical_care")
        .all()
    )


def test_docs_quote_the_catalogue_tables(catalogue_script) -> None:
    docs = (REPO_ROOT / "docs" / "service_catalogue.md").read_text(encoding="utf-8")
    services = reference.load_services()
    for table in ("basis_table", "anchor_table", "need_table"):
        assert getattr(catalogue_script, table)(services) in docs, (
            f"docs/service_catalogue.md: the {table} is stale; paste the output of "
            "scripts/build_service_catalogue.py"
        )


# --------------------------------------------------------------------------- errors


def assert_one_line_naming(error: pytest.ExceptionInfo[DataError], path: Path) -> None:
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message


@pytest.fixture(scope="module")
def small(ds: xr.Dataset) -> xr.Dataset:
    """The packaged data cut to two ICBs, to write broken copies of quickly."""
    return ds.isel(icb=slice(0, 2), variant=slice(0, 2))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.nc"
    with pytest.raises(DataError, match="not found") as error:
        reference.load_reference(path)
    assert_one_line_naming(error, path)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.nc"
    path.write_bytes(b"this is not an HDF5 file\n" * 100)
    with pytest.raises(DataError, match="not a readable NetCDF") as error:
        reference.load_reference(path)
    assert_one_line_naming(error, path)


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.nc"
    path.write_bytes(reference.data_path(reference.REFERENCE_FILE).read_bytes()[:50_000])
    with pytest.raises(DataError) as error:
        reference.load_reference(path)
    assert_one_line_naming(error, path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.drop_vars("gp_registered"), "'gp_registered' is missing"),
        (lambda d: d.assign(imd_score=d["imd_score"].expand_dims(x=[0])), "'imd_score' has dims"),
        (
            lambda d: d.assign(gp_registered=-d["gp_registered"]),
            "'gp_registered' has negative populations",
        ),
    ],
    ids=["missing-variable", "wrong-dims", "negative-population"],
)
def test_inconsistent_file(tmp_path: Path, small: xr.Dataset, change, expected: str) -> None:
    path = tmp_path / "broken.nc"
    change(small).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(DataError, match=expected) as error:
        reference.load_reference(path)
    assert_one_line_naming(error, path)


def test_services_bad_boolean_and_missing_column(tmp_path: Path) -> None:
    text = reference.data_path("services.csv").read_text(encoding="utf-8")
    header, first, *_ = text.splitlines()
    cells = first.split(",")
    cells[reference.SERVICE_COLUMNS.index("highly_specialised")] = "maybe"
    path = tmp_path / "services.csv"
    path.write_text(f"{header}\n{','.join(cells)}\n", encoding="utf-8")
    with pytest.raises(DataError, match="highly_specialised") as error:
        reference.load_services(path)
    assert_one_line_naming(error, path)
    path.write_text("service_id,name\nx,y\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing columns"):
        reference.load_services(path)


def test_profiles_need_every_age(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    rows = [f"flat,{sex},{age},1.0" for sex in "fm" for age in range(91) if (sex, age) != ("m", 7)]
    path.write_text("profile,sex,age,relative_rate\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing") as error:
        reference.load_profiles(path)
    assert_one_line_naming(error, path)


# --------------------------------------------------------------------------- rebuild


def build_script():
    """scripts/build_reference_data.py as a module (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / "build_reference_data.py"
    spec = importlib.util.spec_from_file_location("build_reference_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_unmatched_practice_is_split_by_merger_shares() -> None:
    """A practice known only by its 2026 ICB is shared 75/25, conserving every column."""
    build = build_script()
    split = pd.Series(
        [0.75, 0.25, 1.0],
        index=pd.MultiIndex.from_tuples([("N1", "A"), ("N1", "B"), ("N2", "C")]),
        name="share",
    )
    values = ["population", *build.AIF_COMPONENTS]
    practice = pd.DataFrame(
        [["P1", "N1", *[400.0] * len(values)]], columns=["practice", "icb26", *values]
    )
    rows = build.spread_unmatched(practice, split).set_index("icb")
    assert list(rows.index) == ["A", "B"]
    assert rows.loc["A", "population"] == 300.0 and rows.loc["B", "core"] == 100.0
    assert (rows[values].sum() == 400.0).all()
    with pytest.raises(build.BuildError):
        build.spread_unmatched(practice.assign(icb26="N9"), split)


@pytest.mark.skipif(not (SHARED_DATA / "raw").is_dir(), reason="shared/data not beside the repo")
def test_rebuild_reproduces_the_packaged_version(tmp_path: Path) -> None:
    """Rebuilding from the raw files gives the same content hash as the packaged file."""
    pytest.importorskip("xlrd")
    pytest.importorskip("openpyxl")
    script = REPO_ROOT / "scripts" / "build_reference_data.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with xr.open_dataset(tmp_path / "reference.nc", engine="h5netcdf") as rebuilt:
        assert rebuilt.attrs["data_version"] == reference.data_version()
    for name in ("icbs.csv", "icbs_2026.csv"):
        assert (tmp_path / name).read_bytes() == reference.data_path(name).read_bytes()


def test_build_checks_pass_on_the_package_and_catch_damage(ds: xr.Dataset) -> None:
    build = build_script()
    icbs26 = reference.load_icbs(2026)
    report = {"england_2043_source": {v: england(ds, v, 2043) for v in PROJECTION_VARIANTS}}
    assert build.check(ds, icbs26, report) == []
    damaged = ds.copy()
    damaged["gp_registered"] = ds["gp_registered"] + 1
    damaged["merger_share"] = ds["merger_share"] * 1.01
    damaged["population_projection"] = ds["population_projection"].where(ds["icb"] != ds["icb"][0])
    problems = "\n".join(build.check(damaged, icbs26, report))
    assert "GP registered total" in problems
    assert "merger_share rows" in problems
    assert "population_projection has missing cells" in problems
