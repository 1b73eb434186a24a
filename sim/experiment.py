"""Ensembles of replicates: chunking, execution (in-process or Dask) and streamed reduction.

Replicates are split into chunks only for execution. Each replicate `i` draws from its own
stream `SeedSequence(seed, spawn_key=(i,))` inside the engine, and every scenario of a call
gets the same seed, so scenarios share random streams (common random numbers) and results
never depend on chunking. Each scenario's deterministic path is computed once, here, and
sent to the workers with the chunks (it is all a worker needs: it reads no data files).
Chunks are folded into `sim.results.Summariser` strictly in replicate order (a chunk that
finishes early waits for its predecessors), which makes the summaries bit-identical for
any chunk size, worker count or scheduler. At most `window` chunks are outstanding at once,
so memory is bounded by the chunks in flight, not by the number of replicates.
"""

from __future__ import annotations

import math
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sim.atomic import atomic_path
from sim.errors import SpecsimError
from sim.results import Summariser, combine_scenarios, finalise
from sim.scenario import Scenario

ScenarioLike = Scenario | str | os.PathLike

MAX_CHUNK = 100  # replicates per chunk: bounds a worker's memory (engine: ~2 MB each)
MAX_TASKS = 400  # chunks per call: keeps the Dask task graph in the hundreds
CHUNKS_PER_SLOT = 4  # enough chunks per worker thread to balance load
CONNECT_TIMEOUT_S = 10
ZARR_FORMAT = 2  # widely read; text coordinates and consolidated metadata are in its spec


@dataclass(frozen=True)
class Engine:
    """What `run` needs from a simulator: the real one (`sim_engine`) or a test's fake.

    `prepare(scenario)` runs once per scenario in the caller's process and returns what
    the chunks need (it is sent to every worker); `deterministic(scenario, prepared)` gives
    the variables shared by every replicate; `replicates(scenario, prepared, start, stop,
    seed)` gives the per-replicate variables of replicates start..stop-1.
    """

    prepare: Callable[[Scenario], Any]
    deterministic: Callable[[Scenario, Any], xr.Dataset]
    replicates: Callable[[Scenario, Any, int, int, int], xr.Dataset]
    provenance: Callable[[], tuple[str, str]]
    """(data_version, sources) of the reference data the engine used."""


def sim_engine(cache: Any = None) -> Engine:
    """The SimPy engine on the packaged data, with one `sim.plan.PlanCache` for the call
    (a new one in memory by default)."""
    from sim.plan import PlanCache, plan_scenario
    from sim.reference import load_data
    from sim.simulate import deterministic_of_plan, simulate_replicates

    cache = cache if cache is not None else PlanCache()

    def provenance() -> tuple[str, str]:
        attrs = load_data().dataset.attrs
        return str(attrs["data_version"]), str(attrs.get("sources", ""))

    return Engine(
        prepare=lambda scenario: plan_scenario(scenario, load_data(), cache),
        deterministic=deterministic_of_plan,
        replicates=simulate_replicates,
        provenance=provenance,
    )


@dataclass(frozen=True)
class Task:
    """One chunk of one scenario: replicates start..stop-1 (global indices)."""

    scenario: int
    chunk: int
    start: int
    stop: int


def default_chunk_size(replications: int, n_scenarios: int, slots: int) -> int:
    """Small enough to balance `slots` worker threads, large enough to keep tasks in hundreds."""
    size = min(MAX_CHUNK, math.ceil(replications / (CHUNKS_PER_SLOT * slots)))
    size = max(size, math.ceil(replications / max(1, MAX_TASKS // n_scenarios)))
    return max(1, size)


def plan(replications: int, n_scenarios: int, chunk_size: int) -> list[Task]:
    """Tasks ordered chunk-major so all scenarios advance together."""
    tasks = []
    for chunk, start in enumerate(range(0, replications, chunk_size)):
        stop = min(start + chunk_size, replications)
        tasks.extend(Task(s, chunk, start, stop) for s in range(n_scenarios))
    return tasks


def load(scenario: ScenarioLike) -> Scenario:
    """A Scenario as given, or loaded and validated from a TOML path."""
    if isinstance(scenario, Scenario):
        return scenario
    from sim.scenario import load_scenario

    return load_scenario(scenario)


class ReplicateStore:
    """Per-replicate output in Zarr, written chunk by chunk as chunks are folded, with the
    coordinates (year, ICB codes and names, portfolio), units and long names of the schema,
    and consolidated metadata. The caller gives a temporary path (`sim.atomic.atomic_path`)
    renamed into place only on success."""

    def __init__(self, path: Path, replications: int, chunk_size: int) -> None:
        self.tmp = path
        self.replications = replications
        self.chunk_size = chunk_size
        self.started: set[str | None] = set()

    def write(self, group: str | None, task: Task, chunk: xr.Dataset) -> None:
        chunk = chunk.transpose("replicate", ...)
        if group not in self.started:
            self._create(group, chunk)
            self.started.add(group)
        region = chunk.drop_vars(
            [n for n, v in chunk.variables.items() if "replicate" not in v.dims]
        )
        region.to_zarr(
            self.tmp,
            group=group,
            region={"replicate": slice(task.start, task.stop)},
            consolidated=False,
            zarr_format=ZARR_FORMAT,
        )

    def _create(self, group: str | None, chunk: xr.Dataset) -> None:
        """Pre-create every variable with the full replicate dimension (metadata only)."""
        import dask.array as da

        coords = {k: v for k, v in chunk.coords.items() if "replicate" not in v.dims}
        template = xr.Dataset(coords={"replicate": np.arange(self.replications), **coords})
        encoding = {}
        for name, var in chunk.data_vars.items():
            shape = (self.replications, *var.shape[1:])
            chunks = (self.chunk_size, *var.shape[1:])
            template[name] = xr.DataArray(
                da.zeros(shape, chunks=chunks, dtype=var.dtype), dims=var.dims, attrs=var.attrs
            )
            encoding[name] = {"chunks": chunks}
        mode = "w" if not self.started else "a"
        template.to_zarr(
            self.tmp,
            group=group,
            mode=mode,
            compute=False,
            encoding=encoding,
            consolidated=False,
            zarr_format=ZARR_FORMAT,
        )

    def close(self) -> None:
        """Consolidate the metadata of every group, so readers open the store in one read."""
        import zarr

        for group in self.started - {None}:
            zarr.consolidate_metadata(str(self.tmp), path=group, zarr_format=ZARR_FORMAT)
        zarr.consolidate_metadata(str(self.tmp), zarr_format=ZARR_FORMAT)


class Ensemble:
    """Runs the tasks of one call and folds their results, in replicate order, per scenario."""

    def __init__(
        self,
        scenarios: list[Scenario],
        prepared: list[Any],
        deterministic: list[xr.Dataset],
        replications: int,
        seed: int,
        chunk_size: int,
        engine: Engine,
        store: ReplicateStore | None,
        progress: bool,
    ) -> None:
        self.scenarios = scenarios
        self.prepared = prepared
        self.replications = replications
        self.seed = seed
        self.engine = engine
        self.store = store
        self.progress = progress
        self.tasks = plan(replications, len(scenarios), chunk_size)
        self.next_chunk = [0] * len(scenarios)
        self.pending: list[dict[int, tuple[Task, xr.Dataset]]] = [{} for _ in scenarios]
        self.summaries = [Summariser(ds) for ds in deterministic]
        self.folded = 0

    def args(self, task: Task, prepared: Any) -> tuple:
        return (self.scenarios[task.scenario], prepared, task.start, task.stop, self.seed)

    def run(self, results: Iterator[tuple[Task, xr.Dataset]]) -> list[xr.Dataset]:
        from rich.console import Console
        from rich.progress import Progress

        total = self.replications * len(self.scenarios)
        console = Console(stderr=True)
        with Progress(console=console, disable=not self.progress, transient=True) as bar:
            job = bar.add_task("replicates", total=total)
            for task, result in results:
                self.pending[task.scenario][task.chunk] = (task, result)
                bar.advance(job, self._fold(task.scenario))
        return [s.result() for s in self.summaries]

    def _fold(self, s: int) -> int:
        """Fold every chunk of scenario s that is next in order; returns replicates folded."""
        done = 0
        while self.next_chunk[s] in self.pending[s]:
            task, result = self.pending[s].pop(self.next_chunk[s])
            self.summaries[s].add(result)
            if self.store is not None:
                group = self.scenarios[s].name if len(self.scenarios) > 1 else None
                self.store.write(group, task, result)
            self.next_chunk[s] += 1
            self.folded += 1
            done += task.stop - task.start
        return done

    def in_process(self) -> Iterator[tuple[Task, xr.Dataset]]:
        for task in self.tasks:
            yield task, self.engine.replicates(*self.args(task, self.prepared[task.scenario]))

    def on_dask(self, client, window: int) -> Iterator[tuple[Task, xr.Dataset]]:
        """Submit at most `window` unfolded chunks at a time; yield them as they finish.

        Each scenario's prepared plan is scattered to every worker once, so a chunk ships
        only its replicate range.
        """
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        shared = [client.scatter(p, broadcast=True, hash=False) for p in self.prepared]
        queue = iter(self.tasks)
        submitted = 0
        futures = as_completed(with_results=True)
        which = {}

        def top_up() -> None:
            nonlocal submitted
            while submitted - self.folded < window:
                task = next(queue, None)
                if task is None:
                    return
                key = f"specsim-{token}-{task.scenario}-{task.chunk}"
                args = self.args(task, shared[task.scenario])
                future = client.submit(self.engine.replicates, *args, key=key, pure=False)
                which[future.key] = task
                futures.add(future)
                submitted += 1

        top_up()
        for future, result in futures:
            task = which.pop(future.key)
            future.release()
            yield task, result
            top_up()


def require_extra(module: str, option: str) -> None:
    """Fail in one line, before any work, when an optional dependency is missing."""
    if find_spec(module) is None:
        raise SpecsimError(
            f"{option} needs the optional package '{module}': "
            "pip install -e '.[distributed]' (or specsim[distributed])"
        )


WORKER_CONFIG = {
    # Chunks are homogeneous numpy work: the statistical profiler's stack sampling and
    # glibc's eager memory trimming cost the workers 10-20% and tell nothing here.
    "distributed.worker.profile.enabled": False,
    "distributed.worker.multiprocessing-method": "forkserver",
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


def start_worker_server() -> None:
    """Start the process local Dask workers fork from, with the engine already imported.

    A new worker then runs its first chunk at once instead of spending a second on
    imports, and safely (unlike a fork of this multi-threaded process). The server imports
    in its own process: called early (the CLI does, before reading data), it works on the
    other core while this one prepares the scenarios.
    """
    import dask
    from distributed.utils import get_mp_context

    with dask.config.set(WORKER_CONFIG):
        context = get_mp_context()  # Dask sets its own preload list on the first call only
    context.set_forkserver_preload(["distributed", "sim.simulate"])
    from multiprocessing import forkserver

    forkserver.ensure_running()


def _connect(workers: int | None, scheduler: str | None):
    """(client, cluster or None) for a local cluster of `workers` processes or an address."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise SpecsimError(
                f"--scheduler {scheduler}: cannot reach the Dask scheduler within "
                f"{CONNECT_TIMEOUT_S} s ({reason})"
            ) from None
        cluster = None
    else:
        start_worker_server()
        with dask.config.set(WORKER_CONFIG):
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
        client = Client(cluster)
    note = "" if find_spec("bokeh") else " (served only if the bokeh package is installed)"
    print(f"Dask dashboard: {client.dashboard_link}{note}", file=sys.stderr)
    return client, cluster


@dataclass(frozen=True)
class Settings:
    """How one call runs: replicates, seed, where, in what chunks, what it keeps."""

    replications: int
    seed: int
    workers: int | None
    scheduler: str | None
    chunk_size: int | None
    keep_replicates: str | os.PathLike | None
    progress: bool

    @property
    def on_dask(self) -> bool:
        return self.workers is not None or self.scheduler is not None


def _settings(loaded: list[Scenario], replications, seed, **options) -> Settings:
    """Defaults from the first scenario's `[run]`, and optional packages checked at once."""
    names = [s.name for s in loaded]
    if len(set(names)) != len(names):
        raise SpecsimError(f"scenario names must differ to be compared: {names}")
    replications = loaded[0].run.replications if replications is None else replications
    if replications < 1:
        raise SpecsimError(f"replications must be at least 1 (got {replications})")
    settings = Settings(replications, loaded[0].run.seed if seed is None else seed, **options)
    if settings.on_dask:
        require_extra("distributed", "--workers/--scheduler")
    if settings.keep_replicates is not None:
        require_extra("zarr", "--keep-replicates")
        require_extra("dask", "--keep-replicates")
    return settings


def _ensemble_run(
    loaded: list[Scenario], engine: Engine, settings: Settings, stack: ExitStack
) -> list[xr.Dataset]:
    """Prepare every scenario while a Dask cluster (if any) starts, then run the chunks."""
    client = None
    with ThreadPoolExecutor(max_workers=1) as starter:
        connecting = (
            starter.submit(_connect, settings.workers, settings.scheduler)
            if settings.on_dask
            else None
        )
        try:
            prepared = [engine.prepare(s) for s in loaded]
            deterministic = [
                engine.deterministic(s, p) for s, p in zip(loaded, prepared, strict=True)
            ]
        finally:
            if connecting is not None:
                client, cluster = connecting.result()
                if cluster is not None:
                    stack.callback(cluster.close)
                stack.callback(client.close)  # runs first: callbacks unwind last-in first-out
    slots = sum(client.nthreads().values()) if client is not None else 1
    size = settings.chunk_size or default_chunk_size(settings.replications, len(loaded), slots)
    store = None
    if settings.keep_replicates is not None:
        tmp = stack.enter_context(atomic_path(settings.keep_replicates))
        store = ReplicateStore(tmp, settings.replications, size)
    ensemble = Ensemble(
        loaded,
        prepared,
        deterministic,
        settings.replications,
        settings.seed,
        size,
        engine,
        store,
        settings.progress,
    )
    if client is None:
        summaries = ensemble.run(ensemble.in_process())
    else:
        summaries = ensemble.run(ensemble.on_dask(client, window=CHUNKS_PER_SLOT * slots))
    if store is not None:
        store.close()
    return summaries


def run(
    scenarios: ScenarioLike | Sequence[ScenarioLike],
    replications: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    keep_replicates: str | os.PathLike | None = None,
    progress: bool = True,
    engine: Engine | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> xr.Dataset:
    """Run an ensemble of `replications` replicates of one or several scenarios.

    A single scenario gives its summary Dataset; a list gives one Dataset with a `scenario`
    dimension named by scenario name. `workers=N` starts a local Dask cluster of N
    single-threaded processes, `scheduler` connects to an existing one; otherwise in-process.
    `replications` and `seed` default to the first scenario's `[run]` section (one seed for
    all: common random numbers). `keep_replicates` also writes every replicate's variables
    to that Zarr path (one group per scenario when several). `cache_dir` keeps deterministic
    paths on disk between runs. `engine` replaces the SimPy engine (tests, benchmarks).
    """
    several = isinstance(scenarios, list | tuple)
    loaded = [load(s) for s in (scenarios if several else [scenarios])]
    settings = _settings(
        loaded,
        replications,
        seed,
        workers=workers,
        scheduler=scheduler,
        chunk_size=chunk_size,
        keep_replicates=keep_replicates,
        progress=progress,
    )
    if engine is None:
        from sim.plan import PlanCache

        engine = sim_engine(PlanCache(cache_dir))
    with ExitStack() as stack:
        summaries = _ensemble_run(loaded, engine, settings, stack)
    provenance = engine.provenance()
    datasets = [
        finalise(ds, scenario, settings.seed, settings.replications, provenance)
        for ds, scenario in zip(summaries, loaded, strict=True)
    ]
    return combine_scenarios(datasets) if several else datasets[0]


__all__ = ["Engine", "run", "sim_engine"]
