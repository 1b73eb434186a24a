"""Golden allocation totals for every shipped scenario, compared to the pound.

The goldens (`tests/regression/<scenario>.csv`) hold national, regional and per-ICB
`allocation` and `target_allocation`, and national `envelope` and `retained_budget`, by
year, from the deterministic allocation path (ONS projection population + allocate_years).
Regenerate them after an intended change with

    .venv/bin/python scripts/regenerate_goldens.py

and explain the change in the commit message.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


def _regenerator():
    spec = importlib.util.spec_from_file_location(
        "regenerate_goldens", ROOT / "scripts" / "regenerate_goldens.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_allocation_totals_match_golden(path: Path) -> None:
    golden_file = Path(__file__).parent / f"{path.stem}.csv"
    assert golden_file.exists(), f"no golden for {path.name}: run scripts/regenerate_goldens.py"
    golden = pd.read_csv(golden_file, dtype={"area": str, "gbp": "int64"})
    actual = _regenerator().golden_totals(path)
    pd.testing.assert_frame_equal(actual.reset_index(drop=True), golden, check_exact=True)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden_totals_add_up(path: Path) -> None:
    """The goldens conserve: regions and ICBs sum to England, allocation + retained = envelope."""
    golden_file = Path(__file__).parent / f"{path.stem}.csv"
    if not golden_file.exists():
        pytest.fail(f"no golden for {path.name}: run scripts/regenerate_goldens.py")
    table = pd.read_csv(golden_file, dtype={"area": str, "gbp": "int64"})
    for year, one in table.groupby("year"):
        national = one[one["level"] == "national"].set_index("variable")["gbp"]
        assert national["allocation"] + national["retained_budget"] == national["envelope"], year
        for level in ("region", "icb"):
            rows = one[one["level"] == level]
            for name in ("allocation", "target_allocation"):
                assert rows.loc[rows["variable"] == name, "gbp"].sum() == national[name], (
                    year,
                    level,
                )
    assert table["year"].nunique() > 1
