"""The default study behind `hwsim run`: one network, every rule, traces and a summary table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from hwsim.io.traces import atomic_output, write_trace
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.datasets import Dataset
from hwsim.train.loop import EpochMetrics, TrainConfig, TrainResult, train


def trace_summary(trace: Trace) -> dict[str, float]:
    """Per-example MACs by phase and elements read by role (totals / batch size)."""
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


def run_study(network: NetworkSpec, dataset: Dataset, base: TrainConfig, out_dir: Path, *,
              algorithms: tuple[Algorithm, ...] = tuple(Algorithm),
              on_batch: Callable[[], None] | None = None,
              on_epoch: Callable[[Algorithm, EpochMetrics], None] | None = None) -> pd.DataFrame:
    """Train with each rule, write `<network>_<rule>.jsonl` and `summary.csv` into `out_dir`.

    The summary is rewritten after each rule, so an interrupted study keeps what it finished.
    """
    rows: list[dict] = []
    for algorithm in algorithms:
        config = replace(base, algorithm=algorithm)
        epoch_hook = None if on_epoch is None else (lambda m, a=algorithm: on_epoch(a, m))
        result = train(network, dataset, config, record_trace=True, on_batch=on_batch,
                       on_epoch=epoch_hook)
        trace_path = write_trace(out_dir / f"{network.name}_{algorithm.value}.jsonl",
                                 result.trace)
        rows.append(summary_row(result, trace_path))
        table = pd.DataFrame(rows)
        with atomic_output(out_dir / "summary.csv") as f:
            table.to_csv(f, index=False, lineterminator="\n")
    return pd.DataFrame(rows)
