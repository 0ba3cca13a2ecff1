"""What a report is made of: simulated steps (one folder each, the `simulate --out` layout),
training histories and resolved specs, gathered into tidy pandas tables.

A simulation folder holds `summary.json` (per-example figures and the run: network,
algorithm, arch, substrate, batch), `breakdown.csv` (per example, priced), `resources.csv`,
`timeline.csv`, `mapping.csv` and, when written by this package, `spec.csv` (every field of
the resolved spec with its source).  A run folder (`hwsim run`) holds simulation folders under
`steps/` and `history.csv` (the training curves).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hwsim import __version__
from hwsim.energy import SUMMARY_KEYS
from hwsim.errors import DataError
from hwsim.io.inputs import read_bounded
from hwsim.io.tables import NUMBER, OPTIONAL_NUMBER, TEXT, read_table
from hwsim.sim.result import MAPPING_KINDS
from hwsim.study import STEP_FILES, STEP_KEYS, Step

KEYS = list(STEP_KEYS)  # the columns that name a step
RULE_ORDER = {"bp": 0, "dfa": 1, "ssdfa": 2}


_MAPPING_KINDS = {
    name: TEXT if kind == "s" else OPTIONAL_NUMBER for name, kind in MAPPING_KINDS.items()
}
# What each file of a simulation folder holds: its columns and their kinds (hwsim.io.tables).
STEP_TABLES = {
    "breakdown.csv": (
        "a simulate breakdown",
        {"layer": TEXT, "phase": TEXT, "component": TEXT, "action": TEXT}
        | dict.fromkeys(("count", "bytes", "cycles", "energy_pj"), NUMBER),
    ),
    "resources.csv": (
        "a simulate resources table",
        {"resource": TEXT}
        | dict.fromkeys(("busy_cycles", "idle_cycles", "wait_cycles", "utilization"), NUMBER)
        | {"peak_bytes": OPTIONAL_NUMBER},
    ),
    "timeline.csv": (
        "a simulate timeline",
        {"resource": TEXT}
        | {
            name: NUMBER
            for name in ("start_cycle", "end_cycle", "busy_fraction", "bytes_per_cycle")
        },
    ),
    "mapping.csv": ("a simulate mapping table", _MAPPING_KINDS),
    "spec.csv": ("a spec table", dict.fromkeys(("arch", "field", "value", "source"), TEXT)),
}
RUN_KEYS = STEP_KEYS
HISTORY_COLUMNS = {
    "network": TEXT,
    "algorithm": TEXT,
    "epoch": NUMBER,
    "train_loss": TEXT,  # a diverged run's loss is inf or empty: kept as written
    "train_accuracy": NUMBER,
    "test_loss": TEXT,
    "test_accuracy": NUMBER,
}


def _summary_problem(summary: object) -> str | None:
    """What is wrong with a summary.json's contents, or None."""
    if not isinstance(summary, dict) or not isinstance(summary.get("run"), dict):
        return "not a simulate summary (no run)"
    run = summary["run"]
    missing = [key for key in (*RUN_KEYS, "batch_size") if key not in run]
    if missing:
        return f"run: no {', '.join(missing)}"
    for key in RUN_KEYS:
        if not isinstance(run[key], str):
            return f"run.{key}: expected text (got {run[key]!r})"
    batch = run["batch_size"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        return f"run.batch_size: expected a whole number ≥ 1 (got {batch!r})"
    for key in SUMMARY_KEYS:
        value = summary.get(key)
        if value is None:
            return f"no {key} (written by an older hwsim? simulate it again)"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            return f"{key}: expected a finite number ≥ 0 (got {value!r})"
    return None


def read_summary(path: Path) -> dict:
    """A simulation folder's summary.json, checked; DataError names the file and the key."""
    try:
        summary = json.loads(read_bounded(path, 2**24, DataError, "a simulate summary"))
    except ValueError as exc:
        raise DataError(f"{path}: not a simulate summary (not JSON: {exc})") from None
    problem = _summary_problem(summary)
    if problem is not None:
        raise DataError(f"{path}: {problem}")
    return summary


def read_step(folder: Path) -> Step:
    """A simulation folder; DataError names the folder and the missing or broken file."""
    missing = [name for name in STEP_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder}: not a simulation folder: no {', '.join(missing)} "
            f"(write one with `hwsim simulate --out` or `hwsim run`)"
        )
    summary = read_summary(folder / "summary.json")
    tables = {}
    for name, (what, columns) in STEP_TABLES.items():
        if name == "spec.csv" and not (folder / name).is_file():
            tables[name] = pd.DataFrame(columns=list(columns))
        else:
            tables[name] = read_table(folder / name, columns, what)
    return Step(
        folder,
        summary,
        tables["breakdown.csv"],
        tables["resources.csv"],
        tables["timeline.csv"],
        tables["mapping.csv"],
        tables["spec.csv"],
    )


def read_history(path: Path) -> pd.DataFrame:
    """A run folder's history.csv (empty when the run trained nothing), checked."""
    return read_table(path, HISTORY_COLUMNS, "a training history", allow_empty=True)


def find_steps(root: Path) -> list[Path]:
    """Simulation folders at or under `root` (sorted, so reports are deterministic)."""
    if (root / "summary.json").is_file():
        return [root]
    return sorted(path.parent for path in root.rglob("summary.json"))


@dataclass(frozen=True)
class ReportData:
    """Everything the report draws, as tidy tables (one row per thing, per example)."""

    costs: pd.DataFrame  # KEYS + summary figures (off-tile bytes too) + MACs by phase
    breakdown: pd.DataFrame  # KEYS + layer, phase, component, action, count, bytes, energy
    resources: pd.DataFrame  # KEYS + resource, busy/idle/wait cycles, utilization
    timeline: pd.DataFrame  # KEYS + resource, start/end cycle, busy_fraction, bytes_per_cycle
    mapping: pd.DataFrame  # KEYS + each von Neumann op's mapping and bound
    history: pd.DataFrame  # network, algorithm, epoch, accuracies, losses, angles
    specs: pd.DataFrame  # arch, field, value, source
    meta: dict  # hwsim version, seeds, inputs
    area: pd.DataFrame = field(default_factory=pd.DataFrame)  # arch, component, area_mm2


def _sort(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or "algorithm" not in frame:
        return frame
    order = frame["algorithm"].map(RULE_ORDER).fillna(len(RULE_ORDER))
    keys = [column for column in ("network", "arch") if column in frame]
    return (
        frame.assign(_rule=order)
        .sort_values([*keys, "_rule"], kind="stable")
        .drop(columns="_rule")
        .reset_index(drop=True)
    )


def _with_keys(frame: pd.DataFrame, key: dict[str, str]) -> pd.DataFrame:
    frame = frame.copy()
    for column, value in reversed(list(key.items())):
        frame.insert(0, column, value)
    return frame


def collect(
    steps: Iterable[Step], history: pd.DataFrame | None = None, meta: dict | None = None
) -> ReportData:
    steps = list(steps)
    costs: list[dict[str, Any]] = []
    tables: dict[str, list[pd.DataFrame]] = {
        name: [] for name in ("breakdown", "resources", "timeline", "mapping")
    }
    specs = []
    areas: dict[str, dict[str, float]] = {}  # a design point's area, once per arch
    for step in steps:
        key = step.key
        summary = step.summary
        areas.setdefault(key["arch"], summary["breakdown"].get("area_mm2_by_component", {}))
        row: dict[str, Any] = dict(key)
        row["batch_size"] = summary["run"]["batch_size"]
        row.update(
            {name: value for name, value in summary.items() if name not in ("breakdown", "run")}
        )
        breakdown = step.breakdown
        macs = breakdown[breakdown["action"] == "mac"].groupby("phase")["count"].sum()
        for phase in ("forward", "error", "gradient", "update"):
            row[f"{phase}_macs"] = float(macs.get(phase, 0.0))
        row["backward_macs"] = row["error_macs"] + row["gradient_macs"]
        costs.append(row)
        for name in tables:
            frame = getattr(step, name)
            if not frame.empty:
                tables[name].append(_with_keys(frame, key))
        if not step.spec.empty:
            specs.append(step.spec)

    def joined(parts: list[pd.DataFrame]) -> pd.DataFrame:
        return _sort(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame()

    spec_table = (
        pd.concat(specs, ignore_index=True)
        .drop_duplicates(["arch", "field"])
        .reset_index(drop=True)
        if specs
        else pd.DataFrame(columns=["arch", "field", "value", "source"])
    )
    info = {"hwsim_version": __version__, **(meta or {})}
    return ReportData(
        _sort(pd.DataFrame(costs)),
        joined(tables["breakdown"]),
        joined(tables["resources"]),
        joined(tables["timeline"]),
        joined(tables["mapping"]),
        history if history is not None else pd.DataFrame(),
        spec_table,
        info,
        _area_table(areas),
    )


def _area_table(areas: dict[str, dict[str, float]]) -> pd.DataFrame:
    """arch, component, area_mm2: each design point's area once."""
    return pd.DataFrame(
        [
            (arch, component, mm2)
            for arch, components in areas.items()
            for component, mm2 in components.items()
        ],
        columns=["arch", "component", "area_mm2"],
    )


def history_frame(network: str, algorithm: str, metrics: Iterable) -> pd.DataFrame:
    """Training curves of one rule: a row per epoch (angles as `angle_<layer>_deg`)."""
    rows = []
    for epoch in metrics:
        row = {
            "network": network,
            "algorithm": algorithm,
            "epoch": epoch.epoch,
            "train_loss": epoch.train_loss,
            "train_accuracy": epoch.train_accuracy,
            "test_loss": epoch.test_loss,
            "test_accuracy": epoch.test_accuracy,
        }
        for layer, angle in epoch.angles_deg.items():
            row[f"angle_{layer}_deg"] = angle
        angle = epoch.feedback_output_angle_deg
        row["feedback_output_angle_deg"] = math.nan if angle is None else angle
        rows.append(row)
    return pd.DataFrame(rows)
