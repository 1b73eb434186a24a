"""Hostile input: every bad scenario, path or data file ends in one line and exit 2.

`validate` and `run` must agree on every scenario (they call the same checks), neither may
leave a file behind on failure, and a property-based test writes random scenario TOML from
the schema's own fields, with out-of-range, wrong-type and non-finite values.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sim import experiment
from sim.cli import app
from sim.errors import DataError
from sim.pipeline import load_pipeline
from sim.reference import load_services
from sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
BASELINE = json.dumps(str(ROOT / "scenarios" / "baseline.toml"))
SHORT = "[time]\nend_year = 2026\n"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_exit_2(result) -> str:
    """The contract: exit code 2, one line on stderr naming what is wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


BAD_SCENARIOS = {
    "infinite envelope": ("[envelope]\nbase_gbp = inf\n", "envelope.base_gbp", "finite"),
    "huge envelope": ("[envelope]\nbase_gbp = 1e300\n", "envelope.base_gbp", "<= 1000000000000"),
    "not a number": ("[envelope]\ngrowth = nan\n", "envelope.growth", "finite"),
    "envelope past whole pounds": (
        "[time]\nend_year = 2043\n[envelope]\nbase_gbp = 1e12\ngrowth = 0.5\n",
        "envelope.growth",
        "to the pound",
    ),
    "unfundable floor": (
        "[envelope]\ngrowth = 0.01\n[convergence]\nfloor_growth = 0.03\n",
        "convergence.floor_growth",
        "2024/25",
    ),
    "growth multiplier too large": (
        "[demand]\ngrowth_multiplier = 10\n",
        "demand.growth_multiplier",
        "within 0..3",
    ),
    "nice costing inf": (
        '[[nice_approvals]]\nname = "x"\nservice = "renal_dialysis"\nyear = 2025\n'
        "annual_cost_gbp = inf\n",
        "nice_approvals[0].annual_cost_gbp",
        "finite",
    ),
    "nice on an unknown service": (
        '[[nice_approvals]]\nname = "x"\nservice = "renal_dialisys"\nyear = 2025\n'
        "annual_cost_gbp = 1e6\n",
        "nice_approvals[0].service",
        "did you mean 'renal_dialysis'",
    ),
    "new treatments so costly their cases cannot be drawn": (
        "[time]\nend_year = 2043\n[demand]\ngrowth_multiplier = 3\n"
        + '[[nice_approvals]]\nname = "x"\nservice = "liver_transplant"\nyear = 2025\n'
        "annual_cost_gbp = 1e10\n" * 300,
        "demand.growth_multiplier",
        "high-cost",
    ),
    "seed beyond 64 bits": ("[run]\nseed = 18446744073709551616\n", "run.seed", "<="),
    "negative seed": ("[run]\nseed = -1\n", "run.seed", ">= 0"),
    "name with NUL": ('name = "a\\u0000b"\n', "name", "not allowed"),
    "name escaping results": ('name = "../../x"\n', "name", "not allowed"),
    "name of 300 characters": (f'name = "{"x" * 300}"\n', "name", "not allowed"),
    "year as text": ('[time]\nbase_year = "2024"\n', "time.base_year", "integer"),
    "one for true": ("[demand]\nstochastic = 1\n", "demand.stochastic", "boolean"),
    "month 0": ("[cpag]\nround_months = [0, 5]\n", "cpag.round_months[0]", ">= 1 and <= 12"),
    "month 13": ("[cpag]\nround_months = [13]\n", "cpag.round_months[0]", "<= 12"),
    "month -5": ("[cpag]\nround_months = [-5]\n", "cpag.round_months[0]", ">= 1"),
    "deeply nested arrays": (
        "[delegation]\nalso_delegate = " + "[" * 3000 + "]" * 3000 + "\n",
        None,
        "nested too deeply",
    ),
    "unknown region": (
        '[[delegation.waves]]\nname = "w"\nyear = 2025\nregions = ["Londn"]\n',
        "delegation.waves[0].regions",
        "London",
    ),
    "end before base": (
        "[time]\nbase_year = 2030\nend_year = 2026\n",
        "time",
        "must not be before",
    ),
    "year outside the data": ("[time]\nend_year = 2050\n", "time.end_year", "2018..2047"),
    "year outside the 2018-based data": (
        "[time]\nend_year = 2045\n[population]\nbasis = 2018\n",
        "time.end_year",
        "outside the 2018-based population data (2018..2043)",
    ),
    "unknown risk pool": (
        '[settlement]\nrisk_pool = "regionl"\n',
        "settlement.risk_pool",
        "did you mean 'regional'",
    ),
    "description with a newline": ('description = "a\\nb"\n', "description", "control"),
}


@pytest.mark.parametrize("body, field, fragment", BAD_SCENARIOS.values(), ids=BAD_SCENARIOS)
def test_validate_and_run_refuse_alike_in_one_line(tmp_path, body, field, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(f"extends = {BASELINE}\n{body}{SHORT if '[time]' not in body else ''}")
    out = tmp_path / "out"
    checked = one_line_exit_2(invoke("validate", path))
    ran = one_line_exit_2(invoke("run", path, "-n", 1, "-q", "--out", out / "x.nc"))
    assert checked == ran  # validate accepts exactly what run accepts
    assert f"{path}: " in ran and (field is None or f": {field}: " in ran), ran
    assert fragment in ran, ran
    assert not out.exists()  # nothing written, not even the folder


def test_an_error_in_a_parent_names_the_parent(tmp_path):
    parent = tmp_path / "parent.toml"
    parent.write_text(f"extends = {BASELINE}\n[envelope]\ngrowth = 0.9\n")
    child = tmp_path / "child.toml"
    child.write_text('extends = "parent.toml"\n[time]\nend_year = 2026\n')
    line = one_line_exit_2(invoke("validate", child))
    assert line.startswith(f"error: {parent}: envelope.growth:"), line


def test_a_long_extends_chain_is_refused(tmp_path):
    previous = json.loads(BASELINE)
    for i in range(40):
        path = tmp_path / f"c{i}.toml"
        path.write_text(f"extends = {json.dumps(str(previous))}\n")
        previous = path
    line = one_line_exit_2(invoke("validate", previous))
    assert "chain of more than 16 files" in line


def test_a_byte_order_mark_is_read_as_text(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(("\ufeff" + f"extends = {BASELINE}\n{SHORT}").encode("utf-8"))
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "option, where",
    [
        ("--out", "/proc/specsim-test/x.nc"),
        ("--out", "FILE/x.nc"),
        ("--out", "DIR"),
        ("--keep-replicates", "/proc/specsim-test.zarr"),
        ("--cache-dir", "FILE"),
    ],
)
def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch, option, where):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a folder")
    where = where.replace("FILE", str(a_file)).replace("DIR", str(tmp_path))
    monkeypatch.setattr(experiment, "run", lambda *a, **k: pytest.fail("ran before the check"))
    path = tmp_path / "s.toml"
    path.write_text(f"extends = {BASELINE}\n{SHORT}")
    args = ["run", path, "-n", 1, "-q", option, where]
    if option != "--out":
        args += ["--out", tmp_path / "x.nc"]
    line = one_line_exit_2(invoke(*args))
    assert option in line


def test_unreachable_scheduler_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(experiment, "CONNECT_TIMEOUT_S", 1)
    path = tmp_path / "s.toml"
    path.write_text(f"extends = {BASELINE}\n{SHORT}")
    result = invoke(
        "run", path, "-n", 2, "-q", "--scheduler", "tcp://127.0.0.1:9", "--out", tmp_path / "x.nc"
    )
    line = one_line_exit_2(result)
    assert "cannot reach the Dask scheduler" in line
    assert not (tmp_path / "x.nc").exists()


def test_compare_with_no_common_year_is_one_line(tmp_path):
    import numpy as np
    import xarray as xr

    def results(years: list[int], name: str) -> Path:
        ds = xr.Dataset(
            {
                "allocation": (("year", "icb"), np.ones((len(years), 1))),
                "retained_budget": ("year", np.ones(len(years))),
                "envelope": ("year", np.full(len(years), 2.0)),
                "distance_from_target": (("year", "icb"), np.zeros((len(years), 1))),
                "population": (("year", "icb"), np.ones((len(years), 1))),
            },
            coords={"year": years, "icb": ["E1"]},
            attrs={"scenario_name": name},
        )
        path = tmp_path / f"{name}.nc"
        ds.to_netcdf(path, engine="h5netcdf")
        return path

    line = one_line_exit_2(invoke("compare", results([2024, 2025], "a"), results([2030], "b")))
    assert "no year in common" in line


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        (
            "candidate_id,name,service_id,available_year,benefit_score,annual_cost_gbp\n"
            "C1,x,renal_dialysis,2025,10,lots\n",
            "annual_cost_gbp: line 2",
        ),
        (
            "candidate_id,name,service_id,available_year,benefit_score,annual_cost_gbp\n"
            "C1,x,renal_dialysis,2025,inf,10\n",
            "benefit_score",
        ),
        ("candidate_id,name\nC1,x\n", "missing column"),
    ],
)
def test_a_damaged_pipeline_file_is_one_line(tmp_path, text, fragment):
    path = tmp_path / "pipeline.csv"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load_pipeline(path)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_catalogue_with_an_infinite_spend_is_one_line(tmp_path):
    table = load_services()
    table.loc[0, "baseline_spend_gbp"] = math.inf
    path = tmp_path / "services.csv"
    table.to_csv(path, index=False)
    with pytest.raises(DataError, match="baseline_spend_gbp: values must be finite"):
        load_services(path)


# --- interrupts ----------------------------------------------------------------------------


def _child_run(tmp_path: Path, scenario: Path) -> subprocess.Popen:
    """`specsim run` in a child process, long enough to be interrupted mid-run."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "run",
            str(scenario),
            "-n",
            "5000",
            "-q",
            "--out",
            str(tmp_path / "out" / "x.nc"),
            "--keep-replicates",
            str(tmp_path / "out" / "r.zarr"),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_leave_nothing_behind(tmp_path, signum, code):
    pytest.importorskip("zarr")
    scenario = tmp_path / "s.toml"
    scenario.write_text(f"extends = {BASELINE}\n")
    child = _child_run(tmp_path, scenario)
    deadline = time.monotonic() + 60
    while not any((tmp_path / "out").glob(".r.zarr.*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the replicate store's temporary exists once the run is under way
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == code, stderr
    assert len(stderr.strip().splitlines()) == 1 and "no output file was written" in stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_a_temporary_left_by_a_killed_run_is_cleaned_by_the_next(tmp_path):
    from sim.atomic import atomic_path

    dead = 2**22 + 12345  # above the kernel's default pid_max: no such process
    stale = tmp_path / f".x.nc.{dead}.abcd.tmp"
    stale.mkdir()
    (stale / "x.nc").write_bytes(b"half a file")
    with atomic_path(tmp_path / "x.nc") as temporary:
        temporary.write_bytes(b"a whole file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nc"]


# --- random scenarios from the schema's own fields -----------------------------------------

SECTIONS = {
    name: field.annotation
    for name, field in Scenario.model_fields.items()
    if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")
}


def _numbers(field) -> st.SearchStrategy:
    """In range (mostly), out of range, non-finite, or of the wrong type."""
    low = next((getattr(m, a) for m in field.metadata for a in ("ge", "gt") if hasattr(m, a)), -1e6)
    high = next((getattr(m, a) for m in field.metadata for a in ("le", "lt") if hasattr(m, a)), 1e6)
    integer = field.annotation is int
    valid = st.integers(int(low), int(high)) if integer else st.floats(low, high)
    hostile = st.one_of(
        st.sampled_from([math.inf, -math.inf, math.nan, high * 10 + 1, low - 1, "7", True]),
        st.floats(allow_nan=True, allow_infinity=True),
    )
    return st.one_of(valid, valid, valid, valid, hostile)


def _value(field) -> st.SearchStrategy | None:
    annotation = field.annotation
    if annotation is bool:
        return st.one_of(st.booleans(), st.booleans(), st.sampled_from([0, 1, "yes"]))
    if annotation in (int, float):
        return _numbers(field)
    literal = getattr(annotation, "__args__", None)
    if getattr(annotation, "__origin__", None) is not None and literal is None:
        return None
    if literal and all(isinstance(a, str) for a in literal):
        return st.one_of(st.sampled_from(literal), st.text(max_size=8))
    return None


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


@st.composite
def scenarios(draw) -> str:
    lines = [f"extends = {BASELINE}", 'name = "fuzz"']
    for section, model in SECTIONS.items():
        chosen = []
        for name, field in model.model_fields.items():
            strategy = _value(field)
            if strategy is not None and draw(st.integers(0, 19)) == 0:
                chosen.append(f"{name} = {_toml(draw(strategy))}")
        if chosen:
            lines += [f"[{section}]", *chosen]
    return "\n".join(lines) + "\n"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=scenarios())
def test_random_scenarios_run_or_fail_in_one_line(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "fuzz.toml"
    path.write_text(text)
    out = folder / "out"
    checked = invoke("validate", path)
    ran = invoke("run", path, "-n", 1, "-q", "--out", out / "x.nc")
    assert checked.exit_code in (0, 2) and ran.exit_code in (0, 2), (text, ran.output)
    assert checked.exit_code == ran.exit_code, (text, checked.output, ran.output)
    for result in (checked, ran):
        assert result.exception is None or isinstance(result.exception, SystemExit), text
    if ran.exit_code == 2:
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
        assert not out.exists() or list(out.iterdir()) == []
    else:
        assert [p.name for p in out.iterdir()] == ["x.nc"]
