"""User-facing errors: each carries one readable line naming the file and field at fault.

The CLI catches `SpecsimError`, prints `str(error)` and exits with code 2, so an analyst
never sees a traceback for a mistake in their own input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close.

    One wording everywhere a name is looked up (scenario keys, services, regions, ICBs).
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
