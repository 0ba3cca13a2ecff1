"""Worker processes that end with their parent, whatever the signal that ended it.

A pool or Dask worker calls `exit_with_parent()` when it starts: on Linux the kernel sends it
SIGKILL the moment its parent dies (prctl PR_SET_PDEATHSIG), and on every system a daemon
thread checks every `interval_s` whether it has been re-parented (its parent gone) and ends
the process.  So SIGKILL of `hwsim sweep` leaves no worker behind; the multiprocessing
resource tracker, which ends when the last process holding its pipe has gone, follows.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from hwsim.errors import SpecError

_PR_SET_PDEATHSIG = 1
CHECK_INTERVAL_S = 0.25


def _kernel_lifeline() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _watch(parent: int, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: nothing will read what this process makes


def exit_with_parent(interval_s: float = CHECK_INTERVAL_S) -> None:
    """End this process when its parent process ends (call once, early, in the child)."""
    parent = os.getppid()
    _kernel_lifeline()
    if os.getppid() != parent or parent == 1:  # it died before the lifeline was set
        os._exit(1)
    threading.Thread(
        target=_watch, args=(parent, interval_s), name="hwsim-lifeline", daemon=True
    ).start()


@contextlib.contextmanager
def dask_client(scheduler: str | None, local_workers: int | None) -> Iterator[Any]:
    """A Dask client of an existing scheduler, or of a LocalCluster of `local_workers`
    processes whose workers end with this process (`exit_with_parent`), closed on the way
    out.  SpecError names the extra to install when dask.distributed is missing."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SpecError(
            "--scheduler/--dask-local need dask.distributed: pip install 'hwsim[dask]'"
        ) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=local_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            if cluster is not None:  # our own workers end with this process, even on SIGKILL
                client.run(exit_with_parent)
            yield client
    finally:
        if cluster is not None:
            cluster.close()
