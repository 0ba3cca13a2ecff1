"""Reading back the CSV tables hwsim writes (a step's breakdown, resources, timeline and
mapping; a run's history; a sweep's results), checked: a damaged or hand-edited table is one
DataError naming the file and the column or line, never a KeyError or a silent NaN later.

    table = read_table(path, {"layer": TEXT, "count": NUMBER}, "a simulate breakdown")

Columns are a mapping of name → kind: TEXT (any cell), NUMBER (a finite number in every row)
or OPTIONAL_NUMBER (a finite number or empty).  Columns not named are kept unchecked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hwsim.errors import DataError

TEXT = "text"
NUMBER = "number"
OPTIONAL_NUMBER = "optional number"
_LIMIT_BYTES = 2**31  # far above any table hwsim writes; a mistaken input is refused early


def _read(path: Path, what: str, allow_empty: bool) -> pd.DataFrame | None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if size > _LIMIT_BYTES:
        raise DataError(f"{path}: larger than {_LIMIT_BYTES:,} bytes, too large for {what}")
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        if allow_empty:
            return None
        raise DataError(f"{path}: is empty, expected {what} (a header line, then rows)") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as CSV ({first})") from None


def check_numbers(path: Path, frame: pd.DataFrame, column: str, optional: bool) -> None:
    """Every cell of `column` a finite number (or empty, `optional`); converted in place."""
    values = pd.to_numeric(frame[column], errors="coerce")
    present = frame[column].notna().to_numpy()
    finite = np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    bad = np.flatnonzero(present & ~finite if optional else ~(present & finite))
    if bad.size:
        row = int(bad[0])
        line = row + 2  # the header is line 1
        if not present[row]:
            raise DataError(f"{path}: line {line}: column {column} is empty, expected a number")
        text = str(frame[column].iloc[row])[:40]
        raise DataError(
            f"{path}: line {line}: column {column} holds {text!r}, expected a finite number"
        )
    frame[column] = values


def read_table(
    path: str | Path,
    columns: dict[str, str],
    what: str,
    *,
    allow_empty: bool = False,
) -> pd.DataFrame:
    """The CSV table at `path` with at least `columns`, each cell of its kind; DataError (one
    line, naming the file and the column or line) otherwise.  `allow_empty`: a file with no
    header at all (a run with no training) reads as an empty table."""
    path = Path(path)
    frame = _read(path, what, allow_empty)
    if frame is None:
        return pd.DataFrame(columns=list(columns))
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(missing)}; expected {what} with columns "
            f"{', '.join(columns)}"
        )
    for name, kind in columns.items():
        if kind in (NUMBER, OPTIONAL_NUMBER):
            check_numbers(path, frame, name, optional=kind == OPTIONAL_NUMBER)
    return frame


__all__ = ["NUMBER", "OPTIONAL_NUMBER", "TEXT", "check_numbers", "read_table"]
