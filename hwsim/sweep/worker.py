"""What runs on a worker: price one point on one workload, never raising.

Traces travel to each worker once (the process pool's initializer, Dask's broadcast scatter);
a task carries only the point's spec, its energies and the workload's index.
"""

from __future__ import annotations

import os
from typing import Any

from hwsim.energy import SUMMARY_KEYS, summarize
from hwsim.errors import HwsimError
from hwsim.sim.engine import simulate
from hwsim.specs.arch import ActionEnergies, ArchSpec
from hwsim.specs.trace import Trace

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_traces: list[Trace] = []  # this worker process's copy of the sweep's workloads


def price(arch: ArchSpec, energies: ActionEnergies, trace: Trace) -> dict[str, Any]:
    """{"status": "ok", "metrics": {...}} with every per-example figure of `simulate --format
    json`, or {"status": "error", "error": message} if the point raised."""
    try:
        summary = summarize(simulate(arch, trace, source=arch.name), energies)
    except HwsimError as exc:
        return {"status": "error", "error": str(exc)}
    except Exception as exc:  # a failing point is recorded; the rest go on
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "metrics": {key: summary[key] for key in SUMMARY_KEYS}}


def start_worker(traces: list[Trace]) -> None:
    """Process-pool initializer: one BLAS thread per worker, and the traces kept for the
    worker's life."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ[variable] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables still hold for libraries loaded later
        pass
    else:
        threadpool_limits(1)
    _traces[:] = traces


def price_in_worker(key: str, arch: ArchSpec, energies: ActionEnergies,
                    workload: int) -> tuple[str, dict[str, Any]]:
    """A process-pool task: the point priced on this worker's copy of workload `workload`."""
    return key, price(arch, energies, _traces[workload])


def price_on_dask(key: str, arch: ArchSpec, energies: ActionEnergies,
                  trace: Trace) -> tuple[str, dict[str, Any]]:
    """A Dask task: `trace` arrives as a scattered future, resolved by Dask."""
    return key, price(arch, energies, trace)
