"""Wall time and peak memory of one `simulate` of an AlexNet training step.

    python benchmarks/simulate_speed.py [--batch-size 8] [--repeats 5] [--out docs/performance.md]

What it measures (and the targets of the issue, reported PASS/MISS, never asserted):
- loading the AlexNet BP trace (`read_trace`), timed on its own;
- `simulate(arch, trace)` on each default spec (`von_neumann`, `distributed`): median and min
  of `--repeats` calls after one warm-up call — target under 1 s;
- peak memory of one simulate, each in a fresh `python -c` child that reports its own peak RSS
  (`VmHWM` in /proc/self/status; Linux only): once loading only, once loading and simulating,
  so the simulate's own share is the difference — target under 500 MB (500 × 10⁶ bytes) in all;
  tracemalloc's peak of the simulate call in this process is a second figure;
- `distributed` scaled from 64 to 65,536 tiles, everything else kept, repeats interleaved so
  that drift on a shared machine hits every size alike — target: 65,536 tiles at most 4× the
  64-tile time (ratio of medians, measured in one run);
- the DFA and SSDFA traces on both specs, as context;
- one cProfile of each default spec: the top functions in hwsim and simpy by cumulative time.

The traces are produced once by `hwsim trace` (a real numpy training step, several seconds and
over a GiB of memory, which is why memory is measured in fresh children).  Benchmarks are not
part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import simpy
import sparsity_off

import hwsim
from hwsim.cli import main as hwsim_main
from hwsim.io.arch import load_arch
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
from hwsim.sim.mapping import place
from hwsim.specs.arch import ArchSpec
from hwsim.specs.trace import Trace
from hwsim.units import KIB_BYTES

NETWORK = "alexnet"
DEFAULT_SPECS = ("von_neumann", "distributed")
ALGORITHMS = ("bp", "dfa", "ssdfa")
SCALED_SPEC = "distributed"
SCALED_TILES = (64, 256, 1024, 4096, 16384, 65536)
TARGET_SECONDS = 1.0
TARGET_PEAK_RSS_BYTES = 500 * 10**6
TARGET_SCALING_RATIO = 4.0
TARGET_VON_NEUMANN_SECONDS = 0.1  # the chunked model took ~100 ms (issue 6)
TARGET_EVENTS_PER_RECORD = 50
TARGET_BASELINE_RATIO = 1.05  # sparsity off against the code before it (issue 18): noise
TARGET_BASELINE_CALLS_RATIO = 1.02  # the same, counted: cProfile's calls, no noise
MEGABYTE_BYTES = 10**6  # the "500 MB" is decimal; reported in the same unit
PROFILE_TOP = 5

# Run in a fresh interpreter: load (and with "simulate", simulate) and report the peak RSS.
# VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives exec, so a child forked from
# this process (over a GiB after tracing) would report the parent's high-water mark.
CHILD = """
import json, sys
from hwsim.io.arch import load_arch
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
from hwsim.units import KIB_BYTES
mode, trace_path, spec, tiles = sys.argv[1:5]
trace = read_trace(trace_path)
arch = load_arch(spec)
if int(tiles):
    arch = arch.model_copy(update={"tiles": arch.tiles.model_copy(update={"count": int(tiles)})})
if mode == "simulate":
    simulate(arch, trace)
with open("/proc/self/status") as status:
    (line,) = [line for line in status if line.startswith("VmHWM:")]
print(json.dumps({"peak_rss_bytes": int(line.split()[1]) * KIB_BYTES}))  # VmHWM is in KiB
"""


@dataclass(frozen=True)
class Timing:
    samples_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def min_s(self) -> float:
        return min(self.samples_s)


@dataclass(frozen=True)
class Profile:
    total_s: float
    events: int  # calls of simpy's Environment.step
    run_s: float  # Environment.run, cumulative
    build_result_s: float
    top: tuple[tuple[str, int, float, float], ...]  # (function, calls, own s, cumulative s)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step (8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (5)")
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="reuse this AlexNet BP trace instead of tracing one",
    )
    parser.add_argument(
        "--trace-dir",
        type=Path,
        default=None,
        help="find or write alexnet_{bp,dfa,ssdfa}_b<batch>.jsonl.gz here "
        "(default: a temporary folder, removed afterwards)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the markdown report here (docs/performance.md)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="also time sparsity off against this git revision's code (benchmarks/sparsity_off.py)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch_size < 1:
        parser.error("--repeats and --batch-size must be ≥ 1")
    return args


# ---- measuring ------------------------------------------------------------------------------


def time_calls(call: Callable[[], object], repeats: int) -> Timing:
    """`repeats` timed calls after one untimed warm-up call."""
    call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return Timing(tuple(samples))


def produce_trace(algorithm: str, batch_size: int, folder: Path) -> tuple[Path, float | None]:
    """The AlexNet trace of `algorithm` in `folder`, traced now unless it is already there."""
    path = folder / f"{NETWORK}_{algorithm}_b{batch_size}.jsonl.gz"
    if path.is_file():
        return path, None
    argv = [
        "trace",
        "--network",
        NETWORK,
        "--algorithm",
        algorithm,
        "--batch-size",
        str(batch_size),
        "--out",
        str(path),
    ]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = hwsim_main(argv)
    if status != 0:
        raise SystemExit(f"hwsim {shlex.join(argv)} failed with status {status}")
    return path, time.perf_counter() - start


def with_tiles(arch: ArchSpec, count: int) -> ArchSpec:
    return arch.model_copy(update={"tiles": arch.tiles.model_copy(update={"count": count})})


def child_peak_rss_bytes(mode: str, trace_path: Path, spec: str, tiles: int = 0) -> int:
    argv = [sys.executable, "-c", CHILD, mode, str(trace_path), spec, str(tiles)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"memory child ({mode} {spec} {tiles}) failed:\n{done.stderr}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_bytes"])


def traced_peak_bytes(arch: ArchSpec, trace: Trace) -> int:
    """Peak of Python allocations (tracemalloc) during one simulate call."""
    tracemalloc.start()
    try:
        simulate(arch, trace)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _scope_label(filename: str, line: int, name: str) -> str | None:
    """`hwsim/sim/engine.py:19 simulate` for hwsim and simpy functions, else None."""
    if filename.startswith(("~", "<")):  # built-ins and generated code
        return None
    for package in (hwsim, simpy):
        root = Path(package.__file__).resolve().parent
        try:
            relative = Path(filename).resolve().relative_to(root)
        except ValueError:
            continue
        return f"{root.name}/{relative.as_posix()}:{line} {name}"
    return None


def profile(arch: ArchSpec, trace: Trace) -> Profile:
    profiler = cProfile.Profile()
    profiler.runcall(simulate, arch, trace)
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_, calls, own_s, cumulative_s, _) in stats.stats.items():
        label = _scope_label(filename, line, name)
        if label is not None:
            rows.append((label, calls, own_s, cumulative_s))
    rows.sort(key=lambda row: -row[3])

    def cumulative(module: str, suffix: str) -> tuple[int, float]:
        row = next(
            (row for row in rows if row[0].startswith(module) and row[0].endswith(suffix)), None
        )
        return (row[1], row[3]) if row else (0, 0.0)

    events, _ = cumulative("simpy/core.py", " step")
    _, run_s = cumulative("simpy/core.py", " run")
    _, build_s = cumulative("hwsim/sim/result.py", " build_result")
    top = tuple(row for row in rows if not row[0].endswith(" simulate"))[:PROFILE_TOP]
    return Profile(stats.total_tt, events, run_s, build_s, top)


# ---- the machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_total() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) * KIB_BYTES / 10**9:.1f} GB"
    return "unknown"


def git_revision() -> str:
    argv = [
        "git",
        "-C",
        str(Path(hwsim.__file__).resolve().parents[1]),
        "describe",
        "--always",
        "--dirty",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> dict[str, str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return {
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "memory": memory_total(),
        "load average at start (1, 5, 15 min)": load_average(),
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(
            f"{name} {version(name)}" for name in ("numpy", "simpy", "pandas", "pydantic")
        ),
        "hwsim": f"{hwsim.__version__} (git {git_revision()})",
    }


# ---- the report -----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def mb(nbytes: float) -> str:
    return f"{nbytes / MEGABYTE_BYTES:.1f} MB"


def table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """A markdown table; the first `text_columns` columns left-aligned, numbers right."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|",
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def verdict(measured: float, target: float, what: str) -> list[str]:
    share = measured / target
    margin = f"{share:.1%} of the target" if share <= 1 else f"{share - 1:.0%} over the target"
    return [what, "PASS" if share <= 1 else "MISS", margin]


def profile_paragraph(spec: str, prof: Profile, records: int) -> str:
    loop, build = prof.run_s / prof.total_s, prof.build_result_s / prof.total_s
    text = (
        f"**{spec}**: simpy's event loop (`Environment.run`) takes {loop:.0%} of the "
        f"profiled call ({prof.events:,} events for {records} trace records, "
        f"{prof.events / records:.0f} per record) and building the result tables "
        f"(`build_result`: the breakdown, the resource table and the timeline, in pandas) "
        f"{build:.0%}."
    )
    if spec.startswith("von_neumann"):
        text += (
            " Each record is a three-stretch pipeline (prologue, steady state, epilogue) "
            "whatever its size, so the event count follows the number of records, and "
            "the mapping search (numpy, cached per distinct op) is a few milliseconds."
        )
    else:
        text += (
            " The event loop is small because the distributed substrate simulates a NoC "
            "transfer as one event on the destination region's link, never per tile; "
            "what is left is a fixed cost of building a few pandas frames."
        )
    return text


def scaling_paragraph(scaling: dict) -> str:
    first, last = scaling[SCALED_TILES[0]], scaling[SCALED_TILES[-1]]
    ratio = last["timing"].median_s / first["timing"].median_s
    growth = "grows" if ratio > 1 else "does not grow"
    return (
        f"The time {growth} with the tile count ({ratio:.2f}× from {SCALED_TILES[0]:,} to "
        f"{SCALED_TILES[-1]:,} tiles): a transfer is one event on a region's link whatever "
        f"the number of tiles it reaches, and the event count goes from "
        f"{first['events']:,} to {last['events']:,} — the small specs have more, for the "
        "DRAM reads and NoC scatters of their spilled weights."
    )


def render(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Performance of `simulate`",
        "",
        "Written by `benchmarks/simulate_speed.py` (see `benchmarks/README.md`); rerun it "
        "to refresh every number here. Wall times are `time.perf_counter` around one "
        "`simulate(arch, trace)` call (median and min of "
        f"{report['repeats']} calls after one warm-up), garbage collector on. The machine "
        "is shared and noisy, so compare ratios measured in one run rather than absolute "
        "times across runs.",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"Run {report['when']}.",
        "",
        "## Machine",
        "",
    ]
    lines += table(["what", "value"], [[key, value] for key, value in m.items()], text_columns=2)
    lines += ["", "## Targets", ""]
    lines += table(["target", "verdict", "margin"], report["verdicts"], text_columns=3)
    lines += [
        "",
        "## Trace",
        "",
        f"AlexNet, BP, batch {report['batch_size']}: {report['records']} records, "
        f"{report['trace_file_bytes']:,} bytes gzip-compressed. "
        f"`read_trace` takes {ms(report['load'].median_s)} (median; min "
        f"{ms(report['load'].min_s)}). {report['trace_note']}",
        "",
    ]
    lines += ["## `simulate` on the default specs (AlexNet BP)", ""]
    lines += table(
        ["spec", "median", "min", "simulated cycles per step"],
        [
            [spec, ms(t.median_s), ms(t.min_s), f"{cycles:,}"]
            for spec, (t, cycles) in report["default"].items()
        ],
    )
    lines += [
        "",
        "## Peak memory of one `simulate` (fresh process each)",
        "",
        "Peak RSS (`VmHWM` of /proc/self/status) of a fresh `python -c` child: one that "
        "imports hwsim and loads the trace and the spec, one that also simulates; the "
        "difference is the simulate's own share. Not `getrusage`'s `ru_maxrss`: on Linux "
        "it survives `exec`, so a child would report the benchmark process's own peak "
        "(over a GiB after tracing). tracemalloc's peak is the Python allocations during "
        "the call, measured in the benchmark process.",
        "",
    ]
    lines += table(
        [
            "spec",
            "load only",
            "load + simulate",
            "simulate's share",
            "tracemalloc peak of simulate",
        ],
        [
            [spec, mb(report["load_rss"]), mb(rss), mb(rss - report["load_rss"]), mb(traced)]
            for spec, (rss, traced) in report["memory"].items()
        ],
    )
    lines += [
        "",
        "The RSS share is larger than tracemalloc's peak: it also holds what pandas "
        "and pyarrow set up on their first use in a process (the child builds its first "
        "data frames inside `simulate`) and memory the allocator keeps, while tracemalloc "
        "counts only the live bytes allocated through Python.",
    ]
    lines += [
        "",
        f"## Scaling: `{SCALED_SPEC}` from {SCALED_TILES[0]:,} to "
        f"{SCALED_TILES[-1]:,} tiles (AlexNet BP)",
        "",
        "Only `tiles.count` changes. Repeats are interleaved across sizes. With few "
        "tiles the weights and optimizer state do not fit the tiles' SRAM and spill to "
        "DRAM (`mapping.allow_spill: true`), which is counted and adds DRAM and NoC "
        "events.",
        "",
    ]
    base = report["scaling"][SCALED_TILES[0]]
    lines += table(
        [
            "tiles",
            "median",
            "min",
            "median ÷ 64-tile median",
            "simpy events",
            "weights etc. spilled",
            "DRAM read per step",
            "simulated cycles",
            "peak RSS (load + simulate)",
        ],
        [
            [
                f"{tiles:,}",
                ms(row["timing"].median_s),
                ms(row["timing"].min_s),
                f"{row['timing'].median_s / base['timing'].median_s:.2f}×",
                f"{row['events']:,}",
                mb(row["spilled_bytes"]),
                mb(row["dram_read_bytes"]),
                f"{row['cycles']:,}",
                mb(row["rss"]),
            ]
            for tiles, row in report["scaling"].items()
        ],
    )
    lines += [
        "",
        scaling_paragraph(report["scaling"]),
        "",
        "## Other rules on the default specs (context)",
        "",
    ]
    lines += table(
        ["rule", "spec", "records", "median", "min", "simulated cycles per step"],
        [
            [algorithm, spec, str(records), ms(t.median_s), ms(t.min_s), f"{cycles:,}"]
            for (algorithm, spec), (t, cycles, records) in report["context"].items()
        ],
        text_columns=2,
    )
    if report.get("baseline") is not None:
        lines += ["", *sparsity_off.render(report["baseline"], "the AlexNet BP trace")]
    lines += [
        "",
        "Sweeps (many simulations in a process pool or on Dask) are measured by "
        "`benchmarks/sweep_speed.py`: see [performance-sweeps.md](performance-sweeps.md), "
        "and a 10,000-point sweep by `benchmarks/sweep_10k.py`: see "
        "[performance-sweeps-10k.md](performance-sweeps-10k.md). "
        "Training beside CPU-bound neighbours (BLAS threads sized by problem) is measured by "
        "`benchmarks/busy_machine.py`: see [performance-busy.md](performance-busy.md).",
    ]
    lines += [
        "",
        "## Where the time goes",
        "",
        "One `cProfile` run of `simulate` per default spec (AlexNet BP). The top "
        f"{PROFILE_TOP} functions in hwsim and simpy by cumulative time, below "
        "`simulate` itself; the profiler slows the calls, so read the shares, not the "
        "seconds.",
        "",
    ]
    for spec, prof in report["profiles"].items():
        lines += [f"### {spec} ({ms(prof.total_s)} under the profiler)", ""]
        lines += table(
            ["function", "calls", "own time", "cumulative", "share"],
            [
                [
                    f"`{label}`",
                    f"{calls:,}",
                    ms(own),
                    ms(cumulative),
                    f"{cumulative / prof.total_s:.0%}",
                ]
                for label, calls, own, cumulative in prof.top
            ],
        )
        lines += ["", profile_paragraph(spec, prof, report["records"]), ""]
    return "\n".join(lines).rstrip() + "\n"


# ---- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, folder: Path) -> dict:
    host = machine()
    traced: dict[str, Path] = {}
    trace_seconds: dict[str, float] = {}
    for algorithm in ALGORITHMS:
        if algorithm == "bp" and args.trace is not None:
            traced[algorithm] = args.trace
            continue
        traced[algorithm], seconds = produce_trace(algorithm, args.batch_size, folder)
        if seconds is not None:
            trace_seconds[algorithm] = seconds
    trace_path = traced["bp"]
    load = time_calls(lambda: read_trace(trace_path), args.repeats)
    trace = read_trace(trace_path)
    archs = {spec: load_arch(spec) for spec in DEFAULT_SPECS}

    default, memory = {}, {}
    for spec, arch in archs.items():
        timing = time_calls(lambda arch=arch: simulate(arch, trace), args.repeats)
        default[spec] = (timing, simulate(arch, trace).cycles)
    load_rss = child_peak_rss_bytes("load", trace_path, DEFAULT_SPECS[0])
    for spec, arch in archs.items():
        memory[spec] = (
            child_peak_rss_bytes("simulate", trace_path, spec),
            traced_peak_bytes(arch, trace),
        )

    scaled = {tiles: with_tiles(archs[SCALED_SPEC], tiles) for tiles in SCALED_TILES}
    for arch in scaled.values():
        simulate(arch, trace)  # warm-up
    samples: dict[int, list[float]] = {tiles: [] for tiles in SCALED_TILES}
    for _ in range(args.repeats):
        for tiles, arch in scaled.items():
            start = time.perf_counter()
            simulate(arch, trace)
            samples[tiles].append(time.perf_counter() - start)
    scaling = {}
    for tiles, arch in scaled.items():
        result = simulate(arch, trace)
        regions = place(trace.header, arch).regions.values()
        scaling[tiles] = {
            "timing": Timing(tuple(samples[tiles])),
            "events": profile(arch, trace).events,
            "spilled_bytes": sum(region.spilled_bytes for region in regions),
            "dram_read_bytes": result.total("dram", "read"),
            "cycles": result.cycles,
            "rss": child_peak_rss_bytes("simulate", trace_path, SCALED_SPEC, tiles),
        }

    context = {}
    for algorithm in ALGORITHMS:
        other = trace if algorithm == "bp" else read_trace(traced[algorithm])
        for spec, arch in archs.items():
            if algorithm == "bp":
                timing, cycles = default[spec]
            else:
                timing = time_calls(
                    lambda arch=arch, other=other: simulate(arch, other), args.repeats
                )
                cycles = simulate(arch, other).cycles
            context[(algorithm, spec)] = (timing, cycles, len(other.records))

    profiles = {spec: profile(arch, trace) for spec, arch in archs.items()}

    ratio = (
        scaling[SCALED_TILES[-1]]["timing"].median_s / scaling[SCALED_TILES[0]]["timing"].median_s
    )
    verdicts = [
        verdict(
            default[spec][0].median_s,
            TARGET_SECONDS,
            f"`simulate` on `{spec}` under 1 s (median {ms(default[spec][0].median_s)})",
        )
        for spec in DEFAULT_SPECS
    ]
    verdicts += [
        verdict(
            memory[spec][0],
            TARGET_PEAK_RSS_BYTES,
            f"peak RSS of load + simulate on `{spec}` under 500 MB ({mb(memory[spec][0])})",
        )
        for spec in DEFAULT_SPECS
    ]
    vn_median = default["von_neumann"][0].median_s
    verdicts.append(
        verdict(
            vn_median,
            TARGET_VON_NEUMANN_SECONDS,
            f"`simulate` on `von_neumann` faster than the chunked model's "
            f"~100 ms (median {ms(vn_median)})",
        )
    )
    per_record = profiles["von_neumann"].events / len(trace.records)
    verdicts.append(
        verdict(
            per_record,
            TARGET_EVENTS_PER_RECORD,
            f"fewer than {TARGET_EVENTS_PER_RECORD} simpy events per record on "
            f"`von_neumann` ({per_record:.1f})",
        )
    )
    verdicts.append(
        verdict(
            ratio,
            TARGET_SCALING_RATIO,
            f"{SCALED_TILES[-1]:,} tiles at most 4× the {SCALED_TILES[0]}"
            f"-tile time ({ratio:.2f}×, medians)",
        )
    )
    baseline = None
    if args.baseline is not None:
        baseline = sparsity_off.compare(trace_path.resolve(), args.baseline)
        # The paired figure: each round's A ÷ B, whose drift the pairing cancels.
        for spec, (_, _, _, paired, _) in baseline["table"].items():
            verdicts.append(
                verdict(
                    paired,
                    TARGET_BASELINE_RATIO,
                    f"`simulate` on `{spec}` with sparsity off at most "
                    f"{TARGET_BASELINE_RATIO:.2f}× `{args.baseline}`'s ({paired:.2f}×, median "
                    "of the rounds' ratios)",
                )
            )
        for spec, (ours, theirs) in baseline["function_calls"].items():
            verdicts.append(
                verdict(
                    ours / theirs,
                    TARGET_BASELINE_CALLS_RATIO,
                    f"Python function calls of one `simulate` on `{spec}` with sparsity off at "
                    f"most {TARGET_BASELINE_CALLS_RATIO:.2f}× `{args.baseline}`'s "
                    f"({ours:,} against {theirs:,})",
                )
            )
    host["load average at end (1, 5, 15 min)"] = load_average()
    reused = [algorithm for algorithm in ALGORITHMS if algorithm not in trace_seconds]
    note = " ".join(
        filter(
            None,
            [
                "Traced in this run with `hwsim.cli.main(['trace', ...])` (a real numpy training "
                "step, not part of the targets): "
                + ", ".join(
                    f"{algorithm} {seconds:.1f} s" for algorithm, seconds in trace_seconds.items()
                )
                + "."
                if trace_seconds
                else "",
                f"Reused, not traced in this run: {', '.join(reused)}." if reused else "",
            ],
        )
    )
    return {
        "command": shlex.join(["python", *sys.argv]),
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": host,
        "repeats": args.repeats,
        "batch_size": trace.header.batch_size,
        "records": len(trace.records),
        "trace_file_bytes": trace_path.stat().st_size,
        "trace_note": note,
        "load": load,
        "default": default,
        "load_rss": load_rss,
        "memory": memory,
        "scaling": scaling,
        "context": context,
        "profiles": profiles,
        "verdicts": verdicts,
        "baseline": baseline,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.trace_dir is not None:
            args.trace_dir.mkdir(parents=True, exist_ok=True)
            folder = args.trace_dir
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hwsim-")))
        text = render(run(args, folder))
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
