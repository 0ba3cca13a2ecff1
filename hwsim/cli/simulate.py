"""`hwsim simulate`: price one trace on one hardware spec."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from hwsim.io.folders import OutputFolder
    from hwsim.specs.arch import ActionEnergies, ArchSpec
    from hwsim.specs.trace import Trace


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
    from hwsim.errors import located
    from hwsim.io.overrides import load_arch_with_overrides
    from hwsim.io.traces import read_trace

    out = None
    if args.out is not None:  # refused now, before any work, if it is not hwsim's to write
        from hwsim.io.folders import OutputFolder

        out = OutputFolder(
            args.out, command="simulate", inputs=[args.trace, args.arch], flag="--out"
        )
    arch, energies = load_arch_with_overrides(args.arch, args.overrides)
    trace = read_trace(args.trace)
    if out is None and args.format != "csv":
        # A summary alone: the counts, without the tables (and without pandas), the same
        # simulation and the same figures (energy.summarize_counts).
        from hwsim.energy import summarize_counts
        from hwsim.sim.engine import simulate_counts

        with located(str(args.arch)):
            counts = simulate_counts(arch, trace, energies=energies)
        summary = summarize_counts(counts, energies)
        columns, batch = counts.columns, counts.batch_size
    else:
        summary, columns, batch = _simulated(args, arch, energies, trace, out)
    if args.format == "json":
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif args.format == "table":
        print(_table(summary) + _zeros(columns, batch))
    return 0


def _simulated(
    args: argparse.Namespace,
    arch: ArchSpec,
    energies: ActionEnergies,
    trace: Trace,
    out: OutputFolder | None,
) -> tuple[dict, pd.DataFrame, int]:
    """Simulate with every table, write `--out`'s files, print `--format csv`'s breakdown:
    (the summary, the per-step breakdown, the batch)."""
    from hwsim.energy import per_example_breakdown, summarize
    from hwsim.errors import located
    from hwsim.sim.engine import simulate

    with located(str(args.arch)):
        result = simulate(arch, trace, energies=energies)
    del trace  # a big step's records (~0.55 KB each) are not needed for pricing and writing
    breakdown = per_example_breakdown(result, energies)
    if out is not None:
        from hwsim.study import write_step

        # One set: written into a temporary folder renamed into place, so an interruption
        # never leaves files of two runs mixed.  write_step summarizes the step for its files.
        with out as folder:
            summary = write_step(
                folder, result, energies, arch, str(args.arch), breakdown=breakdown
            ).summary
    else:
        summary = summarize(result, energies)
    if args.format == "csv":
        print(breakdown.to_csv(index=False, lineterminator="\n"), end="")
    return summary, result.breakdown, result.batch_size


def _zeros(columns: Any, batch: int) -> str:
    """Per example, what the spec's sparsity section saved, by level and role ('' when it
    has none): the bytes compression did not move and the MACs zeros gated.  `columns`: a
    step's breakdown (a frame or StepCounts.columns), per step."""
    from hwsim.sim.sparsity import SAVED, SKIPPED

    saved: dict[tuple[str, str], int] = defaultdict(int)
    skipped: dict[str, int] = defaultdict(int)
    for component, name, count, nbytes in zip(
        columns["component"].tolist(),
        columns["action"].tolist(),
        columns["count"].tolist(),
        columns["bytes"].tolist(),
        strict=True,
    ):
        kind, _, role = name.partition(".")
        if kind == SAVED:
            saved[component, role] += nbytes
        elif kind == SKIPPED:
            skipped[role] += count
    if not saved and not skipped:
        return ""
    lines = ["", "  zeros (sparsity), per example:"]
    for (component, role), nbytes in sorted(saved.items()):
        lines.append(f"    {component} bytes compression saved, {role}: {nbytes / batch:,.0f}")
    for role, count in sorted(skipped.items()):
        lines.append(f"    MACs skipped on zero {role}: {count / batch:,.0f}")
    return "\n".join(lines)
