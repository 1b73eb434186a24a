"""Why an ICB's expected spend differs from its allocation: the gap by named lever.

Why: a gap between what an ICB is expected to spend and what it is allocated is a finding
only if a policy lever causes it; an inconsistency inside the model must never pass for
one. With perfect calibration and no policy adjustment the formula reproduces expected
demand (`sim.calibration`), so every gap can be traced, lever by lever, from that yardstick
to the scenario's own settings.

Definition, per year and ICB i (E expected delegated spend, A allocation, T0 the target of
the yardstick formula, Tk the target once levers 1..k are set as in the scenario, Tn the
scenario's own target): the gap relative to England,

    log(E_i / A_i) - log(sum E / sum A)
      = [log(E_i / T0_i) - England's]                 perfect_formula_residual
      + sum_k [log(T(k-1)_i / Tk_i) - England's]       one term per lever, in order
      + [log(Tn_i / A_i) - England's]                 pace_of_change

adds up exactly (the logs telescope). A lever set as in the yardstick contributes nothing
and costs no computation. The order is documented (`LEVERS`), not Shapley: each lever is
measured with the levers before it already moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.need import NEED_ADJUSTMENTS

if TYPE_CHECKING:
    from sim.scenario import AllocationConfig


@dataclass(frozen=True)
class Lever:
    """A named lever: the `[allocation]` fields it moves from the yardstick's values."""

    name: str
    fields: tuple[str, ...]
    yardstick: Callable[[AllocationConfig], dict[str, Any]]


def _fixed(**values: Any) -> Callable[[AllocationConfig], dict[str, Any]]:
    return lambda config: values


LEVERS: tuple[Lever, ...] = (
    Lever(
        "calibration_lag",
        ("calibration", "refresh_years", "data_lag_years", "split_lag_years"),
        _fixed(calibration="perfect"),
    ),
    Lever("formula_choice", ("formula",), _fixed(formula="needs")),
    Lever("deprivation_left_out", ("deprivation",), _fixed(deprivation=True)),
    Lever("area_costs_left_out", ("market_forces",), _fixed(market_forces=True)),
    Lever("registered_lists", ("population_base",), _fixed(population_base="resident")),
    *(
        Lever(
            name,
            (name, f"{name}_weight") if adjustment.weight is not None else (name,),
            _fixed(**{name: False}),
        )
        for name, adjustment in NEED_ADJUSTMENTS.items()
    ),
)
"""The levers in the order they are moved from the yardstick to the scenario."""

GAP_SOURCES: tuple[str, ...] = (
    "perfect_formula_residual",
    *(lever.name for lever in LEVERS),
    "pace_of_change",
)


def lever_configs(config: AllocationConfig) -> list[AllocationConfig | None]:
    """The formula settings after each lever is moved: [yardstick, after lever 1, ...,
    after lever n (= `config`)], None where a lever is already as in the yardstick (the
    targets are then the previous ones)."""
    yardstick: dict[str, Any] = {}
    for lever in LEVERS:
        yardstick.update(lever.yardstick(config))
    current = config.model_copy(update=yardstick)
    out: list[AllocationConfig | None] = [current]
    for lever in LEVERS:
        moved = {field: getattr(config, field) for field in lever.fields}
        if all(getattr(current, f) == v for f, v in moved.items()):
            out.append(None)
            continue
        current = current.model_copy(update=moved)
        out.append(current)
    return out


def gap_terms(expected: np.ndarray, allocation: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(source, icb) each source's share of the ICB's gap relative to England, in log points,
    from expected delegated spend (icb,), the allocation (icb,) and the targets (lever,
    icb): the yardstick's, then after each lever. NaN where the ICB holds no delegated
    budget."""
    held = (allocation > 0) & (expected > 0) & (targets > 0).all(axis=0)
    chain = np.vstack([expected, targets, allocation])
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.log(chain[:-1] / chain[1:])
        totals = chain[:, held].sum(axis=1)
        national = np.log(totals[:-1] / totals[1:])
    out = local - national[:, None]
    out[:, ~held] = np.nan
    return out
