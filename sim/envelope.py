"""The national envelope and its split into services' budgets.

Why here: the envelope is policy (the scenario's `[envelope]`), the budget shares are the
catalogue's; together they say how much money each service's budget has, before any ICB
is considered. Pure numpy functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.reference import CATALOGUE_YEAR

if TYPE_CHECKING:
    from sim.scenario import EnvelopeConfig


def national_envelope(config: EnvelopeConfig, base_year: int, years: Sequence[int]) -> np.ndarray:
    """National specialised budget per financial year (GBP, float, before rounding).

    `config.base_gbp` is the budget of `base_year`; year y's growth (from y-1) is
    `growth_by_year[y]` or else `growth`. Years before the base year are deflated back.
    """
    years = [int(y) for y in years]
    lo, hi = min([*years, base_year]), max([*years, base_year])

    def rate(y: int) -> float:
        return config.growth_by_year.get(y, config.growth)

    level = {base_year: config.base_gbp}
    for y in range(base_year + 1, hi + 1):
        level[y] = level[y - 1] * (1.0 + rate(y))
    for y in range(base_year - 1, lo - 1, -1):
        level[y] = level[y + 1] / (1.0 + rate(y + 1))
    return np.array([level[y] for y in years])


def budget_shares(services: pd.DataFrame, year: int | None = None) -> np.ndarray:
    """Each service's slice of the budget (sums to 1): catalogue 2023/24 spend, grown to
    `year` at the service's own non-demographic growth (None: the catalogue's own shares).

    Growing the shares matters: retained services (CAR-T, gene therapies) grow faster than
    the delegated ones, so fixed 2023/24 shares would drift toward over-funding ICBs and
    under-funding NHS England's retained portfolio year after year.
    """
    spend = services["baseline_spend_gbp"].to_numpy(float)
    if year is not None:
        growth = services["non_demographic_growth"].to_numpy(float)
        spend = spend * (1.0 + growth) ** (year - CATALOGUE_YEAR)
    return spend / spend.sum()


def development_fund(envelope: float, share: float) -> int:
    """The year's development fund in whole pounds: `share` of the envelope rounded to the
    pound (the allocation round and the CPAG decisions must agree on it)."""
    return int(np.rint(int(np.rint(envelope)) * share))
