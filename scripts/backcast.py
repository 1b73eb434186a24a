"""Back-cast: run specsim from 2018/19; compare national expected spend with published spend.

Run from the repository root:

    .venv/bin/python scripts/backcast.py

It runs the deterministic path (no random draws) of the baseline model from 2018/19, the
first year with population data, to 2030/31 with named growth factors switched off one at
a time, writes the figure `docs/figures/backcast.png` and rewrites the generated blocks of
`docs/backcast.md` (between `<!-- backcast:NAME -->` and `<!-- /backcast:NAME -->`; the
prose around them is written by hand). `tests/test_backcast.py` regenerates the blocks and
compares them with the page, so the page cannot drift from the model.

The published figures, with their sources, are `PUBLISHED` below: the one place they live.
Those before 2018/19 are context only: the packaged population starts in mid-2018.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sim.reference import ReferenceData, load_data
from sim.scenario import Scenario
from sim.simulate import deterministic_path
from sim.years import financial_year

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
DOC = ROOT / "docs" / "backcast.md"
FIGURE = ROOT / "docs" / "figures" / "backcast.png"

CONTEXT_START, FIRST, LAST, CONTEXT_END = 2015, 2018, 2023, 2030
"""Published figures are shown from 2015/16; the model runs 2018/19..2030/31 (the packaged
population starts in mid-2018) and is compared with published spend 2018/19..2023/24."""

LATER_BASIS = 2019
"""2019/20: the first year of the later sources' series (see PUBLISHED), the start of the
sensitivity period that avoids the jump from 2018/19."""

# --------------------------------------------------------------------------- published data

CIPFA = (
    "NHS England allocations table as summarised by CIPFA, 'resource allocation' "
    "(DOMAIN.md, More published figures)"
)


@dataclass(frozen=True)
class Published:
    """One published national figure for specialised services, £m in cash."""

    year: int
    gbp_m: float
    note: str
    source: str


PUBLISHED = (
    Published(2015, 14_643, "allocation", CIPFA),
    Published(2016, 15_662, "allocation", CIPFA),
    Published(2017, 16_413, "allocation", CIPFA),
    Published(
        2018,
        17_151,
        "allocation",
        CIPFA + "; NHS England gives spend of £17.2bn (DOMAIN.md, What specialised services are)",
    ),
    Published(
        2019,
        20_000,
        "about £20bn (rounded)",
        "later sources, as reported by NHS England, the NAO and the King's Fund (DOMAIN.md, "
        "Growth and pace figures); used instead of the 17,918 plan made in January 2016",
    ),
    Published(
        2022,
        22_700,
        "spend",
        "NHS England pages; parliamentary answer of May 2024; NHS Providers briefing "
        "(DOMAIN.md, What specialised services are)",
    ),
    Published(
        2023,
        25_000,
        "spend",
        "as 2022/23; also the service catalogue's total (docs/service_catalogue.md)",
    ),
)
ROUNDING = (19_500, 20_500)
"""£m: what the rounded "about £20bn" of 2019/20 may stand for (half a billion either side)."""
PLANS_JAN_2016 = {2019: 17_918, 2020: 18_820}
"""Plans made in January 2016 (CIPFA), shown in the figure for context, never compared."""

# --------------------------------------------------------------------------- the scenarios

OVERLAY = f"""\
extends = "baseline.toml"
name = "backcast"
description = "The baseline model run from 2018/19, the first year with population data."

[time]
base_year = {FIRST}
end_year = {CONTEXT_END}

[envelope]
# The budget, not spend (the back-cast compares expected spend): the published 2018/19
# allocation, grown 7.83% a year to about £25bn in 2023/24, then the baseline's 6%.
base_gbp = 17_151_000_000
growth_by_year = {{ {", ".join(f"{y} = 0.0783" for y in range(FIRST + 1, LAST + 1))} }}

[allocation]
# The formula re-estimated every year on the year's own demand: the baseline's lagged
# calibration reads 2016 and 2017, before the population data. Expected spend does not
# depend on the formula (tests/test_backcast.py checks it).
calibration = "perfect"

[demand]
# Expected values only: the deterministic path.
stochastic = false
"""
"""The back-cast scenario: `scenarios/baseline.toml` with these settings (the full model)."""

VARIANTS = {
    "full": {},
    "no_new_treatments": {"cpag": {"enabled": False}},
    "demography": {"demand": {"growth_multiplier": 0.0}, "cpag": {"enabled": False}},
    "nothing": {
        "demand": {"growth_multiplier": 0.0, "demographic_growth": False},
        "cpag": {"enabled": False},
    },
}
"""Factors switched off on top of OVERLAY, cumulatively from the full model down."""

LABELS = {
    "size": "population size only (2018 age/sex structure held)",
    "demography": "demography (size and age/sex structure)",
    "no_new_treatments": "+ non-demographic growth",
    "full": "+ new treatments (the full model)",
    "baseline": "baseline scenario (base year 2024/25), for context",
}


def overlay_dict(**sections: dict) -> dict:
    """OVERLAY as a dict, with `sections` merged key by key into its tables."""
    data = tomllib.loads(OVERLAY)
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def scenario(variant: str = "full", **sections: dict) -> Scenario:
    """The back-cast scenario with one of VARIANTS applied, then `sections` merged in."""
    merged = {name: dict(values) for name, values in VARIANTS[variant].items()}
    for name, values in sections.items():
        merged[name] = {**merged.get(name, {}), **values}
    return Scenario.from_dict(overlay_dict(**merged), path=SCENARIOS / "backcast.toml")


def national_gbp_m(ds: xr.Dataset) -> pd.Series:
    """National expected spend by financial year, £m."""
    return ds["expected_spend"].sum(("icb", "portfolio")).to_series() / 1e6


def size_only(ds: xr.Dataset, base: int) -> pd.Series:
    """National spend of the demography-only path with each ICB's base-year age-sex
    structure held and only its total population following the series, £m.

    Exact, not an approximation: on that path (no non-demographic growth, no new
    treatments) each ICB's expected spend is linear in its population by sex and age
    (patients = rate x need x sum of population x profile, priced at fixed costs), so an
    ICB whose population is its base-year one scaled by k spends k times its base-year
    spend.
    """
    spend = ds["expected_spend"].sum("portfolio").sel(year=base)
    heads = ds["population"].sum(("sex", "age"))
    return (spend * heads / heads.sel(year=base)).sum("icb").to_series() / 1e6


# --------------------------------------------------------------------------- the results


@dataclass(frozen=True)
class Backcast:
    """Everything the page and the figure show, as `run` measured it."""

    paths: pd.DataFrame
    """£m by year (index CONTEXT_START..CONTEXT_END): published, size, demography,
    no_new_treatments, full, nothing, baseline (model paths blank before FIRST)."""
    population: pd.Series
    """England's population in the model's series, by year."""
    seam: pd.DataFrame
    """Mid-2022 England by age band in the two projections (rows: bands; columns
    `2018-based`, `2022-based`)."""
    base_2023_check: float
    """National expected spend of 2023/24 with base year 2023 (the calibration), £m."""
    matching_multiplier: dict[int, float]
    """By start year (FIRST, LATER_BASIS): the growth_multiplier that reproduces the
    published growth from that year to LAST."""
    catalogue: dict[str, float]
    """`catalogue_facts` of the packaged catalogue."""
    steep: tuple[float, float]
    """(demography, age and sex structure) growth a year FIRST..LAST if every service
    followed the core general-and-acute curve (`steep_demography`)."""


def run(data: ReferenceData | None = None) -> Backcast:
    """Every path of the back-cast (two to three seconds)."""
    data = data if data is not None else load_data()
    results = {name: deterministic_path(scenario(name), data) for name in VARIANTS}
    paths = pd.DataFrame({name: national_gbp_m(ds) for name, ds in results.items()})
    paths["size"] = size_only(results["demography"], FIRST)
    baseline = Scenario.from_dict(
        {
            "extends": "baseline.toml",
            "name": "baseline_context",
            "time": {"end_year": CONTEXT_END},
            "demand": {"stochastic": False},
        },
        path=SCENARIOS / "baseline_context.toml",
    )
    paths["baseline"] = national_gbp_m(deterministic_path(baseline, data))
    paths = paths.reindex(range(CONTEXT_START, CONTEXT_END + 1))
    paths["published"] = pd.Series({p.year: p.gbp_m for p in PUBLISHED}, dtype=float)
    check = national_gbp_m(
        deterministic_path(scenario("full", time={"base_year": LAST, "end_year": LAST}), data)
    )
    population = results["full"]["population"].sum(("icb", "sex", "age")).to_series()
    multipliers = {
        start: matching_multiplier(data, growth(paths["published"], start), start)
        for start in (FIRST, LATER_BASIS)
    }
    return Backcast(
        paths,
        population,
        seam(data),
        float(check.loc[LAST]),
        multipliers,
        catalogue_facts(data),
        steep_demography(data),
    )


STEEP = "general_acute_reference"
"""The catalogue's steep core general-and-acute curve, used by no service."""


def steep_demography(data: ReferenceData) -> tuple[float, float]:
    """Demography and its age and sex structure part, growth a year FIRST..LAST, with
    every service on the STEEP curve: how much the flatter specialised curves matter."""
    steep = dataclasses.replace(data, services=data.services.assign(age_profile=STEEP))
    ds = deterministic_path(scenario("demography", time={"end_year": LAST}), steep)
    demography = growth(national_gbp_m(ds))
    structure = demography / growth(size_only(ds, FIRST))
    return cagr(demography, LAST - FIRST), cagr(structure, LAST - FIRST)


AGE_BANDS = {
    "all ages": (0, 90),
    "0-15": (0, 15),
    "16-64": (16, 64),
    "65+": (65, 90),
    "85+": (85, 90),
}
"""Age bands of the seam table, inclusive (90 is 90 and over)."""


def seam(data: ReferenceData) -> pd.DataFrame:
    """Mid-2022 England by age band in the 2018-based principal and the 2022-based
    projection: where the model's series switches from one to the other."""
    ds = data.dataset
    old = ds["population_projection"].sel(variant="principal", year=2022).sum(("icb", "sex"))
    new = ds["population_projection_2022"].sel(year_2022=2022).sum(("icb", "sex"))
    rows = {
        band: (float(old.sel(age=slice(*ages)).sum()), float(new.sel(age=slice(*ages)).sum()))
        for band, ages in AGE_BANDS.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["2018-based", "2022-based"])


def matching_multiplier(
    data: ReferenceData, target: float, start: int = FIRST, steps: int = 14
) -> float:
    """The `[demand] growth_multiplier` whose start..LAST growth equals `target`
    (bisection on 0..4; growth rises with the multiplier)."""
    lo, hi = 0.0, 4.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        path = scenario(
            "no_new_treatments", time={"end_year": LAST}, demand={"growth_multiplier": mid}
        )
        if growth(national_gbp_m(deterministic_path(path, data)), start) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def cagr(ratio: float, years: int) -> float:
    """Average annual growth of a ratio over `years` years."""
    return ratio ** (1.0 / years) - 1.0


def growth(series: pd.Series, start: int = FIRST, end: int = LAST) -> float:
    """Growth factor of `series` from `start` to `end`."""
    return float(series.loc[end] / series.loc[start])


@dataclass(frozen=True)
class Part:
    """One multiplicative part of the growth over a period of `years` years."""

    name: str
    ratio: float
    """Growth factor of this part over the period (multiplicative)."""
    years: int

    def per_year(self) -> float:
        return cagr(self.ratio, self.years)

    def share(self, published: float) -> float:
        """Share of the published log growth."""
        return math.log(self.ratio) / math.log(published)


def decomposition(bc: Backcast, start: int = FIRST) -> tuple[list[Part], float]:
    """The model's growth start..LAST in named multiplicative parts (they multiply to the
    published growth, with `unexplained` the residual), and the published growth."""
    p = bc.paths
    years = LAST - start
    published = growth(p["published"], start)
    size = growth(p["size"], start)
    demography = growth(p["demography"], start)
    no_new = growth(p["no_new_treatments"], start)
    model = growth(p["full"], start)
    parts = [
        Part("population size", size, years),
        Part("age and sex structure", demography / size, years),
        Part("**demography**", demography, years),
        Part("non-demographic growth", no_new / demography, years),
        Part("new treatments (CPAG)", model / no_new, years),
        Part("**the model**", model, years),
        Part("**unexplained**", published / model, years),
    ]
    return parts, published


def shares(bc: Backcast, start: int = FIRST) -> dict[str, float]:
    """Each part's share of the published log growth start..LAST, by name."""
    parts, published = decomposition(bc, start)
    return {part.name: part.share(published) for part in parts}


# --------------------------------------------------------------------------- the catalogue


HCDD_HIGHLY_SPECIALISED = (
    "car_t_therapy",
    "gene_therapies_hss",
    "pnh_ahus_complement",
    "lysosomal_storage_disorders",
    "national_high_cost_drugs",
)
"""The drug-dominated highly specialised rows that docs/service_catalogue.md counts as
high-cost drugs and devices with the eight `hcdd_` rows (no catalogue column marks them)."""


def catalogue_facts(data: ReferenceData) -> dict[str, float]:
    """What the service catalogue says about growth and age, weighted by 2023/24 spend:
    the mean non-demographic growth, the high-cost drugs and devices rows' share and
    growth, and the spend shares of services by the shape of their utilisation profile
    (averaged over sex): peaking before 65, flat, peaking at 65..89 then falling, or
    rising to 90+."""
    services = data.services
    spend = services["baseline_spend_gbp"].to_numpy(float)
    rate = services["non_demographic_growth"].to_numpy(float)
    ids = services["service_id"]
    hcdd = (ids.str.startswith("hcdd_") | ids.isin(HCDD_HIGHLY_SPECIALISED)).to_numpy()
    profiles = data.profiles.mean("sex").transpose("profile", "age").to_pandas()
    top = profiles.max(axis=1)
    peak = profiles.idxmax(axis=1)
    shape = pd.Series("young", index=profiles.index)
    shape[peak >= 65] = "falling"
    shape[profiles[90] == top] = "rising"
    shape[top == profiles.min(axis=1)] = "flat"
    kind = services["age_profile"].map(shape).to_numpy()
    falling = shape == "falling"
    at_90 = profiles[90][falling] / top[falling]
    facts = {f"{k}_share": float(spend[kind == k].sum() / spend.sum()) for k in set(shape)}
    return facts | {
        "growth": float(np.average(rate, weights=spend)),
        "hcdd_rows": float(hcdd.sum()),
        "hcdd_gbp_m": float(spend[hcdd].sum() / 1e6),
        "hcdd_share": float(spend[hcdd].sum() / spend.sum()),
        "hcdd_growth": float(np.average(rate[hcdd], weights=spend[hcdd])),
        "falling_peak_min": float(peak[falling].min()),
        "falling_peak_max": float(peak[falling].max()),
        "falling_at_90_min": float(at_90.min()),
        "falling_at_90_max": float(at_90.max()),
    }


# --------------------------------------------------------------------------- the page


def _m(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:,.0f}"


def _pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


def _gap(model: float, published: float, digits: int) -> str:
    word = "above" if model >= published else "below"
    return f"{_pct(abs(model / published - 1), digits)} {word}"


def _period(start: int, end: int = LAST) -> str:
    return f"{financial_year(start)} to {financial_year(end)}"


def table_block(bc: Backcast) -> str:
    p = bc.paths
    cols = ["size", "demography", "no_new_treatments", "full"]
    head = (
        "| year | published £m | population size only £m | demography £m "
        "| + non-demographic £m | + new treatments (full model) £m | full model / published |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for year in range(CONTEXT_START, CONTEXT_END + 1):
        row = p.loc[year]
        if year < FIRST:
            cells = ["not modelled"] * len(cols) + ["—"]
            label = f"{financial_year(year)} (published only: no population data)"
        else:
            ratio = row["full"] / row["published"]
            cells = [_m(row[c]) for c in cols] + [_pct(ratio, 0) if np.isfinite(ratio) else "—"]
            label = financial_year(year) + (" (model only)" if year > LAST else "")
        lines.append(f"| {label} | {_m(row['published'])} | {' | '.join(cells)} |")
    return "\n".join(lines)


PERIODS = {
    (CONTEXT_START, FIRST): "published only",
    (FIRST, 2021): "within the 2018-based projection",
    (2021, 2022): "the switch to the 2022-based projection",
    (2022, LAST): "within the 2022-based projection",
    (LATER_BASIS, LAST): "from the later sources' first year",
    (FIRST, LAST): "the comparison",
}
"""Periods of the growth table, with what each shows."""


def _rate(value: float) -> str:
    return "—" if not np.isfinite(value) else _pct(value, 2)


def growth_block(bc: Backcast) -> str:
    p = bc.paths
    modelled = ["size", "demography", "structure", "no_new_treatments", "full"]
    lines = [
        "| period | | published | population size only | demography "
        "| age and sex structure (demography / size) | + non-demographic "
        "| + new treatments (full model) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (start, end), what in PERIODS.items():
        rates = {c: cagr(growth(p[c], start, end), end - start) for c in p.columns}
        rates["structure"] = (1 + rates["demography"]) / (1 + rates["size"]) - 1
        cells = [_rate(rates["published"])] + [
            "not modelled" if start < FIRST else _rate(rates[c]) for c in modelled
        ]
        lines.append(f"| {_period(start, end)} | {what} | {' | '.join(cells)} |")
    return "\n".join(lines)


def decomposition_block(bc: Backcast) -> str:
    main, published = decomposition(bc, FIRST)
    later, published_later = decomposition(bc, LATER_BASIS)
    lines = [
        f"| part | {_period(FIRST)}: growth a year | share of the published growth (log) "
        f"| {_period(LATER_BASIS)} (sensitivity): growth a year | share |",
        "|---|---|---|---|---|",
    ]
    for part, other in zip(main, later, strict=True):
        lines.append(
            f"| {part.name} | {_pct(part.per_year(), 2)} | {_pct(part.share(published))} "
            f"| {_pct(other.per_year(), 2)} | {_pct(other.share(published_later))} |"
        )
    lines.append(
        f"| **published** | {_pct(cagr(published, LAST - FIRST), 2)} | 100.0% "
        f"| {_pct(cagr(published_later, LAST - LATER_BASIS), 2)} | 100.0% |"
    )
    model = growth(bc.paths["full"], LATER_BASIS)
    end = bc.paths.loc[LAST, "published"]
    low, high = (math.log(model) / math.log(end / v) for v in ROUNDING)
    lines += [
        "",
        f'If "about £20bn" stands for anything from £{ROUNDING[0] / 1e3:g}bn to '
        f"£{ROUNDING[1] / 1e3:g}bn, the model's share of the {_period(LATER_BASIS)} growth "
        f"is {_pct(low, 0)} to {_pct(high, 0)}.",
    ]
    return "\n".join(lines)


def population_block(bc: Backcast) -> str:
    lines = [
        "| mid-year | England in the model's series | change on the year | source |",
        "|---|---|---|---|",
    ]
    for year in range(FIRST, LAST + 1):
        value = float(bc.population.loc[year])
        change = "—" if year == FIRST else _pct(value / bc.population.loc[year - 1] - 1, 2)
        source = "ONS 2018-based SNPP, principal" if year < 2022 else "ONS 2022-based SNPP"
        if year in (FIRST, 2022):
            source += f" (its base: the mid-{year} estimate)"
        lines.append(f"| {year} | {value:,.0f} | {change} | {source} |")
    return "\n".join(lines)


def seam_block(bc: Backcast) -> str:
    lines = [
        "| England, mid-2022 | 2018-based principal | 2022-based | 2022-based / 2018-based |",
        "|---|---|---|---|",
    ]
    for band, row in bc.seam.iterrows():
        ratio = row["2022-based"] / row["2018-based"] - 1
        lines.append(
            f"| {band} | {row['2018-based']:,.0f} | {row['2022-based']:,.0f} | {ratio:+.1%} |"
        )
    return "\n".join(lines)


def catalogue_block(bc: Backcast) -> str:
    f = bc.catalogue
    return "\n".join(
        [
            f"- The catalogue's non-demographic growth averages {_pct(f['growth'], 2)} a year "
            "(weighted by 2023/24 spend).",
            f"- High-cost drugs and devices ({f['hcdd_rows']:.0f} rows, as "
            f"docs/service_catalogue.md counts them) are £{f['hcdd_gbp_m']:,.0f}m, "
            f"{_pct(f['hcdd_share'])} of catalogue spend, and grow "
            f"{_pct(f['hcdd_growth'], 2)} a year on average.",
            f"- By the shape of their utilisation profile: {_pct(f['young_share'], 0)} of "
            f"catalogue spend peaks before 65, {_pct(f['flat_share'], 0)} is flat, "
            f"{_pct(f['falling_share'], 0)} peaks at {f['falling_peak_min']:.0f}-"
            f"{f['falling_peak_max']:.0f} and falls to {_pct(f['falling_at_90_min'], 0)}-"
            f"{_pct(f['falling_at_90_max'], 0)} of the peak at 90+, and "
            f"{_pct(f['rising_share'], 0)} rises to 90+.",
            f"- Were every service on the catalogue's steep core general-and-acute curve "
            f"(`{STEEP}`, an assumption used by no service), demography "
            f"{_period(FIRST)} would be {_pct(bc.steep[0], 2)} a year, its age and sex "
            f"structure part {_pct(bc.steep[1], 2)}.",
        ]
    )


def summary_block(bc: Backcast) -> str:
    p = bc.paths
    parts, published = decomposition(bc)
    by = {part.name: part for part in parts}
    later = shares(bc, LATER_BASIS)
    demo, model = by["**demography**"], by["**the model**"]
    non_demo, new = by["non-demographic growth"], by["new treatments (CPAG)"]
    rest = by["**unexplained**"]
    years = LAST - FIRST
    return "\n".join(
        [
            f"- Published spend grew {_pct(cagr(published, years))} a year from "
            f"{financial_year(FIRST)} to {financial_year(LAST)} (x{published:.3f}); the full "
            f"model grows {_pct(model.per_year())} a year (x{model.ratio:.3f}), "
            f"{_pct(model.share(published), 0)} of the published growth in logs.",
            f"- Demography alone: {_pct(demo.per_year(), 2)} a year, "
            f"{_pct(demo.share(published), 0)} of the published growth (population size "
            f"{_pct(by['population size'].share(published), 1)}, age and sex structure "
            f"{_pct(by['age and sex structure'].share(published), 1)}).",
            f"- Non-demographic growth adds {_pct(non_demo.per_year())} a year "
            f"({_pct(non_demo.share(published), 0)}); new treatments add "
            f"{_pct(new.per_year(), 2)} a year ({_pct(new.share(published), 0)}) by "
            f"{financial_year(LAST)}.",
            f"- Unexplained: {_pct(rest.per_year())} a year, "
            f"{_pct(rest.share(published), 0)} of the published growth. Measured from "
            f"{financial_year(LATER_BASIS)} instead (after the published series' jump, see "
            f"below) the model explains {_pct(later['**the model**'], 0)} and "
            f"{_pct(later['**unexplained**'], 0)} is unexplained. Reproducing the published "
            f"cash growth would take `[demand] growth_multiplier = "
            f"{bc.matching_multiplier[FIRST]:.2f}` ({_period(FIRST)}) or "
            f"{bc.matching_multiplier[LATER_BASIS]:.2f} ({_period(LATER_BASIS)}).",
            f"- Levels: the model's {financial_year(FIRST)} is £{p.loc[FIRST, 'full']:,.0f}m, "
            f"{_gap(p.loc[FIRST, 'full'], p.loc[FIRST, 'published'], 0)} the published "
            f"£{p.loc[FIRST, 'published']:,.0f}m; its {financial_year(LAST)} is "
            f"£{p.loc[LAST, 'full']:,.0f}m, "
            f"{_gap(p.loc[LAST, 'full'], p.loc[LAST, 'published'], 1)} "
            f"£{p.loc[LAST, 'published']:,.0f}m (with base year {LAST} the calibration gives "
            f"£{bc.base_2023_check:,.0f}m).",
        ]
    )


def published_block(bc: Backcast) -> str:
    lines = ["| year | £m | what | source |", "|---|---|---|---|"]
    for p in PUBLISHED:
        label = financial_year(p.year) + (" (context only)" if p.year < FIRST else "")
        lines.append(f"| {label} | {p.gbp_m:,.0f} | {p.note} | {p.source} |")
    plans = ", ".join(f"{financial_year(y)} {v:,}" for y, v in PLANS_JAN_2016.items())
    lines.append(f"| {plans} | | plans made in January 2016 (figure only) | {CIPFA} |")
    return "\n".join(lines)


def scenario_block(bc: Backcast) -> str:
    return "```toml\n" + OVERLAY.rstrip() + "\n```"


BLOCKS = {
    "scenario": scenario_block,
    "published": published_block,
    "summary": summary_block,
    "table": table_block,
    "growth": growth_block,
    "decomposition": decomposition_block,
    "population": population_block,
    "seam": seam_block,
    "catalogue": catalogue_block,
}


def render(bc: Backcast) -> dict[str, str]:
    """The generated blocks of docs/backcast.md, by name."""
    return {name: make(bc) for name, make in BLOCKS.items()}


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- backcast:{name} -->\n(.*?)<!-- /backcast:{name} -->", re.DOTALL)


def doc_blocks(text: str) -> dict[str, str]:
    """The generated blocks as they stand in the page."""
    out = {}
    for name in BLOCKS:
        match = block_pattern(name).search(text)
        if match is None:
            raise SystemExit(f"{DOC.relative_to(ROOT)}: no <!-- backcast:{name} --> block")
        out[name] = match.group(1).rstrip("\n")
    return out


def write_doc(blocks: dict[str, str], path: Path = DOC) -> None:
    text = path.read_text(encoding="utf-8")
    doc_blocks(text)  # every marker present
    for name, body in blocks.items():
        marked = f"<!-- backcast:{name} -->\n{body}\n<!-- /backcast:{name} -->"
        text = block_pattern(name).sub(lambda _, marked=marked: marked, text)
    path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- the figure

COLOURS = {  # Okabe-Ito, as sim/plots.py
    "size": "#56B4E9",
    "demography": "#0072B2",
    "no_new_treatments": "#E69F00",
    "full": "#D55E00",
    "baseline": "#999999",
}
STYLES = {"size": ":", "demography": "-", "no_new_treatments": "-", "full": "-", "baseline": "--"}
WIDTHS = {"size": 2.0, "demography": 4.0, "no_new_treatments": 4.0, "full": 1.8, "baseline": 1.4}
"""Wide lines underneath, narrow on top: paths that coincide (the full model and no new
treatments before 2024; size and demography nearly) both stay visible."""


def figure(bc: Backcast) -> Figure:
    """National spend in £bn (left) and as an index of 2018/19 (right, log scale)."""
    p = bc.paths
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend, without pyplot
    left, right = fig.subplots(1, 2)
    published = p["published"].dropna()
    context = published.index < FIRST
    approx = published.index == LATER_BASIS
    compared = ~context & ~approx
    plans = pd.Series(PLANS_JAN_2016, dtype=float)
    for ax, index in ((left, False), (right, True)):

        def scale(values: pd.Series, base: float, index: bool = index) -> pd.Series:
            return values / base * 100 if index else values / 1e3

        for z, name in enumerate(("demography", "size", "no_new_treatments", "full", "baseline")):
            if index and name == "baseline":
                continue  # starts in 2024: no 2018/19 to index to
            series = p[name].dropna()
            ax.plot(
                series.index,
                scale(series, series.loc[FIRST] if index else 1.0),
                STYLES[name],
                color=COLOURS[name],
                lw=WIDTHS[name],
                label=LABELS[name],
                zorder=2 + z,
            )
        base = published.loc[FIRST]
        marks = (
            (
                compared,
                {"color": "black"},
                "published (CIPFA 2018/19; NHS England 2022/23, 2023/24)",
            ),
            (
                approx,
                {"mfc": "white", "mec": "black", "mew": 1.5},
                "published 2019/20, 'about £20bn'",
            ),
            (context, {"color": "0.55"}, "published 2015/16-2017/18 (CIPFA), not modelled"),
        )
        for mask, style, label in marks:
            ax.plot(
                published.index[mask],
                scale(published[mask], base),
                "o",
                ms=6,
                label=label,
                zorder=8,
                **style,
            )
        ax.plot(
            plans.index,
            scale(plans, base),
            "x",
            color="0.4",
            ms=6,
            label="plans made in January 2016 (not compared)",
        )
        ax.axvspan(CONTEXT_START - 0.5, FIRST - 0.5, color="0.90", zorder=0)
        ax.axvspan(LAST + 0.5, CONTEXT_END + 0.5, color="0.95", zorder=0)
        for x, text in (
            (CONTEXT_START - 0.3, "not modelled:\nno population\nestimates before\nmid-2018"),
            (LAST + 0.8, "no published series:\nmodel only"),
        ):
            ax.text(  # at the top on the right, clear of the early published points
                x,
                0.98 if index else 0.02,
                text,
                transform=ax.get_xaxis_transform(),
                fontsize=8,
                color="0.35",
                va="top" if index else "bottom",
            )
        ax.set_xlim(CONTEXT_START - 0.5, CONTEXT_END + 0.5)
        ticks = range(CONTEXT_START, CONTEXT_END + 1, 3)
        ax.set_xticks(list(ticks), [financial_year(y) for y in ticks], fontsize=8)
        ax.set_xlabel("financial year")
        ax.grid(alpha=0.3)
    left.set_ylabel("national spend, £bn (cash)")
    left.set_title("Expected spend (model) and published spend", fontsize=11)
    left.set_ylim(0, None)
    right.set_yscale("log")
    right.set_ylabel(f"index, {financial_year(FIRST)} = 100 (log scale)")
    right.set_title(f"Growth: each series relative to its own {financial_year(FIRST)}", fontsize=11)
    ticks = [80, 90, 100, 110, 120, 140, 170, 200, 230]
    right.set_yticks(ticks, [str(t) for t in ticks])
    right.minorticks_off()
    right.set_ylim(78, 240)
    left.legend(loc="upper left", fontsize=8, frameon=False)
    fig.suptitle(
        "NHS England specialised services: the model run from 2018/19 against published spend",
        fontsize=12,
    )
    return fig


def main() -> None:
    bc = run()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    figure(bc).savefig(FIGURE, dpi=110)
    write_doc(render(bc))
    print(f"wrote {FIGURE.relative_to(ROOT)} and the tables of {DOC.relative_to(ROOT)}")
    print(summary_block(bc))


if __name__ == "__main__":
    main()
