"""The variations view of NHS England's Variations Tool (DOMAIN.md), for one year of results.

For each ICB and need group, spend per head is split into two factors,

    spend / population = (patients / population) x (spend / patients)
    spend per head     =  access                 x  intensity,

and set against a benchmark: the five other ICBs whose modelled need is most similar.
The gap to the benchmark, in GBP per head, is split into an access part and an intensity
part that add up to it (`split_gap`).

Modelled need, the basis of the benchmark: each ICB's need index by group, its share of the
formula's whole-portfolio target for the group (`notional_target_by_group`, delegated or
not, so the benchmark does not move with delegation) divided by its share of England's
population (1 = England's need per head); results without it use the delegated target
(`target_by_group`) over the groups in which every ICB holds a target that year.
The distance between two ICBs is the Euclidean distance between their need indices, each
group weighted by its share of national expected spend (a difference in cancer need counts
more than one in neonatal care). A year in which no group is held by every ICB (2024/25,
when only three regions held delegated services) falls back to the formula's overall
`need_index`. Equally similar need (every ICB under a capitation formula) goes to the ICB
closest in population. The benchmark never includes the ICB itself.

Spend and patients are the model's expected values by ICB of residence
(`expected_spend_by_group`, `expected_patients_by_group`): deterministic, so the view does
not move with replicate noise, and by need group, which the replicate summaries are not.

The formulas are pure numpy functions; `variations(ds, ...)` labels them as a Dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from sim.accessor import end_year, need_group_label

PEERS = 5
"""Benchmark size, as in NHS England's tool."""
PER = 1000
"""Access is shown per 1,000 population."""
NEEDED = ("expected_spend_by_group", "expected_patients_by_group", "population")


def ratio(num: np.ndarray, den: np.ndarray, empty: float = np.nan) -> np.ndarray:
    """num / den where den > 0, `empty` elsewhere, without a divide-by-zero warning."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    return np.divide(num, den, out=np.full(num.shape, empty), where=den > 0)


def rates(
    spend: np.ndarray, patients: np.ndarray, population: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(access, intensity, spend per head) for spend and patients (icb, group) and population
    (icb,). Intensity is undefined (NaN) where there are no patients; wherever there are,
    access x intensity = spend per head."""
    heads = population[:, None]
    return ratio(patients, heads, 0.0), ratio(spend, patients), ratio(spend, heads, 0.0)


def group_need_index(target: np.ndarray, population: np.ndarray) -> np.ndarray:
    """(icb, g) each ICB's share of the target of group g over its share of England's
    population, for the groups in which every ICB has a target (possibly none: shape (icb, 0))."""
    held = (target > 0).all(axis=0)
    share = target[:, held] / target[:, held].sum(axis=0)
    return share / (population / population.sum())[:, None]


def nearest_peers(
    need: np.ndarray, weight: np.ndarray, size: np.ndarray, k: int = PEERS
) -> tuple[np.ndarray, np.ndarray]:
    """(icb, k) indices of each ICB's k nearest other ICBs by weighted Euclidean distance of
    their need vectors (icb, g), nearest first, and the distances. Equal distances (to 1e-12;
    every ICB has the same need under a capitation formula) go to the ICB closest in `size`
    (population), then the lower index."""
    n = need.shape[0]
    if n <= k:
        raise ValueError(f"a benchmark of {k} other ICBs needs more than {n} ICBs")
    diff = need[:, None, :] - need[None, :, :]
    distance = np.sqrt((weight * diff**2).sum(axis=-1))
    np.fill_diagonal(distance, np.inf)  # never the ICB itself
    size_gap = np.abs(np.log(size)[:, None] - np.log(size)[None, :])
    order = np.array([np.lexsort((size_gap[i], np.round(distance[i], 12)))[:k] for i in range(n)])
    return order, np.take_along_axis(distance, order, axis=1)


def log_mean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The logarithmic mean (x - y) / (ln x - ln y) of x, y > 0; (x + y) / 2 where they are
    equal to 1e-12 in log (the limit, to that precision)."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    logs = np.log(x) - np.log(y)
    close = np.abs(logs) < 1e-12
    return np.where(close, (x + y) / 2, (x - y) / np.where(close, 1.0, logs))


def split_gap(
    access: np.ndarray,
    intensity: np.ndarray,
    bench_access: np.ndarray,
    bench_intensity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gap, access part, intensity part), GBP per head, of spend per head against the
    benchmark.

    ln(s / s_b) = ln(a / a_b) + ln(c / c_b) exactly; each log part is turned into GBP per
    head by the logarithmic mean of s and s_b (the LMDI decomposition), so the two parts
    add up to s - s_b. Where the ICB or the benchmark has no patients, the log split is
    undefined and the whole gap is access (who is treated, not what it costs); where
    patients cost nothing, it is intensity.
    """
    spend = access * np.nan_to_num(intensity)
    bench = bench_access * np.nan_to_num(bench_intensity)
    gap = spend - bench
    no_access = (access <= 0) | (bench_access <= 0)
    no_cost = ~no_access & ((spend <= 0) | (bench <= 0))
    split = ~(no_access | no_cost)
    weight = log_mean(np.where(split, spend, 1.0), np.where(split, bench, 1.0))

    def log_ratio(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.log(np.where(split, x, 1.0)) - np.log(np.where(split, y, 1.0))

    access_part = np.where(split, weight * log_ratio(access, bench_access), 0.0)
    intensity_part = np.where(split, weight * log_ratio(intensity, bench_intensity), 0.0)
    access_part = np.where(no_access, gap, access_part)
    intensity_part = np.where(no_cost, gap, intensity_part)
    return gap, access_part, intensity_part


def benchmark_need(ds: xr.Dataset, year: int) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """The need vectors (icb, g) and group weights (g,) the benchmark is measured on, the
    groups used, and a sentence saying so."""
    heads = ds["population"].sel(year=year).sum(("sex", "age")).transpose("icb").values
    if "notional_target_by_group" in ds or "target_by_group" in ds:
        name = "notional_target_by_group" if "notional_target_by_group" in ds else "target_by_group"
        target = ds[name].sel(year=year).transpose("icb", "need_group")
        held = (target.values > 0).all(axis=0)
        used = [str(g) for g in target["need_group"].values[held]]
        if used:
            spend = ds["expected_spend_by_group"].sel(year=year, need_group=used)
            spend = spend.sum(("icb", "portfolio")).values
            basis = (
                "each ICB's need index by group (its share of the group's target over its "
                f"share of England's population) in {'; '.join(map(need_group_label, used))}, "
                "each group weighted by its share of national spend"
            )
            return group_need_index(target.values, heads), spend / spend.sum(), used, basis
    need = ds["need_index"].sel(year=year).transpose("icb").values[:, None]
    return (
        need,
        np.ones(1),
        [],
        "the formula's overall need index (no need group is held by every ICB)",
    )


def _pooled(values: np.ndarray, peers: np.ndarray) -> np.ndarray:
    """(icb, group) the sum of (icb, group) values over each ICB's peers."""
    return values[peers].sum(axis=1)


def variations(
    ds: xr.Dataset,
    year: int | None = None,
    portfolio: str | None = None,
    peers: int = PEERS,
) -> xr.Dataset:
    """The variations view of one scenario's results for `year` (default: the end year).

    `portfolio`: "delegated" or "retained" for one portfolio's spend and patients; None
    (default) for both, the ICB's whole specialised spend. The benchmark does not depend on
    it. Returns a Dataset on (icb, need_group) with `access` (patients per head),
    `intensity` (GBP per patient), `spend_per_head`, their `benchmark_*` values (the five
    peers pooled: their patients and spend summed, so benchmark access x intensity = its
    spend per head too), `gap`, `gap_access`, `gap_intensity` (GBP per head;
    `gap_access + gap_intensity = gap`), and `benchmark` (icb, peer): the peers' ICB codes,
    nearest first, with their `need_distance`.
    """
    if "scenario" in ds.dims:
        raise ValueError("one scenario at a time: see ds.specsim.scenarios()")
    missing = [v for v in NEEDED if v not in ds]
    if missing:
        raise ValueError(f"the variations view needs {', '.join(missing)} in the results")
    year = end_year(ds) if year is None else int(year)
    spend = ds["expected_spend_by_group"].sel(year=year)
    patients = ds["expected_patients_by_group"].sel(year=year)
    if portfolio is None:
        spend, patients = spend.sum("portfolio"), patients.sum("portfolio")
    else:
        spend, patients = spend.sel(portfolio=portfolio), patients.sel(portfolio=portfolio)
    spend = spend.transpose("icb", "need_group")
    patients = patients.transpose("icb", "need_group")
    heads = ds["population"].sel(year=year).sum(("sex", "age")).transpose("icb").values
    access, intensity, per_head = rates(spend.values, patients.values, heads)
    need, weight, used, basis = benchmark_need(ds, year)
    order, distance = nearest_peers(need, weight, heads, peers)
    if float(distance.max()) < 1e-12:
        basis += "; every ICB has the same modelled need, so the five are the closest in population"
    bench_access, bench_intensity, bench_per_head = rates(
        _pooled(spend.values, order), _pooled(patients.values, order), heads[order].sum(axis=1)
    )
    gap, gap_access, gap_intensity = split_gap(access, intensity, bench_access, bench_intensity)
    cell = ("icb", "need_group")
    per_head_units = "GBP per person"

    def var(values: np.ndarray, units: str, long_name: str, dims: Sequence[str] = cell):
        return xr.Variable(tuple(dims), values, {"units": units, "long_name": long_name})

    codes = ds["icb"].values
    out = xr.Dataset(
        {
            "population": var(heads, "persons", "resident population", ("icb",)),
            "patients": var(patients.values, "patients", "expected patients"),
            "spend": var(spend.values, "GBP", "expected spend"),
            "access": var(access, "patients per person", "patients per head of population"),
            "intensity": var(intensity, "GBP per patient", "spend per patient"),
            "spend_per_head": var(per_head, per_head_units, "spend per head of population"),
            "benchmark_access": var(bench_access, "patients per person", "benchmark access"),
            "benchmark_intensity": var(bench_intensity, "GBP per patient", "benchmark intensity"),
            "benchmark_spend_per_head": var(
                bench_per_head, per_head_units, "benchmark spend per head"
            ),
            "gap": var(gap, per_head_units, "spend per head minus the benchmark's"),
            "gap_access": var(gap_access, per_head_units, "part of the gap due to access"),
            "gap_intensity": var(gap_intensity, per_head_units, "part of the gap due to intensity"),
            "benchmark": var(
                codes[order], "", "the benchmark ICBs, nearest first", ("icb", "peer")
            ),
            "need_distance": var(distance, "1", "distance in modelled need", ("icb", "peer")),
        },
        coords={
            "icb": codes,
            "need_group": spend["need_group"].values,
            "peer": np.arange(1, peers + 1),
            **{c: ("icb", ds[c].values) for c in ("icb_name", "region_name") if c in ds.coords},
        },
        attrs={
            "year": year,
            "portfolio": portfolio or "all",
            "scenario_name": str(ds.attrs.get("scenario_name", "scenario")),
            "benchmark_basis": basis,
            "benchmark_groups": ", ".join(used),
        },
    )
    return out


def largest_groups(view: xr.Dataset, n: int = 3) -> list[str]:
    """The n need groups with the most national spend, largest first (none without spend)."""
    total = view["spend"].sum("icb")
    order = np.argsort(-total.values, kind="stable")[:n]
    return [str(total["need_group"].values[i]) for i in order if total.values[i] > 0]


def furthest_from_benchmark(view: xr.Dataset, group: str) -> str:
    """The ICB whose spend per head in `group` differs most from its benchmark's, relative to
    the benchmark (the one an analyst would look at first)."""
    one = view.sel(need_group=group)
    relative = ratio(np.abs(one["gap"].values), one["benchmark_spend_per_head"].values, 0.0)
    return str(one["icb"].values[int(np.argmax(relative))])
