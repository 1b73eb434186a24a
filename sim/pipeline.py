"""Candidate new treatments and the CPAG relative-prioritisation rule.

Why: NHS England funds non-mandated new treatments by ranking candidates on relative clinical
benefit and cost (CPAG) within a development fund. The candidates here are a synthetic,
documented pipeline (`sim/data/pipeline.csv`, assumptions in docs/demand_model.md); the rule
is the published one in outline: best benefit per pound first, until the fund runs out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.errors import DataError
from sim.years import APRIL, month_index, month_of

if TYPE_CHECKING:
    from sim.scenario import CpagConfig, NiceApproval

COLUMNS = (
    "candidate_id",
    "name",
    "service_id",
    "available_year",
    "benefit_score",
    "annual_cost_gbp",
)


def load_pipeline(
    path: str | Path | None = None, known_services: Iterable[str] | None = None
) -> pd.DataFrame:
    """Read the candidate pipeline, checking its columns, values and (if given) services."""
    source = Path(path) if path else Path(str(resources.files("sim") / "data" / "pipeline.csv"))
    try:
        table = pd.read_csv(source, dtype={"candidate_id": str, "name": str, "service_id": str})
    except pd.errors.EmptyDataError:
        raise DataError(source, "cannot read the CPAG pipeline: empty file") from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(source, f"cannot read the CPAG pipeline: {reason}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(source, f"missing column(s) {', '.join(missing)}")
    for column, lowest, strict in (
        ("available_year", 2000, False),
        ("benefit_score", 0.0, False),
        ("annual_cost_gbp", 0.0, True),
    ):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = ~np.isfinite(values) | ((values <= lowest) if strict else (values < lowest))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # the header is line 1
            rule = f"> {lowest:g}" if strict else f">= {lowest:g}"
            raise DataError(source, f"{column}: line {row}: must be a finite number {rule}")
        table[column] = values
    if (table["available_year"] % 1 != 0).any():
        raise DataError(source, "available_year: must be whole years")
    if table[["candidate_id", "name", "service_id"]].isna().any().any():
        raise DataError(source, "candidate_id, name and service_id must not be blank")
    if known_services is not None:
        unknown = sorted(set(table["service_id"]) - set(known_services))
        if unknown:
            raise DataError(source, f"service_id: not in the catalogue: {', '.join(unknown)}")
    table["available_year"] = table["available_year"].astype(int)
    return table.sort_values(["available_year", "candidate_id"], ignore_index=True)


def prioritise(benefit: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """Positions of the candidates funded: best benefit per pound first, each while it still
    fits in `budget`; one that does not fit is skipped and a cheaper one may still be funded
    (the greedy rule for a fixed budget). Ties keep pipeline order."""
    order = np.argsort(-(benefit / cost), kind="stable")
    chosen = []
    left = budget
    for k in order:
        if cost[k] <= left:
            chosen.append(k)
            left -= cost[k]
    return np.array(chosen, dtype=np.int64)


class CpagQueue:
    """The queue of candidates awaiting a CPAG round; unfunded ones wait for the next round.

    Plain arrays: a round runs in microseconds, as the calendar holds 40 of them a run.
    """

    def __init__(self, pipeline: pd.DataFrame) -> None:
        table = pipeline.reset_index(drop=True)
        self.names = table["name"].astype(str).to_numpy()
        self.services = table["service_id"].astype(str).to_numpy()
        self.costs = table["annual_cost_gbp"].to_numpy(float)
        self._year = table["available_year"].to_numpy(int)
        self._benefit = table["benefit_score"].to_numpy(float)
        self._waiting = np.ones(len(table), bool)

    def run_round(self, year: int, budget: float, considered: int) -> np.ndarray:
        """Consider the `considered` oldest available candidates; return the positions of
        those funded, best value first (index `names`, `services` and `costs` with them)."""
        pool = np.flatnonzero(self._waiting & (self._year <= year))[:considered]
        funded = pool[prioritise(self._benefit[pool], self.costs[pool], budget)]
        self._waiting[funded] = False
        return funded


@dataclass(frozen=True)
class Funded:
    """One new treatment funded: by a CPAG round or a NICE approval, in calendar month `t`
    (months since 1 April of the base year), raising its service's annual spend."""

    route: str
    name: str
    service: str
    t: int
    annual_cost_gbp: float


def funded_treatments(
    pipeline: pd.DataFrame,
    cpag: CpagConfig,
    nice_approvals: Sequence[NiceApproval],
    development_funds: Sequence[int],
    base_year: int,
) -> tuple[Funded, ...]:
    """Every new treatment funded over the horizon (one development fund per year), in
    calendar order.

    Why decided here and not by the calendar: the decisions depend only on the pipeline,
    the rounds and the development fund, never on a replicate's draws, and the allocation
    formula must know them in advance (its budget split is estimated on expected spend
    that includes the treatments funded by its data year). The calendar fires them.
    """
    horizon = 12 * len(development_funds)
    funded: list[Funded] = []
    if cpag.enabled and cpag.candidates_per_round > 0:
        queue = CpagQueue(pipeline)
        round_offsets = sorted((m - APRIL) % 12 for m in cpag.round_months)
        for k, fund in enumerate(development_funds):
            left = float(fund)
            for offset in round_offsets:
                for j in queue.run_round(base_year + k, left, cpag.candidates_per_round):
                    left -= queue.costs[j]
                    funded.append(
                        Funded(
                            "cpag",
                            queue.names[j],
                            queue.services[j],
                            12 * k + offset,
                            float(queue.costs[j]),
                        )
                    )
    for item in nice_approvals:
        t = max(month_index(item.year, item.month, base_year), 0)
        if t < horizon:
            funded.append(Funded("nice", item.name, item.service, t, item.annual_cost_gbp))
    return tuple(sorted(funded, key=lambda f: f.t))


def uplift_path(
    funded: Sequence[Funded], services: np.ndarray, base_spend: np.ndarray, cost_ratio: float
) -> np.ndarray:
    """(month, service) utilisation multiplier of each service in each month of the horizon:
    1 plus, for every treatment funded so far, its annual cost (times `cost_ratio`, the
    recurrent cost over the planned one) over the service's national expected spend (before
    new treatments) in the year it was funded. `base_spend` is (year, service)."""
    index = {s: k for k, s in enumerate(services)}
    steps = np.zeros((12 * base_spend.shape[0], services.size))
    for item in funded:
        k = index[item.service]
        base = base_spend[item.t // 12, k]
        if base > 0:
            steps[item.t, k] += item.annual_cost_gbp * cost_ratio / base
    return 1.0 + np.cumsum(steps, axis=0)


def funded_log(funded: Sequence[Funded], base_year: int) -> list[dict[str, Any]]:
    """The treatments as records for the results' `new_treatments` attribute."""
    records = []
    for item in funded:
        year, month = month_of(item.t, base_year)
        records.append(
            {
                "route": item.route,
                "name": str(item.name),
                "year": year,
                "month": month,
                "annual_cost_gbp": float(item.annual_cost_gbp),
            }
        )
    return records
