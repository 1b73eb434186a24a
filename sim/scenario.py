"""Scenario schema: the one contract between an analyst's TOML file and the model.

Every section is a strict pydantic model (unknown keys are errors) so that a typo in a
scenario can never be silently ignored. Each module reads only its own section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FIRST_DATA_YEAR = 2018
LAST_DATA_YEAR = 2043

PROJECTION_VARIANTS = (
    "principal",
    "high_fertility",
    "low_fertility",
    "high_life_expectancy",
    "low_life_expectancy",
    "high_migration",
    "low_migration",
    "high_population",
    "low_population",
    "young_age_structure",
    "old_age_structure",
)
ProjectionVariant = Literal[
    "principal",
    "high_fertility",
    "low_fertility",
    "high_life_expectancy",
    "low_life_expectancy",
    "high_migration",
    "low_migration",
    "high_population",
    "low_population",
    "young_age_structure",
    "old_age_structure",
]


class Section(BaseModel):
    """Base for every scenario section: strict keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TimeConfig(Section):
    """Financial years simulated; a year is named by its start (2024 = 2024/25)."""

    base_year: int = Field(2024, ge=FIRST_DATA_YEAR, le=LAST_DATA_YEAR)
    end_year: int = Field(2043, ge=FIRST_DATA_YEAR, le=LAST_DATA_YEAR)

    @model_validator(mode="after")
    def _ordered(self) -> TimeConfig:
        if self.end_year < self.base_year:
            raise ValueError(
                f"end_year ({self.end_year}) must not be before base_year ({self.base_year})"
            )
        return self


class PopulationConfig(Section):
    """How the population ages: follow an ONS variant, or run the cohort-component model."""

    mode: Literal["projection", "cohort"] = "projection"
    variant: ProjectionVariant = "principal"
    mortality_multiplier: float = Field(1.0, ge=0.0, le=5.0)
    fertility_multiplier: float = Field(1.0, ge=0.0, le=5.0)
    migration_multiplier: float = Field(1.0, ge=0.0, le=5.0)
    extra_mortality_improvement: float = Field(0.0, ge=-0.1, le=0.1)


class EnvelopeConfig(Section):
    """The national specialised-services budget and how it grows."""

    base_gbp: float = Field(26.5e9, gt=0)
    growth: float = Field(0.055, ge=-0.5, le=1.0)
    growth_by_year: dict[int, float] = Field(default_factory=dict)
    development_fund_share: float = Field(0.01, ge=0.0, le=0.5)

    @model_validator(mode="after")
    def _growth_years(self) -> EnvelopeConfig:
        for year, rate in self.growth_by_year.items():
            if not FIRST_DATA_YEAR <= year <= LAST_DATA_YEAR:
                raise ValueError(
                    f"growth_by_year has year {year}; allowed {FIRST_DATA_YEAR}..{LAST_DATA_YEAR}"
                )
            if not -0.5 <= rate <= 1.0:
                raise ValueError(f"growth_by_year[{year}] = {rate}; allowed -0.5..1.0")
        return self


class AllocationConfig(Section):
    """Which formula sets each ICB's target share, and which adjustments it applies."""

    formula: Literal["needs", "age_sex", "capitation", "historic"] = "needs"
    population_base: Literal["resident", "registered"] = "resident"
    health_inequalities: bool = True
    health_inequalities_weight: float = Field(0.10, ge=0.0, le=1.0)
    unmet_need: bool = True
    unmet_need_weight: float = Field(0.05, ge=0.0, le=1.0)
    market_forces: bool = True


class ConvergenceConfig(Section):
    """Pace of change: how fast actual allocations move from historic spend toward target."""

    floor_growth: float = Field(0.02, ge=-0.5, le=1.0)
    gap_closure: float = Field(0.25, ge=0.0, le=1.0)
    max_below_target: float = Field(0.05, ge=0.0, le=1.0)


class DelegationWave(Section):
    """From April of `year`, the named services pass to the ICBs of the named regions."""

    name: str
    year: int = Field(ge=2013, le=LAST_DATA_YEAR)
    regions: list[str] | Literal["all"] = "all"
    services: list[str] | str = "delegable"


class DelegationConfig(Section):
    """Which services are delegated to ICBs, where and when; everything else is retained."""

    retain_all: bool = False
    waves: list[DelegationWave] = Field(default_factory=list)
    also_delegate: list[str] = Field(default_factory=list)
    also_retain: list[str] = Field(default_factory=list)


class DemandConfig(Section):
    """Demand growth and randomness of patients and costs."""

    stochastic: bool = True
    growth_multiplier: float = Field(1.0, ge=0.0, le=10.0)
    demographic_growth: bool = True
    high_cost_cases: bool = True


class NiceApproval(Section):
    """A NICE-mandated treatment: funded from its date whatever the budget."""

    name: str
    service: str
    year: int = Field(ge=FIRST_DATA_YEAR, le=LAST_DATA_YEAR)
    month: int = Field(4, ge=1, le=12)
    annual_cost_gbp: float = Field(gt=0)


class CpagConfig(Section):
    """Relative prioritisation rounds funding new treatments from the development fund."""

    enabled: bool = True
    round_months: list[int] = Field(default_factory=lambda: [5, 11])
    candidates_per_round: int = Field(6, ge=0, le=100)


class SettlementConfig(Section):
    """Year-end settlement: who carries an ICB's over- or underspend."""

    risk_pool: Literal["none", "regional", "national_high_cost", "nhse_absorbs"] = "none"
    high_cost_threshold_gbp: float = Field(500_000.0, gt=0)
    nhse_absorbs_above: float = Field(0.05, ge=0.0, le=1.0)
    regional_pool_share: float = Field(0.5, ge=0.0, le=1.0)


class MergerConfig(Section):
    """ICB footprint changes: April 2026 mergers (42 -> 36) when enabled."""

    enabled: bool = False
    year: int = Field(2026, ge=FIRST_DATA_YEAR, le=LAST_DATA_YEAR)


class RunConfig(Section):
    """Defaults for the command line; `--replications` and `--seed` override them."""

    replications: int = Field(100, ge=1, le=1_000_000)
    seed: int = Field(20240401, ge=0)


class Scenario(Section):
    """A whole scenario, as validated from TOML (after `extends` overlays are merged)."""

    name: str
    description: str = ""
    time: TimeConfig = Field(default_factory=TimeConfig)
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    envelope: EnvelopeConfig = Field(default_factory=EnvelopeConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    convergence: ConvergenceConfig = Field(default_factory=ConvergenceConfig)
    delegation: DelegationConfig = Field(default_factory=DelegationConfig)
    demand: DemandConfig = Field(default_factory=DemandConfig)
    nice_approvals: list[NiceApproval] = Field(default_factory=list)
    cpag: CpagConfig = Field(default_factory=CpagConfig)
    settlement: SettlementConfig = Field(default_factory=SettlementConfig)
    mergers: MergerConfig = Field(default_factory=MergerConfig)
    run: RunConfig = Field(default_factory=RunConfig)
