"""Wall time of today's graphs: shape-only traces and `simulate` of each shipped ImageNet graph.

    python benchmarks/graph_speed.py [--repeats 5] [--out docs/performance-graphs.md]

Issue 15's targets, reported PASS/MISS and never asserted: a shape-only trace of `resnet18`
(and `vit_tiny` when it ships) under 1 s; simulating either under 1 s on `von_neumann` and on
`distributed`. Every rule is measured; the targets read the worst rule. Times are medians (and
mins) of `--repeats` calls of `time.perf_counter` after one warm-up call, in this process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from provenance import run_line

from hwsim.io.arch import load_arch
from hwsim.io.networks import load_network, shipped_networks
from hwsim.sim.engine import simulate
from hwsim.specs.trace import Algorithm
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace

NETWORKS = ("resnet18", "mobilenet_v2", "vit_tiny", "alexnet_grouped")
SPECS = ("von_neumann", "distributed")
TARGET_SECONDS = 1.0
ROOT = Path(__file__).resolve().parents[1]


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def measure(repeats: int) -> str:
    rows, targets = [], []
    networks = [name for name in NETWORKS if name in shipped_networks()]
    for name in networks:
        network = load_network(name)
        worst: dict[str, float] = {}
        for rule in Algorithm:
            config = TrainConfig.from_network(network, rule, epochs=1, batch_size=1)
            median, low = timed(lambda: shape_only_trace(network, config), repeats)  # noqa: B023
            trace = shape_only_trace(network, config)
            rows.append(
                f"| {name} | {rule.value} | shape-only trace | {len(trace.records):,} records "
                f"| {_ms(median)} | {_ms(low)} |"
            )
            worst["trace"] = max(worst.get("trace", 0.0), median)
            for spec in SPECS:
                arch = load_arch(spec)
                median, low = timed(lambda: simulate(arch, trace), repeats)  # noqa: B023
                rows.append(f"| {name} | {rule.value} | simulate on `{spec}` | | {_ms(median)} "
                            f"| {_ms(low)} |")  # fmt: skip
                worst[spec] = max(worst.get(spec, 0.0), median)
        for what, seconds in worst.items():
            label = "shape-only trace" if what == "trace" else f"simulate on `{what}`"
            verdict = "PASS" if seconds < TARGET_SECONDS else "MISS"
            targets.append(
                f"| {name}: {label} under 1 s (worst rule, median {_ms(seconds)}) | {verdict} "
                f"| {seconds / TARGET_SECONDS:.1%} of the target |"
            )
    missing = [name for name in NETWORKS if name not in networks]
    lines = [
        "# Performance of today's graphs",
        "",
        "Written by `benchmarks/graph_speed.py` (rerun it to refresh every number here): "
        "`python benchmarks/graph_speed.py --out docs/performance-graphs.md`. Medians and mins "
        f"of {repeats} calls after a warm-up, batch 1, in one process. The machine is shared "
        "and noisy: read the margins, not the third digit.",
        "",
        run_line(("numpy", "simpy")),
        "",
        "## Targets",
        "",
        "| target | verdict | margin |",
        "|---|---|---|",
        *targets,
        "",
        *(
            [f"Not shipped yet, so not measured: {', '.join(f'`{n}`' for n in missing)}.", ""]
            if missing
            else []
        ),
        "## Every rule",
        "",
        "| network | rule | what | size | median | min |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = measure(args.repeats)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
