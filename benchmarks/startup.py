"""Start-up of small CLI calls, this checkout against a baseline checkout, with `farm-bench`.

    git worktree add /tmp/baseline <commit>
    python benchmarks/startup.py --baseline /tmp/baseline [--runs 9] \
        [--out docs/performance-startup.md]

Each call runs as `python -m hwsim ...` with PYTHONPATH set to one checkout or the other,
A (this one) and B (the baseline) in turn, pair by pair (`farm-bench --vs`); the report quotes
the medians of wall seconds and of A/B. Issue 19's target: `validate` of one small spec under
0.3 s. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from provenance import git_revision, run_line

ROOT = Path(__file__).resolve().parents[1]
HOW = (
    "Written by `benchmarks/startup.py` (rerun it to refresh every number here): `python "
    "benchmarks/startup.py --baseline DIR --out docs/performance-startup.md`, DIR a checkout of "
    "the baseline commit. `farm-bench --vs` runs this checkout (A) and the baseline (B) in "
    "turn, {runs} pairs after a warm-up; medians of wall seconds and of the pairwise A/B. The "
    "machine is shared and noisy: read the ratio."
)
WHY = (
    "Since the commands load their modules on use (`hwsim/cli/dispatch.py`), `validate` of a "
    "spec or a network imports pydantic and its schemas only: no numpy, pandas, simpy or "
    "plotly (`tests/test_architecture.py` checks it). `simulate` still needs the simulator, "
    "numpy and pandas (its results are pandas frames): most of its start-up is those imports."
)


def _calls(folder: Path) -> dict[str, list[str]]:
    trace = folder / "small.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hwsim",
            "trace",
            "--network",
            "digits_fc",
            "--algorithm",
            "bp",
            "--shape-only",
            "--batch-size",
            "2",
            "--out",
            str(trace),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return {
        "hwsim --version": ["--version"],
        "hwsim validate arch_specs/von_neumann.yaml": [
            "validate",
            str(ROOT / "arch_specs" / "von_neumann.yaml"),
        ],
        "hwsim validate workloads/networks/resnet18.yaml": [
            "validate",
            str(ROOT / "workloads" / "networks" / "resnet18.yaml"),
        ],
        "hwsim simulate (digits_fc, batch 2, von_neumann, json)": [
            "simulate",
            "--arch",
            "von_neumann",
            "--trace",
            str(trace),
            "--format",
            "json",
        ],
    }


def _median(report: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s+(\S+)\s+(\S+)\s+(\S+)", report, re.MULTILINE)
    return match.group(2) if match else "?"


def measure(baseline: Path, runs: int) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for what, argv in _calls(Path(folder)).items():
            a = ["env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "hwsim", *argv]
            b = " ".join(["env", f"PYTHONPATH={baseline}", sys.executable, "-m", "hwsim", *argv])
            done = subprocess.run(
                ["farm-bench", "-n", str(runs), "--vs", b, "--", *a],
                capture_output=True,
                text=True,
                check=True,
                cwd=folder,  # not a checkout: `python -m` puts the working folder first
            )
            out = done.stdout + done.stderr
            rows.append(
                f"| `{what}` | {_median(out, 'A wall s')} s | {_median(out, 'B wall s')} s "
                f"| {_median(out, 'A/B wall')} |"
            )
    return "\n".join(
        [
            "# Start-up of small CLI calls",
            "",
            HOW.format(runs=runs),
            "",
            f"{run_line(())[:-1]}; A is this checkout, B = {git_revision(baseline)}.",
            "",
            WHY,
            "",
            "| call | A wall | B wall | A/B |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = measure(args.baseline, args.runs)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
