"""The ageing population: exact projection mode, a cohort model that tracks ONS, sane levers.

Figures quoted from ONS: 2018-based National Population Projections, England, zero net
migration variant (`en_ppz_opendata2018.xls`, Population sheet, mid-2043), OGL v3.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ScenarioError
from sim.population import (
    PopulationModel,
    cohort_migration,
    migration_shares,
    population_path,
    survivors,
    women_exposure,
)
from sim.reference import load_reference
from sim.scenario import PROJECTION_VARIANTS, PopulationConfig, Scenario, TimeConfig

# ONS NPP 2018-based zero net migration variant (ppz), England, mid-2043.
ONS_ZERO_MIGRATION_2043 = {"total": 56_322_733, "65+": 14_350_571, "85+": 2_510_365}
LONDON_ICBS = ["E54000027", "E54000028", "E54000029", "E54000030", "E54000031"]


@pytest.fixture(scope="module")
def reference() -> xr.Dataset:
    return load_reference()


def scenario(
    mode: str = "cohort", base: int = 2024, end: int = 2043, basis: int = 2018, **levers
) -> Scenario:
    """A scenario on the 2018-based projection unless `basis` says otherwise: most checks
    here compare with ONS 2018-based figures (the NPP and its variants)."""
    return Scenario(
        name="test",
        time=TimeConfig(base_year=base, end_year=end),
        population=PopulationConfig(mode=mode, basis=basis, **levers),
    )


def _sections(sc: Scenario) -> tuple[PopulationConfig, TimeConfig]:
    """What the population model reads: the `[population]` and `[time]` sections."""
    return sc.population, sc.time


def england(pop: xr.DataArray, youngest: int = 0) -> xr.DataArray:
    """England persons aged `youngest` and over, by year."""
    return pop.sel(age=slice(youngest, None)).sum([d for d in pop.dims if d != "year"])


def worst_relative(a: xr.DataArray, b: xr.DataArray) -> float:
    return float(abs(a / b - 1).max())


# ------------------------------------------------------------------ hand-worked mechanics


def test_survivors_age_everyone_and_keep_the_open_group() -> None:
    out = survivors(np.array([10.0, 20.0, 30.0]), np.array([0.1, 0.2, 0.5]))
    np.testing.assert_allclose(out, [0.0, 9.0, 16.0 + 15.0])


def test_cohort_migration_half_early_half_late() -> None:
    # half of each age's migrants arrive early (face q, age on), half late (no ageing)
    out = cohort_migration(np.array([2.0, 4.0, 6.0]), np.array([0.1, 0.2, 0.5]))
    np.testing.assert_allclose(out, [1.0, 0.9 + 2.0, 1.6 + 1.5 + 3.0])


def test_women_exposure_is_the_mean_of_the_two_mid_years() -> None:
    now = np.zeros((1, 2, 5))
    nxt = np.zeros((1, 2, 5))
    now[0, 0] = [1, 2, 3, 4, 5]
    nxt[0, 0] = [3, 4, 5, 6, 7]
    nxt[0, 1] = 100  # men do not count
    np.testing.assert_allclose(women_exposure(now, nxt, np.array([1, 3])), [[3.0, 5.0]])


def test_timing_conventions_reproduce_the_npp_accounts(reference: xr.Dataset) -> None:
    """The NPP's own population follows from its q, migration and fertility as we apply them."""
    npp = reference.sel(variant="principal")
    pop = npp["npp_population"].transpose("npp_year", "sex", "age").values.astype(float)
    q = npp["npp_mortality"].transpose("npp_year", "sex", "age").values
    mig = npp["npp_net_migration"].transpose("npp_year", "sex", "age").values.astype(float)
    moved = survivors(pop[:-1], q[:-1]) + cohort_migration(mig[:-1], q[:-1])
    # single ages: exact up to the published rounding (1 person per figure)
    assert np.abs(moved[..., 1:90] - pop[1:, :, 1:90]).max() <= 2.0
    # 90+: the open-age death rate is a population-weighted mean (measured 6e-5)
    assert worst_relative(xr.DataArray(moved[..., 90]), xr.DataArray(pop[1:, :, 90])) < 5e-4
    births = women_exposure(pop[:-1, None], pop[1:, None], np.arange(15, 47))[:, 0]
    births = (births * npp["npp_fertility"].values[:-1]).sum(-1)
    qb = npp["npp_mortality_birth"].transpose("npp_year", "sex").values[:-1]
    age0 = pop[1:, :, 0] - mig[:-1, :, 0] / 2  # born in the year and still alive
    np.testing.assert_allclose((age0 / (1 - qb)).sum(-1), births, rtol=2e-5)


# ------------------------------------------------------------------ projection mode


@pytest.mark.parametrize("variant", ["principal", "high_migration", "old_age_structure"])
def test_projection_mode_is_the_reference_data_exactly(reference: xr.Dataset, variant: str) -> None:
    sc = Scenario(
        name="p",
        time=TimeConfig(base_year=2020, end_year=2043),
        population=PopulationConfig(mode="projection", basis=2018, variant=variant),
    )
    path = population_path(*_sections(sc), reference)
    expected = reference["population_projection"].sel(variant=variant, year=slice(2020, 2043))
    assert path.dims == ("year", "icb", "sex", "age")
    assert path.dtype == np.float64
    np.testing.assert_array_equal(path.values, expected.transpose(*path.dims).values)
    assert path.attrs["units"] == "persons" and path.attrs["long_name"]
    assert list(path["year"].values) == list(range(2020, 2044))


def test_variant_selects_its_own_data(reference: xr.Dataset) -> None:
    high = population_path(*_sections(scenario("projection", variant="high_migration")), reference)
    low = population_path(*_sections(scenario("projection", variant="low_migration")), reference)
    assert float(england(high).sel(year=2043)) > float(england(low).sel(year=2043)) + 4e6
    for mode in ("projection", "cohort"):
        model = PopulationModel(
            *_sections(scenario(mode, base=2030, variant="low_fertility")), reference
        )
        start = reference["population_projection"].sel(variant="low_fertility", year=2030)
        np.testing.assert_array_equal(
            model.current().values, start.transpose("icb", "sex", "age").values
        )


# ------------------------------------------------------------------ cohort mode vs ONS


@pytest.mark.parametrize("base", [2018, 2024])
@pytest.mark.parametrize("variant", ["principal", "young_age_structure"])
def test_cohort_at_ons_assumptions_tracks_the_snpp(
    reference: xr.Dataset, base: int, variant: str
) -> None:
    """Calibrated so that, with neutral levers, each ICB follows the SNPP variant."""
    path = population_path(*_sections(scenario(base=base, end=2043, variant=variant)), reference)
    snpp = reference["population_projection"].sel(variant=variant, year=path["year"])
    for youngest in (0, 65, 85):
        assert worst_relative(england(path, youngest), england(snpp, youngest)) < 1e-9
    icb_totals = path.sum(["sex", "age"])
    assert worst_relative(icb_totals, snpp.sum(["sex", "age"])) < 1e-9


def test_cohort_at_ons_assumptions_tracks_the_npp_england(reference: xr.Dataset) -> None:
    """Against the national projection, published separately (measured worst 1.3e-5)."""
    path = population_path(*_sections(scenario(base=2018)), reference)
    npp = reference["npp_population"].sel(variant="principal", npp_year=path["year"].values)
    npp = npp.rename(npp_year="year").assign_coords(year=path["year"].values)
    for youngest in (0, 65, 85):
        assert worst_relative(england(path, youngest), england(npp, youngest)) < 1e-4


def test_zero_migration_matches_the_ons_zero_migration_variant(reference: xr.Dataset) -> None:
    """An independent check of the levers: ONS's own natural-change-only projection.

    Measured: total +0.018%, 65+ +0.003%, 85+ +0.018% in 2043 (from a 2018 base).
    """
    path = population_path(*_sections(scenario(base=2018, migration_multiplier=0.0)), reference)
    at_2043 = path.sel(year=2043)
    for label, youngest in (("total", 0), ("65+", 65), ("85+", 85)):
        ours = float(at_2043.sel(age=slice(youngest, None)).sum())
        assert ours == pytest.approx(ONS_ZERO_MIGRATION_2043[label], rel=1e-3)


# ------------------------------------------------------------------ levers


@pytest.fixture(scope="module")
def principal(reference: xr.Dataset) -> xr.DataArray:
    return population_path(*_sections(scenario()), reference)


def test_higher_mortality_means_fewer_old_people(
    reference: xr.Dataset, principal: xr.DataArray
) -> None:
    worse = population_path(*_sections(scenario(mortality_multiplier=1.3)), reference)
    better = population_path(*_sections(scenario(extra_mortality_improvement=0.02)), reference)
    later = principal["year"] > 2024
    for youngest in (65, 85):
        base = england(principal, youngest)[later]
        assert (england(worse, youngest)[later] < base).all()
        assert (england(better, youngest)[later] > base).all()
    # in the base year nothing has happened yet
    assert worst_relative(worse.sel(year=2024), principal.sel(year=2024)) == 0.0


def test_fertility_changes_only_those_born_after_the_base_year(
    reference: xr.Dataset, principal: xr.DataArray
) -> None:
    more = population_path(*_sections(scenario(fertility_multiplier=1.2)), reference).sel(year=2043)
    base = principal.sel(year=2043)
    assert float(more.sel(age=slice(0, 18)).sum()) > 1.15 * float(base.sel(age=slice(0, 18)).sum())
    older = dict(age=slice(19, None))  # born before mid-2024
    np.testing.assert_allclose(more.sel(**older), base.sel(**older), rtol=1e-12)


def test_migration_lever_moves_england_and_favours_london(
    reference: xr.Dataset, principal: xr.DataArray
) -> None:
    none = population_path(*_sections(scenario(migration_multiplier=0.0)), reference)
    double = population_path(*_sections(scenario(migration_multiplier=2.0)), reference)
    assert (england(none)[1:] < england(principal)[1:]).all()
    assert (england(double)[1:] > england(principal)[1:]).all()
    gain = (double - principal).sel(year=2043).sum(["sex", "age"])
    people = principal.sel(year=2043).sum(["sex", "age"])
    london_share_of_gain = float(gain.sel(icb=LONDON_ICBS).sum() / gain.sum())
    london_share_of_people = float(people.sel(icb=LONDON_ICBS).sum() / people.sum())
    assert london_share_of_gain > 1.5 * london_share_of_people


def test_migration_shares_are_shares(reference: xr.Dataset) -> None:
    shares = migration_shares(reference)
    assert shares.shape == (42, 2, 91)
    assert (shares >= 0).all()
    np.testing.assert_allclose(shares.sum(0), 1.0, rtol=1e-12)


def test_icb_fertility_differentials_are_realistic(reference: xr.Dataset) -> None:
    rates = PopulationModel(*_sections(scenario()), reference).rates
    assert rates is not None
    assert rates.fertility_diff.min() > 0.75 and rates.fertility_diff.max() < 1.3
    np.testing.assert_allclose(rates.sex_share.sum(-1), 1.0)
    assert 0.51 < rates.sex_share[:, 1].mean() < 0.52  # about 105 boys per 100 girls


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    mortality=st.floats(0.0, 5.0),
    fertility=st.floats(0.0, 5.0),
    migration=st.floats(0.0, 5.0),
    improvement=st.floats(-0.1, 0.1),
    variant=st.sampled_from(PROJECTION_VARIANTS),
)
def test_population_is_never_negative(
    reference: xr.Dataset,
    mortality: float,
    fertility: float,
    migration: float,
    improvement: float,
    variant: str,
) -> None:
    sc = scenario(
        base=2018,
        variant=variant,
        mortality_multiplier=mortality,
        fertility_multiplier=fertility,
        migration_multiplier=migration,
        extra_mortality_improvement=improvement,
    )
    path = population_path(*_sections(sc), reference)
    assert np.isfinite(path.values).all()
    assert (path.values >= 0).all()


# ------------------------------------------------------------------ the model object and errors


def test_levers_without_the_cohort_model_are_refused() -> None:
    with pytest.raises(ValueError, match="cohort-model levers"):
        PopulationConfig(migration_multiplier=0.5)
    assert PopulationConfig(mode="cohort", migration_multiplier=0.5).migration_multiplier == 0.5


def test_model_steps_and_returns_fresh_arrays(reference: xr.Dataset) -> None:
    model = PopulationModel(*_sections(scenario(base=2024, end=2026)), reference)
    first = model.current()
    assert first.dims == ("icb", "sex", "age") and first.sizes["icb"] == 42
    assert first.attrs["units"] == "persons"
    first.values[:] = -1  # a caller scribbling on its copy changes nothing
    assert (model.current().values >= 0).all()
    model.advance()
    assert model.year == 2025


def test_years_outside_the_data_are_a_scenario_error(reference: xr.Dataset) -> None:
    short = reference.sel(year=slice(2018, 2030))
    with pytest.raises(ScenarioError, match="time.end_year") as caught:
        PopulationModel(*_sections(scenario(end=2035)), short)
    assert caught.value.field == "time.end_year" and caught.value.path is None
    model = PopulationModel(*_sections(scenario("projection", base=2043, end=2043)), reference)
    with pytest.raises(ScenarioError, match="time.end_year"):
        model.advance()
