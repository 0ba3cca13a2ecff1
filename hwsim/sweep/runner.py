"""Run a sweep: expand it, skip the rows already finished, price the rest in a local process
pool (default) or on Dask, write each row as it finishes, and assemble the table."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from hwsim.errors import SpecError
from hwsim.sim.von_neumann import search_key
from hwsim.specs.arch import VonNeumannSpec
from hwsim.specs.sweep import SweepSpec
from hwsim.sweep import store
from hwsim.sweep.expand import Expansion, Point, Row, expand
from hwsim.sweep.lifeline import dask_client
from hwsim.sweep.worker import Task, price, price_in_worker, price_on_dask, start_worker

logger = logging.getLogger(__name__)

Result = tuple[str, dict[str, Any]]
IN_FLIGHT_PER_JOB = 2  # tasks queued per worker: keeps it busy, bounds what a crash loses
MAX_POINTS_PER_TASK = 25  # a task's points at most (0.5 s of AlexNet's three rules)
POOL_RESTARTS = 3


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def max_workers() -> int:
    """Local worker processes at most: 4 per CPU this process may use (beyond that they only
    contend for the CPUs, each holding a copy of the traces)."""
    return 4 * default_jobs()


def check_workers(value: object, name: str) -> None:
    """SpecError unless `value` (a count of local workers) is None or 1 … max_workers()."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name}: expected a whole number ≥ 1 (got {value!r})")
    if value > max_workers():
        raise SpecError(
            f"{name}: at most {max_workers()} local worker processes (4 per CPU this process "
            f"may use) (got {value:,})"
        )


def _by_point(tasks: list[Row]) -> list[list[Row]]:
    """The rows grouped by point, in order: a point's workloads run together on one worker."""
    groups: dict[str, list[Row]] = {}
    for row in tasks:
        groups.setdefault(row.point.key, []).append(row)
    return list(groups.values())


def _search_key(point: Point) -> Hashable:
    """Points with equal keys reuse what the mapping search caches (a von Neumann spec's
    array, bandwidths, precision and objective); any other point's key is its own."""
    if isinstance(point.arch, VonNeumannSpec):
        return search_key(point.arch, point.energies)
    return point.key


def _array_key(point: Point) -> Hashable:
    """Points with equal keys share the mapping search's candidate tilings (a von Neumann
    spec's array and precision: hwsim.sim.loopnest._candidates_on), whatever their
    bandwidths; any other point's key is its own."""
    if isinstance(point.arch, VonNeumannSpec):
        return (point.arch.pe_array, point.arch.precision)
    return point.key


def _bundles(tasks: list[Row], workers: int) -> list[list[list[Row]]]:
    """The points to run (each a list of its rows), as tasks: up to MAX_POINTS_PER_TASK
    points that share a search key (hwsim.sim.von_neumann.search_key: a buffer-size axis'
    points) run one after another on one worker, which then searches each op's mappings once
    for all of them instead of once on every worker (or again once the cache has evicted
    them); tasks ordered by their key's first point, the keys of one array together.  At
    least 4 tasks per worker where there are enough points."""
    points = _by_point(tasks)
    size = max(1, min(MAX_POINTS_PER_TASK, len(points) // (4 * workers)))
    by_key: dict[Hashable, list[list[Row]]] = {}
    for rows in points:
        by_key.setdefault(_search_key(rows[0].point), []).append(rows)
    # Keys of one array next to each other, so that a worker's next task is likely to find
    # the candidates of its GEMMs still cached.
    first: dict[Hashable, int] = {}
    for index, group in enumerate(by_key.values()):
        first.setdefault(_array_key(group[0][0].point), index)
    groups = sorted(by_key.values(), key=lambda group: first[_array_key(group[0][0].point)])
    return [group[start : start + size] for group in groups for start in range(0, len(group), size)]


def _task(bundle: list[list[Row]]) -> Task:
    """A pool task: each point's spec, energies and (row key, workload index) pairs."""
    return [
        (rows[0].point.arch, rows[0].point.energies, [(r.key, r.workload_index) for r in rows])
        for rows in bundle
    ]


def _serial(tasks: list[Row]) -> Iterator[Result]:
    """`jobs=1`: in this process, one row after the other (no start-up, easy to debug)."""
    for row in tasks:
        yield row.key, price(row.point.arch, row.point.energies, row.workload.trace)


def _error(exc: BaseException) -> dict[str, Any]:
    return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def _died(rows: list[Row], exc: BaseException) -> Iterator[Result]:
    message = f"a worker process died while this point or another was running ({exc})"
    for row in rows:
        yield row.key, {"status": "error", "error": message}


Meanwhile = list[Callable[[], None]]  # work for this process, each done once (popped)


def _do(meanwhile: Meanwhile) -> None:
    while meanwhile:
        meanwhile.pop(0)()


def _one_pool(
    queue: deque[list[list[Row]]], traces: list, jobs: int, meanwhile: Meanwhile
) -> Generator[Result, None, bool]:
    """Run tasks from `queue` on one pool until it is empty or the pool breaks (a worker
    died: its points are recorded as errors); True if it broke.  `meanwhile` is done once the
    first tasks are submitted, while the workers start."""
    broken = False
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=get_context("spawn"),
        initializer=start_worker,
        initargs=(traces,),
    ) as pool:
        in_flight: dict[Future, list[Row]] = {}  # → the task's rows
        try:
            while (queue and not broken) or in_flight:
                while queue and not broken and len(in_flight) < IN_FLIGHT_PER_JOB * jobs:
                    try:
                        future = pool.submit(price_in_worker, _task(queue[0]))
                    except BrokenProcessPool:  # the next pool runs this task
                        broken = True
                        break
                    in_flight[future] = [row for rows in queue.popleft() for row in rows]
                _do(meanwhile)
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    rows = in_flight.pop(future)
                    try:
                        yield from future.result()
                    except BrokenProcessPool as exc:
                        broken = True
                        yield from _died(rows, exc)
                    except Exception as exc:  # e.g. a result that cannot be pickled
                        for row in rows:
                            yield row.key, _error(exc)
        finally:
            for future in in_flight:
                future.cancel()
    return broken


def _pool(
    tasks: list[Row], expansion: Expansion, jobs: int, meanwhile: Meanwhile
) -> Iterator[Result]:
    """A process pool (spawned workers, one BLAS thread each); traces sent once per worker.

    A task is one point with its workloads.  At most `IN_FLIGHT_PER_JOB × jobs` points are
    submitted at a time; `meanwhile` runs here once the first are.  If a worker process
    dies (killed, out of memory), the rows in flight are recorded as errors and a fresh pool
    takes the rest, up to `POOL_RESTARTS` times.
    """
    traces = [workload.trace for workload in expansion.workloads]
    queue = deque(_bundles(tasks, jobs))
    restarts = 0
    while queue:
        broken = yield from _one_pool(queue, traces, jobs, meanwhile)
        if not broken:
            continue
        restarts += 1
        logger.warning(
            "sweep: a worker process died; %s",
            "starting a new pool" if restarts <= POOL_RESTARTS and queue else "giving up",
        )
        if restarts > POOL_RESTARTS:
            for bundle in queue:
                for row in (row for rows in bundle for row in rows):
                    yield (
                        row.key,
                        {
                            "status": "error",
                            "error": f"not run: worker processes died {restarts} times",
                        },
                    )
            return


def _dask(
    tasks: list[Row], expansion: Expansion, scheduler: str | None, local_workers: int | None
) -> Iterator[Result]:
    """Dask: an existing scheduler, or a LocalCluster of `local_workers` processes; each trace
    scattered once to every worker."""
    with dask_client(scheduler, local_workers) as client:
        from dask.distributed import as_completed as dask_completed

        traces = client.scatter([w.trace for w in expansion.workloads], broadcast=True)
        bundles = _bundles(tasks, max(1, len(client.scheduler_info().get("workers", {}))))
        futures = [
            client.submit(
                price_on_dask,
                [
                    (
                        rows[0].point.arch,
                        rows[0].point.energies,
                        [(row.key, traces[row.workload_index]) for row in rows],
                    )
                    for rows in bundle
                ],
                key=f"hwsim-{bundle[0][0].key}",
                pure=False,
            )
            for bundle in bundles
        ]
        by_key = {
            future.key: [row for rows in bundle for row in rows]
            for future, bundle in zip(futures, bundles, strict=True)
        }
        for future in dask_completed(futures):
            try:
                yield from future.result()
            except Exception as exc:  # a lost worker: record it
                for row in by_key[future.key]:
                    yield row.key, _error(exc)


def _results(
    tasks: list[Row],
    expansion: Expansion,
    where: tuple[int | None, str | None, int | None],
    meanwhile: Meanwhile,
) -> Iterator[Result]:
    """The rows' results from the pool (`where`: jobs, scheduler, dask_local), Dask or this
    process; `meanwhile` is done while a pool's workers start, or first."""
    jobs, scheduler, dask_local = where
    jobs = min(jobs or default_jobs(), len({row.point.key for row in tasks}))
    if scheduler is None and dask_local is None and jobs > 1:
        return _pool(tasks, expansion, jobs, meanwhile)
    _do(meanwhile)
    if scheduler is not None or dask_local is not None:
        return _dask(tasks, expansion, scheduler, dask_local)
    return _serial(tasks)


def run_sweep(
    sweep: SweepSpec | str | Path,
    out: str | Path,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Run the sweep `sweep` (a file or a SweepSpec) into the folder `out`; the results table.

    Every point is validated before any runs (one SpecError lists every problem).  Rows
    already finished in `out` (status ok) are skipped; the others run in a process pool of
    `jobs` workers (default: the CPUs this process may use; 1 runs them in this process), on
    the Dask scheduler at
    `scheduler`, or on a local Dask cluster of `dask_local` workers.  `on_start(to_run,
    skipped)` is called once, `on_result(row_key, result)` as each row finishes.  A failing
    row is recorded with status error; it does not stop the others.
    """
    if scheduler is not None and dask_local is not None:
        raise SpecError("give --scheduler or --dask-local, not both")
    for name, value in (("jobs", jobs), ("dask_local", dask_local)):
        check_workers(value, name)
    out = Path(out)
    expansion = expand(sweep)
    store.prepare(out, expansion)
    # Rows' records read or written: not re-read.
    known: dict[str, dict[str, Any] | None] = dict(
        store.finished_points(out, [row.key for row in expansion.rows])
    )
    pending: dict[str, Row] = {}
    for row in expansion.rows:
        if row.key not in known:
            pending.setdefault(row.key, row)
    skipped = len(known)
    tasks = list(pending.values())
    if on_start is not None:
        on_start(len(tasks), skipped)
    logger.info(
        "sweep %s: %d rows to run, %d already finished", expansion.spec.name, len(tasks), skipped
    )
    specs: Meanwhile = [partial(store.write_specs, out, expansion)]  # the points' spec files
    if tasks:
        results = _results(tasks, expansion, (jobs, scheduler, dask_local), specs)
        for key, result in results:
            known[key] = store.write_point(out, key, result)
            if on_result is not None:
                on_result(key, result)
    _do(specs)  # if no task ran, or no pool started
    table = store.assemble(out, expansion, known)
    store.write_table(out, table)
    return table
