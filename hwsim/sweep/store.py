"""A sweep's output folder: one small JSON per finished row, the resolved spec of every point,
and the results table assembled from them.

    DIR/points/<row key>.json   {"key", "status", "error", "metrics"}: written atomically
                                as each row finishes; a re-run skips rows found here with
                                status ok
    DIR/specs/<point key>.yaml  the resolved (validated) arch spec of each point
    DIR/sweep.yaml              the sweep as it was run
    DIR/results.csv             a row per point × workload (and results.parquet when pyarrow
                                is installed)

Everything in the table comes from the JSON files, so a resumed sweep's table is identical to
an uninterrupted one's.
"""

from __future__ import annotations

import json
import math
import os
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from hwsim.errors import DataError
from hwsim.io.folders import SWEEP_LAYOUT, claim_for_layout
from hwsim.io.outputs import write_text_atomic
from hwsim.io.traces import atomic_output
from hwsim.io.yamlio import SectionDumper, dump_yaml
from hwsim.specs.arch import ArchSpec
from hwsim.specs.sweep import Metric
from hwsim.sweep.expand import Expansion, Row

POINTS = "points"
SPECS = "specs"
RESULTS_CSV = "results.csv"
RESULTS_PARQUET = "results.parquet"


def inputs(expansion: Expansion) -> list[str | Path]:
    """The files a sweep reads: its file, its base specs and its traces (never outputs)."""
    folder = Path(expansion.source).parent
    bases = [folder / base for base in expansion.spec.base]
    traces = [w.source for w in expansion.workloads if w.source != "shape-only"]
    return [expansion.source, *bases, *traces]


def prepare(out: Path, expansion: Expansion) -> None:
    """Claim the folder (new, empty, or a sweep's: hwsim.io.folders), and write the sweep
    (`write_specs` writes the points' specs)."""
    claim_for_layout(out, SWEEP_LAYOUT, "sweep", inputs=inputs(expansion))
    for folder in (POINTS, SPECS):
        if (out / folder).exists() and not (out / folder).is_dir():
            raise DataError(
                f"{out / folder}: is a file, expected the sweep's folder of "
                f"{'finished rows' if folder == POINTS else 'resolved specs'}; move it away"
            )
        (out / folder).mkdir(parents=True, exist_ok=True)
    with atomic_output(out / "sweep.yaml") as f:
        f.write(dump_yaml(expansion.spec.model_dump(mode="json")))


def write_specs(out: Path, expansion: Expansion) -> None:
    """Each point's resolved spec, in the folder `prepare` made (a file missing or changed
    since is written again)."""
    dumper = SectionDumper()
    present = set(os.listdir(out / SPECS))  # one listing, not a failed open a point
    for point in expansion.points:
        name = f"{point.key}.yaml"
        text = dumper.dump(point.arch.model_dump(mode="json"))
        if name not in present or _text(out / SPECS / name) != text:  # missing, or damaged
            write_text_atomic(out / SPECS / name, text)


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def point_path(out: Path, key: str) -> Path:
    return out / POINTS / f"{key}.json"


def _is_record(record: object, key: str) -> bool:
    """A row file as write_point writes it: its key, a status, an error text or null, and
    metrics by name, each a finite number or null (an ok row: every one a number)."""
    if not isinstance(record, dict) or record.get("key") != key:
        return False
    status, metrics = record.get("status"), record.get("metrics")
    if status not in ("ok", "error") or not isinstance(metrics, dict):
        return False
    if not isinstance(record.get("error"), str | None):
        return False
    for value in metrics.values():
        if value is None and status == "error":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):
            return False
    return True


def read_point(out: Path, key: str) -> dict[str, Any] | None:
    """A finished row's record, or None (missing, damaged or hand-edited: it is run again)."""
    try:
        record = json.loads(point_path(out, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if _is_record(record, key) else None


def write_point(out: Path, key: str, result: dict[str, Any]) -> dict[str, Any] | None:
    """Write a row's file; the record as `read_point` would read it back."""
    record = {
        "key": key,
        "status": result["status"],
        "error": result.get("error"),
        "metrics": result.get("metrics", {}),
    }
    text = json.dumps(record, sort_keys=True) + "\n"
    write_text_atomic(point_path(out, key), text)
    # What json gives back of it (numbers, strings, None): the record as read_point reads it.
    return record if _is_record(record, key) else None


def finished_points(out: Path, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The records of the rows of `keys` that finished with status ok (the others run again;
    the folder is listed once: a row without a file is not opened)."""
    present = set(os.listdir(out / POINTS))
    found = {}
    for key in keys:
        record = read_point(out, key) if f"{key}.json" in present else None
        if record is not None and record["status"] == "ok":
            found[key] = record
    return found


def resolved_value(arch: ArchSpec, path: str) -> Any:
    """The validated value at a dotted path: a number for "1 MiB", an enum's YAML spelling,
    JSON text for a whole mapping."""
    value: Any = arch
    for part in path.split("."):
        value = getattr(value, part, None)
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"), sort_keys=True)
    return value.value if isinstance(value, Enum) else value


def _row(row: Row, record: dict[str, Any] | None, metrics: list[Metric]) -> dict[str, Any]:
    values = {
        "point": row.point.index,
        "base": row.point.base,
        **{path: resolved_value(row.point.arch, path) for path in row.point.values},
        **row.workload.columns(),
    }
    found = (record or {}).get("metrics", {})
    for metric in metrics:
        values[metric.value] = found.get(metric.value)
    values["status"] = record["status"] if record else "missing"
    values["error"] = (record or {}).get("error") or ""
    values["point_key"] = row.point.key
    values["row_key"] = row.key
    return values


def assemble(
    out: Path, expansion: Expansion, known: dict[str, dict[str, Any] | None] | None = None
) -> pd.DataFrame:
    """The results table, from the finished rows' files, in expansion order; `known`: the
    records of rows already read or written (row key → what `read_point` gives), which are
    not read again."""
    metrics = list(expansion.spec.metrics)
    known = known or {}
    records = [
        _row(row, known[row.key] if row.key in known else read_point(out, row.key), metrics)
        for row in expansion.rows
    ]
    table = pd.DataFrame(records)
    table["nonzeros_per_neuron"] = table["nonzeros_per_neuron"].astype("Int64")
    return table


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_table(out: Path, table: pd.DataFrame) -> list[Path]:
    """results.csv, and results.parquet when pyarrow is installed; the paths written."""
    written = [out / RESULTS_CSV]
    with atomic_output(written[0]) as f:
        table.to_csv(f, index=False, lineterminator="\n")
    if parquet_available():
        written.append(out / RESULTS_PARQUET)
        with atomic_output(written[1], binary=True) as f:
            table.to_parquet(f, index=False)
    return written
