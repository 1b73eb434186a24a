"""The `specsim` CLI end to end, and the atomic writer it relies on.

`run` is tested twice: once for real on a three-year, two-replicate baseline (the whole
pipeline), and with `sim.experiment.run` replaced by a stub, to pin down exactly what the CLI
passes on, prints and writes, and what it leaves behind when something fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from sim.atomic import atomic_path, write_netcdf
from sim.cli import INTERRUPTED, app
from sim.scenario import load_scenario

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders the atomic writer should have removed."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def bad_scenario(folder: Path, scenarios_dir: Path) -> Path:
    path = folder / "bad.toml"
    path.write_text(
        f'extends = "{scenarios_dir / "baseline.toml"}"\n[population]\nmortality_multiplier = -1\n'
    )
    return path


# ---- validate, scenarios ------------------------------------------------------------------


def test_validate_good_prints_ok_and_a_summary(scenarios_dir):
    result = invoke("validate", scenarios_dir / "baseline.toml")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK ")
    assert "baseline: 2024..2043" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1


def test_validate_bad_exits_2_with_one_line(tmp_path, scenarios_dir):
    bad = bad_scenario(tmp_path, scenarios_dir)
    result = invoke("validate", scenarios_dir / "baseline.toml", bad)
    assert result.exit_code == 2
    assert result.stdout.startswith("OK ")  # the good file is still checked
    (line,) = result.stderr.strip().splitlines()
    assert str(bad) in line and "population.mortality_multiplier" in line
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["validate", "run"])
def test_user_error_in_a_real_process_is_one_line_without_traceback(
    tmp_path, scenarios_dir, command
):
    bad = bad_scenario(tmp_path, scenarios_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", command, str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {bad}: population.mortality_multiplier: must be >= 0")
    assert not (tmp_path / "results").exists()


def test_scenarios_lists_the_shipped_files(scenarios_dir):
    result = invoke("scenarios", "--folder", scenarios_dir)
    assert result.exit_code == 0, result.output
    for path in scenarios_dir.glob("*.toml"):
        assert load_scenario(path).name in result.stdout
    assert "invalid" not in result.stdout


def test_scenarios_on_a_missing_folder_is_a_user_error(tmp_path):
    result = invoke("scenarios", "--folder", tmp_path / "none")
    assert result.exit_code == 2
    assert "scenario folder not found" in result.stderr


def test_data_describes_the_reference_data():
    result = invoke("data")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "data version:" in text
    assert "Open Government Licence" in text
    assert "reference.nc" in text and "icbs.csv" in text


# ---- run: the real pipeline ---------------------------------------------------------------


def test_run_short_baseline_writes_a_complete_results_file(tmp_path, short_scenario):
    out = tmp_path / "out" / "short.nc"
    result = invoke("run", short_scenario, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    assert leftovers(out.parent) == []
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        population = ds["population"]
        assert population.sizes["icb"] == 42
        assert list(ds["year"].values) == [2024, 2025, 2026]
        assert population.attrs["units"] and population.attrs["long_name"]
        assert ds.attrs["scenario_sha256"] == load_scenario(short_scenario).sha256
        assert int(ds.attrs["seed"]) == 20240401
        assert int(ds.attrs["replications"]) == 2
        assert ds.attrs["specsim_version"]
        assert ds.attrs["data_version"]


# ---- run: what the CLI does around the experiment -----------------------------------------


def fake_results(years: range, icbs: int = 3) -> xr.Dataset:
    year = np.array(years)
    envelope = 1e9 * 1.05 ** (year - year[0])
    return xr.Dataset(
        {
            "envelope": ("year", envelope, {"units": "GBP", "long_name": "national envelope"}),
            "population": (
                ("year", "icb"),
                np.full((year.size, icbs), 1e6),
                {"units": "persons", "long_name": "population"},
            ),
        },
        coords={"year": year, "icb": [f"E54{i:06d}" for i in range(icbs)]},
    )


@pytest.fixture
def fake_experiment(monkeypatch):
    """Replace `sim.experiment.run`; record its arguments; return `calls` and a result setter."""
    from sim import experiment

    calls: list[dict] = []
    outcome: dict = {"result": fake_results(range(2024, 2044))}

    def run(scenarios, **kwargs):
        calls.append({"scenarios": scenarios, **kwargs})
        if isinstance(outcome["result"], BaseException):
            raise outcome["result"]
        return outcome["result"]

    monkeypatch.setattr(experiment, "run", run)
    return calls, outcome


def test_run_passes_scenario_defaults_and_overrides(tmp_path, short_scenario, fake_experiment):
    calls, _ = fake_experiment
    out = tmp_path / "r.nc"
    result = invoke("run", short_scenario, "--seed", 5, "--out", out, "--workers", 2, "-q")
    assert result.exit_code == 0, result.output
    (call,) = calls
    assert call["scenarios"].name == "short"
    assert call["replications"] == 2  # from the scenario's [run]
    assert call["seed"] == 5  # the command line wins
    assert (call["workers"], call["scheduler"], call["chunk_size"]) == (2, None, None)
    assert call["progress"] is False
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        xr.testing.assert_identical(ds.load(), fake_results(range(2024, 2044)))


def test_run_summary_shows_base_plus_5_plus_10_and_end(tmp_path, short_scenario, fake_experiment):
    result = invoke("run", short_scenario, "--out", tmp_path / "r.nc")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "/" in line and "│" in line]
    assert [row.split("│")[1].strip() for row in rows] == [
        "2024/25",
        "2029/30",
        "2034/35",
        "2043/44",
    ]
    # 2029/30: £1bn grown 5% a year for 5 years, in £m; population 3 ICBs x 1m, in millions
    assert f"{1e3 * 1.05**5:,.2f}" in rows[1] and "3.00" in rows[1]


def test_run_several_scenarios_default_output_name(
    tmp_path, short_scenario, fake_experiment, monkeypatch
):
    calls, outcome = fake_experiment
    other = tmp_path / "other.toml"
    other.write_text('extends = "short.toml"\nname = "other"\n')
    names = ["short", "other"]
    outcome["result"] = xr.concat(
        [fake_results(range(2024, 2027))] * 2, dim=pd.Index(names, name="scenario")
    )
    monkeypatch.chdir(tmp_path)
    result = invoke("run", short_scenario, other)
    assert result.exit_code == 0, result.output
    assert [s.name for s in calls[0]["scenarios"]] == names
    assert (tmp_path / "results" / "short_vs_other.nc").is_file()
    cells = [[c.strip() for c in line.split("│")[1:3]] for line in result.stdout.splitlines()]
    assert ["other", "2026/27"] in cells and ["short", "2024/25"] in cells


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("specsim ")


def test_interrupted_run_exits_130_and_writes_nothing(tmp_path, short_scenario, fake_experiment):
    _, outcome = fake_experiment
    outcome["result"] = KeyboardInterrupt()
    out = tmp_path / "res" / "r.nc"
    result = invoke("run", short_scenario, "--out", out)
    assert result.exit_code == 130
    assert result.stderr.strip() == INTERRUPTED
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_run_failing_while_writing_keeps_the_old_file_and_no_partial_one(
    tmp_path, short_scenario, fake_experiment
):
    dask = pytest.importorskip("dask")
    dask_array = pytest.importorskip("dask.array")

    def fail() -> np.ndarray:
        raise RuntimeError("disk full")

    _, outcome = fake_experiment
    broken = dask_array.from_delayed(dask.delayed(fail)(), shape=(20,), dtype=float)
    outcome["result"] = fake_results(range(2024, 2044)).assign(
        spend_mean=("year", broken, {"units": "GBP", "long_name": "mean spend"})
    )
    out = tmp_path / "r.nc"
    out.write_bytes(b"previous results")
    result = invoke("run", short_scenario, "--out", out, "-q")
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    assert out.read_bytes() == b"previous results"
    assert leftovers(tmp_path) == []


def test_run_refuses_a_folder_as_output(tmp_path, short_scenario, fake_experiment):
    calls, _ = fake_experiment
    result = invoke("run", short_scenario, "--out", tmp_path)
    assert result.exit_code == 2
    assert "is a folder; give a file name" in result.stderr
    assert calls == []  # refused before any simulation


# ---- compare -----------------------------------------------------------------------------


def test_compare_passes_options_and_prints_the_table(tmp_path, monkeypatch):
    import sim.report

    seen = {}

    def compare_files(paths, report=None, csv_dir=None, suppress_small_counts=True):
        seen.update(paths=paths, report=report, csv_dir=csv_dir, suppress=suppress_small_counts)
        return pd.DataFrame({"a": [1.5e9], "b": [0.25]}, index=pd.Index(["envelope"], name="m"))

    monkeypatch.setattr(sim.report, "compare_files", compare_files)
    result = invoke("compare", "a.nc", "b.nc", "--report", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert seen == {
        "paths": [Path("a.nc"), Path("b.nc")],
        "report": tmp_path / "r.html",
        "csv_dir": None,
        "suppress": True,
    }
    assert "1,500,000,000" in result.stdout and "0.25" in result.stdout
    invoke("compare", "a.nc", "b.nc", "--show-small-counts")
    assert seen["suppress"] is False


# ---- the atomic writer -------------------------------------------------------------------


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_path_removes_partial_output_on_any_exception(tmp_path, failure):
    target = tmp_path / "x.nc"
    target.write_text("old")
    with pytest.raises(type(failure)), atomic_path(target) as temporary:
        assert temporary.parent.parent == tmp_path  # same folder, so the rename is atomic
        assert not temporary.exists()
        temporary.write_text("half")
        raise failure
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_atomic_path_replaces_files_and_folders(tmp_path):
    target = tmp_path / "new" / "store.zarr"
    for content in ("first", "second"):
        with atomic_path(target) as temporary:
            temporary.mkdir()
            (temporary / "data").write_text(content)
        assert (target / "data").read_text() == content
    assert leftovers(target.parent) == []


def test_atomic_path_fails_if_the_writer_wrote_nothing(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "x.nc"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_write_netcdf_round_trips_and_compresses(tmp_path):
    ds = fake_results(range(2024, 2044), icbs=42)
    ds.attrs["seed"] = 7
    path = write_netcdf(ds, tmp_path / "sub" / "r.nc")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), ds)
        assert back["population"].encoding.get("zlib") is True
