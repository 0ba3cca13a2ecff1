"""Start-up of small CLI calls, this checkout against a baseline checkout, with `farm-bench`.

    git worktree add /tmp/baseline <commit>
    python benchmarks/startup.py --baseline /tmp/baseline [--runs 9] \
        [--out docs/performance-startup.md]

Each call runs as `python -m hwsim ...` with PYTHONPATH set to one checkout or the other,
A (this one) and B (the baseline) in turn, pair by pair (`farm-bench --vs`); the report quotes
the medians of wall seconds and of A/B. Byte code is cached, as an installed package's is (each
checkout's in its own temporary PYTHONPYCACHEPREFIX, filled by farm-bench's warm-up run), even
where PYTHONDONTWRITEBYTECODE is set: otherwise every call would compile every module it
imports. Floors beside them, each paired with the call it floors: Python doing nothing, and
the libraries a `validate` and a `simulate` cannot do without. Issue 19's target: `validate`
of one small spec and `simulate` of a small trace under 0.3 s. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
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
    "turn, {runs} pairs after a warm-up; medians of wall seconds and of the pairwise A/B. Byte "
    "code is cached, as an installed package's is (a temporary PYTHONPYCACHEPREFIX per "
    "checkout, filled by the warm-up). The machine is shared and noisy: read the ratio."
)
WHY = (
    "The commands load their modules on use (`hwsim/cli/dispatch.py`): `validate` of a spec "
    "or a network imports pydantic and the schemas of that kind of file only, with no numpy, "
    "pandas, simpy or plotly; `simulate --format json` or `table` without `--out` prints from "
    "the counts alone (`simulate_counts`, `summarize_counts`), with no pandas or plotly "
    "(`tests/test_architecture.py` checks both). The floor rows are what no change to hwsim "
    "can remove: Python's own start-up, and importing the libraries the command needs and "
    "validating one one-field pydantic model (pydantic builds its validators at first use)."
)
# What a command needs whatever hwsim does, each paired with the call it is the floor of:
# the interpreter, and the libraries' imports (one one-field model validated).
_MODEL = "class A(pydantic.BaseModel):\n    x: int\nA.model_validate(yaml.safe_load('x: 1'))"
FLOORS = {
    "`python -c pass`": (["-c", "pass"], "hwsim --version"),
    "import pydantic, yaml; one model validated": (
        ["-c", "import yaml, pydantic\n" + _MODEL],
        "hwsim validate arch_specs/von_neumann.yaml",
    ),
    "the same + numpy + simpy": (
        ["-c", "import yaml, pydantic, numpy, simpy\n" + _MODEL],
        "hwsim simulate (digits_fc, batch 2, von_neumann, json)",
    ),
}


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


def _environment(checkout: Path, cache: Path) -> list[str]:
    """`env` arguments: the checkout first on the path, byte code cached in `cache`."""
    return [
        "env",
        "-u",
        "PYTHONDONTWRITEBYTECODE",
        f"PYTHONPYCACHEPREFIX={cache}",
        f"PYTHONPATH={checkout}",
    ]


def _pair(folder: Path, a: list[str], b: list[str] | None, runs: int) -> tuple[str, str, str]:
    """Medians of A's and B's wall seconds and of A/B (B None: A alone)."""
    versus = [] if b is None else ["--vs", shlex.join(b)]
    done = subprocess.run(
        ["farm-bench", "-n", str(runs), *versus, "--", *a],
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,  # not a checkout: `python -m` puts the working folder first
    )
    out = done.stdout + done.stderr
    for side in ("A",) if b is None else ("A", "B"):
        if not re.search(rf"^{side} exit 0 \((\d+) of \1\)", out, re.MULTILINE):
            raise SystemExit(f"{side} did not exit 0 on every run:\n{out}")
    return _median(out, "A wall s"), _median(out, "B wall s"), _median(out, "A/B wall")


def measure(baseline: Path, runs: int) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder)
        env_a = _environment(ROOT, here / "cache-a")
        env_b = _environment(baseline, here / "cache-b")
        calls = _calls(here)
        for what, argv in calls.items():
            a = [*env_a, sys.executable, "-m", "hwsim", *argv]
            b = [*env_b, sys.executable, "-m", "hwsim", *argv]
            wall_a, wall_b, ratio = _pair(here, a, b, runs)
            rows.append(f"| `{what}` | {wall_a} s | {wall_b} s | {ratio} |")
        floors = []
        for what, (argv, call) in FLOORS.items():
            # Paired with the call it floors (A) at the same moments: a shared machine's
            # speed drifts between one farm-bench call and the next.
            a = [*env_a, sys.executable, "-m", "hwsim", *calls[call]]
            b = [*env_a, sys.executable, *argv]
            wall_call, wall_floor, ratio = _pair(here, a, b, runs)
            floors.append(f"| {what} | {wall_floor} s | `{call}` | {wall_call} s | {ratio} |")
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
            "| floor | its wall | the call (A) | its wall | call/floor |",
            "|---|---|---|---|---|",
            *floors,
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
