"""Parameter uncertainty: levers written as an 80% interval, drawn once per replicate.

Why, and why like this: patient-level noise alone gives a national band a few per cent wide,
while the published record of specialised spend (growth of 5-8% a year, overspends, the
Cancer Drugs Fund's overrun) shows that what we do not know about the parameters matters
more. As in The Strategy Unit's NHP model, a demand-side lever may be written `[low, high]`:
an 80% interval. A replicate draws each such parameter once, from a normal distribution with
its 10th and 90th percentiles at low and high (mean (low + high) / 2, sd (high - low) /
(2 x 1.2816)), clipped to the field's allowed range. Each parameter has its own stream,
keyed by the seed, the replicate's global index and the parameter's name, so a replicate's
draws never depend on chunking, workers, or which other parameters are uncertain.

Only demand-side levers (`[demand]`) take intervals: the allocation path is computed once,
on the central values (the formula cannot know the future the replicate draws), so every
gap a draw opens between spend and budget is the parameter's effect. Population variants
can be sampled with weights (`[population] demand_variants`, `demand_variant_weights`):
the replicate's demand follows the drawn variant, budgets the scenario's `variant`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.scenario import Scenario

Z80 = 1.2815515655446004
"""The standard normal's 90th percentile: an 80% interval spans +-Z80 sd."""
PARAMETER_STREAM = 1
"""Second spawn-key entry of the parameter streams (patient draws use the replicate alone)."""
VARIANT_PARAMETER = "population.variant"


@dataclass(frozen=True)
class Interval:
    """One uncertain lever: its 80% interval and the range its field allows."""

    name: str
    low: float
    high: float
    lower_bound: float
    upper_bound: float

    @property
    def centre(self) -> float:
        return (self.low + self.high) / 2

    @property
    def sd(self) -> float:
        return (self.high - self.low) / (2 * Z80)

    def value(self, z: np.ndarray | float) -> np.ndarray:
        """The lever's value at standard-normal score(s) `z`, clipped to the field's range."""
        return np.clip(self.centre + self.sd * np.asarray(z), self.lower_bound, self.upper_bound)


@dataclass(frozen=True)
class UncertainParameters:
    """A scenario's uncertain levers (sorted by name) and its weighted population variants."""

    intervals: tuple[Interval, ...]
    variants: tuple[str, ...] = ()
    variant_weights: tuple[float, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        extra = (VARIANT_PARAMETER,) if self.variants else ()
        return (*(i.name for i in self.intervals), *extra)

    def __bool__(self) -> bool:
        return bool(self.intervals or self.variants)


def uncertain_parameters(scenario: Scenario) -> UncertainParameters:
    """The levers of `scenario` written as intervals, and its variant weights if any."""
    from sim.scenario import interval_bounds

    intervals = []
    for field, value in sorted(scenario.demand.model_dump().items()):
        if isinstance(value, list):
            lower, upper = interval_bounds(type(scenario.demand), field)
            intervals.append(Interval(f"demand.{field}", value[0], value[1], lower, upper))
    population = scenario.population
    pairs = sorted(zip(population.demand_variants, population.demand_variant_weights, strict=True))
    total = sum(w for _, w in pairs)
    return UncertainParameters(
        tuple(intervals), tuple(n for n, _ in pairs), tuple(w / total for _, w in pairs)
    )


def parameter_stream(seed: int, replicate: int, name: str) -> np.random.Generator:
    """The stream of one parameter in one replicate, keyed by the parameter's name."""
    key = (int(replicate), PARAMETER_STREAM, zlib.crc32(name.encode()))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def draw_parameters(
    parameters: UncertainParameters, seed: int, replicates: Sequence[int]
) -> np.ndarray:
    """(replicate, parameter) values, in `parameters.names` order; the variant is drawn as
    its index in `parameters.variants` (a uniform compared with the cumulative weights)."""
    out = np.empty((len(replicates), len(parameters.names)))
    cumulative = np.cumsum(parameters.variant_weights)
    for r, replicate in enumerate(replicates):
        for k, interval in enumerate(parameters.intervals):
            z = parameter_stream(seed, replicate, interval.name).standard_normal()
            out[r, k] = interval.value(z)
        if parameters.variants:
            u = parameter_stream(seed, replicate, VARIANT_PARAMETER).random()
            out[r, -1] = min(int(np.searchsorted(cumulative, u, side="right")), cumulative.size - 1)
    return out


def central(value: float | list[float]) -> float:
    """A lever's central value: itself, or its interval's midpoint (the median draw)."""
    return (value[0] + value[1]) / 2 if isinstance(value, list) else float(value)


def annual_shocks(seed: int, replicates: Sequence[int], years: int, sd: float) -> np.ndarray:
    """(replicate, year) national demand shocks, lognormal with mean 1 and log-sd `sd`,
    independent across years: the year-to-year variation of England's spend that neither
    patients' noise nor the parameters explain (1 everywhere when `sd` is 0)."""
    out = np.ones((len(replicates), years))
    if sd == 0:
        return out
    for r, replicate in enumerate(replicates):
        z = parameter_stream(seed, replicate, "demand.national_variation").standard_normal(years)
        out[r] = np.exp(sd * z - sd**2 / 2)
    return out


@dataclass(frozen=True, eq=False)
class DemandSpread:
    """How a replicate's parameter draws move its expected patients away from the plan's
    (central) ones: the plan-level arrays each draw is applied to (`sim.plan` builds it)."""

    parameters: UncertainParameters
    base_year: int
    growth: np.ndarray
    """(service,) catalogue non-demographic growth rates, before the multiplier."""
    imd_score: np.ndarray
    weight: np.ndarray
    groups: np.ndarray
    """(icb23,), (icb23,), (service,): the deprivation response's inputs (`sim.demand`)."""
    base_exposure: np.ndarray
    """(icb23, service) base-year people weighted by each service's profile."""
    central: dict[str, float]
    """Every uncertain lever's central value (and the other demand levers' values)."""
    variant_scale: tuple[float, ...] = ()
    """Per drawable variant (`parameters.variants` order), England's end-year population
    over the budgets' variant's: how a variant draw is reported (an ordered quantity)."""

    def reported(self, values: np.ndarray) -> np.ndarray:
        """(replicate, parameter) draws as reported: a variant as its `variant_scale`."""
        out = values.astype(float).copy()
        if self.parameters.variants and len(out):
            out[:, -1] = np.asarray(self.variant_scale)[values[:, -1].astype(int)]
        return out

    def value(self, values: np.ndarray, name: str) -> float:
        """The replicate's value of lever `name` (its central value when not uncertain)."""
        names = self.parameters.names
        return float(values[names.index(name)]) if name in names else self.central[name]

    def patient_ratio(self, values: np.ndarray, year: int) -> np.ndarray:
        """(icb23, service), or (service,) when only growth is drawn, the replicate's
        expected patients over the plan's, before new treatments: non-demographic growth and
        the deprivation response at its draws (the rates recalibrated so base-year national
        spend stays the catalogue's)."""
        from sim.demand import group_deprivation

        m_r = self.value(values, "demand.growth_multiplier")
        m_c = self.central["demand.growth_multiplier"]
        trend = ((1.0 + self.growth * m_r) / (1.0 + self.growth * m_c)) ** (year - self.base_year)
        d_r = self.value(values, "demand.deprivation_multiplier")
        d_c = self.central["demand.deprivation_multiplier"]
        if d_r == d_c:
            return trend
        dep_r = group_deprivation(self.imd_score, self.weight, self.groups, d_r)
        dep_c = group_deprivation(self.imd_score, self.weight, self.groups, d_c)
        recalibrated = (self.base_exposure * dep_c).sum(0) / (self.base_exposure * dep_r).sum(0)
        return dep_r / dep_c * recalibrated * trend

    def treatment_cost_ratio(self, values: np.ndarray) -> float:
        """The replicate's new-treatment cost over the plan's (which is at the centre)."""
        centre = self.central["demand.new_treatment_cost"]
        drawn = self.value(values, "demand.new_treatment_cost")
        return drawn / centre if centre > 0 else 1.0
