"""`hwsim simulate`: price one trace on one hardware spec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def add_parser(commands) -> None:
    parser = commands.add_parser("simulate", help="simulate one traced training step on a spec")
    parser.add_argument(
        "--arch",
        required=True,
        help="shipped spec name (von_neumann, distributed, ...) or a YAML path",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        dest="overrides",
        help="override a field of the spec before validation, e.g. --set "
        "global_buffer.capacity_bytes='1 MiB' --set dram.channels=4 "
        "(VALUE is read as YAML; repeatable)",
    )
    parser.add_argument("--trace", required=True, type=Path, help="trace file (.jsonl[.gz])")
    parser.add_argument(
        "--format",
        choices=("json", "table", "csv"),
        default="table",
        help="what to print: per-example summary as JSON or a table, or the "
        "per-example breakdown as CSV (default table)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write summary.json, breakdown.csv, resources.csv, "
        "timeline.csv, mapping.csv and area.csv into this folder",
    )


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    from hwsim.io.traces import atomic_output

    with atomic_output(path) as f:
        frame.to_csv(f, index=False, lineterminator="\n")


def _table(summary: dict) -> str:
    run = summary["run"]
    lines = [
        f"{run['network']} {run['algorithm']} on {run['arch']} ({run['substrate']}), "
        f"per training example (batch {run['batch_size']}):"
    ]
    width = max(len(key) for key in summary if key not in ("breakdown", "run"))
    for key, value in summary.items():
        if key in ("breakdown", "run"):
            continue
        text = f"{value:.4g}" if key in ("latency_s", "area_mm2") else f"{value:,.0f}"
        lines.append(f"  {key:<{width}}  {text}")
    lines.append("  energy by component (pJ):")
    for component, energy in summary["breakdown"]["energy_pj_by_component"].items():
        lines.append(f"    {component:<{width - 2}}  {energy:,.0f}")
    lines.append("  area by component (mm², the design point's):")
    for component, area in summary["breakdown"]["area_mm2_by_component"].items():
        lines.append(f"    {component:<{width - 2}}  {area:.4g}")
    return "\n".join(lines)


def cmd_simulate(args: argparse.Namespace) -> int:
    from hwsim.energy import per_example_breakdown, summarize
    from hwsim.errors import located
    from hwsim.io.folders import OutputFolder
    from hwsim.io.traces import read_trace
    from hwsim.sim.engine import simulate
    from hwsim.study import write_step
    from hwsim.sweep.overrides import load_arch_with_overrides

    out = None
    if args.out is not None:  # refused now, before any work, if it is not hwsim's to write
        out = OutputFolder(
            args.out, command="simulate", inputs=[args.trace, args.arch], flag="--out"
        )
    arch, energies = load_arch_with_overrides(args.arch, args.overrides)
    trace = read_trace(args.trace)
    with located(str(args.arch)):
        result = simulate(arch, trace, energies=energies)
    del trace  # a big step's records (~0.55 KB each) are not needed for pricing and writing
    breakdown = per_example_breakdown(result, energies)
    if out is not None:
        # One set: written into a temporary folder renamed into place, so an interruption
        # never leaves files of two runs mixed.  write_step summarizes the step for its files.
        with out as folder:
            summary = write_step(
                folder, result, energies, arch, str(args.arch), breakdown=breakdown
            ).summary
    else:
        summary = summarize(result, energies, breakdown)
    if args.format == "json":
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif args.format == "csv":
        print(breakdown.to_csv(index=False, lineterminator="\n"), end="")
    else:
        print(_table(summary) + _zeros(breakdown))
    return 0


def _zeros(breakdown: pd.DataFrame) -> str:
    """Per example, what the spec's sparsity section saved, by level and role ('' when it
    has none): the bytes compression did not move and the MACs zeros gated."""
    from hwsim.sim.sparsity import SAVED, SKIPPED

    kind = breakdown["action"].str.partition(".")
    rows = breakdown[kind[0].isin([SAVED, SKIPPED])]
    if rows.empty:
        return ""
    lines = ["", "  zeros (sparsity), per example:"]
    saved = rows[kind.loc[rows.index, 0] == SAVED]
    for (component, action), nbytes in (
        saved.groupby(["component", "action"])["bytes"].sum().items()
    ):
        role = action.partition(".")[2]
        lines.append(f"    {component} bytes compression saved, {role}: {nbytes:,.0f}")
    skipped = rows[kind.loc[rows.index, 0] == SKIPPED]
    for action, count in skipped.groupby("action")["count"].sum().items():
        lines.append(f"    MACs skipped on zero {action.partition('.')[2]}: {count:,.0f}")
    return "\n".join(lines)
