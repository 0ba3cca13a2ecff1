"""The default study behind `hwsim run`: one network, every rule, its traces, and what a
training step costs on the default specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from hwsim.energy import SUMMARY_KEYS, summarize
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.traces import atomic_output, write_trace
from hwsim.sim.engine import simulate
from hwsim.specs.arch import ActionEnergies, ArchSpec
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.datasets import Dataset
from hwsim.train.loop import EpochMetrics, TrainConfig, TrainResult, train

DEFAULT_SPECS = ("von_neumann", "distributed")


def trace_summary(trace: Trace) -> dict[str, float]:
    """Per-example MACs by phase (totals / batch size) and the feedback values stored."""
    batch = trace.header.batch_size
    row: dict[str, float] = {}
    for phase, macs in trace.macs_by_phase().items():
        row[f"{phase.value}_macs_per_example"] = macs / batch
    row["macs_per_example"] = trace.macs / batch
    row["feedback_elements"] = sum(info.nonzeros for info in trace.header.feedback)
    return row


def summary_row(result: TrainResult, trace_path: Path) -> dict:
    summary = result.summary()
    row = {key: summary[key] for key in ("network", "algorithm", "dataset", "epochs",
                                         "test_accuracy", "best_test_accuracy",
                                         "train_accuracy")}
    for layer, angle in summary["angles_deg"].items():
        row[f"angle_{layer}_deg"] = angle
    row["feedback_output_angle_deg"] = summary["feedback_output_angle_deg"]
    row.update(trace_summary(result.trace))
    row["trace"] = str(trace_path)
    return row


def cost_row(algorithm: Algorithm, spec: str, arch: ArchSpec, energies: ActionEnergies,
             trace: Trace) -> dict:
    """What one traced step of `algorithm` costs per training example on `arch`."""
    summary = summarize(simulate(arch, trace, source=spec), energies)
    row = {"algorithm": algorithm.value, "arch": spec, "substrate": arch.substrate.value}
    row.update({key: summary[key] for key in SUMMARY_KEYS})
    row["off_tile_bytes"] = summary["dram_read_bytes"] + summary["dram_write_bytes"] + \
        summary["noc_bytes"]
    return row


def _write_csv(path: Path, rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    with atomic_output(path) as f:
        table.to_csv(f, index=False, lineterminator="\n")
    return table


def run_study(network: NetworkSpec, dataset: Dataset, base: TrainConfig, out_dir: Path, *,
              algorithms: tuple[Algorithm, ...] = tuple(Algorithm),
              specs: tuple[str, ...] = DEFAULT_SPECS,
              on_batch: Callable[[], None] | None = None,
              on_epoch: Callable[[Algorithm, EpochMetrics], None] | None = None,
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train with each rule, then simulate its traced step on each spec.

    Writes `<network>_<rule>.jsonl`, `summary.csv` (training, one row per rule) and
    `costs.csv` (per training example, one row per rule and spec) into `out_dir`, rewriting
    the tables after each rule so an interrupted study keeps what it finished.
    """
    loaded = {spec: load_arch_with_energies(spec) for spec in specs}
    rows: list[dict] = []
    costs: list[dict] = []
    summary = cost_table = pd.DataFrame()
    for algorithm in algorithms:
        config = replace(base, algorithm=algorithm)
        epoch_hook = None if on_epoch is None else (lambda m, a=algorithm: on_epoch(a, m))
        result = train(network, dataset, config, record_trace=True, on_batch=on_batch,
                       on_epoch=epoch_hook)
        trace_path = write_trace(out_dir / f"{network.name}_{algorithm.value}.jsonl",
                                 result.trace)
        rows.append(summary_row(result, trace_path))
        summary = _write_csv(out_dir / "summary.csv", rows)
        costs.extend(cost_row(algorithm, spec, *loaded[spec], result.trace) for spec in specs)
        cost_table = _write_csv(out_dir / "costs.csv", costs)
    return summary, cost_table
