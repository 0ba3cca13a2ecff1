"""What runs on a worker: price one point on one workload, never raising.

Traces travel to each worker once (the process pool's initializer, Dask's broadcast scatter);
a task is one point — its spec, its energies — and the indices of the workloads to price it on.
"""

from __future__ import annotations

import os
from typing import Any

from hwsim.energy import SUMMARY_KEYS, step_energy_pj
from hwsim.errors import HwsimError, located
from hwsim.sim.engine import simulate_counts
from hwsim.sim.result import StepCounts
from hwsim.specs.arch import ActionEnergies, ArchSpec
from hwsim.specs.trace import Trace
from hwsim.sweep.lifeline import exit_with_parent

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_traces: list[Trace] = []  # this worker process's copy of the sweep's workloads


def metrics(counts: StepCounts, energies: ActionEnergies) -> dict[str, float]:
    """The per-example figures of `hwsim.energy.summarize` (the keys of `simulate --format
    json`), equal to the last bit, without its breakdowns by component, phase and layer."""
    batch = counts.batch_size
    figures = {key: value / batch for key, value in counts.totals().items()}
    figures["latency_s"] = figures["cycles"] / counts.clock_hz
    figures["energy_pj"] = step_energy_pj(counts, energies)
    figures["area_mm2"] = energies.area.area_mm2
    return {key: figures[key] for key in SUMMARY_KEYS}


def price(arch: ArchSpec, energies: ActionEnergies, trace: Trace) -> dict[str, Any]:
    """{"status": "ok", "metrics": {...}} with every per-example figure of `simulate --format
    json`, or {"status": "error", "error": message} if the point raised."""
    try:
        with located(arch.name):
            result = simulate_counts(arch, trace, energies=energies)
        figures = metrics(result, energies)
    except HwsimError as exc:
        return {"status": "error", "error": str(exc)}
    except Exception as exc:  # a failing point is recorded; the rest go on
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "metrics": figures}


def side_by_side_worker() -> None:
    """What every local worker process does first: end with its parent, and use one BLAS
    thread (workers run side by side, one per CPU; a multi-threaded BLAS would spin-wait)."""
    exit_with_parent()
    for variable in BLAS_THREAD_VARIABLES:
        os.environ[variable] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables still hold for libraries loaded later
        pass
    else:
        threadpool_limits(1)


def start_worker(traces: list[Trace]) -> None:
    """Process-pool initializer: `side_by_side_worker`, and the traces kept for the worker's
    life."""
    side_by_side_worker()
    _traces[:] = traces


Task = list[tuple[ArchSpec, ActionEnergies, list[tuple[str, Any]]]]  # points, their rows


def price_in_worker(points: Task) -> list[tuple[str, dict[str, Any]]]:
    """A process-pool task: points, each with its spec, its energies and the rows to price
    it on ((row key, workload index) pairs, on this worker's copies of the workloads).  A
    task's points share what the mapping search caches (hwsim.sweep.runner), and one worker
    prices all of a point's workloads, so the cache serves the ops they share."""
    return [
        (key, price(arch, energies, _traces[workload]))
        for arch, energies, rows in points
        for key, workload in rows
    ]


def price_on_dask(points: Task) -> list[tuple[str, dict[str, Any]]]:
    """A Dask task: as `price_in_worker`, the traces arriving as scattered futures."""
    return [
        (key, price(arch, energies, trace))
        for arch, energies, rows in points
        for key, trace in rows
    ]
