"""Speed and accuracy of the population model: prints figures for the issue notes.

Run: .venv/bin/python benchmarks/bench_population.py
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import xarray as xr

from sim.population import PopulationModel, calibrate, cohort_step, population_path
from sim.reference import load_reference
from sim.scenario import PopulationConfig, Scenario, TimeConfig


def best_of(repeats: int, work) -> float:
    """Fastest of `repeats` runs, in milliseconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def scenario(mode: str, base: int = 2024, **levers) -> Scenario:
    return Scenario(
        name="bench",
        time=TimeConfig(base_year=base, end_year=2043),
        population=PopulationConfig(mode=mode, **levers),
    )


def _sections(sc: Scenario) -> tuple[PopulationConfig, TimeConfig]:
    return sc.population, sc.time


def worst(a: xr.DataArray, b: xr.DataArray) -> float:
    return float(abs(a / b - 1).max())


def frozen_internal_rates(reference: xr.Dataset, sc: Scenario) -> xr.DataArray:
    """The cohort path when each ICB's internal-move rates stop changing after 2023."""
    model = PopulationModel(sc.population, sc.time, reference)
    rates = model.rates
    k = sc.time.base_year - rates.first_year
    later = rates.internal.shape[0] - k

    def frozen(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:k], np.repeat(x[:k].mean(0, keepdims=True), later, 0)])

    rates = dataclasses.replace(
        rates, internal=frozen(rates.internal), internal_mean=frozen(rates.internal_mean)
    )
    pops = [model.current().values]
    for year in range(sc.time.base_year, sc.time.end_year):
        pops.append(cohort_step(pops[-1], rates, year, sc.population, sc.time.base_year))
    years = np.arange(sc.time.base_year, sc.time.end_year + 1)
    return xr.DataArray(
        np.stack(pops), dims=("year", "icb", "sex", "age"), coords={"year": years, **model.coords}
    )


def main() -> None:
    reference = load_reference()
    population_path(
        *_sections(scenario("cohort")), reference
    )  # warm-up: first xarray indexing imports

    print("speed (best of 5, ms)")
    sc = scenario("cohort")
    model = PopulationModel(sc.population, sc.time, reference)
    start = model.current().values

    def steps() -> None:
        pop = start
        for year in range(2024, 2043):
            pop = cohort_step(pop, model.rates, year, sc.population, 2024)

    timings = {
        "calibrate (one variant)": lambda: calibrate(reference, "principal"),
        "PopulationModel() (cohort)": lambda: PopulationModel(sc.population, sc.time, reference),
        "19 cohort steps (42 ICBs)": steps,
    }
    for label, work in timings.items():
        print(f"  {label:<33}{best_of(5, work):8.2f}")
    for mode in ("cohort", "projection"):
        ms = best_of(5, lambda m=mode: population_path(*_sections(scenario(m)), reference))
        print(f"  population_path {mode:<11} 2024..2043 {ms:8.2f}")

    print("\ncohort at ONS principal assumptions: worst relative deviation over the years")
    snpp = reference["population_projection"].sel(variant="principal")
    npp = reference["npp_population"].sel(variant="principal")
    for base in (2018, 2024):
        path = population_path(*_sections(scenario("cohort", base=base)), reference)
        years = path["year"]
        for label, youngest in (("total", 0), ("65+", 65), ("85+", 85)):
            ours = path.sel(age=slice(youngest, None)).sum(["icb", "sex", "age"])
            vs_snpp = snpp.sel(year=years, age=slice(youngest, None)).sum(["icb", "sex", "age"])
            vs_npp = npp.sel(year=years, age=slice(youngest, None)).sum(["sex", "age"])
            print(
                f"  base {base} {label:<5} vs SNPP {worst(ours, vs_snpp):.1e}"
                f"  vs NPP England {worst(ours, vs_npp):.1e}"
            )
        icb = worst(path.sum(["sex", "age"]), snpp.sel(year=years).sum(["sex", "age"]))
        print(f"  base {base} per-ICB totals vs SNPP {icb:.1e}")

    print("\nzero migration lever (base 2018) vs ONS NPP zero net migration variant, 2043")
    zero = population_path(
        *_sections(scenario("cohort", base=2018, migration_multiplier=0.0)), reference
    )
    ons = {"total": 56_322_733, "65+": 14_350_571, "85+": 2_510_365}
    for label, youngest in (("total", 0), ("65+", 65), ("85+", 85)):
        ours = float(zero.sel(year=2043, age=slice(youngest, None)).sum())
        print(f"  {label:<5} {ours:14,.0f} vs ONS {ons[label]:12,} ({ours / ons[label] - 1:+.3%})")

    print("\nout of sample: ICB internal-move rates frozen at their 2018-23 mean from 2024")
    frozen_path = frozen_internal_rates(reference, sc)
    snpp24 = snpp.sel(year=frozen_path["year"])
    for label, youngest in (("total", 0), ("65+", 65), ("85+", 85)):
        ours = frozen_path.sel(age=slice(youngest, None)).sum(["icb", "sex", "age"])
        ons = snpp24.sel(age=slice(youngest, None)).sum(["icb", "sex", "age"])
        print(f"  England {label:<5} worst vs SNPP {worst(ours, ons):.1e}")
    icb = worst(frozen_path.sum(["sex", "age"]), snpp24.sum(["sex", "age"]))
    print(f"  per-ICB totals worst vs SNPP {icb:.1e}")

    rates = model.rates
    print(
        f"\nICB fertility differentials: {rates.fertility_diff.min():.3f}"
        f"..{rates.fertility_diff.max():.3f}"
    )


if __name__ == "__main__":
    main()
