"""`hwsim sweep`: run a design-space sweep file into a folder, resumably."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hwsim.cli.common import add_worker_flags
from hwsim.errors import SpecError


def add_parser(commands) -> None:
    parser = commands.add_parser("sweep", help="run a design-space sweep file (kind: sweep)")
    parser.add_argument("file", type=Path, metavar="FILE", help="sweep file (.yaml)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: points/, specs/, results.csv (re-running the "
        "same folder skips finished points)",
    )
    add_worker_flags(parser)


def _progress(args: argparse.Namespace, bar: list, failed: list[str]):
    """The sweep's callbacks: a progress bar over the rows to run (appended to `bar`), and
    the keys of failed rows (appended to `failed`)."""
    from tqdm import tqdm

    def on_start(to_run: int, skipped: int) -> None:
        if skipped:
            print(
                f"{skipped} rows already finished in {args.out}; running {to_run}", file=sys.stderr
            )
        bar.append(
            tqdm(
                total=to_run,
                desc=f"sweep {args.file.stem}",
                unit="point",
                file=sys.stderr,
                dynamic_ncols=True,
                disable=not to_run or not sys.stderr.isatty(),
            )
        )

    def on_result(key: str, result: dict[str, Any]) -> None:
        if result["status"] != "ok":
            failed.append(key)
        bar[0].update()

    return on_start, on_result


def cmd_sweep(args: argparse.Namespace) -> int:
    from hwsim.io.folders import SWEEP_LAYOUT, claim
    from hwsim.sweep.runner import check_workers, run_sweep

    if args.jobs is not None and (args.scheduler or args.dask_local):
        raise SpecError("--jobs sets the local process pool; with Dask give --dask-local N")
    check_workers(args.jobs, "--jobs")
    check_workers(args.dask_local, "--dask-local")
    # Refused before the points are validated if not a sweep's to write (the sweep checks its
    # specs and traces too, once it has read them).
    claim(args.out, inputs=[args.file], flag="--out", resume=SWEEP_LAYOUT)
    bar: list = []  # the progress bar, once the rows to run are known
    failed: list[str] = []
    on_start, on_result = _progress(args, bar, failed)
    try:
        table = run_sweep(
            args.file,
            args.out,
            jobs=args.jobs,
            scheduler=args.scheduler,
            dask_local=args.dask_local,
            on_start=on_start,
            on_result=on_result,
        )
    finally:
        for item in bar:
            item.close()
    errors = table[table["status"] != "ok"]
    for row in errors.itertuples(index=False):
        first = str(row.error).splitlines()[0] if row.error else row.status
        print(f"point {row.point} ({row.base}) × {row.workload}: {first}", file=sys.stderr)
    print(
        f"{args.out / 'results.csv'}: {len(table)} rows "
        f"({table['point'].nunique()} points × {table['workload'].nunique()} workloads)"
    )
    if len(errors):
        print(f"{len(errors)} of {len(table)} rows failed (status error in the table)")
        return 1
    print(f"all {len(table)} rows ok")
    return 0
