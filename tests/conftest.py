"""Shared fixtures: where the repository and its scenarios are, and a short scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def scenarios_dir(repo_root: Path) -> Path:
    return repo_root / "scenarios"


@pytest.fixture
def short_scenario(tmp_path: Path, scenarios_dir: Path) -> Path:
    """The baseline over three years with two replicates: a real run that stays fast."""
    path = tmp_path / "short.toml"
    baseline = json.dumps(str(scenarios_dir / "baseline.toml"))  # a valid TOML basic string
    path.write_text(
        f'extends = {baseline}\nname = "short"\n\n[time]\nend_year = 2026\n\n'
        "[run]\nreplications = 2\n",
        encoding="utf-8",
    )
    return path
