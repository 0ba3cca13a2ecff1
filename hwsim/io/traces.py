"""Trace files: JSON Lines (`.jsonl`, or gzip-compressed `.jsonl.gz`), header first.

Writing is atomic (a temporary file renamed into place), so a failed run leaves no half trace.
Reading validates every line and names the line and field of the first bad one.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from hwsim.errors import TraceError
from hwsim.specs.common import format_validation_error
from hwsim.specs.trace import TRACE_SCHEMA_VERSION, GatherOp, OpRecord, Trace, TraceHeader


def _is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


@contextmanager
def atomic_output(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def trace_lines(header: TraceHeader, records: Sequence[OpRecord]) -> Iterator[str]:
    yield header.model_dump_json()
    for record in records:
        yield record.model_dump_json()


def write_trace(path: str | Path, trace: Trace) -> Path:
    """Write `trace` to `path` (gzip when it ends in .gz); byte-identical for identical traces."""
    path = Path(path)
    text = "".join(line + "\n" for line in trace_lines(trace.header, trace.records))
    with atomic_output(path, binary=True) as f:
        data = text.encode("utf-8")
        if _is_gzip(path):
            # mtime=0 and no file name keep the bytes identical from run to run.
            data = gzip.compress(data, compresslevel=6, mtime=0)
        f.write(data)
    return path


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TraceError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, expected a trace file") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    if _is_gzip(path) or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise TraceError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not UTF-8 text (byte {exc.start}); is this a trace?") from None
    return text.splitlines()


def _parse_json(path: Path, number: int, line: str, last: bool) -> dict:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if last else ""
        raise TraceError(f"{path}: line {number}: not valid JSON{hint}: {exc.msg} "
                         f"at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise TraceError(f"{path}: line {number}: expected a JSON object "
                         f"(got {type(value).__name__})")
    return value


def _validated(model, value: dict, path: Path, number: int):
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = format_validation_error(exc, model)
        raise TraceError(f"{path}: line {number}: {problems[0]}") from None


def _check_references(path: Path, header: TraceHeader, records: list[OpRecord]) -> None:
    """Every record's layer is in the header; a gather's layer has a feedback matrix."""
    layers = {layer.name for layer in header.layers}
    feedback = {info.layer for info in header.feedback}
    for record in records:
        number = record.id + 2
        if record.layer not in layers:
            raise TraceError(f"{path}: line {number}: layer: {record.layer!r} is not one of the "
                             f"header's layers")
        if isinstance(record.op, GatherOp) and record.layer not in feedback:
            raise TraceError(f"{path}: line {number}: layer: a gather needs the header's "
                             f"feedback entry for {record.layer!r} (there is none)")


def read_trace(path: str | Path) -> Trace:
    """Load and validate a trace; TraceError names the file, the line and the field."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines or not lines[0].strip():
        raise TraceError(f"{path}: empty file, expected a trace header on line 1")
    header_data = _parse_json(path, 1, lines[0], last=len(lines) == 1)
    if header_data.get("kind") != "trace":
        kind = header_data.get("kind")
        raise TraceError(f"{path}: line 1: kind: expected 'trace' (got {kind!r})")
    version = header_data.get("schema_version")
    if version != TRACE_SCHEMA_VERSION:
        older = isinstance(version, int) and not isinstance(version, bool) and \
            version < TRACE_SCHEMA_VERSION
        advice = ("; regenerate it with this hwsim's `hwsim trace` or `hwsim train "
                  "--trace-out`" if older else "")
        raise TraceError(f"{path}: line 1: schema_version: this hwsim reads version "
                         f"{TRACE_SCHEMA_VERSION} (got {version!r}){advice}")
    header = _validated(TraceHeader, header_data, path, 1)
    records: list[OpRecord] = []
    body = lines[1:]
    for offset, line in enumerate(body):
        number = offset + 2
        if not line.strip():
            raise TraceError(f"{path}: line {number}: blank line inside the trace")
        data = _parse_json(path, number, line, last=offset == len(body) - 1)
        record = _validated(OpRecord, data, path, number)
        if record.id != offset:
            raise TraceError(f"{path}: line {number}: id: records must be numbered 0, 1, 2, ... "
                             f"in order; expected {offset} (got {record.id})")
        records.append(record)
    _check_references(path, header, records)
    if len(records) != header.record_count:
        raise TraceError(f"{path}: the header promises {header.record_count} records but the "
                         f"file has {len(records)}; the trace is truncated or was edited")
    return Trace(header=header, records=records)
