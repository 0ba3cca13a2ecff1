"""Reports: offline interactive HTML pages (plotly) built from simulated steps.

`gather` turns inputs — `simulate --out` folders, `hwsim run` folders, traces — into tidy
tables (hwsim.report.data); hwsim.report.figures draws them; hwsim.report.html writes the
page.  Only this package imports plotly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from hwsim.errors import DataError
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.traces import read_trace
from hwsim.report.data import ReportData, collect, find_steps, read_history, read_step
from hwsim.study import Step, price_step

TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")


def _is_trace(path: Path) -> bool:
    return path.name.endswith(TRACE_SUFFIXES)


def check_inputs(inputs: Sequence[Path]) -> None:
    """Refuse missing or unusable inputs before any work (DataError names the input)."""
    for path in inputs:
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        if path.is_dir():
            if not find_steps(path):
                raise DataError(
                    f"{path}: holds no simulation folder (no summary.json; write "
                    f"one with `hwsim simulate --out` or `hwsim run`)"
                )
        elif not _is_trace(path):
            raise DataError(
                f"{path}: expected a trace (.jsonl, .jsonl.gz), a `hwsim simulate "
                f"--out` folder or a `hwsim run` folder"
            )


def gather(
    inputs: Sequence[Path],
    out_dir: Path,
    specs: Sequence[str],
    on_step: Callable[[str], None] | None = None,
    meta: dict | None = None,
) -> ReportData:
    """Read simulation folders and run folders; simulate traces on `specs` (writing their
    simulation folders under `out_dir/steps`).  History comes from run folders."""
    check_inputs(inputs)
    loaded = (
        {spec: load_arch_with_energies(spec) for spec in specs}
        if any(_is_trace(path) for path in inputs)
        else {}
    )
    steps: list[Step] = []
    histories: list[pd.DataFrame] = []
    for path in inputs:
        if path.is_dir():
            steps += [read_step(folder) for folder in find_steps(path)]
            history_file = path / "history.csv"
            if history_file.is_file():
                histories.append(read_history(history_file))
        else:
            steps += price_step(read_trace(path), loaded, out_dir, on_step)[1]
    steps = list({step.folder.resolve(): step for step in steps}.values())  # each folder once
    history = pd.concat(histories, ignore_index=True).drop_duplicates() if histories else None
    info = dict(meta or {})
    info.setdefault("inputs", " ".join(str(path) for path in inputs))
    return collect(steps, history, info)


__all__ = ["ReportData", "check_inputs", "collect", "gather"]
