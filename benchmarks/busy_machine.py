"""The main job's training beside CPU-bound neighbours: BLAS threads sized by problem (hwsim's
default) against the BLAS library's own default.

    python benchmarks/busy_machine.py [--repeats 3] [--out docs/performance-busy.md]

Each measurement is a fresh `python -c` process training digits_fc with BP for 3 epochs
(`hwsim train`, the main job's inner loop), timed by wall clock; "busy" runs it beside one
`while True: pass` process per core.  "library default" turns the sizing off by setting
hwsim.train.threads.SINGLE_THREAD_MACS to 0 in that process.  Repeats are interleaved so drift
on a shared machine hits every case alike; the report gives the median and the range.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TRAIN = (
    "import hwsim.train.threads as threads\n"
    "{patch}"
    "from hwsim.cli import main\n"
    "import contextlib, io\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
    "    assert main(['train', '--network', 'digits_fc', '--algorithm', 'bp', "
    "'--epochs', '3', '--json']) == 0\n"
)
CASES = {
    "sized (hwsim's default)": "",
    "library default": "threads.SINGLE_THREAD_MACS = 0\n",
}


def run_once(patch: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", TRAIN.format(patch=patch)], check=True)
    return time.perf_counter() - start


def measure(repeats: int) -> dict[tuple[str, str], list[float]]:
    times: dict[tuple[str, str], list[float]] = {}
    for load in ("quiet", "busy"):
        burners = []
        if load == "busy":
            burners = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count() or 2)
            ]
            time.sleep(0.5)
        try:
            for _ in range(repeats):
                for case, patch in CASES.items():
                    times.setdefault((load, case), []).append(run_once(patch))
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
    return times


def render(times: dict[tuple[str, str], list[float]], repeats: int) -> str:
    lines = [
        "# Training beside CPU-bound neighbours",
        "",
        "Written by `benchmarks/busy_machine.py`; rerun it to refresh these numbers. Wall time of "
        "a fresh process training digits_fc with BP for 3 epochs (`hwsim train`), median and "
        f"range of {repeats} interleaved runs; busy = beside one `while True: pass` process per "
        f"core ({os.cpu_count()} here). Run "
        f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "| machine | BLAS threads | median | range |",
        "|---|---|---:|---:|",
    ]
    for (load, case), values in times.items():
        lines.append(
            f"| {load} | {case} | {statistics.median(values):.2f} s | "
            f"{min(values):.2f}–{max(values):.2f} s |"
        )
    sized = statistics.median(times[("busy", "sized (hwsim's default)")])
    library = statistics.median(times[("busy", "library default")])
    lines += [
        "",
        f"Beside the neighbours, sizing the BLAS threads makes the step {library / sized:.1f}× "
        "faster: a multi-threaded OpenBLAS spin-waits for a core another process holds, and "
        "digits_fc's matrices are too small to gain from threads "
        "(hwsim.train.threads: one thread below 2^26 MACs).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    text = render(measure(args.repeats), args.repeats)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
