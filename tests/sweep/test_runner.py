"""Running sweeps: process pool == Dask, resume after SIGKILL, failures recorded not fatal."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from hwsim.cli import main
from hwsim.energy import SUMMARY_KEYS, summarize
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate, simulate_counts
from hwsim.sweep import run_sweep
from hwsim.sweep.worker import price
from tests.sweep.conftest import ROOT, TRACES, write_sweep

KILL_AFTER_ROWS = 8


def _files(out, folder, suffix):
    return sorted(path.name for path in (out / folder).glob(f"*{suffix}"))


def test_pool_writes_a_row_per_point_and_workload_and_dask_agrees(small_sweep, tmp_path):
    out = tmp_path / "pool"
    table = run_sweep(small_sweep, out, jobs=2)
    assert len(table) == 12 and set(table["status"]) == {"ok"}
    assert list(table.columns) == [
        "point",
        "base",
        "global_buffer.capacity_bytes",
        "dram.channels",
        "workload",
        "network",
        "algorithm",
        "batch_size",
        "nonzeros_per_neuron",
        "shape_only",
        "cycles",
        "energy_pj",
        "dram_read_bytes",
        "status",
        "error",
        "point_key",
        "row_key",
    ]
    assert list(table["global_buffer.capacity_bytes"][::2]) == [65536] * 3 + [262144] * 3
    assert (table["cycles"] > 0).all() and (table["energy_pj"] > 0).all()
    assert len(_files(out, "points", ".json")) == 12
    assert len(_files(out, "specs", ".yaml")) == 6
    from_csv = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert list(from_csv["row_key"]) == list(table["row_key"])
    # a re-run runs nothing and gives the same table; a spec file removed or changed since
    # is written again (with nothing to run, no pool starts)
    specs = [out / "specs" / name for name in _files(out, "specs", ".yaml")]
    texts = [path.read_text() for path in specs]
    specs[0].unlink()
    specs[1].write_text("edited\n")
    starts = []
    again = run_sweep(small_sweep, out, jobs=2, on_start=lambda *counts: starts.append(counts))
    assert starts == [(0, 12)]
    pd.testing.assert_frame_equal(again, table)
    assert [path.read_text() for path in specs] == texts
    # the same sweep on a Dask LocalCluster: the identical table
    pytest.importorskip("dask.distributed", reason="dask is the optional extra hwsim[dask]")
    dask = run_sweep(small_sweep, tmp_path / "dask", dask_local=2)
    pd.testing.assert_frame_equal(dask, table)
    assert (tmp_path / "dask" / "results.csv").read_bytes() == (out / "results.csv").read_bytes()


def test_resume_after_sigkill_runs_every_row_once(tmp_path):
    sweep = write_sweep(
        tmp_path,
        axes=[
            {"path": "global_buffer.capacity_bytes", "values": ["64 KiB", "128 KiB", "256 KiB"]},
            {"path": "dram.channels", "values": [1, 2, 3, 4, 5, 6, 7, 8]},
        ],
    )
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "hwsim", "sweep", str(sweep), "--out", str(out), "--jobs", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(_files(out, "points", ".json")) < KILL_AFTER_ROWS:
        assert process.poll() is None, "the sweep finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = set(_files(out, "points", ".json"))
    assert KILL_AFTER_ROWS <= len(finished) < 48
    assert not (out / "results.csv").exists()

    ran = []
    resumed = run_sweep(sweep, out, jobs=1, on_result=lambda key, result: ran.append(key))
    assert len(ran) == len(set(ran)) == 48 - len(finished)
    assert finished.isdisjoint(f"{key}.json" for key in ran)
    assert len(_files(out, "points", ".json")) == 48
    uninterrupted = run_sweep(sweep, tmp_path / "whole", jobs=1)
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert (out / "results.csv").read_bytes() == (tmp_path / "whole" / "results.csv").read_bytes()


def test_a_failing_point_is_recorded_and_the_rest_go_on(tmp_path, capsys):
    sweep = write_sweep(
        tmp_path,
        base=["distributed_small"],
        axes=[
            {"path": "tiles.count", "values": [4, 128]},
            {"path": "mapping.allow_spill", "values": [True, False]},
        ],
        workloads={"networks": [{"network": "mnist_fc", "algorithms": ["bp"], "batch_sizes": [4]}]},
    )
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "1 of 4 rows failed (status error in the table)"
    assert (
        "point 1 (distributed_small) × mnist_fc_bp_b4: distributed_small: "
        "mapping.allow_spill: mnist_fc's weights" in captured.err
    )
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert list(table["status"]) == ["ok", "error", "ok", "ok"]
    assert "need 65 tiles of SRAM but the spec has 4" in table["error"][1]
    assert table["cycles"][1] == ""
    record = json.loads((out / "points" / f"{table['row_key'][1]}.json").read_text())
    assert record["status"] == "error" and record["metrics"] == {}


def test_bad_input_exits_2_before_anything_runs(tmp_path, capsys):
    sweep = write_sweep(tmp_path, axes=[{"path": "dram.channels", "values": [2, -1]}])
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 2
    assert (
        f"hwsim: error: {sweep}: point 1 (von_neumann; dram.channels=-1): dram.channels:"
        in capsys.readouterr().err
    )
    assert not out.exists()
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "2", "--dask-local", "2"]) == 2
    assert "--jobs sets the local process pool" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["von_neumann", "distributed_small", "von_neumann_sparse"])
def test_row_figures_are_those_of_simulate_json(arch):
    arch_spec, energies = load_arch_with_energies(arch)
    for rule in ("bp", "ssdfa"):
        trace = read_trace(TRACES / f"alexnet_{rule}_b8.jsonl.gz")
        summary = summarize(simulate(arch_spec, trace), energies)
        row = price(arch_spec, energies, trace)
        assert row == {"status": "ok", "metrics": {key: summary[key] for key in SUMMARY_KEYS}}


def test_a_dead_worker_costs_only_the_rows_in_flight(small_sweep, tmp_path):
    out = tmp_path / "out"
    killed = []

    def kill_a_worker(key, result):
        workers = multiprocessing.active_children()
        if not killed and workers:
            killed.append(workers[0].pid)
            os.kill(workers[0].pid, signal.SIGKILL)

    table = run_sweep(small_sweep, out, jobs=2, on_result=kill_a_worker)
    assert killed and len(table) == 12
    failed = table[table["status"] != "ok"]
    assert len(failed) <= 2 * 2 * 2  # at most the points in flight, 2 workloads each
    assert failed["error"].str.startswith("a worker process died").all()
    again = run_sweep(small_sweep, out, jobs=1)
    assert set(again["status"]) == {"ok"}


@pytest.mark.parametrize(
    ("arch", "rule"),
    [("von_neumann_sparse", "dfa"), ("distributed_stationary", "ssdfa"), ("von_neumann", "bp")],
)
def test_a_rows_counts_are_the_breakdowns_rows(arch, rule):
    """simulate_counts (a sweep's row) is the same simulation as simulate: its columns are
    the breakdown's, row for row, and its cycles the step's."""
    arch_spec, energies = load_arch_with_energies(arch)
    trace = read_trace(TRACES / f"alexnet_{rule}_b8.jsonl.gz")
    result = simulate(arch_spec, trace, energies=energies)
    counts = simulate_counts(arch_spec, trace, energies=energies)
    assert counts.cycles == result.cycles and len(result.breakdown) > 0
    for name in result.breakdown.columns:
        assert counts.columns[name].tolist() == result.breakdown[name].tolist(), name
    assert counts.totals() == result.totals()
