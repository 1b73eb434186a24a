"""The installed specsim version, for provenance (looked up only when asked: 20 ms)."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version


@lru_cache(maxsize=1)
def specsim_version() -> str:
    try:
        return version("specsim")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"
