"""Run a sweep: expand it, skip the rows already finished, price the rest in a local process
pool (default) or on Dask, write each row as it finishes, and assemble the table."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from hwsim.errors import SpecError
from hwsim.specs.sweep import SweepSpec
from hwsim.sweep import store
from hwsim.sweep.expand import Expansion, Row, expand
from hwsim.sweep.worker import price, price_in_worker, price_on_dask, start_worker

logger = logging.getLogger(__name__)

Result = tuple[str, dict[str, Any]]


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def _serial(tasks: list[Row]) -> Iterator[Result]:
    """`jobs=1`: in this process, one row after the other (no start-up, easy to debug)."""
    for row in tasks:
        yield row.key, price(row.point.arch, row.point.energies, row.workload.trace)


def _pool(tasks: list[Row], expansion: Expansion, jobs: int) -> Iterator[Result]:
    """A process pool (spawned workers, one BLAS thread each); traces sent once per worker."""
    traces = [workload.trace for workload in expansion.workloads]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                             initializer=start_worker, initargs=(traces,)) as pool:
        futures = {pool.submit(price_in_worker, row.key, row.point.arch, row.point.energies,
                               row.workload_index): row.key for row in tasks}
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # e.g. a worker died: record it
                    yield futures[future], {"status": "error",
                                            "error": f"{type(exc).__name__}: {exc}"}
        finally:
            for future in futures:
                future.cancel()


def _dask(tasks: list[Row], expansion: Expansion, scheduler: str | None,
          local_workers: int | None) -> Iterator[Result]:
    """Dask: an existing scheduler, or a LocalCluster of `local_workers` processes; each trace
    scattered once to every worker."""
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise SpecError("--scheduler/--dask-local need dask.distributed: "
                        "pip install 'hwsim[dask]'") from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            traces = client.scatter([w.trace for w in expansion.workloads], broadcast=True)
            futures = [client.submit(price_on_dask, row.key, row.point.arch, row.point.energies,
                                     traces[row.workload_index], key=f"hwsim-{row.key}",
                                     pure=False) for row in tasks]
            keys = {future.key: row.key for future, row in zip(futures, tasks, strict=True)}
            for future in dask_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # a lost worker: record it
                    yield keys[future.key], {"status": "error",
                                             "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if cluster is not None:
            cluster.close()


def run_sweep(sweep: SweepSpec | str | Path, out: str | Path, *, jobs: int | None = None,
              scheduler: str | None = None, dask_local: int | None = None,
              on_start: Callable[[int, int], None] | None = None,
              on_result: Callable[[str, dict[str, Any]], None] | None = None) -> pd.DataFrame:
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
    out = Path(out)
    expansion = expand(sweep)
    store.prepare(out, expansion)
    pending: dict[str, Row] = {}
    skipped = 0
    for row in expansion.rows:
        if row.key in pending:
            continue
        if store.is_finished(out, row.key):
            skipped += 1
        else:
            pending[row.key] = row
    tasks = list(pending.values())
    if on_start is not None:
        on_start(len(tasks), skipped)
    logger.info("sweep %s: %d rows to run, %d already finished", expansion.spec.name,
                len(tasks), skipped)
    if tasks:
        if scheduler is not None or dask_local is not None:
            results = _dask(tasks, expansion, scheduler, dask_local)
        else:
            jobs = min(jobs or default_jobs(), len(tasks))
            results = _serial(tasks) if jobs == 1 else _pool(tasks, expansion, jobs)
        for key, result in results:
            store.write_point(out, key, result)
            if on_result is not None:
                on_result(key, result)
    table = store.assemble(out, expansion)
    store.write_table(out, table)
    return table
