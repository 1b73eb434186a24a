"""Dask against in-process, end to end, as a user waits for `specsim run`.

Each figure is a whole `specsim run` process on the baseline: start-up, data, the plan,
the cluster's start (for `--workers 2`), every replicate, the summaries and the write.
End to end: N replicates in-process / on 2 workers. Steady state: the time per replicate
once running, (T(N) - T(N0)) / (N - N0), which cancels start-up and the cluster's start.
Memory: peak resident memory of the largest process (the client, or a worker) for N0 and
N replicates: flat when the summaries stream. Target (issue 10): at least 1.7x end to end
for 5,000 replicates on this 2-core machine; 09d1c3c gave 0.95-1.16x.

    .venv/bin/python benchmarks/bench_ensemble.py [--n 5000] [--n0 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BASELINE, free_cores, machine_note, specsim

PEAK = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"  # noqa: E501


def run(n: int, workers: int | None, out: Path) -> tuple[float, float]:
    """(wall seconds, peak MiB of the largest process) of one `specsim run`."""
    args = [*specsim(), "run", str(BASELINE), "-n", str(n), "-q", "--out", str(out)]
    if workers:
        args += ["--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *args], check=True, capture_output=True)
    return time.perf_counter() - start, int(done.stdout.decode().split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--n0", type=int, default=1000)
    args = parser.parse_args()
    cores, load = free_cores()
    print(machine_note())
    if cores - load < 1.5:
        print(
            f"note: about {max(cores - load, 0):.1f} of {cores} cores are free; two workers "
            "cannot run twice as fast on fewer than two free cores"
        )
    out = Path(tempfile.mkdtemp()) / "r.nc"
    figures = {}
    for workers in (None, 2):
        for n in (args.n0, args.n):
            figures[(workers, n)] = run(n, workers, out)
            wall, peak = figures[(workers, n)]
            where = "in-process" if workers is None else f"{workers} workers"
            print(f"{where:10s} {n:6d} replicates: {wall:6.1f} s, peak {peak:5.0f} MiB")
    span = args.n - args.n0
    steady = {w: (figures[(w, args.n)][0] - figures[(w, args.n0)][0]) / span for w in (None, 2)}
    print(f"steady state: {1e3 * steady[None]:.2f} ms/replicate in-process, "
          f"{1e3 * steady[2]:.2f} ms on 2 workers: {steady[None] / steady[2]:.2f}x")  # fmt: skip
    print(f"memory, in-process: {figures[(None, args.n0)][1]:.0f} MiB for {args.n0}, "
          f"{figures[(None, args.n)][1]:.0f} MiB for {args.n}")  # fmt: skip
    ratio = figures[(None, args.n)][0] / figures[(2, args.n)][0]
    print(f"end to end, {args.n} replicates, in-process / 2 workers: {ratio:.2f}x")


if __name__ == "__main__":
    main()
