"""Scale: a step of ~200,000 records, traced, validated and simulated, with the wall time and
peak memory of each, and the same at 1/8, 1/4 and 1/2 the size to show how they grow.

    python benchmarks/big_trace.py [--layers 25001] [--out docs/performance-scale.md]

The step is a DFA step of a deep, narrow network (dense layers of 64 units, batch 8, SGD): 8
records a layer, so 25,001 layers give 200,007 records, and DFA leaves every hidden layer's
error op ready at once, the widest a step gets.  Traces are shape-only (`hwsim trace
--shape-only`: the numpy step of 25,000 layers is not what is measured).  Each figure is a
fresh `python -c` child running the CLI in-process; peak memory is the child's own `VmHWM`
(/proc/self/status, Linux only; `ru_maxrss` survives exec and would report the parent's).
`distributed` needs a tile a layer: it runs with `--set tiles.count=<layers rounded up to a
power of two>`.  "imports only" is `hwsim validate` of a one-layer trace: the interpreter and
libraries, beneath every other figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = (
    "import contextlib, io, json, sys\n"
    "from hwsim.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    code = main({argv!r})\n"
    "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
    "print(json.dumps({{'code': code, 'peak_kb': int(peak.split()[1])}}))\n"
)
TARGET_MB = 500  # "a few hundred MB" for validate and for simulate at 200,000 records
SIZES = (8, 4, 2, 1)  # fractions 1/8 .. 1 of --layers


def network_yaml(layers: int) -> str:
    lines = [
        "schema_version: 1",
        "kind: network",
        f"name: deep{layers}",
        "description: a deep, narrow network for the scale benchmark",
        "dataset: synthetic",
        "input_shape: [64]",
        "classes: 10",
        "layers:",
    ]
    lines += [
        f"  - {{type: dense, name: fc{i}, units: 64, activation: tanh}}" for i in range(layers - 1)
    ]
    lines += [
        "  - {type: dense, name: out, units: 10}",
        "training: {optimizer: sgd, learning_rate: 0.01, batch_size: 8, epochs: 1}",
    ]
    return "\n".join(lines) + "\n"


def run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak MB (10^6 bytes) of `hwsim argv` in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(argv=argv)], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"hwsim {' '.join(argv)} failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["code"] != 0:
        sys.exit(f"hwsim {' '.join(argv)} exited {report['code']}:\n{done.stderr}")
    return seconds, report["peak_kb"] * 1024 / 1e6


def records_in(trace: Path) -> int:
    import gzip

    with gzip.open(trace, "rt") as f:
        return json.loads(f.readline())["record_count"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=25_001)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tiny = folder / "tiny.jsonl.gz"
        (folder / "tiny.yaml").write_text(network_yaml(1))
        run(
            [
                *("trace", "--network", str(folder / "tiny.yaml"), "--algorithm", "dfa"),
                *("--shape-only", "--out", str(tiny)),
            ]
        )
        _, imports_mb = run(["validate", str(tiny)])
        for fraction in SIZES:
            layers = max(2, args.layers // fraction)
            spec = folder / f"deep{layers}.yaml"
            spec.write_text(network_yaml(layers))
            trace = folder / f"deep{layers}.jsonl.gz"
            tiles = 1 << (layers - 1).bit_length()
            steps = {
                "trace --shape-only": [
                    "trace",
                    "--network",
                    str(spec),
                    "--algorithm",
                    "dfa",
                    "--shape-only",
                    "--out",
                    str(trace),
                ],
                "validate": ["validate", str(trace)],
                "simulate von_neumann": [
                    "simulate",
                    "--trace",
                    str(trace),
                    "--arch",
                    "von_neumann",
                    "--out",
                    str(folder / "vn"),
                ],
                "simulate distributed": [
                    "simulate",
                    "--trace",
                    str(trace),
                    "--arch",
                    "distributed",
                    "--set",
                    f"tiles.count={tiles}",
                    "--out",
                    str(folder / "dist"),
                ],
            }
            for step, argv in steps.items():
                seconds, peak_mb = run(argv)
                records = records_in(trace)
                rows.append((step, layers, records, seconds, peak_mb))
                print(
                    f"{step:22s} {records:8,d} records {seconds:7.1f} s {peak_mb:7.0f} MB",
                    file=sys.stderr,
                )
    report = render(rows, imports_mb, args.layers)
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


def _pyarrow() -> str:
    """Whether pyarrow is installed: once it is, pandas backs its strings with it, which
    costs memory in every figure (the default install has none; the parquet extra adds it)."""
    try:
        import pyarrow
    except ImportError:
        return "not installed (a default install)"
    return f"{pyarrow.__version__} installed"


def render(rows: list[tuple], imports_mb: float, layers: int) -> str:
    full = {
        step: (records, seconds, peak) for step, n, records, seconds, peak in rows if n == layers
    }
    eighth = {
        step: (records, seconds, peak)
        for step, n, records, seconds, peak in rows
        if n == max(2, layers // SIZES[0])
    }
    lines = [
        "# Performance: a 200,000-record step",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python benchmarks/big_trace.py "
        f"--layers {layers} --out docs/performance-scale.md` (2-core shared machine; see the "
        "script's docstring for what each figure is). Peak memory is MB of 10⁶ bytes; "
        f"the interpreter and libraries alone take {imports_mb:.0f} MB. Python "
        f"{sys.version.split()[0]}, pyarrow {_pyarrow()}.",
        "",
        "| step | layers | records | wall s | µs per record | peak MB | MB above imports "
        "per 1,000 records |",
        "|---|---|---|---|---|---|---|",
    ]
    for step, n, records, seconds, peak in rows:
        lines.append(
            f"| {step} | {n:,} | {records:,} | {seconds:.1f} | {seconds / records * 1e6:.0f} "
            f"| {peak:.0f} | {(peak - imports_mb) / records * 1000:.2f} |"
        )
    lines += ["", "## Targets", "", "| figure | measured | target | |", "|---|---|---|---|"]
    for step in ("validate", "simulate von_neumann", "simulate distributed"):
        records, _, peak = full[step]
        verdict = "PASS" if peak <= TARGET_MB else "MISS"
        lines.append(
            f"| peak memory of `{step}`, {records:,} records | {peak:.0f} MB | "
            f"≤ {TARGET_MB} MB | {verdict} |"
        )
    for step in full:
        (r1, s1, _), (r8, s8, _) = full[step], eighth[step]
        growth = (s1 / r1) / (s8 / r8)
        verdict = "PASS" if growth <= 1.5 else "MISS"
        lines.append(
            f"| `{step}` time per record, full size ÷ 1/8 size | {growth:.2f} | ≤ 1.5 "
            f"(linear) | {verdict} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
