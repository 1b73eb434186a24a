"""One replicate from the command line, end to end, against importing numpy, pandas and
xarray (the floor any xarray-based tool pays), measured alternately in the same run.

    .venv/bin/python benchmarks/bench_run.py [--repeats 7]

Times whole processes as a user waits for them: start-up, imports, reading the packaged
data, checks, the plan, the calendar, the summary and the NetCDF write. It leaves out
nothing the user waits for; it runs the baseline with `--replications 1`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import BASELINE, command, interleaved, machine_note, median, specsim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp()) / "one.nc"
    works = {
        "run": command([*specsim(), "run", str(BASELINE), "-n", "1", "-q", "--out", str(out)]),
        "imports": command([sys.executable, "-c", "import numpy, pandas, xarray"]),
    }
    works["run"]()  # warm-up: byte-code and the disk cache
    times = interleaved(works, args.repeats)
    run, floor = median(times["run"]), median(times["imports"])
    print(machine_note())
    print(f"specsim run baseline -n 1: {run:.2f} s median of {args.repeats}")
    print(f"python -c 'import numpy, pandas, xarray': {floor:.2f} s median")
    print(f"run / imports: {run / floor:.2f}")


if __name__ == "__main__":
    main()
