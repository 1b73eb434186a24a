"""Tests for sim.comparison and sim.disclosure, on a synthetic results Dataset.

`make_results` builds a Dataset with exactly the shape of the architecture contract
("Results Dataset"), so the comparison, report and plots are tested without running the
engine; other test modules import it from here.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

REGIONS = [
    ("E40000003", "London"),
    ("E40000005", "South East"),
    ("E40000006", "South West"),
    ("E40000007", "East of England"),
    ("E40000008", "Midlands"),
    ("E40000010", "North West"),
    ("E40000012", "North East and Yorkshire"),
]


def make_results(
    name: str = "baseline",
    *,
    years: tuple[int, int] = (2024, 2028),
    n_icb: int = 42,
    shift: float = 0.0,
    seed: int = 1,
) -> xr.Dataset:
    """A results Dataset of the contract's shape, with whole-pound allocations that add up.

    `shift` tilts allocations towards the first ICBs (a "policy" for comparisons); `seed`
    fixes the synthetic draws.
    """
    rng = np.random.default_rng(seed)
    year = np.arange(years[0], years[1] + 1)
    icb = [f"E54{i:06d}" for i in range(1, n_icb + 1)]
    region = [REGIONS[i % 7] for i in range(n_icb)]
    sizes = rng.uniform(0.5e6, 3.0e6, n_icb)
    age = np.arange(91)
    age_shape = np.exp(-((age - 40) ** 2) / 1200.0)
    growth = (1.005 ** (year - year[0]))[:, None, None, None]
    ageing = 1 + 0.01 * (year - year[0])[:, None, None, None] * (age / 90.0)[None, None, None, :]
    pop = (
        growth
        * ageing
        * sizes[None, :, None, None]
        * (age_shape / age_shape.sum())[None, None, None, :]
        * np.array([0.51, 0.49])[None, None, :, None]
    )
    need = rng.uniform(0.85, 1.15, n_icb)
    weighted = pop.sum(axis=(2, 3)) * need[None, :]
    target_share = weighted / weighted.sum(axis=1, keepdims=True)
    envelope = np.round(26.5e9 * 1.055 ** (year - year[0]))
    retained = np.round(envelope * 0.45)
    delegated_total = envelope - retained
    target = target_share * delegated_total[:, None]
    tilt = 1 + shift * np.linspace(1, -1, n_icb)
    historic = target_share[0] * rng.uniform(0.92, 1.08, n_icb) * tilt
    share = historic / historic.sum()
    raw = share[None, :] * delegated_total[:, None]
    allocation = np.floor(raw)
    remainder = (delegated_total - allocation.sum(axis=1)).astype(int)
    for y, r in enumerate(remainder):  # largest remainder to whole pounds
        allocation[y, np.argsort(raw[y] - allocation[y])[::-1][:r]] += 1
    portfolio = ["delegated", "retained"]
    expected = np.stack([allocation, target * retained[:, None] / delegated_total[:, None]], -1)
    spend_std = expected * (0.01 + 20 / np.sqrt(sizes))[None, :, None]
    quantile = [0.05, 0.5, 0.95]
    z = np.array([-1.645, 0.0, 1.645])
    patients = expected / np.array([4000.0, 250000.0])
    p1 = 1 - 1 / (1 + np.exp(-(np.log(sizes) - 14.0)))
    p_over = np.stack([np.tile(p1, (len(year), 1)), np.tile(p1 * 0.4, (len(year), 1))], -1)
    groups = ["cancer", "renal", "mental_health"]
    mix = np.array([0.5, 0.3, 0.2]) * rng.uniform(0.8, 1.2, (n_icb, 3))
    mix /= mix.sum(axis=1, keepdims=True)  # each ICB's split of spend and need by group
    spend_by_group = expected[:, :, None, :] * mix[None, :, :, None]
    cost = np.array([12_000.0, 25_000.0, 90_000.0]) * rng.uniform(0.95, 1.05, (n_icb, 1))
    patients_by_group = spend_by_group / cost[None, :, :, None]
    dims4 = ("year", "icb", "need_group", "portfolio")
    services = ["S001", "S002", "S003"]
    delegated_flag = np.zeros((len(year), n_icb, 3), bool)
    delegated_flag[:, :, :2] = True
    dims3 = ("year", "icb", "portfolio")

    def var(data, dims, units, long_name):
        return xr.Variable(dims, data, {"units": units, "long_name": long_name})

    ds = xr.Dataset(
        {
            "population": var(pop, ("year", "icb", "sex", "age"), "persons", "population"),
            "weighted_population": var(weighted, ("year", "icb"), "persons", "weighted pop"),
            "need_index": var(weighted / pop.sum(axis=(2, 3)), ("year", "icb"), "1", "need"),
            "target_share": var(target_share, ("year", "icb"), "1", "target share"),
            "target_allocation": var(np.round(target), ("year", "icb"), "GBP", "target"),
            "allocation": var(allocation, ("year", "icb"), "GBP", "allocation"),
            "distance_from_target": var(
                allocation / target - 1, ("year", "icb"), "1", "(allocation - target) / target"
            ),
            "envelope": var(envelope, ("year",), "GBP", "national envelope"),
            "retained_budget": var(retained, ("year",), "GBP", "retained budget"),
            "delegated": var(delegated_flag, ("year", "icb", "service"), "1", "delegated"),
            "expected_spend": var(expected, dims3, "GBP", "expected spend"),
            "spend_mean": var(expected, dims3, "GBP", "mean spend"),
            "spend_std": var(spend_std, dims3, "GBP", "sd of spend"),
            "spend_quantile": var(
                expected[None] + z[:, None, None, None] * spend_std[None],
                ("quantile", *dims3),
                "GBP",
                "spend quantiles",
            ),
            "national_spend_quantile": var(
                expected.sum(axis=1)[None] + z[:, None, None] * spend_std.sum(axis=1)[None],
                ("quantile", "year", "portfolio"),
                "GBP",
                "England's spend quantiles (ICBs moving together)",
            ),
            "patients_mean": var(patients, dims3, "persons", "mean patients"),
            "patients_std": var(np.sqrt(patients), dims3, "persons", "sd of patients"),
            "variance_to_budget_mean": var(
                np.zeros_like(expected), dims3, "GBP", "mean spend minus budget"
            ),
            "target_by_group": var(
                target[:, :, None] * mix[None], ("year", "icb", "need_group"), "GBP", "target"
            ),
            "expected_spend_by_group": var(spend_by_group, dims4, "GBP", "spend by group"),
            "expected_patients_by_group": var(
                patients_by_group, dims4, "patients", "patients by group"
            ),
            "p_overspend_1pct": var(p_over, ("year", "icb", "pooling"), "1", "P(overspend>1%)"),
            "p_overspend_5pct": var(
                p_over * 0.5, ("year", "icb", "pooling"), "1", "P(overspend>5%)"
            ),
            "expected_shortfall": var(
                spend_std[..., :1].repeat(2, -1) * np.array([2.0, 0.8]),
                ("year", "icb", "pooling"),
                "GBP",
                "mean overspend in the worst 5% of replicates",
            ),
        },
        coords={
            "year": year,
            "icb": icb,
            "sex": ["f", "m"],
            "age": age,
            "portfolio": portfolio,
            "need_group": groups,
            "service": services,
            "quantile": quantile,
            "pooling": ["before", "after"],
            "icb_name": ("icb", [f"NHS Test ICB {i}" for i in range(1, n_icb + 1)]),
            "region": ("icb", [r[0] for r in region]),
            "region_name": ("icb", [r[1] for r in region]),
        },
        attrs={"scenario_name": name, "seed": seed, "replications": 20},
    )
    return ds


# ---------------------------------------------------------------- disclosure control

import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import sim  # noqa: E402
from sim import disclosure  # noqa: E402
from sim.comparison import compare, open_results  # noqa: E402
from sim.errors import DataError  # noqa: E402
from sim.report import compare_files  # noqa: E402

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_suppress_array_hides_one_to_29_only():
    da = xr.DataArray([0.0, 1.0, 29.0, 29.6, 30.0, 500.0], dims="icb")
    out = disclosure.suppress_small_counts(da)
    assert out.values[0] == 0.0
    assert np.isnan(out.values[1:4]).all()
    assert list(out.values[4:]) == [30.0, 500.0]
    assert out.attrs["disclosure_note"] == disclosure.FOOTNOTE


def test_suppress_array_respects_highly_specialised_mask():
    da = xr.DataArray(
        [[5.0, 5.0], [40.0, 3.0]],
        dims=("icb", "portfolio"),
        coords={"portfolio": ["delegated", "retained"]},
    )
    out = disclosure.suppress_small_counts(da, where=disclosure.highly_specialised_mask(da))
    assert out.sel(portfolio="delegated").values.tolist() == [5.0, 40.0]
    assert np.isnan(out.sel(portfolio="retained").values).all()


def test_suppress_table_marks_cells_and_leaves_others():
    table = pd.DataFrame({"name": ["a", "b", "c"], "n": [0, 12, 31], "other": [3, 3, 3]})
    out = disclosure.suppress_small_counts(table, columns=["n"])
    assert out["n"].tolist() == [0, "*", 31]
    assert out["other"].tolist() == [3, 3, 3]
    assert "disclosure_note" in out.attrs
    untouched = disclosure.suppress_small_counts(table, columns=["n"], where=table["n"] > 20)
    assert untouched["n"].tolist() == [0, 12, 31]
    assert "disclosure_note" not in untouched.attrs


# ---------------------------------------------------------------- comparison tables


@pytest.fixture(scope="module")
def pair() -> tuple[xr.Dataset, xr.Dataset]:
    return make_results("baseline"), make_results("reform", shift=0.05)


def test_national_budgets_add_up_to_the_envelope(pair):
    nat = compare(*pair).national
    assert (nat["delegated_gbp"] + nat["retained_gbp"] == nat["envelope_gbp"]).all()
    assert set(nat["scenario"]) == {"baseline", "reform"}
    assert (nat.loc[nat["scenario"] == "baseline", "delegated_change_gbp"] == 0).all()


def test_icb_changes_are_differences_of_allocations(pair):
    a, b = pair
    table = compare(a, b).icb.set_index("icb")
    end = int(a["year"].max())
    expected = (b["allocation"] - a["allocation"]).sel(year=end).to_series()
    assert (table["change reform"] == expected).all()
    # the same delegated total is only redistributed: changes sum to zero, to the pound
    assert table["change reform"].sum() == 0
    assert len(table) == 42


def test_gainers_and_losers_are_the_extremes(pair):
    a, b = pair
    comparison = compare(a, b)
    gainers, losers = comparison.gainers_losers(5)
    change = comparison.icb.set_index("icb")["change % reform"]
    assert list(gainers["change % reform"]) == sorted(change.nlargest(5))[::-1]
    assert list(losers["change % reform"]) == sorted(change.nsmallest(5))
    assert (gainers["change % reform"] > 0).all() and (losers["change % reform"] < 0).all()


def test_headline_counts_icbs_below_target(pair):
    a, _ = pair
    end = int(a["year"].max())
    head = compare(a).headline
    below = int((a["distance_from_target"].sel(year=end) < -0.05).sum())
    assert head.loc["ICBs >5% below target", "baseline"] == below
    assert head.loc["number of ICBs", "baseline"] == 42


def test_scenario_dimension_is_split(pair):
    a, b = pair
    stacked = xr.concat([a, b], dim=pd.Index(["baseline", "reform"], name="scenario"))
    assert compare(stacked).icb.equals(compare(a, b).icb)


def test_different_footprints_leave_blanks(pair):
    a, _ = pair
    merged = make_results("mergers", n_icb=36)
    comparison = compare(a, merged)
    assert len(comparison.icb) == 42
    assert comparison.icb["allocation mergers"].isna().sum() == 6
    assert any("footprint" in note for note in comparison.notes)


def test_public_api_compare_stays_the_function_after_submodule_import(pair):
    import sim.comparison as module

    assert sim.compare is module.compare
    assert sim.compare(*pair).names == ["baseline", "reform"]


def _with_small_retained_counts(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy(deep=True)
    ds["patients_mean"].loc[{"portfolio": "retained", "icb": ds["icb"].values[:3]}] = 7.0
    ds["patients_mean"].loc[{"portfolio": "delegated", "icb": ds["icb"].values[:3]}] = 8.0
    return ds


def test_patient_table_suppresses_small_retained_counts(pair):
    a = _with_small_retained_counts(pair[0])
    comparison = compare(a)
    pats = comparison.patients
    assert (pats["patients retained"] == "*").sum() == 3
    assert (pats["patients delegated"] == 8.0).sum() == 3  # delegated: not highly specialised
    assert disclosure.FOOTNOTE in comparison.notes
    shown = compare(a, suppress_small_counts=False).patients
    assert (shown["patients retained"] == 7.0).sum() == 3
    assert any("SWITCHED OFF" in note for note in compare(a, suppress_small_counts=False).notes)


# ---------------------------------------------------------------- files


def test_compare_files_writes_report_and_csv(tmp_path, pair):
    a = _with_small_retained_counts(pair[0])
    paths = [tmp_path / "a.nc", tmp_path / "b.nc"]
    a.to_netcdf(paths[0], engine="scipy")  # NetCDF3: needs no HDF5 library
    pair[1].to_netcdf(paths[1], engine="scipy")
    headline = compare_files(paths, report=tmp_path / "r.html", csv_dir=tmp_path / "csv")
    assert list(headline.columns) == ["baseline", "reform", "reform - baseline"]
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<img" in text and disclosure.FOOTNOTE.split(" (")[0] in text
    patients = pd.read_csv(tmp_path / "csv" / "patients.csv")
    assert (patients["patients retained"] == "*").sum() == 3
    assert "suppressed" in (tmp_path / "csv" / "NOTES.txt").read_text()
    national = pd.read_csv(tmp_path / "csv" / "national.csv")
    assert (national["delegated_gbp"] + national["retained_gbp"] == national["envelope_gbp"]).all()
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_open_results_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.nc: results file not found"):
        open_results(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(DataError, match="junk.nc: not a readable NetCDF"):
        open_results(junk)
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("t", [1.0])}).to_netcdf(other, engine="scipy")
    with pytest.raises(DataError, match="other.nc: not a specsim results file: missing"):
        open_results(other)


# ---------------------------------------------------------------- scenario library

EXPECTED_CHANGE = {
    "high_demand": ("demand", "growth_multiplier"),
    "older_population": ("population", "variant"),
    "fast_convergence": ("convergence", "gap_closure"),
    "no_convergence": ("convergence", "gap_closure"),
    "retain_all": ("delegation", "retain_all"),
    "full_delegation": ("delegation", "waves"),
    "risk_pool_national": ("settlement", "risk_pool"),
    "icb_mergers_2026": ("mergers", "enabled"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CHANGE))
def test_scenario_library_extends_baseline_and_changes_its_lever(name):
    path = SCENARIOS / f"{name}.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    assert raw["extends"] == "baseline.toml"
    assert path.read_text(encoding="utf-8").startswith("#")  # commented for analysts
    scenario = sim.load_scenario(path)
    baseline = sim.load_scenario(SCENARIOS / "baseline.toml")
    assert scenario.name == name
    section, key = EXPECTED_CHANGE[name]
    assert getattr(getattr(scenario, section), key) != getattr(getattr(baseline, section), key)
    assert scenario.time == baseline.time


def test_largest_change_year_finds_a_transition_only_difference(pair):
    a, _ = pair
    b = a.copy(deep=True)
    b.attrs["scenario_name"] = "transition"
    first, second = a["icb"].values[:2]
    b["allocation"].loc[{"year": 2026, "icb": first}] += 1_000_000
    b["allocation"].loc[{"year": 2026, "icb": second}] -= 1_000_000
    comparison = compare(a, b)
    assert comparison.largest_change_year() == 2026
    assert all(t.empty for t in comparison.gainers_losers())  # nothing differs by the end
    gainers, losers = comparison.gainers_losers(year=2026)
    assert list(gainers["change transition"]) == [1_000_000]
    assert list(losers["change transition"]) == [-1_000_000]
