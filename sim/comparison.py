"""Differences between scenario results: national budgets, per-ICB allocations, financial risk.

`compare(a, b, ...)` takes results Datasets (or paths to results .nc files) and returns a
`Comparison` of pandas tables, the first scenario being the reference that the others are
measured against. `sim.report.compare_files` is the CLI's entry point: it also writes the
HTML report and CSV tables, each atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sim import disclosure
from sim.accessor import as_list, base_year, end_year, scenario_name
from sim.atomic import atomic_path
from sim.errors import DataError
from sim.variations import NEEDED as VARIATIONS_NEED
from sim.variations import PER, variations
from sim.years import financial_year as fy

REQUIRED = ("allocation", "retained_budget", "envelope", "distance_from_target", "population")
RISK_VARS = ("p_overspend_1pct", "p_overspend_5pct", "expected_shortfall")
BELOW_TARGET = -0.05  # the pace-of-change aim: no ICB more than 5% below target


@dataclass
class Comparison:
    """The tables of a comparison; the first scenario is the reference.

    `national`: one row per scenario and year (GBP). `icb`: one row per ICB at the end year,
    allocation and distance from target per scenario and the change against the reference.
    `risk`: per ICB at the end year, overspend probabilities and expected shortfall.
    `patients`: mean patients per ICB and portfolio at the end year (small counts suppressed
    unless switched off). `headline`: one row per metric, one column per scenario.
    `variations`: the variations view (`sim.variations`) per scenario, ICB and need group at
    the end year, empty for results without spend and patients by need group.
    """

    datasets: list[xr.Dataset]
    national: pd.DataFrame
    icb: pd.DataFrame
    risk: pd.DataFrame
    patients: pd.DataFrame
    headline: pd.DataFrame
    variations: pd.DataFrame = field(default_factory=pd.DataFrame)
    suppressed: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [scenario_name(ds, f"scenario {i + 1}") for i, ds in enumerate(self.datasets)]

    def gainers_losers(
        self, n: int = 5, against: int = -1, year: int | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The n ICBs gaining most and losing most (in % of allocation) in scenario `against`
        relative to the reference, at the end year or the given year."""
        name = self.names[against]
        col = f"change % {name}"
        icb = self.icb if year is None else _icb_table(self.datasets, year)
        if col not in icb:
            raise ValueError("gainers and losers need at least two scenarios")
        cols = ["icb", "icb_name", "region_name", f"allocation {self.names[0]}",
                f"allocation {name}", f"change {name}", col]  # fmt: skip
        table = icb.dropna(subset=[col])[cols]
        gainers = table.sort_values(col, ascending=False).head(n)
        losers = table.sort_values(col).head(n)
        return gainers[gainers[col] > 0], losers[losers[col] < 0]

    def largest_change_year(self, against: int = -1) -> int:
        """The year in which scenario `against` moves most money between ICBs relative to the
        reference (sum of absolute allocation changes): policies such as faster convergence
        can differ most in the transition years and not at all by the end year."""
        a, b = xr.align(self.datasets[0]["allocation"], self.datasets[against]["allocation"])
        moved = abs(b - a).sum("icb")
        return int(moved["year"].values[int(moved.argmax("year"))])

    def variations_against(self, k: int) -> tuple[bool, int]:
        """Whether scenario k's variations view has the reference's access, intensity and
        spend per head everywhere, and for how many ICBs its benchmark ICBs differ."""
        table = self.variations.set_index(["scenario", "icb", "need_group"])
        ref, other = (table.loc[self.names[i]] for i in (0, k))
        other = other.reindex(ref.index)
        rates = ["access_per_1000", "intensity_gbp", "spend_per_head_gbp"]
        same = np.allclose(ref[rates], other[rates], rtol=1e-9, atol=0.0, equal_nan=True)
        peers = zip(ref["benchmark_icbs"], other["benchmark_icbs"], strict=True)
        moved = [set(str(x).split()) != set(str(y).split()) for x, y in peers]
        return bool(same), ref.index.get_level_values("icb")[moved].nunique()

    def to_csv(self, directory: str | Path) -> list[Path]:
        """Write every table as CSV into `directory` (created if needed), atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        tables = {
            "headline": self.headline,
            "national": self.national,
            "icb_end_year": self.icb,
            "financial_risk": self.risk,
            "patients": self.patients,
            "variations": self.variations,
        }
        for stem, table in tables.items():
            path = directory / f"{stem}.csv"
            with atomic_path(path) as tmp:
                table.to_csv(tmp, index=stem in ("headline",))
            written.append(path)
        notes = directory / "NOTES.txt"
        with atomic_path(notes) as tmp:
            Path(tmp).write_text("\n".join(self.notes) + "\n", encoding="utf-8")
        written.append(notes)
        return written

    def __repr__(self) -> str:
        return (
            f"Comparison of {', '.join(self.names)}\n"
            + self.headline.to_string()
            + ("\n" + "\n".join(self.notes) if self.notes else "")
        )


def open_results(path: str | Path) -> xr.Dataset:
    """Load a results file into memory, or raise DataError saying why it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "results file not found (make one with `specsim run ... --out`)")
    try:
        with xr.open_dataset(path) as ds:  # any installed NetCDF backend
            loaded = ds.load()
    except Exception as exc:  # h5py/netCDF raise many types for a non-NetCDF file
        raise DataError(path, f"not a readable NetCDF results file ({type(exc).__name__})") from exc
    missing = [v for v in REQUIRED if v not in loaded]
    if missing:
        raise DataError(path, f"not a specsim results file: missing {', '.join(missing)}")
    loaded.attrs.setdefault("scenario_name", path.stem)
    return loaded


def _to_datasets(items: Sequence[xr.Dataset | str | Path]) -> list[xr.Dataset]:
    datasets = []
    for item in items:
        datasets.extend(as_list(item if isinstance(item, xr.Dataset) else open_results(item)))
    names = [scenario_name(ds, f"scenario {i + 1}") for i, ds in enumerate(datasets)]
    seen: dict[str, int] = {}
    for ds, name in zip(datasets, names, strict=True):  # make names unique for column labels
        seen[name] = seen.get(name, 0) + 1
        ds.attrs["scenario_name"] = name if seen[name] == 1 else f"{name} ({seen[name]})"
    return datasets


def distance_fraction(ds: xr.Dataset, year: int) -> xr.DataArray:
    """Distance from target as a fraction of target (negative = below target)."""
    dft = ds["distance_from_target"].sel(year=year)
    if str(dft.attrs.get("units", "1")).lower() in ("1", "fraction", "ratio", ""):
        return dft
    return dft / ds["target_allocation"].sel(year=year)


def _national(datasets: list[xr.Dataset]) -> pd.DataFrame:
    rows = []
    for ds in datasets:
        delegated = ds["allocation"].sum("icb")
        frame = pd.DataFrame(
            {
                "scenario": scenario_name(ds),
                "year": ds["year"].values,
                "envelope_gbp": ds["envelope"].values,
                "delegated_gbp": delegated.values,
                "retained_gbp": ds["retained_budget"].values,
            }
        )
        frame["delegated_share"] = frame["delegated_gbp"] / frame["envelope_gbp"]
        if "spend_mean" in ds:
            for portfolio in ("delegated", "retained"):
                spend = ds["spend_mean"].sel(portfolio=portfolio).sum("icb").values
                frame[f"{portfolio}_spend_mean_gbp"] = spend
        rows.append(frame)
    table = pd.concat(rows, ignore_index=True)
    reference = table[table["scenario"] == scenario_name(datasets[0])].set_index("year")
    for col in ("delegated_gbp", "retained_gbp"):
        table[f"{col.removesuffix('_gbp')}_change_gbp"] = table[col] - table["year"].map(
            reference[col]
        )
    return table


def _icb_frame(ds: xr.Dataset) -> pd.DataFrame:
    """Static ICB attributes (name, region) indexed by ICB code."""
    coords = {c: ds[c].values for c in ("icb_name", "region_name") if c in ds.coords}
    return pd.DataFrame(coords, index=pd.Index(ds["icb"].values, name="icb"))


def _icb_table(datasets: list[xr.Dataset], year: int | None = None) -> pd.DataFrame:
    year = common_end_year(datasets) if year is None else year
    info = pd.concat([_icb_frame(ds) for ds in datasets])
    table = info[~info.index.duplicated()].copy()
    ref = scenario_name(datasets[0])
    for ds in datasets:
        name = scenario_name(ds)
        alloc = ds["allocation"].sel(year=year).to_series()
        per_head = (ds["allocation"] / ds["weighted_population"]).sel(year=year).to_series()
        table[f"allocation {name}"] = alloc
        table[f"per weighted head {name}"] = per_head
        table[f"distance % {name}"] = distance_fraction(ds, year).to_series() * 100
    for ds in datasets[1:]:
        name = scenario_name(ds)
        change = table[f"allocation {name}"] - table[f"allocation {ref}"]
        table[f"change {name}"] = change
        table[f"change % {name}"] = change / table[f"allocation {ref}"] * 100
    table.insert(0, "year", year)
    return table.reset_index()


def _risk_table(datasets: list[xr.Dataset]) -> pd.DataFrame:
    year = common_end_year(datasets)
    frames = []
    for ds in datasets:
        frame = _icb_frame(ds)
        frame.insert(0, "scenario", scenario_name(ds))
        frame["population"] = ds["population"].sel(year=year).sum(("sex", "age")).to_series()
        for var in RISK_VARS:
            if var not in ds:
                continue
            da = ds[var].sel(year=year)
            pools = da["pooling"].values if "pooling" in da.dims else [None]
            for pooling in pools:
                one = da.sel(pooling=pooling) if pooling is not None else da
                frame[f"{var} {pooling}" if pooling is not None else var] = one.to_series()
        frames.append(frame)
    table = pd.concat(frames).reset_index()
    table.insert(1, "year", year)
    return table


def _patients_table(datasets: list[xr.Dataset], suppress: bool) -> pd.DataFrame:
    """Mean simulated patients per ICB and portfolio at the end year, rounded to whole
    patients; retained (highly specialised) counts of 1..29 are suppressed unless switched off.
    """
    frames = []
    for ds in datasets:
        if "patients_mean" not in ds:
            continue
        da = ds["patients_mean"].sel(year=common_end_year(datasets)).round()
        frame = da.to_series().unstack("portfolio")
        frame.columns = [f"patients {p}" for p in frame.columns]
        frame = _icb_frame(ds).join(frame)
        frame.insert(0, "scenario", scenario_name(ds))
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames).reset_index()
    if suppress:
        hs_cols = [f"patients {p}" for p in disclosure.HIGHLY_SPECIALISED_PORTFOLIOS]
        table = disclosure.suppress_small_counts(table, columns=[c for c in hs_cols if c in table])
    return table


def allocation_change_per_head(a: xr.Dataset, b: xr.Dataset, year: int) -> xr.Dataset:
    """Per ICB (on a's footprint, ICBs in both), scenario b minus a in `year`: the change in
    allocation (`change`, GBP per head of a's population, and `percent` of a's allocation),
    in expected delegated spend (`spend`, GBP per head) and their difference (`net`), and
    the number of services b delegates anywhere minus a's (`services`, an attr)."""
    xa, xb = xr.align(a["allocation"].sel(year=year), b["allocation"].sel(year=year))
    icbs = xa["icb"].values
    heads = a["population"].sel(year=year, icb=icbs).sum(("sex", "age"))
    spend = [d["expected_spend"].sel(year=year, portfolio="delegated", icb=icbs) for d in (a, b)]
    change = (xb - xa) / heads
    spend_change = (spend[1] - spend[0]) / heads
    held = [int(d["delegated"].sel(year=year).any("icb").sum()) for d in (a, b)]
    return xr.Dataset(
        {
            "change": change,
            "percent": (xb - xa) / xa * 100,
            "spend": spend_change,
            "net": change - spend_change,
        },
        attrs={"services": held[1] - held[0], "year": year},
    )


VARIATION_COLUMNS = {
    "access": ("access_per_1000", PER),
    "intensity": ("intensity_gbp", 1),
    "spend_per_head": ("spend_per_head_gbp", 1),
    "benchmark_access": ("benchmark_access_per_1000", PER),
    "benchmark_intensity": ("benchmark_intensity_gbp", 1),
    "benchmark_spend_per_head": ("benchmark_spend_per_head_gbp", 1),
    "gap": ("gap_gbp", 1),
    "gap_access": ("gap_access_gbp", 1),
    "gap_intensity": ("gap_intensity_gbp", 1),
}
"""Variations view variables -> (table column, scale): access per 1,000, money per head."""


def _variations_table(datasets: list[xr.Dataset]) -> pd.DataFrame:
    """The variations view of every scenario at the common end year, one row per scenario,
    ICB and need group; empty when a results file has no spend or patients by group."""
    if not all(all(v in ds for v in VARIATIONS_NEED) for ds in datasets):
        return pd.DataFrame()
    year = common_end_year(datasets)
    frames = []
    for ds in datasets:
        view = variations(ds, year)
        scaled = {col: view[var] * scale for var, (col, scale) in VARIATION_COLUMNS.items()}
        frame = pd.DataFrame({col: da.to_series() for col, da in scaled.items()})
        peers = pd.Series([" ".join(map(str, c)) for c in view["benchmark"].values], view["icb"])
        frame["benchmark_icbs"] = frame.index.get_level_values("icb").map(peers)
        frame = _icb_frame(ds).join(frame.reset_index("need_group"))
        frame.insert(0, "scenario", scenario_name(ds))
        frame.insert(1, "year", year)
        frames.append(frame)
    return pd.concat(frames).reset_index()


def common_end_year(datasets: list[xr.Dataset]) -> int:
    """The last year every scenario has: where end-year tables compare like with like."""
    return max(set.intersection(*(set(map(int, ds["year"].values)) for ds in datasets)))


def _headline(datasets: list[xr.Dataset]) -> pd.DataFrame:
    """One row per metric, one column per scenario (plus differences), at the common end
    year, which names the index so a printed table says which year it describes."""
    year = common_end_year(datasets)
    metrics: dict[str, dict[str, float]] = {}
    for ds in datasets:
        dist = distance_fraction(ds, year)
        envelope = float(ds["envelope"].sel(year=year))
        delegated = float(ds["allocation"].sel(year=year).sum())
        col = {
            "envelope £m": envelope / 1e6,
            "delegated £m": delegated / 1e6,
            "retained £m": float(ds["retained_budget"].sel(year=year)) / 1e6,
            "delegated share %": delegated / envelope * 100,
            "number of ICBs": int(ds["allocation"].sel(year=year).notnull().sum()),
            "ICBs >5% below target": int((dist < BELOW_TARGET).sum()),
            "mean |distance from target| %": float(abs(dist).mean()) * 100,
        }
        for pooling in ("before", "after"):
            if "p_overspend_5pct" in ds and pooling in ds["pooling"].values:
                p = ds["p_overspend_5pct"].sel(year=year, pooling=pooling)
                col[f"max P(overspend >5%) {pooling} pooling %"] = float(p.max()) * 100
            if "expected_shortfall" in ds and pooling in ds["pooling"].values:
                es = ds["expected_shortfall"].sel(year=year, pooling=pooling)
                col[f"expected overspend, all ICBs, {pooling} pooling £m"] = float(es.sum()) / 1e6
        metrics[scenario_name(ds)] = col
    table = pd.DataFrame(metrics)
    ref = table.columns[0]
    for name in table.columns[1:]:
        table[f"{name} - {ref}"] = table[name] - table[ref]
    table.index.name = f"in {fy(year)}"
    return table.round(2)


def compare(
    *scenarios: xr.Dataset | str | Path | Sequence[xr.Dataset],
    suppress_small_counts: bool = True,
) -> Comparison:
    """Compare scenario results; the first is the reference.

    Accepts Datasets, paths to results .nc files, a list of either, or one Dataset with a
    `scenario` dimension. ICBs present in only some scenarios (a merger footprint) keep NaN
    for the others rather than being matched by guesswork.
    """
    items: list = []
    for s in scenarios:
        items.extend(s if isinstance(s, list | tuple) else [s])
    datasets = _to_datasets(items)
    if not datasets:
        raise ValueError("compare needs at least one results Dataset")
    common = set.intersection(*(set(map(int, ds["year"].values)) for ds in datasets))
    if not common:
        spans = ", ".join(f"{scenario_name(ds)} {base_year(ds)}..{end_year(ds)}" for ds in datasets)
        raise DataError(scenario_name(datasets[0]), f"the results have no year in common ({spans})")
    notes = []
    patients = _patients_table(datasets, suppress_small_counts)
    if suppress_small_counts:
        notes.append(
            disclosure.FOOTNOTE
            if patients.attrs.get("disclosure_note")
            else "Disclosure control applied: no retained patient count fell in 1..29."
        )
    else:
        notes.append("Disclosure control SWITCHED OFF: small patient counts are shown.")
    footprints = {tuple(ds["icb"].values) for ds in datasets}
    if len(footprints) > 1:
        notes.append(
            "The scenarios use different ICB footprints (e.g. the 2026 mergers): ICBs present "
            "in one scenario only have blank entries for the others."
        )
    return Comparison(
        datasets=datasets,
        national=_national(datasets),
        icb=_icb_table(datasets),
        risk=_risk_table(datasets),
        patients=patients,
        headline=_headline(datasets),
        variations=_variations_table(datasets),
        suppressed=suppress_small_counts,
        notes=notes,
    )


__all__ = ["Comparison", "compare", "open_results"]
