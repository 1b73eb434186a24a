"""Which specialised services each ICB commissions itself, year by year.

Why a separate module: delegation is policy (scenario waves), not formula. The engine asks
for the whole (year, icb, service) status once; the allocation splits money by it.

Rules (also in docs/service_catalogue.md):
- A wave delegates its services, from April of its `year`, to the ICBs of its `regions`
  (plus any ICBs listed in `icbs`). Waves only add: once delegated, a service stays so.
- `services` names catalogue `service_id`s or groups: `wave_59`, `wave_70`, `retained`,
  `delegable` (= wave_59 + wave_70) and `all`.
- `also_delegate` joins every wave (the services move to the delegated portfolio wherever
  and whenever delegation happens); `also_retain` is removed from every wave.
- `retain_all = true`: nothing is delegated (NHS England keeps the whole portfolio).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from sim.errors import ScenarioError
from sim.scenario import Scenario

GROUPS = ("wave_59", "wave_70", "retained")
ALIASES = {"delegable": ("wave_59", "wave_70"), "all": GROUPS}


def _path(scenario: Scenario) -> object:
    return getattr(scenario, "source_path", None)


def _hint(token: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(token, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def resolve_services(
    tokens: str | Sequence[str], services: pd.DataFrame, scenario: Scenario, field: str
) -> set[str]:
    """Service ids named by `tokens` (ids or group names); unknown names are user errors."""
    tokens = [tokens] if isinstance(tokens, str) else list(tokens)
    ids = services["service_id"].astype(str)
    group = services["delegation_group"].astype(str)
    out: set[str] = set()
    for token in tokens:
        if token in ALIASES or token in GROUPS:
            members = ALIASES.get(token, (token,))
            out |= set(ids[group.isin(members)])
        elif token in set(ids):
            out.add(token)
        else:
            choices = [*ids, *GROUPS, *ALIASES]
            raise ScenarioError(
                _path(scenario),
                field,
                f"unknown service or group {token!r}{_hint(token, choices)}",
            )
    return out


def icb_table(icbs: pd.DataFrame | xr.DataArray | xr.Dataset | xr.Coordinates) -> pd.DataFrame:
    """ICB codes with their region names and codes, from icbs.csv or xarray `icb` coords."""
    if isinstance(icbs, pd.DataFrame):
        return icbs.reset_index(drop=True)
    coords = icbs if isinstance(icbs, xr.Coordinates) else icbs.coords
    table = {"icb": coords["icb"].values}
    for name in ("icb_ods", "icb_name", "region", "region_name"):
        if name in coords:
            table[name] = coords[name].values
    return pd.DataFrame(table)


def _icb_mask(wave_index: int, wave, table: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Which ICBs a wave reaches: all, or those of its regions plus its listed ICBs."""
    if wave.regions == "all":
        return np.ones(len(table), bool)
    mask = np.zeros(len(table), bool)
    region_cols = [c for c in ("region_name", "region") if c in table]
    for name in wave.regions:
        hit = np.zeros(len(table), bool)
        for col in region_cols:
            hit |= table[col].astype(str).to_numpy() == name
        if not hit.any():
            choices = sorted(set(table.get("region_name", pd.Series(dtype=str))))
            raise ScenarioError(
                _path(scenario),
                f"delegation.waves[{wave_index}].regions",
                f"unknown region {name!r}{_hint(name, choices)} (regions: {', '.join(choices)})",
            )
        mask |= hit
    icb_cols = [c for c in ("icb", "icb_ods", "icb_name") if c in table]
    for name in getattr(wave, "icbs", []):
        hit = np.zeros(len(table), bool)
        for col in icb_cols:
            hit |= table[col].astype(str).to_numpy() == name
        if not hit.any():
            raise ScenarioError(
                _path(scenario),
                f"delegation.waves[{wave_index}].icbs",
                f"unknown ICB {name!r}{_hint(name, table['icb'].astype(str))}",
            )
        mask |= hit
    return mask


def delegation_status(
    scenario: Scenario,
    services: pd.DataFrame,
    icbs: pd.DataFrame | xr.DataArray | xr.Dataset | xr.Coordinates,
    years: Sequence[int],
) -> xr.DataArray:
    """`delegated` (year, icb, service) bool: True where the ICB holds the service's budget.

    `icbs`: icbs.csv as a DataFrame, or any xarray object with an `icb` coordinate carrying
    `region_name`. Raises ScenarioError (one line, naming e.g. `delegation.waves[0].services`)
    for an unknown service, group, region or ICB.
    """
    cfg = scenario.delegation
    table = icb_table(icbs)
    ids = services["service_id"].astype(str).to_numpy()
    years = [int(y) for y in years]
    status = np.zeros((len(years), len(table), len(ids)), bool)
    extra = resolve_services(cfg.also_delegate, services, scenario, "delegation.also_delegate")
    removed = resolve_services(cfg.also_retain, services, scenario, "delegation.also_retain")
    if both := sorted(extra & removed):
        raise ScenarioError(
            _path(scenario),
            "delegation.also_retain",
            f"{both[0]!r} is also in delegation.also_delegate; name it in one list only",
        )
    for i, wave in enumerate(cfg.waves):
        named = resolve_services(
            wave.services, services, scenario, f"delegation.waves[{i}].services"
        )
        chosen = np.isin(ids, sorted((named | extra) - removed))
        reach = _icb_mask(i, wave, table, scenario)
        when = np.asarray(years) >= wave.year
        status |= when[:, None, None] & reach[None, :, None] & chosen[None, None, :]
    if cfg.retain_all:
        status[:] = False
    coords = {"year": years, "icb": table["icb"].to_numpy(), "service": ids}
    for name in ("icb_ods", "icb_name", "region", "region_name"):
        if name in table:
            coords[name] = ("icb", table[name].to_numpy())
    return xr.DataArray(
        status,
        dims=("year", "icb", "service"),
        coords=coords,
        name="delegated",
        attrs={"units": "1", "long_name": "service delegated to the ICB (True) or retained"},
    )
