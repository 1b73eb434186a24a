"""The `specsim` command line: run scenarios, validate them, list them, describe the data,
compare results, explain the difference between two, export them for analysts.

Every user error (`SpecsimError`) becomes one line on stderr and exit code 2; Ctrl-C
becomes one line and exit code 130, SIGTERM (what `kill`, `timeout` and batch schedulers
send) one line and exit code 143. Output paths are checked before any work, and result
files are written atomically, so neither leaves a partial file behind. Heavy modules (the
engine, Dask, reference data) are imported inside the commands that need them, so
`specsim --help` stays fast.
"""

import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sim.errors import SpecsimError
from sim.years import financial_year

app = typer.Typer(
    name="specsim",
    help="Simulate NHS England specialised-services funding: allocations to ICBs, "
    "delegated vs retained budgets, demand and financial risk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED = "interrupted: stopped before finishing; no output file was written"
TERMINATED = "terminated (SIGTERM): stopped before finishing; no output file was written"
MAX_SEED = 2**63 - 1
MAX_DEFAULT_NAME = 120

# Variables shown by `specsim run`, summed over every dimension but year (and scenario).
SUMMARY_VARIABLES = (
    ("envelope", "envelope £m", 1e6),
    ("retained_budget", "retained £m", 1e6),
    ("allocation", "delegated £m", 1e6),
    ("spend_mean", "mean spend £m", 1e6),
    ("population", "population m", 1e6),
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so that every cleanup path runs the same."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr (red on a terminal; click strips colour otherwise), then exit."""
    typer.secho(" ".join(message.splitlines()), err=True, fg="red")
    raise typer.Exit(code)


def user_errors(command: F) -> F:
    """Turn user errors, Ctrl-C and SIGTERM into one line and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return command(*args, **kwargs)
        except SpecsimError as err:
            _fail(f"error: {err}")
        except Terminated:
            _fail(TERMINATED, code=143)
        except KeyboardInterrupt:
            _fail(INTERRUPTED, code=130)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from sim.version import specsim_version

        typer.echo(f"specsim {specsim_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Simulate NHS England specialised-services funding."""


def default_output(names: list[str]) -> Path:
    """results/<name>.nc, or <first>_vs_<second>... while the name stays short."""
    stem = "_vs_".join(names)
    if len(stem) > MAX_DEFAULT_NAME:
        stem = f"{names[0]}_and_{len(names) - 1}_more"
    return Path("results") / f"{stem}.nc"


@app.command()
@user_errors
def run(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario TOML file(s).")],
    replications: Annotated[
        int | None,
        typer.Option(
            "--replications",
            "-n",
            min=1,
            max=1_000_000,
            help="Replicates (default: run.replications).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, max=MAX_SEED, help="Random seed (default: run.seed).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="NetCDF output (default: results/<scenario>.nc)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Run on a local Dask cluster of N workers.")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Run on an existing Dask cluster, e.g. tcp://host:8786.")
    ] = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="Replicates per task (default: automatic)."),
    ] = None,
    keep_replicates: Annotated[
        Path | None, typer.Option(help="Also keep every replicate in this Zarr store.")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Keep deterministic paths in this folder between runs (off by default)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run scenario(s) and write the results Dataset.

    Several scenarios share one seed (the first file's run table) and so their
    random numbers: the differences between them are the policies' effects.
    """
    from sim.scenario import load_scenario

    loaded = [load_scenario(path) for path in scenarios]
    target = check_writable(out or default_output([s.name for s in loaded]), what="--out")
    if keep_replicates is not None:
        check_writable(keep_replicates, folder=True, what="--keep-replicates")
    if cache_dir is not None:
        check_writable(cache_dir, folder=True, what="--cache-dir")
    if scheduler is not None and "://" not in scheduler and ":" not in scheduler:
        raise SpecsimError(f"--scheduler {scheduler}: give an address such as tcp://host:8786")

    from sim import experiment
    from sim.atomic import write_netcdf
    from sim.checks import check_scenario
    from sim.plan import PlanCache
    from sim.reference import load_data

    if workers is not None:
        experiment.require_extra("distributed", "--workers")
        experiment.start_worker_server()  # imports on the other core while data loads

    cache = PlanCache(cache_dir)
    data = load_data()
    for scenario in loaded:
        check_scenario(scenario, data, cache)
    settings = loaded[0].run  # one seed for all: common random numbers across scenarios
    ds = experiment.run(
        loaded if len(loaded) > 1 else loaded[0],
        replications=replications if replications is not None else settings.replications,
        seed=seed if seed is not None else settings.seed,
        workers=workers,
        scheduler=scheduler,
        chunk_size=chunk_size,
        keep_replicates=keep_replicates,
        progress=not quiet,
        engine=experiment.sim_engine(cache),
    )
    write_netcdf(ds, target)
    console = Console()
    table = summary_table(ds)
    if table.row_count:
        console.print(table)
    console.print(f"wrote {target}", highlight=False, soft_wrap=True)  # paths never broken


def check_writable(path: Path, folder: bool = False, what: str = "--out") -> Path:
    from sim.atomic import check_writable as check

    return check(path, folder=folder, what=what)


def summary_table(ds: Any) -> Table:
    """National totals for the base year, +5, +10 and the end year, for whatever exists."""
    shown = [(n, label, scale) for n, label, scale in SUMMARY_VARIABLES if n in ds.data_vars]
    table = Table(
        title="England totals: delegated = allocations to ICBs, spend = mean over replicates"
    )
    if "year" not in ds.coords or not shown:
        return table
    years = [int(y) for y in ds["year"].values]
    picks = sorted({years[0], years[0] + 5, years[0] + 10, years[-1]} & set(years))
    scenarios = [str(s) for s in ds["scenario"].values] if "scenario" in ds.dims else [None]
    if scenarios != [None]:
        table.add_column("scenario")
    table.add_column("year")
    for _, label, _ in shown:
        table.add_column(label, justify="right")
    for name in scenarios:
        part = ds.sel(scenario=name) if name is not None else ds
        for year in picks:
            cells = [financial_year(year)]
            for var, _, scale in shown:
                da = part[var]
                value = float(da.sel(year=year).sum()) / scale if "year" in da.dims else None
                cells.append("" if value is None else f"{value:,.2f}")
            table.add_row(*([name] if name is not None else []), *cells)
    return table


def describe(scenario: Any) -> str:
    """One line saying what a validated scenario will do."""
    waves = len(scenario.delegation.waves)
    population = scenario.population.mode
    if population == "projection":
        population = f"ONS {scenario.population.variant} projection"
    return (
        f"{scenario.name}: {scenario.time.base_year}..{scenario.time.end_year}, {population}, "
        f"{scenario.allocation.formula} formula, {waves} delegation wave(s), "
        f"{scenario.run.replications} replications (seed {scenario.run.seed}), "
        f"sha256 {scenario.sha256[:12]}"
    )


@app.command()
def validate(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario TOML file(s) to check.")],
) -> None:
    """Check scenario files exactly as `run` would, without running them; exit code 2 if
    any is invalid."""
    failed = False
    for path in scenarios:
        try:
            scenario = _validate_one(path)
        except SpecsimError as err:
            typer.secho(" ".join(f"error: {err}".splitlines()), err=True, fg="red")
            failed = True
        except KeyboardInterrupt:
            _fail(INTERRUPTED, code=130)
        else:
            typer.echo(f"OK {path}: {describe(scenario)}")
    if failed:
        raise typer.Exit(2)


def _validate_one(path: Path) -> Any:
    from sim.checks import check_scenario
    from sim.reference import load_data
    from sim.scenario import load_scenario

    scenario = load_scenario(path)
    check_scenario(scenario, load_data())
    return scenario


@app.command("scenarios")
@user_errors
def list_scenarios_command(
    folder: Annotated[Path, typer.Option(help="Folder of scenario files.")] = Path("scenarios"),
) -> None:
    """List the scenarios in a folder, with their descriptions."""
    from sim.scenario import list_scenarios

    table = Table(title=f"Scenarios in {folder}")
    table.add_column("name")
    table.add_column("description")
    table.add_column("file", overflow="fold")
    for info in list_scenarios(folder):
        description = (
            Text(f"invalid: {info.error}", style="red") if info.error else Text(info.description)
        )
        table.add_row(Text(info.name), description, Text(str(info.path)))
    Console().print(table)


@app.command()
@user_errors
def data() -> None:
    """Describe the packaged reference data, its version, sources and licence."""
    from sim import reference

    console = Console()
    console.print(as_table(reference.describe_data(), title="Reference data"))
    console.print(f"data version: {reference.data_version()}", highlight=False)
    licence = reference.load_reference().attrs.get("licence")
    if licence:
        console.print(Text(f"licence: {licence}"))


@app.command()
@user_errors
def compare(
    results: Annotated[
        list[Path], typer.Argument(help="Results .nc files; the first is the base.")
    ],
    report: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Write the comparison tables as CSV here.")
    ] = None,
    show_small_counts: Annotated[
        bool, typer.Option(help="Do not suppress patient counts under 30 (disclosure control).")
    ] = False,
) -> None:
    """Compare results files: national totals, ICB gains and losses, financial risk."""
    if report is not None:
        check_writable(report, what="--report")
    if csv is not None:
        check_writable(csv, folder=True, what="--csv")
    from sim.report import compare_files

    table = compare_files(
        results, report=report, csv_dir=csv, suppress_small_counts=not show_small_counts
    )
    console = Console()
    console.print(as_table(table, title="Comparison"))
    if report is not None:
        console.print(f"wrote {report}", highlight=False, soft_wrap=True)
    if csv is not None:
        console.print(f"wrote CSV tables to {csv}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def export(
    results: Annotated[Path, typer.Argument(help="Results .nc file (one or several scenarios).")],
    xlsx: Annotated[
        Path | None, typer.Option(help="Write an Excel workbook here (a sheet per table).")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Write the tidy long table results_long.csv here.")
    ] = None,
) -> None:
    """Export results for analysts: an Excel workbook laid out like NHS England's allocation
    workbooks (--xlsx) and/or one tidy long CSV table (--csv)."""
    if xlsx is None and csv is None:
        raise SpecsimError("export: give --xlsx FILE, --csv DIR or both")
    if xlsx is not None:
        check_writable(xlsx, what="--xlsx")
        if xlsx.suffix.lower() != ".xlsx":
            raise SpecsimError(f"--xlsx {xlsx}: give a file name ending in .xlsx")
    if csv is not None:
        check_writable(csv, folder=True, what="--csv")
    from sim.export import export_file

    for path in export_file(results, xlsx=xlsx, csv_dir=csv):
        typer.echo(f"wrote {path}")  # one line, however long the path


@app.command("explain")
@user_errors
def explain_command(
    results: Annotated[
        list[Path],
        typer.Argument(help="Results .nc files: A then B, or one file holding two scenarios."),
    ],
    icb: Annotated[
        list[str] | None,
        typer.Option(
            "--icb",
            help="An ICB to show (E54 or ODS code, or name); repeat for more. "
            "Default: the five whose allocation changes most.",
        ),
    ] = None,
    year: Annotated[
        int | None,
        typer.Option(help="Financial year to explain, by its start (default: the last)."),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="shapley (each factor's effect averaged over every order) or one-at-a-time "
            "(each factor switched alone, the rest named interaction)."
        ),
    ] = "shapley",
    csv: Annotated[
        Path | None, typer.Option(help="Write attribution.csv and attribution_notes.txt here.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write an HTML page of it here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Explain why each ICB's allocation, target and expected delegated spend differ
    between two scenarios, split into named factors that add up to the pound."""
    if report is not None:
        check_writable(report, what="--report")
    if csv is not None:
        check_writable(csv, folder=True, what="--csv")
    from sim.attribution import METHODS, explain, resolve_icbs

    if method not in METHODS:
        raise SpecsimError(f"--method {method}: unknown method; allowed: {', '.join(METHODS)}")
    if len(results) > 2:
        raise SpecsimError("explain: give two results files (A, then B), or one holding two")
    if icb:
        import pandas as pd

        from sim.reference import load_data

        resolve_icbs(icb, pd.concat(load_data().icbs.values()))  # a typo fails before work
    explanation = explain(*results, method=method, progress=not quiet)
    year = explanation.year(year)
    from sim.attribution_report import chosen_icbs, write_explanation_report

    icbs = chosen_icbs(explanation, icb or (), year)
    a, b = explanation.names
    summary = explanation.summary(year, icbs)
    summary[summary.columns[2:]] = summary[summary.columns[2:]] / 1e6
    title = f"{b} minus {a}, {financial_year(year)}, £m ({explanation.method})"
    Console().print(as_table(summary, title=title))
    peak = explanation.largest_change_year()
    if peak != year:
        typer.echo(f"the allocations differ most in {financial_year(peak)} (--year {peak})")
    if csv is not None:
        for path in explanation.to_csv(csv, year):
            typer.echo(f"wrote {path}")  # one line, however long the path
    if report is not None:
        typer.echo(f"wrote {write_explanation_report(explanation, report, icbs, year)}")


def as_table(value: Any, title: str | None = None) -> Any:
    """A DataFrame or list of row dicts as a rich Table; anything else is printed as is.

    A meaningful index (not the default 0..n-1) becomes the first column(s).
    """
    import pandas as pd

    if isinstance(value, list) and all(isinstance(row, dict) for row in value):
        value = pd.DataFrame(value)
    if not isinstance(value, pd.DataFrame):
        return value
    table = Table(title=title)
    show_index = not isinstance(value.index, pd.RangeIndex)
    for name in value.index.names if show_index else []:
        table.add_column("" if name is None else str(name), overflow="fold")
    for column in value.columns:
        numeric = value[column].dtype.kind in "iuf"
        table.add_column(str(column), justify="right" if numeric else "left", overflow="fold")
    for key, row in value.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        labels = [Text(str(k)) for k in keys] if show_index else []
        table.add_row(*labels, *(Text(_cell(v)) for v in row))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


DASK_OPTIONS = ("--workers", "--scheduler", "--keep-replicates")


def entry() -> None:
    """The `specsim` console script.

    When no option asks for Dask, `import dask` is made to fail at once for this process:
    with Dask installed, xarray otherwise imports dask, distributed and parts of scipy
    (about half a second) to probe for dask arrays and schedulers, in a run that never
    uses them. Decided once, before anything imports xarray; the Python API is untouched.
    """
    if not any(arg.split("=")[0] in DASK_OPTIONS for arg in sys.argv[1:]):
        for name in ("dask", "distributed"):
            sys.modules.setdefault(name, None)  # type: ignore[assignment]
    app()


if __name__ == "__main__":
    entry()
