"""A results file's scenario, rebuilt from the provenance it carries.

Why: `specsim explain A.nc B.nc` must re-run the scenarios behind two results files, and a
results file holds its scenario as text (`scenario_text`, with `scenario_sha256`; see
`sim.results.finalise`), not as a path that may since have changed. The text is one of:
a scenario file's TOML; every file of an `extends` chain, base first, each under a
`# ===== <extends value> =====` line; a dict-built scenario's JSON after
`# scenario built from a dict`; or a code-built scenario's validated JSON. The layers are
merged as loading merges them (tables key by key, the child winning; arrays whole;
`name` and `description` never inherited) and validated with the scenario schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from typing import Any

import xarray as xr

from sim.errors import DataError, ScenarioError
from sim.scenario import Scenario

LAYER = re.compile(r"^# ===== .* =====\n", re.MULTILINE)
DICT_MARK = "# scenario built from a dict\n"
NOT_INHERITED = ("name", "description", "extends")


def scenario_of_results(ds: xr.Dataset, where: str) -> Scenario:
    """The scenario a one-scenario results Dataset was run with (`where` names the file in
    errors): its validated JSON (`scenario_json`, which also holds edits made in code after
    loading) if recorded, else rebuilt from its text. Raises DataError when the file carries
    neither, when the text does not match its hash, or when it no longer validates."""
    recorded_json = ds.attrs.get("scenario_json")
    if isinstance(recorded_json, str) and recorded_json.strip():
        try:
            return Scenario.from_dict(json.loads(recorded_json))
        except (ScenarioError, json.JSONDecodeError) as err:
            raise DataError(where, f"its recorded scenario does not load here ({err})") from None
    text = ds.attrs.get("scenario_text")
    if not isinstance(text, str) or not text.strip():
        raise DataError(where, "records no scenario_text, so its scenario cannot be rebuilt")
    recorded = ds.attrs.get("scenario_sha256")
    if recorded is not None and hashlib.sha256(text.encode("utf-8")).hexdigest() != recorded:
        raise DataError(where, "scenario_text does not match scenario_sha256 (edited file?)")
    try:
        return scenario_from_text(text, str(ds.attrs.get("scenario_name", "")) or None)
    except ScenarioError as err:
        raise DataError(where, f"its recorded scenario does not load here ({err})") from None


def scenario_from_text(text: str, name: str | None = None) -> Scenario:
    """Validate the scenario a provenance text describes; `name` names it when the text
    does not (a file named after itself)."""
    parts = LAYER.split(text) if LAYER.match(text) else [text]
    layers = [_parse(part) for part in parts if part.strip()]
    merged: dict[str, Any] = {}
    for k, layer in enumerate(layers):
        own = k == len(layers) - 1
        body = {key: v for key, v in layer.items() if own or key not in NOT_INHERITED}
        merged = _merge(merged, {key: v for key, v in body.items() if key != "extends"})
    if name and "name" not in merged:
        merged["name"] = name
    return Scenario.from_dict(merged)


def _parse(part: str) -> dict[str, Any]:
    """One layer's table: TOML, or JSON (dict- and code-built scenarios)."""
    if part.startswith(DICT_MARK):
        part = part[len(DICT_MARK) :]
    try:
        return tomllib.loads(part)
    except tomllib.TOMLDecodeError:
        pass
    try:
        value = json.loads(part)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ScenarioError(None, None, "recorded scenario text is neither TOML nor JSON")
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key (the child wins); arrays and values are replaced whole."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
