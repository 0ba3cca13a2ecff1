"""Worker processes end with their parent (issue 14, item 4): SIGKILL of `hwsim sweep`
leaves no process behind, pool workers and resource tracker included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sweep.conftest import write_sweep


def _session(sid: int) -> list[int]:
    """The processes of session `sid` (field 6 of /proc/PID/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("workers", [["--jobs", "2"], ["--dask-local", "2"]], ids=["pool", "dask"])
def test_sigkill_of_a_sweep_leaves_no_process(tmp_path, workers):
    sweep = write_sweep(
        tmp_path,
        axes=[
            {"path": "dram.channels", "values": list(range(1, 21))},
            {"path": "dram.bandwidth_bytes_per_cycle", "values": list(range(4, 44, 2))},
        ],
    )
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hwsim",
            "sweep",
            str(sweep),
            "--out",
            str(tmp_path / "out"),
            *workers,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # The main process, the resource tracker and two workers.
        assert _wait_until(lambda: len(_session(child.pid)) >= 4, 60), _session(child.pid)
        assert child.poll() is None
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert _wait_until(lambda: not _session(child.pid), 5), _session(child.pid)
    finally:
        for pid in _session(child.pid):
            os.kill(pid, signal.SIGKILL)
