"""Random patients and costs: what one replicate's year (or month) of demand turns out to be.

Why this shape: an ICB's financial risk comes from two sources, the Poisson count of its
patients and the heavy-tailed cost of each one. Both are drawn per (icb, service) cell at
once. The sum of N independent gamma(k, theta) costs is exactly gamma(N k, theta), so a cell
needs two variates, not one per patient. The rare very-high-cost cases (CAR-T, gene
therapies, complex transplants) get the same treatment, unless a risk-pool rule pays
each case's cost above a threshold: then they are drawn one by one (`draw(per_case=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

HIGH_COST_CV = 0.5
"""Coefficient of variation of a very-high-cost case's cost (assumption, not published)."""


@dataclass(frozen=True)
class CostModel:
    """Cost per patient by service: a gamma for ordinary cases, another for rare high-cost ones.

    `hc_share` is the share of a service's patients who are very-high-cost cases; `mean` is
    the expected cost of one patient of either kind.
    """

    reg_shape: np.ndarray
    reg_scale: np.ndarray
    hc_share: np.ndarray
    hc_shape: np.ndarray
    hc_scale: np.ndarray

    @classmethod
    def from_catalogue(cls, services: pd.DataFrame, high_cost_cases: bool) -> CostModel:
        """Gamma parameters from the catalogue: ordinary-case mean and cv, and the high-cost
        cases' share of spend and mean cost.

        With high-cost cases switched off, every patient's cost comes from one gamma with
        the same overall mean and the ordinary cv: expected spend is unchanged, only the
        tail goes.
        """
        mean = services["mean_cost_gbp"].to_numpy(float)
        cv = services["cost_cv"].to_numpy(float)
        spend_share = services["high_cost_share"].fillna(0.0).to_numpy(float)
        hc_mean = services["high_cost_mean_gbp"].fillna(0.0).to_numpy(float)
        has_hc = (hc_mean > 0) & (spend_share > 0)
        # the catalogue gives the high-cost share of SPEND; turn it into a share of patients
        hc_rate = np.where(has_hc, spend_share / np.where(has_hc, hc_mean, 1.0), 0.0)
        share = hc_rate / (hc_rate + (1.0 - spend_share) / mean)
        if not high_cost_cases:
            mean = (1.0 - share) * mean + share * hc_mean
            share = np.zeros_like(share)
        shape = 1.0 / cv**2
        hc_shape = np.full_like(mean, 1.0 / HIGH_COST_CV**2)
        hc_scale = np.where(share > 0, hc_mean / hc_shape, 1.0)
        return cls(shape, mean / shape, share, hc_shape, hc_scale)

    @property
    def reg_mean(self) -> np.ndarray:
        return self.reg_shape * self.reg_scale

    @property
    def hc_mean(self) -> np.ndarray:
        return self.hc_shape * self.hc_scale

    @property
    def mean(self) -> np.ndarray:
        return (1.0 - self.hc_share) * self.reg_mean + self.hc_share * self.hc_mean

    def hc_expected_excess(self, threshold: float) -> np.ndarray:
        """E[(X - threshold)+] for one high-cost case: what a per-patient pool would pay."""
        from scipy.special import gammaincc  # imported only where it is used

        x = threshold / self.hc_scale
        return self.hc_mean * gammaincc(self.hc_shape + 1.0, x) - threshold * (
            gammaincc(self.hc_shape, x)
        )


@dataclass(frozen=True)
class Outcome:
    """One period's patients, spend and high-cost excess, each (icb, service) or
    (replicate, icb, service); an expectation may leave the excess out (None)."""

    patients: np.ndarray
    spend: np.ndarray
    hc_excess: np.ndarray | None


def expected_outcome(
    lam: np.ndarray,
    costs: CostModel,
    hc_excess_per_case: np.ndarray | None,
    cost_index: np.ndarray | float = 1.0,
) -> Outcome:
    """The expectation of `draw` for expected patients `lam` (icb, service).

    `cost_index` (icb, service) scales ordinary cases' costs by area (market forces);
    `hc_excess_per_case` is `costs.hc_expected_excess(threshold)`, or None when the
    expected pool excess is not wanted (it needs scipy.special, 0.15 s to import).
    """
    hc = lam * costs.hc_share
    reg = lam - hc
    spend = reg * costs.reg_mean * cost_index + hc * costs.hc_mean
    excess = None if hc_excess_per_case is None else hc * hc_excess_per_case
    return Outcome(lam.copy(), spend, excess)


@dataclass(frozen=True)
class CellCosts:
    """Cost parameters broadcast to the flat (icb, service) cells, computed once per footprint."""

    reg_shape: np.ndarray
    reg_scale: np.ndarray
    hc_cells: np.ndarray
    hc_share: np.ndarray
    hc_shape: np.ndarray
    hc_scale: np.ndarray

    @classmethod
    def for_footprint(
        cls, costs: CostModel, n_icb: int, cost_index: np.ndarray | float = 1.0
    ) -> CellCosts:
        """`cost_index` (icb, service) scales ordinary cases' cost (gamma scale) by area."""
        share = np.tile(costs.hc_share, n_icb)  # cells are icb-major, service-minor
        cells = np.flatnonzero(share > 0)
        reg_scale = np.broadcast_to(costs.reg_scale * cost_index, (n_icb, costs.reg_scale.size))
        return cls(
            np.tile(costs.reg_shape, n_icb),
            reg_scale.ravel().copy(),
            cells,
            share[cells],
            np.tile(costs.hc_shape, n_icb)[cells],
            np.tile(costs.hc_scale, n_icb)[cells],
        )


def draw(
    rng: np.random.Generator,
    lam: np.ndarray,
    cells: CellCosts,
    threshold: float,
    per_case: bool,
) -> Outcome:
    """Patients and spend for one replicate and period; `lam` is expected patients per cell.

    Ordinary cases: N ~ Poisson, spend ~ gamma(N k, theta). High-cost cases (cells where the
    service has them): H ~ Poisson and, as for ordinary cases, their total cost one gamma
    per cell, gamma(H k_hc, theta_hc). With `per_case` (a rule that pays each case's cost
    above `threshold`: the national high-cost pool) each case's cost is drawn on its own
    instead, and the part above the threshold summed per cell; otherwise the excess is 0.
    Both give every cell's spend the same distribution.
    """
    lam_hc = lam[cells.hc_cells] * cells.hc_share
    lam_reg = lam.copy()
    lam_reg[cells.hc_cells] -= lam_hc
    patients = rng.poisson(lam_reg).astype(np.float64)
    spend = rng.standard_gamma(patients * cells.reg_shape) * cells.reg_scale
    excess = np.zeros_like(spend)
    n_hc = rng.poisson(lam_hc)
    if not per_case:
        spend[cells.hc_cells] += rng.standard_gamma(n_hc * cells.hc_shape) * cells.hc_scale
    elif n_hc.any():
        which = np.repeat(np.arange(n_hc.size), n_hc)
        cost = rng.standard_gamma(cells.hc_shape[which]) * cells.hc_scale[which]
        size = n_hc.size
        spend[cells.hc_cells] += np.bincount(which, cost, minlength=size)
        excess[cells.hc_cells] = np.bincount(
            which, np.maximum(cost - threshold, 0.0), minlength=size
        )
    patients[cells.hc_cells] += n_hc
    return Outcome(patients, spend, excess)
