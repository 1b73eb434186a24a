"""Which specialised services each ICB commissions itself, year by year.

Why a separate module: delegation is policy (the scenario's `[delegation]` waves), not
formula. The allocation splits money by the status computed here.

Rules (also in docs/service_catalogue.md):
- A wave delegates its services, from April of its `year`, to the ICBs of its `regions`
  (plus any ICBs listed in `icbs`). Waves only add: once delegated, a service stays so.
- `services` names catalogue `service_id`s or groups: `wave_59`, `wave_70`, `retained`,
  `delegable` (= wave_59 + wave_70) and `all`.
- `also_delegate` joins every wave (the services move to the delegated portfolio wherever
  and whenever delegation happens); `also_retain` is removed from every wave.
- `retain_all = true`: nothing is delegated (NHS England keeps the whole portfolio).

An unknown name raises `ScenarioError` with no file (this module sees only the section);
`sim.checks` names the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from sim.errors import ScenarioError, did_you_mean

if TYPE_CHECKING:
    from sim.scenario import DelegationConfig, DelegationWave

GROUPS = ("wave_59", "wave_70", "retained")
ALIASES = {"delegable": ("wave_59", "wave_70"), "all": GROUPS}


def resolve_services(tokens: str | Sequence[str], services: pd.DataFrame, field: str) -> set[str]:
    """Service ids named by `tokens` (ids or group names); unknown names are user errors."""
    tokens = [tokens] if isinstance(tokens, str) else list(tokens)
    ids = services["service_id"].astype(str)
    group = services["delegation_group"].astype(str)
    out: set[str] = set()
    for token in tokens:
        if token in ALIASES or token in GROUPS:
            out |= set(ids[group.isin(ALIASES.get(token, (token,)))])
        elif token in set(ids):
            out.add(token)
        else:
            hint = did_you_mean(token, [*ids, *GROUPS, *ALIASES])
            raise ScenarioError(None, field, f"unknown service or group {token!r}{hint}")
    return out


def _matches(table: pd.DataFrame, columns: Sequence[str], name: str) -> np.ndarray:
    hit = np.zeros(len(table), bool)
    for column in columns:
        if column in table:
            hit |= table[column].astype(str).to_numpy() == name
    return hit


def _icb_mask(index: int, wave: DelegationWave, table: pd.DataFrame) -> np.ndarray:
    """Which ICBs a wave reaches: all, or those of its regions plus its listed ICBs."""
    if wave.regions == "all":
        return np.ones(len(table), bool)
    mask = np.zeros(len(table), bool)
    for name in wave.regions:
        hit = _matches(table, ("region_name", "region"), name)
        if not hit.any():
            regions = sorted(set(table.get("region_name", pd.Series(dtype=str))))
            raise ScenarioError(
                None,
                f"delegation.waves[{index}].regions",
                f"unknown region {name!r}{did_you_mean(name, regions)} "
                f"(regions: {', '.join(regions)})",
            )
        mask |= hit
    for name in wave.icbs:
        hit = _matches(table, ("icb", "icb_ods", "icb_name"), name)
        if not hit.any():
            codes = table["icb"].astype(str)
            raise ScenarioError(
                None,
                f"delegation.waves[{index}].icbs",
                f"unknown ICB {name!r}{did_you_mean(name, codes)}",
            )
        mask |= hit
    return mask


def delegation_masks(
    config: DelegationConfig, services: pd.DataFrame, table: pd.DataFrame, years: Sequence[int]
) -> np.ndarray:
    """(year, icb, service) bool: True where the ICB holds the service's budget.

    `table` is an ICB table (icbs.csv columns: icb, icb_ods, icb_name, region_name, ...).
    Raises ScenarioError (one line, naming e.g. `delegation.waves[0].services`) for an
    unknown service, group, region or ICB.
    """
    ids = services["service_id"].astype(str).to_numpy()
    years = [int(y) for y in years]
    status = np.zeros((len(years), len(table), len(ids)), bool)
    extra = resolve_services(config.also_delegate, services, "delegation.also_delegate")
    removed = resolve_services(config.also_retain, services, "delegation.also_retain")
    if both := sorted(extra & removed):
        raise ScenarioError(
            None,
            "delegation.also_retain",
            f"{both[0]!r} is also in delegation.also_delegate; name it in one list only",
        )
    for i, wave in enumerate(config.waves):
        named = resolve_services(wave.services, services, f"delegation.waves[{i}].services")
        chosen = np.isin(ids, sorted((named | extra) - removed))
        reach = _icb_mask(i, wave, table)
        when = np.asarray(years) >= wave.year
        status |= when[:, None, None] & reach[None, :, None] & chosen[None, None, :]
    if config.retain_all:
        status[:] = False
    return status


def delegation_status(
    config: DelegationConfig, services: pd.DataFrame, table: pd.DataFrame, years: Sequence[int]
) -> xr.DataArray:
    """`delegation_masks` as a labelled DataArray (year, icb, service)."""
    table = table.reset_index(drop=True)
    coords = {
        "year": [int(y) for y in years],
        "icb": table["icb"].to_numpy(),
        "service": services["service_id"].astype(str).to_numpy(),
    }
    for name in ("icb_ods", "icb_name", "region", "region_name"):
        if name in table:
            coords[name] = ("icb", table[name].to_numpy())
    return xr.DataArray(
        delegation_masks(config, services, table, years),
        dims=("year", "icb", "service"),
        coords=coords,
        name="delegated",
        attrs={"units": "1", "long_name": "service delegated to the ICB (True) or retained"},
    )
