"""The ONS 2022-based SNPP in the reference data, and the derivation of variants from it.

Tests marked by the `raw` fixture read the published workbook through the build script's own
readers and skip when `../shared/data/raw` is not beside the repository (CI has it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_reference import build_script

from sim import reference
from sim.projection_variants import derive_variant

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ENGLAND_2022_BASED = {2022: 57_112_542, 2032: 60_759_854, 2043: 63_494_464, 2047: 64_388_887}
FRIMLEY, BOB, THAMES_VALLEY = "E54000034", "E54000044", "E54000070"
ESSEX_2026 = "E54000066"


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return reference.load_reference()


@pytest.fixture(scope="module")
def build():
    return build_script()


@pytest.fixture(scope="module")
def raw(build, ds: xr.Dataset) -> dict:
    """The build's own reading of the raw files: the workbook and the sub-ICB mappings."""
    if not (SHARED_DATA / "raw" / build.SNPP2022_FOLDER).is_dir():
        pytest.skip("shared/data/raw not beside the repo")
    pytest.importorskip("xlrd")
    paths = build.Paths(SHARED_DATA / "raw", SHARED_DATA / "derived", REPO_ROOT)
    lookup = build.icb_lookup(paths)
    principal = ds["population_projection"].sel(variant="principal").values
    pop, pop26, report = build.snpp2022(
        paths,
        lookup,
        list(ds["icb"].values),
        build.gp_practice_map(paths),
        list(ds["icb26"].values),
        principal,
    )
    return {"pop": pop, "pop26": pop26, "report": report, "lookup": lookup}


def groups_by_icb(raw: dict, codes: list[str]) -> np.ndarray:
    """Published sub-ICB five-year groups summed to the 2023 ICBs: [year, icb, sex, group]."""
    table = raw["report"]["snpp2022_raw"]
    lookup = raw["lookup"]
    out = np.zeros((26, len(codes), 2, 19))
    for sicb, icb in zip(lookup["SICBL23CD"], lookup["ICB23CD"], strict=True):
        rows = table.sel(area=sicb).transpose("year_2022", "sex", "age_group").values
        out[:, codes.index(icb)] += rows
    return out


def england_row(raw: dict) -> np.ndarray:
    """The ONS England row: [year, sex], summed over the five-year groups."""
    row = raw["report"]["snpp2022_raw"].sel(area="E92000001")
    return row.sum("age_group").transpose("year_2022", "sex").values


# --------------------------------------------------------------------------- packaged data


def test_dims_years_dtype_and_attrs(ds: xr.Dataset) -> None:
    pop, pop26 = ds["population_projection_2022"], ds["population_projection_2022_icb26"]
    assert pop.dims == ("year_2022", "icb", "sex", "age")
    assert pop26.dims == ("year_2022", "icb26", "sex", "age")
    assert list(ds["year_2022"].values) == list(range(2022, 2048))
    assert pop.dtype == pop26.dtype == np.float64
    assert not np.array_equal(pop.values, np.round(pop.values))  # unrounded, not int-cast
    for da in (pop, pop26):
        assert da.attrs["units"] == "persons" and "2022-based" in da.attrs["long_name"]
        assert "2018-based" in da.attrs["single_year_method"]
    assert "D4U1Y" in pop26.attrs["footprint"] and "15E" in pop26.attrs["footprint"]
    assert list(ds["npp_year"].values) == list(range(2018, 2048))


def test_no_negative_or_missing_cells(ds: xr.Dataset) -> None:
    for name in ("population_projection_2022", "population_projection_2022_icb26"):
        values = ds[name].values
        assert np.isfinite(values).all(), name
        assert (values >= 0).all(), name
        assert (ds[name].sum(["sex", "age"]) > 10_000).all(), name  # no empty area


def test_england_totals_match_the_published_figures(ds: xr.Dataset) -> None:
    england = ds["population_projection_2022"].sum(["icb", "sex", "age"])
    for year, published in ENGLAND_2022_BASED.items():
        # ICB sums of cells published to 0.1 person: within a few persons of the England row
        assert float(england.sel(year_2022=year)) == pytest.approx(published, abs=5)
    growth = float(england.sel(year_2022=2043)) - int(
        ds["population_projection"].sel(variant="principal", year=2043).sum()
    )
    assert growth == pytest.approx(1.75e6, abs=0.01e6)  # DOMAIN.md: 1.75m over 2018-based


def test_the_two_footprints_agree(ds: xr.Dataset) -> None:
    pop, pop26 = ds["population_projection_2022"], ds["population_projection_2022_icb26"]
    np.testing.assert_allclose(pop26.sum("icb26").values, pop.sum("icb").values, rtol=1e-12, atol=0)
    # Frimley's single sub-ICB location is shared by patients, as merger_share does, so a 2026
    # ICB made of whole 2023 ICBs plus part of Frimley is their merger_share-weighted sum (to
    # 1e-6: merger_share comes from shares rounded to 6 decimals, the build uses the counts).
    share = ds["merger_share"]
    frimley_part = share.sel(icb=FRIMLEY, icb26=THAMES_VALLEY) * pop.sel(icb=FRIMLEY)
    expected = pop.sel(icb=BOB) + frimley_part
    np.testing.assert_allclose(pop26.sel(icb26=THAMES_VALLEY), expected, rtol=1e-6)
    assert float(share.sel(icb=FRIMLEY, icb26=THAMES_VALLEY)) == pytest.approx(430823 / 748805)
    # 2026 ICBs made of whole 2023 ICBs are exactly their sum
    whole = ((share == 0) | (share == 1)).all("icb") & (share == 1).any("icb")
    assert int(whole.sum()) >= 28
    summed = xr.dot(pop, share.where(whole, 0), dim="icb").sel(icb26=whole)
    np.testing.assert_allclose(
        pop26.sel(icb26=whole).transpose(*summed.dims), summed, rtol=1e-12, atol=0
    )


def test_single_year_shape_follows_the_2018_based_projection(ds: xr.Dataset) -> None:
    """Within each five-year group the ages keep the 2018-based principal's proportions."""
    new = ds["population_projection_2022"].sel(year_2022=[2030, 2047], age=slice(50, 54))
    old = ds["population_projection"].sel(variant="principal", year=[2030, 2043], age=slice(50, 54))
    ratio_new = new / new.sum("age")
    ratio_old = (old / old.sum("age")).values
    np.testing.assert_allclose(ratio_new.values, ratio_old, rtol=1e-12)


# --------------------------------------------------------------------------- against the raw


def test_build_reproduces_the_packaged_arrays(ds: xr.Dataset, raw: dict) -> None:
    assert np.array_equal(raw["pop"], ds["population_projection_2022"].values)
    assert np.array_equal(raw["pop26"], ds["population_projection_2022_icb26"].values)


def test_single_years_reaggregate_to_the_published_groups(ds: xr.Dataset, raw: dict, build) -> None:
    single = ds["population_projection_2022"].transpose("year_2022", "icb", "sex", "age").values
    grouped = build.age_group_sums(single)
    published = groups_by_icb(raw, list(ds["icb"].values))
    np.testing.assert_allclose(grouped, published, rtol=1e-12, atol=1e-9)
    assert np.array_equal(single[..., 90], published[..., 18])  # 90+ is stored as published


def test_36_icb_version_reaggregates_to_sub_icb_groups(ds: xr.Dataset, raw: dict, build) -> None:
    """Essex (2026) = Mid and South Essex + North East Essex (06T) + West Essex (07H)."""
    table = raw["report"]["snpp2022_raw"]
    parts = table.sel(area=["E38000117", "E38000197"]).sum("area")  # 06T, 07H
    mid_south = ds["population_projection_2022"].sel(icb="E54000026")  # QH8
    essex = ds["population_projection_2022_icb26"].sel(icb26=ESSEX_2026)
    single = (essex - mid_south).transpose("year_2022", "sex", "age").values
    expected = parts.transpose("year_2022", "sex", "age_group").values
    np.testing.assert_allclose(build.age_group_sums(single), expected, rtol=1e-10, atol=1e-6)


def test_england_totals_match_the_ons_england_row(ds: xr.Dataset, raw: dict) -> None:
    ons = england_row(raw)
    for year, published in ENGLAND_2022_BASED.items():
        assert round(ons[year - 2022].sum()) == published
    mine = ds["population_projection_2022"].sum(["icb", "age"]).transpose("year_2022", "sex")
    np.testing.assert_allclose(mine.values, ons, rtol=1e-6)
    assert np.abs(mine.values - ons).max() < 5  # rounding of 106 rows to 0.1 person


def test_icb_sums_match_the_nhs_region_rows(ds: xr.Dataset, raw: dict) -> None:
    table = raw["report"]["snpp2022_raw"]
    pop = ds["population_projection_2022"].sum("age")
    regions = [c for c in table["area"].values if c.startswith("E40")]
    assert len(regions) == 7
    for code in regions:
        name = str(table.sel(area=code)["area_name"].values)
        mine = pop.sel(icb=ds["region_name"] == name).sum("icb").transpose("year_2022", "sex")
        ons = table.sel(area=code).sum("age_group").transpose("year_2022", "sex")
        np.testing.assert_allclose(mine.values, ons.values, rtol=1e-6, err_msg=name)


def test_only_frimley_and_birmingham_straddle_2026_icbs(raw: dict) -> None:
    straddling = raw["report"]["snpp2022_straddling_sicbs"]
    assert set(straddling) == {"E38000252", "E38000258"}
    assert straddling["E38000252"][THAMES_VALLEY] == pytest.approx(0.5753, abs=1e-4)
    share = raw["report"]["snpp2022_sicb_icb26_share"]
    np.testing.assert_allclose(share.sum(1), 1.0, rtol=0, atol=1e-12)


def test_build_checks_pass_and_catch_damage(ds: xr.Dataset, raw: dict, build) -> None:
    report = dict(raw["report"])
    assert build.check_snpp2022(ds, report) == []
    assert report["snpp2022_deviation"]["regroup_relative"] < 1e-12
    damaged = ds.copy()
    pop = ds["population_projection_2022"]
    damaged["population_projection_2022"] = pop.where(pop["age"] != 3, pop * 1.001)
    problems = "\n".join(build.check_snpp2022(damaged, dict(raw["report"])))
    assert "re-aggregate to the published five-year groups" in problems
    assert "36-ICB England totals differ" in problems
    assert "ICB sums differ from the ONS England row" in problems


# --------------------------------------------------------------------------- the split


def test_split_keeps_group_totals_and_uses_the_shape(build) -> None:
    groups = np.arange(1.0, 20.0) * 100  # 100, 200, ..., 1900 (90+)
    shape = np.ones(91)
    shape[0:5] = [1, 1, 2, 0, 0]  # group 0-4 split 25/25/50/0/0
    shape[5:10] = 0  # no shape: split evenly
    single = build.split_single_years(groups, shape)
    np.testing.assert_allclose(single[0:5], [25, 25, 50, 0, 0])
    np.testing.assert_allclose(single[5:10], [40] * 5)
    assert single[90] == 1900
    np.testing.assert_allclose(build.age_group_sums(single), groups, rtol=1e-15)
    with pytest.raises(ValueError, match="negative"):
        build.split_single_years(groups, -shape)


# --------------------------------------------------------------------------- variants


def small_case() -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """One ICB, one sex, two ages; 2018-based years 2042..2043, 2022-based 2042..2044."""
    cells = {"icb": ["A"], "sex": ["f"], "age": [0, 1]}
    p18 = xr.DataArray(
        [[[[100, 0]]], [[[200, 50]]]],
        dims=("year", "icb", "sex", "age"),
        coords={"year": [2042, 2043], **cells},
    )
    v18 = xr.DataArray(
        [[[[110, 7]]], [[[180, 60]]]],
        dims=("year", "icb", "sex", "age"),
        coords={"year": [2042, 2043], **cells},
    )
    p22 = xr.DataArray(
        [[[[10.0, 20.0]]], [[[30.0, 40.0]]], [[[50.0, 60.0]]]],
        dims=("year_2022", "icb", "sex", "age"),
        coords={"year_2022": [2042, 2043, 2044], **cells},
        attrs={"units": "persons"},
    )
    return p22, v18, p18


def test_derive_variant_hand_worked() -> None:
    p22, v18, p18 = small_case()
    out = derive_variant(p22, v18, p18)
    # 2042: ratios 1.1 and 1 (2018 principal 0); 2043: 0.9 and 1.2; 2044 holds 2043's.
    expected = [[11.0, 20.0], [27.0, 48.0], [45.0, 72.0]]
    np.testing.assert_allclose(out.values[:, 0, 0, :], expected, rtol=1e-15)
    assert out.dims == p22.dims and list(out["year_2022"].values) == [2042, 2043, 2044]
    assert out.name == "population_projection_2022_derived"
    assert "derived" in out.attrs and out.attrs["units"] == "persons"
    assert out.dtype == np.float64


def test_derive_variant_rejects_mismatched_inputs() -> None:
    p22, v18, p18 = small_case()
    with pytest.raises(ValueError, match="coordinates differ"):
        derive_variant(p22.assign_coords(icb=["B"]), v18, p18)
    with pytest.raises(ValueError, match="before the 2018-based"):
        derive_variant(p22.assign_coords(year_2022=[2041, 2042, 2043]), v18, p18)
    with pytest.raises(ValueError, match="coordinates differ"):
        derive_variant(p22, v18.assign_coords(age=[0, 2]), p18)


def test_derived_principal_is_the_2022_principal(ds: xr.Dataset) -> None:
    p22 = ds["population_projection_2022"]
    p18 = ds["population_projection"].sel(variant="principal")
    out = derive_variant(p22, p18, p18)
    assert np.array_equal(out.values, p22.values)
    assert out.attrs["variant"] == "principal"


@pytest.mark.parametrize("variant", ["high_migration", "old_age_structure"])
def test_derived_variant_ratios_and_hold_after_2043(ds: xr.Dataset, variant: str) -> None:
    p22 = ds["population_projection_2022"]
    proj = ds["population_projection"]
    p18, v18 = proj.sel(variant="principal"), proj.sel(variant=variant)
    out = derive_variant(p22, v18, p18)
    assert out.attrs["variant"] == variant and out.dims == p22.dims
    ratio = (out / p22).values
    want = (v18 / p18).sel(year=2030).values
    np.testing.assert_allclose(ratio[2030 - 2022], want, rtol=1e-12)
    held = (v18 / p18).sel(year=2043).values
    for year in range(2043, 2048):  # years beyond the 2018-based horizon hold 2043's ratio
        np.testing.assert_allclose(ratio[year - 2022], held, rtol=1e-14)
    assert (out >= 0).all()
    if variant == "high_migration":
        assert float(out.sel(year_2022=2043).sum()) > float(p22.sel(year_2022=2043).sum())


def test_derive_several_variants_at_once(ds: xr.Dataset) -> None:
    p22 = ds["population_projection_2022"]
    proj = ds["population_projection"]
    both = derive_variant(
        p22, proj.sel(variant=["principal", "low_migration"]), proj.sel(variant="principal")
    )
    assert both.dims == ("variant", *p22.dims)
    assert np.array_equal(both.sel(variant="principal").values, p22.values)
    assert float(both.sel(variant="low_migration", year_2022=2047).sum()) < float(
        p22.sel(year_2022=2047).sum()
    )


# --- the model on the 2022 basis -------------------------------------------------------------


def _model_scenario(**population):
    from sim.scenario import Scenario

    return Scenario(
        name="b",
        time={"base_year": 2024, "end_year": 2047},
        population={"basis": 2022, **population},
    )


def test_the_2022_basis_is_the_default_and_spliced_onto_the_2018_basis(ds: xr.Dataset) -> None:
    """Projection mode reads the 2022-based projection as packaged from 2022; before that
    the 2018-based variant (2018..2021), and nothing earlier."""
    from sim.population import population_series
    from sim.scenario import PopulationConfig

    assert PopulationConfig().basis == 2022
    series = population_series(ds, 2022, "principal")
    np.testing.assert_array_equal(
        series.sel(year=slice(2022, 2047)).values,
        ds["population_projection_2022"].transpose("year_2022", "icb", "sex", "age").values,
    )
    old = ds["population_projection"].sel(variant="principal", year=slice(2018, 2021))
    np.testing.assert_array_equal(series.sel(year=slice(2018, 2021)).values, old.values)
    assert int(series["year"][0]) == 2018


def test_a_2022_based_variant_is_the_derived_one(ds: xr.Dataset) -> None:
    from sim.population import population_path

    sc = _model_scenario(variant="high_migration")
    path = population_path(sc.population, sc.time, ds)
    old = ds["population_projection"]
    derived = derive_variant(
        ds["population_projection_2022"],
        old.sel(variant="high_migration"),
        old.sel(variant="principal"),
    ).sel(year_2022=path["year"].values)
    np.testing.assert_array_equal(path.values, derived.values)
    assert float(path.sel(year=2047).sum()) > ENGLAND_2022_BASED[2047]  # more migrants


def test_cohort_mode_from_the_2022_base_reproduces_the_projection(ds: xr.Dataset) -> None:
    from sim.population import population_path, population_series

    sc = _model_scenario(mode="cohort")
    path = population_path(sc.population, sc.time, ds)
    published = population_series(ds, 2022, "principal").sel(year=path["year"].values)
    assert float(abs(path / published.where(published > 0) - 1).max()) < 1e-9
    fewer = _model_scenario(mode="cohort", migration_multiplier=0.0)
    assert float(population_path(fewer.population, fewer.time, ds).sel(year=2047).sum()) < (
        ENGLAND_2022_BASED[2047] - 2e6
    )


def test_cohort_mode_cannot_start_before_its_projection(ds: xr.Dataset) -> None:
    from sim.errors import ScenarioError
    from sim.population import PopulationModel

    sc = _model_scenario(mode="cohort").model_copy(deep=True)
    sc.time.base_year = 2020
    with pytest.raises(ScenarioError, match="base_year must be 2022 or later"):
        PopulationModel(sc.population, sc.time, ds)


def test_merger_shares_map_the_2022_population_close_to_the_direct_sums(ds: xr.Dataset) -> None:
    """The 36-ICB populations the model derives along `merger_share` (GP-patient shares)
    against the sub-ICB sums on the 2026 footprint: within 2% for every ICB (measured: at
    most 0.95% in 2030, 1.4% in 2040, as sub-ICBs grow apart), so the model keeps one
    mapping for people, need and money alike."""
    from sim.population import population_series
    from sim.reference import load_data

    fp = load_data().footprints[2026]
    for year in (2026, 2030, 2040):
        people = population_series(ds, 2022, "principal").sel(year=year).values
        mapped = fp.counts(people).sum(axis=(1, 2))
        direct = ds["population_projection_2022_icb26"].sel(year_2022=year, icb26=fp.codes)
        gap = mapped / direct.sum(("sex", "age")).values - 1
        assert np.abs(gap).max() < 0.02
        assert abs(mapped.sum() / direct.sum() - 1) < 1e-12
