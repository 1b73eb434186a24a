"""Atomic result files: a reader never sees a half-written file.

A long run interrupted by an error or Ctrl-C must not leave a truncated NetCDF that looks
like a result (nor destroy the previous good one). Writers write to a temporary name in the
target folder (same filesystem, so the final rename is atomic) and the file is renamed into
place only when the writer finished without an exception.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

NETCDF_ENGINE = "h5netcdf"
_COMPRESSION = {"zlib": True, "complevel": 4}


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a not-yet-existing temporary path next to `path`; move it to `path` on success.

    Works for files and for folder stores (Zarr). The target's folder is created if needed.
    On any exception, KeyboardInterrupt included, the temporary output is removed and the
    existing `path`, if any, is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    temporary = workdir / target.name
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"writer produced no output for {target}")
        if temporary.is_dir() and target.is_dir():
            shutil.rmtree(target)  # os.replace cannot replace a non-empty folder
        os.replace(temporary, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write `ds` to NetCDF (h5netcdf, numeric variables compressed) atomically at `path`."""
    encoding = {
        name: dict(_COMPRESSION)
        for name, var in ds.data_vars.items()
        if var.ndim > 0 and np.issubdtype(var.dtype, np.number)
    }
    with atomic_path(path) as temporary:
        ds.to_netcdf(temporary, engine=NETCDF_ENGINE, encoding=encoding)
    return Path(path)
