"""Trace files: JSON Lines (`.jsonl`, or gzip-compressed `.jsonl.gz`), header first.

Writing is atomic (hwsim.io.outputs.atomic_output, re-exported here), so a failed run leaves no
half trace.
Reading validates every line and names the line and field of the first bad one.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from hwsim.errors import TraceError
from hwsim.io.inputs import open_regular
from hwsim.io.outputs import atomic_output
from hwsim.specs.common import format_validation_error, short_repr
from hwsim.specs.trace import (
    RECORD,
    TRACE_SCHEMA_VERSION,
    GatherOp,
    OpRecord,
    Phase,
    Role,
    SharedParts,
    Trace,
    TraceHeader,
    record_json,
)

MAX_TRACE_LINE_BYTES = 2**20  # a record; the longest shipped one is under 1 KB
# The header lists every layer (~220 bytes each): VGG16's is 3.7 KB, a network at the
# 50,000-layer cap of hwsim.specs.network at most ~25 MB (tested).
MAX_HEADER_LINE_BYTES = 2**25
MAX_TRACE_BYTES = 2**30  # decompressed: ~4 million records


def _is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


def trace_lines(header: TraceHeader, records: Sequence[OpRecord]) -> Iterator[str]:
    yield header.model_dump_json()
    for record in records:
        yield record_json(record)


def write_trace(path: str | Path, trace: Trace) -> Path:
    """Write `trace` to `path` (gzip when it ends in .gz); byte-identical for identical traces."""
    path = Path(path)
    # Streamed a few hundred lines at a time, never the whole text in memory.  zlib's own gzip
    # wrapper (wbits=31) writes mtime 0 and no file name: the bytes are identical from run to
    # run, and to gzip.compress(text, 6, mtime=0).
    packer = zlib.compressobj(6, zlib.DEFLATED, 31) if _is_gzip(path) else None
    with atomic_output(path, binary=True) as f:
        lines = trace_lines(trace.header, trace.records)
        while chunk := "".join(line + "\n" for line in islice(lines, 256)):
            data = chunk.encode("utf-8")
            f.write(packer.compress(data) if packer else data)
        if packer:
            f.write(packer.flush())
    return path


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, is the last line) for each line of a trace, plain or gzip, read as a
    stream: never more than MAX_HEADER_LINE_BYTES of the header, MAX_TRACE_LINE_BYTES of a record
    or MAX_TRACE_BYTES in all."""
    with open_regular(path, TraceError, "a trace file") as raw:
        compressed = _is_gzip(path) or raw.peek(2)[:2] == b"\x1f\x8b"
        if compressed:
            _check_gzip(path, raw)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        total = 0
        held: tuple[int, bytes] | None = None
        number = 0
        while True:
            limit = MAX_HEADER_LINE_BYTES if number == 0 else MAX_TRACE_LINE_BYTES
            try:
                line = stream.readline(limit + 1)
            except (OSError, EOFError, zlib.error) as exc:
                problem = "corrupt or truncated gzip data" if compressed else "cannot read"
                raise TraceError(f"{path}: {problem} ({exc})") from None
            if not line:
                break
            number += 1
            total += len(line)
            if len(line) > limit:
                raise TraceError(
                    f"{path}: line {number}: longer than {limit:,} bytes; is this a trace?"
                )
            if total > MAX_TRACE_BYTES:
                raise TraceError(
                    f"{path}: more than {MAX_TRACE_BYTES:,} bytes of trace text"
                    f"{' once decompressed' if compressed else ''}; refusing to "
                    "read further"
                )
            if held is not None:
                yield held[0], _decoded(path, *held), False
            held = (number, line)
        if held is not None:
            yield held[0], _decoded(path, *held), True


def _check_gzip(path: Path, raw: IO[bytes]) -> None:
    """Decompress once without keeping anything: a corrupt or truncated stream, or one that
    inflates beyond MAX_TRACE_BYTES (a gzip bomb), is refused before any line is parsed."""
    total = 0
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            while chunk := stream.read(2**20):
                total += len(chunk)
                if total > MAX_TRACE_BYTES:
                    raise TraceError(
                        f"{path}: decompresses to more than {MAX_TRACE_BYTES:,} "
                        "bytes; refusing to read it as a trace"
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise TraceError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    raw.seek(0)


def _decoded(path: Path, number: int, line: bytes) -> str:
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise TraceError(
            f"{path}: line {number}: not UTF-8 text (byte {exc.start}); is this a trace?"
        ) from None


def _parse_json(path: Path, number: int, line: str, last: bool) -> dict:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if last else ""
        raise TraceError(
            f"{path}: line {number}: not valid JSON{hint}: {exc.msg} at column {exc.colno}"
        ) from None
    except ValueError as exc:  # an integer beyond Python's 4,300-digit conversion limit
        raise TraceError(f"{path}: line {number}: not a trace line ({exc})"[:300]) from None
    except RecursionError:
        raise TraceError(
            f"{path}: line {number}: JSON nested too deeply to be a trace line"
        ) from None
    if not isinstance(value, dict):
        raise TraceError(
            f"{path}: line {number}: expected a JSON object (got {type(value).__name__})"
        )
    return value


def _validated(model, value: dict, path: Path, number: int, validate=None):
    """`value` validated as `model` (by `validate`, default the model's own), or a
    TraceError naming the line and the field."""
    try:
        return (validate or model.model_validate)(value)
    except ValidationError as exc:
        problems = format_validation_error(exc, model)
        raise TraceError(f"{path}: line {number}: {problems[0]}") from None


def _record(path: Path, number: int, line: str, last: bool, shared: SharedParts) -> OpRecord:
    """One record line, validated straight from its JSON text, its parts shared with equal
    parts of earlier records; on any problem the line is parsed again the slow way, which
    names the problem."""
    try:
        return RECORD.validate_json(line, context=shared)
    except ValidationError:
        pass
    data = _parse_json(path, number, line, last=last)
    _validated(OpRecord, data, path, number, validate=RECORD.validate_python)
    raise TraceError(f"{path}: line {number}: not a trace record")  # pragma: no cover


_PER_EXAMPLE_ROLES = (Role.INPUT, Role.ACTIVATION, Role.ERROR)


def _check_batch(
    path: Path, header: TraceHeader, record: OpRecord, number: int, sizes: set[int]
) -> None:
    """An input, activation or error operand holds batch_size × one example's values of some
    layer's input or output (or of the classes): else the header's batch contradicts it."""
    batch = header.batch_size
    for side, operands in (("reads", record.reads), ("writes", record.writes)):
        for index, operand in enumerate(operands):
            if operand.role not in _PER_EXAMPLE_ROLES:
                continue
            if operand.elements % batch or operand.elements // batch not in sizes:
                raise TraceError(
                    f"{path}: line {number}: {side}.{index}.elements: {operand.elements:,} "
                    f"{operand.role.value} elements of {operand.tensor!r} are not batch_size "
                    f"{batch:,} × one example of any layer; the header's batch_size "
                    "contradicts the records"
                )


def _example_sizes(header: TraceHeader) -> set[int]:
    sizes = {header.classes}
    for layer in header.layers:
        sizes |= layer.example_sizes()
    return sizes


def _check_references(path: Path, header: TraceHeader, records: list[OpRecord]) -> None:
    """Every record's layer is in the header; a gather's layer has a feedback matrix; the
    per-example operands agree with the header's batch size."""
    layers = {layer.name for layer in header.layers}
    feedback = header.feedback_by_layer
    sizes = _example_sizes(header)
    for record in records:
        number = record.id + 2
        _check_batch(path, header, record, number, sizes)
        if header.inference and record.phase != Phase.FORWARD:
            raise TraceError(
                f"{path}: line {number}: phase: {record.phase.value!r} in an inference trace "
                "(the header says inference: true, a forward pass only)"
            )
        if record.layer not in layers:
            raise TraceError(
                f"{path}: line {number}: layer: {record.layer!r} is not one of the header's layers"
            )
        if isinstance(record.op, GatherOp) and record.layer not in feedback:
            raise TraceError(
                f"{path}: line {number}: layer: a gather needs the header's "
                f"feedback entry for {record.layer!r} (there is none)"
            )


MAX_TRACE_MACS = 2**50  # the whole step; VGG16 at batch 8 is ~2^38.5, at batch 2048 ~2^46.5


def _check_totals(path: Path, records: list[OpRecord]) -> None:
    """The step's totals stay where the simulator's 64-bit counters and tables hold them."""
    macs = sum(record.macs + record.other_ops for record in records)
    elements = sum(
        operand.elements for record in records for operand in (*record.reads, *record.writes)
    )
    if macs > MAX_TRACE_MACS or elements > MAX_TRACE_MACS:
        raise TraceError(
            f"{path}: the step does {macs:,} operations on {elements:,} operand "
            f"elements, more than hwsim simulates ({MAX_TRACE_MACS:,} of each)"
        )


def read_trace(path: str | Path) -> Trace:
    """Load and validate a trace; TraceError names the file, the line and the field."""
    path = Path(path)
    lines = _lines(path)
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise TraceError(f"{path}: empty file, expected a trace header on line 1")
    header_data = _parse_json(path, 1, first[1], last=first[2])
    if header_data.get("kind") != "trace":
        kind = header_data.get("kind")
        raise TraceError(f"{path}: line 1: kind: expected 'trace' (got {short_repr(kind)})")
    version = header_data.get("schema_version")
    if version != TRACE_SCHEMA_VERSION:
        older = (
            isinstance(version, int)
            and not isinstance(version, bool)
            and version < TRACE_SCHEMA_VERSION
        )
        advice = (
            "; regenerate it with this hwsim's `hwsim trace` or `hwsim train --trace-out`"
            if older
            else ""
        )
        raise TraceError(
            f"{path}: line 1: schema_version: this hwsim reads version "
            f"{TRACE_SCHEMA_VERSION} (got {short_repr(version)}){advice}"
        )
    header = _validated(TraceHeader, header_data, path, 1)
    records: list[OpRecord] = []
    shared = SharedParts()  # each distinct operand, op, name and number once
    for number, line, last in lines:
        offset = number - 2
        if not line.strip():
            raise TraceError(f"{path}: line {number}: blank line inside the trace")
        if offset >= header.record_count:
            raise TraceError(
                f"{path}: line {number}: the header promises "
                f"{header.record_count} records but the file has more; the "
                "trace was edited or two traces were joined"
            )
        record = _record(path, number, line, last, shared)
        if record.id != offset:
            raise TraceError(
                f"{path}: line {number}: id: records must be numbered 0, 1, 2, ... "
                f"in order; expected {offset} (got {record.id})"
            )
        records.append(record)
    _check_references(path, header, records)
    _check_totals(path, records)
    if len(records) != header.record_count:
        raise TraceError(
            f"{path}: the header promises {header.record_count} records but the "
            f"file has {len(records)}; the trace is truncated or was edited"
        )
    return Trace(header=header, records=records)
