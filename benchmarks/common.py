"""Shared helpers for the benchmark scripts: timing, medians, machine notes.

Every benchmark prints its figures and compares each with its floor measured in the same
run (a ratio, which holds when the machine's speed drifts); none is a test.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.toml"


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def interleaved(works: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each work over `repeats` rounds, run A B A B ... so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            times[name].append(timed(work))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def command(args: Sequence[str]) -> Callable[[], object]:
    """A whole process, as a user waits for it (output discarded, failure raised)."""

    def run() -> None:
        subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run


def specsim() -> list[str]:
    """The `specsim` console script of this interpreter's environment."""
    return [str(Path(sys.executable).parent / "specsim")]


def free_cores() -> tuple[int, float]:
    """(cores this process may use, load average over the last minute)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return int(cores or 1), os.getloadavg()[0]


def machine_note() -> str:
    cores, load = free_cores()
    return f"machine: {cores} cores, load average {load:.2f} at start"
