"""User-facing errors: each carries one readable line naming the file and field at fault.

The CLI catches `SpecsimError`, prints `str(error)` and exits with code 2, so an analyst
never sees a traceback for a mistake in their own input.
"""

from __future__ import annotations

from pathlib import Path


class SpecsimError(Exception):
    """A problem with the user's input or environment, not a bug in specsim."""


class ScenarioError(SpecsimError):
    """A scenario file that cannot be read or does not validate."""

    def __init__(self, path: str | Path | None, field: str | None, message: str) -> None:
        self.path = str(path) if path is not None else None
        self.field = field
        self.message = message
        where = self.path or "<scenario>"
        if field:
            where = f"{where}: {field}"
        super().__init__(f"{where}: {message}")


class DataError(SpecsimError):
    """A reference-data or results file that is missing, unreadable or inconsistent."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")
