"""The default study behind `hwsim run`: one network, every rule, its traces, and what a
training step costs on the default specs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from hwsim.defaults import DEFAULT_SPECS
from hwsim.energy import SUMMARY_KEYS, area_frame, per_example_breakdown, summarize
from hwsim.errors import located
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.folders import safe_name
from hwsim.io.traces import atomic_output, write_trace
from hwsim.sim.engine import simulate
from hwsim.sim.result import SimResult
from hwsim.specs.arch import ActionEnergies, ArchSpec
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.datasets import Dataset
from hwsim.train.loop import EpochMetrics, TrainConfig, TrainResult, trace_synthetic_step, train
from hwsim.train.shapes import shape_only_trace

STEP_FILES = ("summary.json", "breakdown.csv", "resources.csv", "timeline.csv", "mapping.csv")


def spec_fields(arch: ArchSpec, source: str) -> pd.DataFrame:
    """Every field of a resolved spec, flattened to dotted paths, with where it came from:
    `source` (the spec file) when the file sets it, else `default`."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: BaseModel, prefix: str, explicit: bool) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            path = f"{prefix}{name}"
            given = explicit and name in model.model_fields_set
            if isinstance(value, BaseModel):
                walk(value, f"{path}.", given)
            else:
                shown = value.value if hasattr(value, "value") else value
                rows.append((path, json.dumps(shown, default=str), source if given else "default"))

    walk(arch, "", True)
    frame = pd.DataFrame(rows, columns=["field", "value", "source"])
    frame.insert(0, "arch", arch.name)
    return frame


STEP_KEYS = ("network", "algorithm", "arch", "substrate")  # what names a simulated step


@dataclass(frozen=True)
class Step:
    """One simulated step: its summary and tables, as written to (or read from) its folder."""

    folder: Path
    summary: dict
    breakdown: pd.DataFrame
    resources: pd.DataFrame
    timeline: pd.DataFrame
    mapping: pd.DataFrame
    spec: pd.DataFrame

    @property
    def key(self) -> dict[str, str]:
        return {column: self.summary["run"][column] for column in STEP_KEYS}


def write_step(
    out_dir: Path,
    result: SimResult,
    energies: ActionEnergies,
    arch: ArchSpec | None = None,
    source: str = "",
    *,
    breakdown: pd.DataFrame | None = None,
) -> Step:
    """Write one simulated step's files (the `simulate --out` layout) into `out_dir`; the
    step as written, for a report to draw without reading it back.  `breakdown` is
    `per_example_breakdown(result, energies)` when the caller has it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if breakdown is None:
        breakdown = per_example_breakdown(result, energies)
    summary = summarize(result, energies)
    with atomic_output(out_dir / "summary.json") as f:
        f.write(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    spec = (
        spec_fields(arch, source or arch.name)
        if arch is not None
        else pd.DataFrame(columns=["arch", "field", "value", "source"])
    )
    frames = {
        "breakdown.csv": breakdown,
        "resources.csv": result.resources,
        "timeline.csv": result.timeline,
        "mapping.csv": result.mapping,
        "area.csv": area_frame(energies),
    }
    if arch is not None:
        frames["spec.csv"] = spec
    for name, frame in frames.items():
        with atomic_output(out_dir / name) as f:
            frame.to_csv(f, index=False, lineterminator="\n")
    return Step(
        out_dir, summary, breakdown, result.resources, result.timeline, result.mapping, spec
    )


def trace_summary(trace: Trace) -> dict[str, float]:
    """Per-example MACs by phase (totals / batch size) and the feedback values stored."""
    batch = trace.header.batch_size
    row: dict[str, float] = {}
    for phase, macs in trace.macs_by_phase().items():
        row[f"{phase.value}_macs_per_example"] = macs / batch
    row["macs_per_example"] = trace.macs / batch
    row["feedback_elements"] = sum(info.nonzeros for info in trace.header.feedback)
    return row


def summary_row(result: TrainResult, trace_file: str) -> dict:
    """One rule's training summary; `trace_file` is its trace's name in the run folder."""
    summary = result.summary()
    row = {
        key: summary[key]
        for key in (
            "network",
            "algorithm",
            "dataset",
            "epochs",
            "test_accuracy",
            "best_test_accuracy",
            "train_accuracy",
        )
    }
    for layer, angle in summary["angles_deg"].items():
        row[f"angle_{layer}_deg"] = angle
    row["feedback_output_angle_deg"] = summary["feedback_output_angle_deg"]
    row.update(trace_summary(result.recorded_trace))
    row["trace"] = trace_file
    return row


def cost_row(algorithm: Algorithm, spec: str, arch: ArchSpec, summary: dict) -> dict:
    """What one traced step of `algorithm` costs per training example on `arch`."""
    row = {"algorithm": algorithm.value, "arch": spec, "substrate": arch.substrate.value}
    row.update({key: summary[key] for key in SUMMARY_KEYS})
    return row


def _write_csv(path: Path, rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    with atomic_output(path) as f:
        table.to_csv(f, index=False, lineterminator="\n")
    return table


def step_folder(out_dir: Path, network: str, algorithm: Algorithm, spec: str) -> Path:
    """steps/<network>/<rule>/<spec>/ under `out_dir`; labels read from files (a trace's
    network, a spec given as a path) are made safe names, so the folder stays under it."""
    return out_dir / "steps" / safe_name(network) / algorithm.value / safe_name(spec)


def trace_name(network: str, algorithm: Algorithm, suffix: str = ".jsonl") -> str:
    return f"{safe_name(network)}_{algorithm.value}{suffix}"


def price_step(
    trace: Trace,
    specs: dict[str, tuple[ArchSpec, ActionEnergies]],
    out_dir: Path,
    on_step: Callable[[str], None] | None = None,
) -> tuple[list[dict], list[Step]]:
    """Simulate one traced step on every spec, writing a simulation folder for each
    (steps/<network>/<rule>/<spec>/, the `simulate --out` layout); the cost rows and the
    steps as written."""
    rows, steps = [], []
    algorithm = trace.header.algorithm
    for spec, (arch, energies) in specs.items():
        if on_step is not None:
            on_step(f"simulate {trace.header.network} {algorithm.value} on {spec}")
        with located(spec):
            result = simulate(arch, trace, energies=energies)
        step = write_step(
            step_folder(out_dir, trace.header.network, algorithm, spec),
            result,
            energies,
            arch,
            spec,
        )
        rows.append(cost_row(algorithm, spec, arch, step.summary))
        steps.append(step)
    return rows, steps


def run_study(
    network: NetworkSpec,
    dataset: Dataset,
    base: TrainConfig,
    out_dir: Path,
    *,
    algorithms: tuple[Algorithm, ...] = tuple(Algorithm),
    specs: tuple[str, ...] = DEFAULT_SPECS,
    loaded: dict[str, tuple[ArchSpec, ActionEnergies]] | None = None,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[Algorithm, EpochMetrics], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[TrainResult], list[Step]]:
    """Train with each rule, then simulate its traced step on each spec; (the training
    table, the cost table, each rule's training result, the simulated steps).

    Writes `<network>_<rule>.jsonl`, `summary.csv` (training, one row per rule), `costs.csv`
    (per training example, one row per rule and spec) and a simulation folder per rule and
    spec under `steps/` into `out_dir`, rewriting the tables after each rule so an
    interrupted study keeps what it finished.
    """
    loaded = loaded or {spec: load_arch_with_energies(spec) for spec in specs}
    rows: list[dict] = []
    costs: list[dict] = []
    results: list[TrainResult] = []
    steps: list[Step] = []
    summary = cost_table = pd.DataFrame()
    for algorithm in algorithms:
        config = replace(base, algorithm=algorithm)
        epoch_hook = None if on_epoch is None else (lambda m, a=algorithm: on_epoch(a, m))
        result = train(
            network, dataset, config, record_trace=True, on_batch=on_batch, on_epoch=epoch_hook
        )
        results.append(result)
        trace_path = write_trace(
            out_dir / trace_name(network.name, algorithm), result.recorded_trace
        )
        rows.append(summary_row(result, trace_path.name))
        summary = _write_csv(out_dir / "summary.csv", rows)
        priced, simulated = price_step(result.recorded_trace, loaded, out_dir, on_step)
        costs.extend(priced)
        steps.extend(simulated)
        cost_table = _write_csv(out_dir / "costs.csv", costs)
    return summary, cost_table, results, steps


def trace_and_price(
    network: NetworkSpec,
    specs: dict[str, tuple[ArchSpec, ActionEnergies]],
    out_dir: Path,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    shape_only: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> list[Step]:
    """One traced step of each rule on synthetic data (at `batch_size`, default the
    network's) — or, `shape_only`, built from the network's shapes without running it (the
    same records, densities not measured) — written as `<network>_<rule>.jsonl.gz` and
    simulated on every spec; the simulated steps."""
    steps = []
    for algorithm in Algorithm:
        if on_step is not None:
            on_step(f"trace {network.name} {algorithm.value}")
        config = TrainConfig.from_network(
            network, algorithm, epochs=1, seed=seed, batch_size=batch_size
        )
        trace = (shape_only_trace if shape_only else trace_synthetic_step)(network, config)
        write_trace(out_dir / trace_name(network.name, algorithm, ".jsonl.gz"), trace)
        steps.extend(price_step(trace, specs, out_dir, on_step)[1])
    return steps
