"""What the command modules share, kept light (no numpy, pandas or simpy: `hwsim --help`
imports it): argument types and the progress bar."""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1 (got {value})")
    return value


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    """Where a command of many runs (sweep, study) runs them: --jobs (a local process pool),
    or --scheduler / --dask-local (Dask)."""
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="worker processes of the local pool (default: the CPUs available)",
    )
    dask = parser.add_mutually_exclusive_group()
    dask.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on this Dask scheduler (tcp://host:8786); needs hwsim[dask]",
    )
    dask.add_argument(
        "--dask-local",
        type=positive_int,
        default=None,
        metavar="N",
        help="run on a local Dask cluster of N worker processes",
    )


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (got {text})")
    return value


def finite_json(value: object, path: str = "") -> tuple[object, list[str]]:
    """`value` with every NaN or infinite float made None (JSON has no NaN or Infinity), and
    the dotted paths of those it replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [path or "(value)"]
    if isinstance(value, dict):
        clean, replaced = {}, []
        for key, item in value.items():
            clean[key], found = finite_json(item, f"{path}.{key}" if path else str(key))
            replaced += found
        return clean, replaced
    if isinstance(value, list | tuple):
        items = [finite_json(item, f"{path}.{index}") for index, item in enumerate(value)]
        return [item for item, _ in items], [name for _, found in items for name in found]
    return value, []


def progress(total: int, description: str, unit: str) -> tqdm:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        leave=False,
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
