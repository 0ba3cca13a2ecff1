"""`simulate` with sparsity off, against the code of a baseline revision, in one run.

    python benchmarks/sparsity_off.py --baseline ea21a80 [--trace T.jsonl.gz] [--rounds 15]

Issue 18 added a `sparsity` section to arch specs; a spec without one must simulate as fast
as before.  This extracts the baseline revision's tree (`git archive`), then times
`simulate(arch, trace)` on each default spec in fresh child processes — one importing this
tree, one the baseline's — taken in turn, so drift on a shared machine hits both
alike (A B, then B A: neither always goes first).  Each child makes one warm-up call and
`--calls` calls timed in CPU time (`time.process_time`: the time a neighbour holds the core is
not counted, as wall time would count it); the figures are the ratio of the medians of all
timed calls, A ÷ B, the median of the per-round ratios and the ratio of the fastest calls (the
least disturbed by neighbours on a shared machine), and cProfile's count of the Python
function calls of one simulate (the same on every run).  The
same children also time `von_neumann_sparse` (this tree only) as context: what pricing zeros
costs.  `benchmarks/simulate_speed.py --baseline REV` puts this table into
docs/performance.md.  Benchmarks are not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ("von_neumann", "distributed")
CHILD = """
import cProfile, json, pstats, sys, time
from hwsim.io.arch import load_arch
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
trace = read_trace(sys.argv[1])
out = {}
for spec in sys.argv[3:]:
    arch = load_arch(spec)
    simulate(arch, trace)
    times = []
    for _ in range(int(sys.argv[2])):
        start = time.process_time()
        simulate(arch, trace)
        times.append(time.process_time() - start)
    profiler = cProfile.Profile()
    profiler.enable()
    simulate(arch, trace)
    profiler.disable()
    out[spec] = {"times": times, "calls": pstats.Stats(profiler).total_calls}
print(json.dumps(out))
"""


def baseline_tree(revision: str, folder: Path) -> Path:
    """The baseline revision's files under `folder` (git archive, no checkout)."""
    archive = folder / "baseline.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision], stdout=f, check=True)
    tree = folder / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def child_times(tree: Path, trace: Path, calls: int, specs: tuple[str, ...]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(trace), str(calls), *specs],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def compare(trace: Path, revision: str, rounds: int = 15, calls: int = 10) -> dict:
    """{spec: (median this tree s, median baseline s, ratio of medians, median round ratio,
    ratio of the fastest calls)} and the sparse spec's median, from interleaved children."""
    with tempfile.TemporaryDirectory(prefix="hwsim-baseline-") as folder:
        tree = baseline_tree(revision, Path(folder))
        ours: dict[str, list[float]] = {spec: [] for spec in (*SPECS, "von_neumann_sparse")}
        theirs: dict[str, list[float]] = {spec: [] for spec in SPECS}
        round_ratios: dict[str, list[float]] = {spec: [] for spec in SPECS}
        function_calls: dict[str, tuple[int, int]] = {}  # Python calls of one simulate
        for index in range(rounds):
            # A B, then B A, ...: neither tree always runs first (or on a warmer machine).
            if index % 2 == 0:
                a = child_times(ROOT, trace, calls, (*SPECS, "von_neumann_sparse"))
                b = child_times(tree, trace, calls, SPECS)
            else:
                b = child_times(tree, trace, calls, SPECS)
                a = child_times(ROOT, trace, calls, (*SPECS, "von_neumann_sparse"))
            for spec in SPECS:
                mine, base = a[spec]["times"], b[spec]["times"]
                ours[spec] += mine
                theirs[spec] += base
                round_ratios[spec].append(statistics.median(mine) / statistics.median(base))
                function_calls[spec] = (a[spec]["calls"], b[spec]["calls"])
            ours["von_neumann_sparse"] += a["von_neumann_sparse"]["times"]
    table = {
        spec: (
            statistics.median(ours[spec]),
            statistics.median(theirs[spec]),
            statistics.median(ours[spec]) / statistics.median(theirs[spec]),
            statistics.median(round_ratios[spec]),
            min(ours[spec]) / min(theirs[spec]),
        )
        for spec in SPECS
    }
    return {
        "revision": revision,
        "rounds": rounds,
        "calls": calls,
        "table": table,
        "sparse_s": statistics.median(ours["von_neumann_sparse"]),
        "function_calls": function_calls,
    }


def render(result: dict, trace_name: str) -> list[str]:
    """The markdown section (a heading, a sentence, the table)."""
    revision = result["revision"]
    lines = [
        f"## Sparsity off, against `{revision}`",
        "",
        f"`simulate` of {trace_name} with this tree (A) and with the code of `{revision}` (B, "
        "extracted by `git archive`), in CPU time (`time.process_time`) of each call, each in a "
        "fresh child process, "
        f"{result['rounds']} rounds taken in turn (A B, B A, A B, ...), "
        f"{result['calls']} timed calls a child after one warm-up "
        "(benchmarks/sparsity_off.py). No spec has a sparsity section, so A runs the dense "
        "path the issue-18 change left in place; a ratio of 1.00× is no slowdown. The machine "
        "is shared: read the spread between the three ratios as its noise.",
        "",
        "| spec | median A | median B | A ÷ B (medians) | A ÷ B (median of rounds) | "
        "A ÷ B (fastest calls) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for spec, (ours, theirs, ratio, rounds, fastest) in result["table"].items():
        lines.append(
            f"| {spec} | {ours * 1e3:.1f} ms | {theirs * 1e3:.1f} ms | {ratio:.2f}× | "
            f"{rounds:.2f}× | {fastest:.2f}× |"
        )
    baseline = result["table"]["von_neumann"][0]
    lines += [
        "",
        "Python function calls in one `simulate` (cProfile's count: the same on every run, "
        "unlike a time on a shared machine): "
        + "; ".join(
            f"{spec} {ours:,} (A) against {theirs:,} (B), {ours / theirs - 1:+.2%}"
            for spec, (ours, theirs) in result["function_calls"].items()
        )
        + ".",
        "",
        f"With zeros priced (`von_neumann_sparse`: bitmask DRAM compression and zero "
        f"skipping, A only) the same call takes {result['sparse_s'] * 1e3:.1f} ms, "
        f"{result['sparse_s'] / baseline:.2f}× `von_neumann`'s.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare with")
    parser.add_argument(
        "--trace",
        type=Path,
        default=ROOT / "workloads" / "traces" / "alexnet_bp_b8.jsonl.gz",
        help="trace to simulate (default: the shipped AlexNet BP batch-8 trace)",
    )
    parser.add_argument("--rounds", type=int, default=15, help="child pairs (15)")
    parser.add_argument("--calls", type=int, default=10, help="timed calls a child (10)")
    args = parser.parse_args(argv)
    result = compare(args.trace.resolve(), args.baseline, args.rounds, args.calls)
    print("\n".join(render(result, args.trace.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
