"""Atomic result files: a reader never sees a half-written file.

A long run interrupted by an error, Ctrl-C or SIGTERM must not leave a truncated NetCDF
that looks like a result (nor destroy the previous good one). Writers write to a
temporary name in the target folder (same filesystem, so the final rename is atomic) and
the file is renamed into place only when the writer finished without an exception. A
temporary folder left behind by a killed process (SIGKILL, power loss) carries that
process's id in its name and is removed by the next write to the same target.

`check_writable` is called before any work starts, so a bad output path fails at once.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from sim.errors import SpecsimError

NETCDF_ENGINE = "h5netcdf"
_COMPRESSION = {"zlib": True, "complevel": 1}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(target: Path) -> None:
    """Remove temporaries of `target` left by processes that no longer exist."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)\.[^.]+\.tmp$")
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        found = pattern.match(entry.name)
        if found and int(found.group(1)) != os.getpid() and not _alive(int(found.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a not-yet-existing temporary path next to `path`; move it to `path` on success.

    Works for files and for folder stores (Zarr). The target's folder is created if needed.
    On any exception, KeyboardInterrupt included, the temporary output is removed and the
    existing `path`, if any, is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    prefix = f".{target.name}.{os.getpid()}."
    workdir = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
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


def check_writable(path: str | Path, folder: bool = False, what: str = "--out") -> Path:
    """Raise SpecsimError unless `path` can be written: an ordinary file (or, with
    `folder`, a folder) that exists or can be created, in a folder this process may write.

    Checked before a run so that a typo in an output path fails in a second, not after the
    run; nothing is left behind by the check.
    """
    target = Path(path)
    if target.name in ("", ".", ".."):
        raise SpecsimError(f"{what} {path}: give a {'folder' if folder else 'file'} name")
    if target.exists() or target.is_symlink():
        mode = target.lstat().st_mode
        if folder and not stat.S_ISDIR(mode):
            raise SpecsimError(f"{what} {path}: exists and is not a folder")
        if not folder and stat.S_ISDIR(mode):
            raise SpecsimError(f"{what} {path}: is a folder; give a file name such as {path}/x.nc")
        if not folder and not stat.S_ISREG(mode):
            raise SpecsimError(f"{what} {path}: is not an ordinary file")
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SpecsimError(f"{what} {path}: {ancestor} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".specsim-probe.", dir=ancestor)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise SpecsimError(f"{what} {path}: cannot write in {ancestor} ({err.strerror})") from None
    return target


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
