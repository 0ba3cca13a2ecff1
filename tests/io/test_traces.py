"""Trace files: round trip, determinism, and a message naming line and field for each fault."""

from __future__ import annotations

import dataclasses
import gzip
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import TraceError
from hwsim.io.traces import read_trace, write_trace
from hwsim.specs.network import NetworkSpec, OptimizerName
from hwsim.specs.trace import Algorithm, Operand, Role, Trace
from hwsim.train.loop import TrainConfig, Trainer

TINY = NetworkSpec.model_validate(
    {
        "schema_version": 1,
        "kind": "network",
        "name": "tiny",
        "dataset": "synthetic",
        "input_shape": [6, 6, 1],
        "classes": 3,
        "layers": [
            {
                "type": "conv2d",
                "name": "conv",
                "filters": 2,
                "kernel_size": 3,
                "activation": "relu",
            },
            {"type": "max_pool", "name": "pool", "pool_size": 2},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "fc1", "units": 5, "activation": "tanh"},
            {"type": "dropout", "name": "drop", "rate": 0.5},
            {"type": "dense", "name": "fc2", "units": 3},
        ],
    }
)


def make_trace(algorithm: str = "ssdfa", seed: int = 0) -> Trace:
    config = TrainConfig(
        algorithm=Algorithm(algorithm),
        epochs=1,
        batch_size=4,
        learning_rate=0.01,
        optimizer=OptimizerName.ADAM,
        seed=seed,
    )
    trainer = Trainer(TINY, config)
    rng = np.random.default_rng(seed)
    x = rng.random((4, 6, 6, 1), dtype=np.float32)
    y = rng.integers(0, 3, size=4)
    return trainer.traced_step(x, y, "synthetic")


@pytest.fixture(scope="module")
def trace() -> Trace:
    return make_trace()


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_round_trip_is_identity(tmp_path, trace, name):
    path = write_trace(tmp_path / name, trace)
    assert read_trace(path) == trace
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_reading_shares_equal_parts_between_records(tmp_path, trace):
    """read_trace keeps each distinct name, number, operand and op once (a 200,000-record
    step would otherwise hold a copy per record): a dependency is the very id it names,
    equal tensor names, element counts and layer names are one object."""
    records = read_trace(write_trace(tmp_path / "t.jsonl", trace)).records
    kept: dict = {}

    def once(value) -> bool:
        return kept.setdefault((type(value), value), value) is value

    for record in records:
        assert all(dep is records[dep].id for dep in record.deps)
        assert once(record.layer) and once(record.op) and once(record.macs)
        for operand in (*record.reads, *record.writes):
            assert once(operand) and once(operand.tensor) and once(operand.elements)
            assert once(operand.density)
    big = [value for (kind, value) in kept if kind is int and value > 256]
    assert big, "the check should cover numbers Python does not cache itself"


@pytest.mark.parametrize("algorithm", ["bp", "dfa", "ssdfa"])
def test_same_seed_gives_byte_identical_files(tmp_path, algorithm):
    first = write_trace(tmp_path / "a.jsonl.gz", make_trace(algorithm, seed=3))
    second = write_trace(tmp_path / "b.jsonl.gz", make_trace(algorithm, seed=3))
    assert first.read_bytes() == second.read_bytes()
    other = write_trace(tmp_path / "c.jsonl.gz", make_trace(algorithm, seed=4))
    assert other.read_bytes() != first.read_bytes()


PER_EXAMPLE = (Role.INPUT, Role.ACTIVATION, Role.ERROR)  # batch × one example's values


def _example_sizes(trace: Trace) -> list[int]:
    header = trace.header
    shapes = [s for layer in header.layers for s in (layer.input_shape, layer.output_shape)]
    return sorted({header.classes, *(int(np.prod(shape)) for shape in shapes)})


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(Role)), st.integers(0, 10**12), st.floats(0, 1)),
        min_size=0,
        max_size=4,
    )
)
def test_operands_survive_the_round_trip(tmp_path_factory, operands):
    trace = make_trace_cached()
    index = next(i for i, record in enumerate(trace.records) if record.op.kind == "elementwise")
    sizes = _example_sizes(trace)
    reads = [
        Operand(
            tensor=f"t{i}",
            role=role,
            # a per-example operand holds a whole batch of some layer's values
            elements=trace.header.batch_size * sizes[elements % len(sizes)]
            if role in PER_EXAMPLE
            else elements,
            density=density,
        )
        for i, (role, elements, density) in enumerate(operands)
    ]
    records = list(trace.records)
    records[index] = dataclasses.replace(records[index], reads=tuple(reads))
    edited = trace.model_copy(update={"records": records})
    path = write_trace(tmp_path_factory.mktemp("h") / "t.jsonl", edited)
    assert read_trace(path) == edited


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(PER_EXAMPLE), st.integers(0, 10**9), st.integers(0, 3))
def test_a_batch_the_records_contradict_is_refused(tmp_path_factory, role, elements, side):
    """An operand that is not batch_size × one example of some layer: the header's batch is
    wrong for the records (or the records were edited), and the trace is refused."""
    trace = make_trace_cached()
    batch, sizes = trace.header.batch_size, _example_sizes(trace)
    if elements % batch == 0 and elements // batch in sizes:
        elements += 1
    index = next(i for i, record in enumerate(trace.records) if record.op.kind == "elementwise")
    record = trace.records[index]
    operand = Operand(tensor="odd", role=role, elements=elements, density=1.0)
    operands = list(record.reads if side % 2 else record.writes)
    operands.insert(0, operand)
    change = {"reads": tuple(operands)} if side % 2 else {"writes": tuple(operands)}
    records = list(trace.records)
    records[index] = dataclasses.replace(record, **change)
    path = write_trace(
        tmp_path_factory.mktemp("b") / "t.jsonl",
        trace.model_copy(update={"records": records}),
    )
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert f"line {index + 2}: {'reads' if side % 2 else 'writes'}.0.elements: " in str(
        caught.value
    )
    assert str(caught.value).endswith("the header's batch_size contradicts the records")


_CACHE: dict[str, Trace] = {}


def make_trace_cached() -> Trace:
    if "t" not in _CACHE:
        _CACHE["t"] = make_trace()
    return _CACHE["t"]


def _lines(tmp_path, trace) -> tuple[list[str], object]:
    path = write_trace(tmp_path / "t.jsonl", trace)
    return path.read_text().splitlines(), path


def _rewrite(path, lines) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _edit_line(lines, index, **changes) -> list[str]:
    data = json.loads(lines[index])
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return [*lines[:index], json.dumps(data), *lines[index + 1 :]]


@pytest.mark.parametrize(
    ("line", "changes", "message"),
    [
        (0, {"schema_version": 4}, "line 1: schema_version: this hwsim reads version 3 (got 4)"),
        (
            0,
            {"schema_version": 2},
            "line 1: schema_version: this hwsim reads version 3 (got 2); "
            "regenerate it with this hwsim's `hwsim trace` or `hwsim train "
            "--trace-out`",
        ),
        (
            1,
            {"reads__0__slot": None},
            "line 2: slot: a conv2d reads one operand in slot 'a' and "
            "one in 'b' and writes one in 'c' (got reads [None, 'b', ",
        ),
        (
            1,
            {"reads__0__elements": 5},
            "line 2: slot: the 'a' operand 'input' of this conv2d must have",
        ),
        (2, {"reads__0__slot": "a"}, "line 3: slot: only matmul and conv2d operands have one"),
        (0, {"kind": "arch"}, "line 1: kind: expected 'trace' (got 'arch')"),
        (
            0,
            {"algorithm": "dfaa"},
            "line 1: algorithm: must be 'bp', 'dfa' or 'ssdfa' (got 'dfaa')",
        ),
        (0, {"batch_size": 0}, "line 1: batch_size: must be greater than 0 (got 0)"),
        (
            0,
            {"feedback__0__nonzeros": 10**9},
            "line 1: feedback.0: nonzeros cannot exceed classes × neurons = 54 (got 1000000000)",
        ),
        (0, {"algorithm": "bp"}, "line 1: a bp trace has no feedback matrices"),
        (
            0,
            {"feedback__0__nonzeros_per_neuron": None},
            "line 1: ssdfa feedback must be sparse; dense for conv",
        ),
        (2, {"reads__0__density": 1.5}, "line 3: reads.0.density: must be less than or equal to 1"),
        (2, {"reads__0__rol": "input"}, "line 3: reads.0.rol: unknown key; did you mean 'role'?"),
        (2, {"reads__0__role": "weights"}, "line 3: reads.0.role: must be 'input', 'label'"),
        (2, {"phase": "backward"}, "line 3: phase: must be 'forward', 'error', 'gradient' or"),
        (2, {"macs": 7}, "line 3: macs must equal the op's closed form"),
        (2, {"deps": [5]}, "line 3: deps must name earlier records (< 1) (got [5])"),
        (3, {"id": 9}, "line 4: id: records must be numbered 0, 1, 2, ... in order; expected 2"),
        (1, {"op__m": 0}, "line 2: op.m: must be greater than 0 (got 0)"),
    ],
)
def test_bad_field_messages(tmp_path, trace, line, changes, message):
    lines, path = _lines(tmp_path, trace)
    _rewrite(path, _edit_line(lines, line, **changes))
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_records_must_name_header_layers_and_gathers_their_feedback(tmp_path, trace):
    lines, path = _lines(tmp_path, trace)
    _rewrite(path, _edit_line(lines, 1, layer="nowhere"))
    with pytest.raises(TraceError, match=r"line 2: layer: 'nowhere' is not one of the header's"):
        read_trace(path)
    gather = next(i for i, line in enumerate(lines) if '"kind":"gather"' in line)
    header = json.loads(lines[0])
    header["feedback"] = [
        info for info in header["feedback"] if info["layer"] != json.loads(lines[gather])["layer"]
    ]
    _rewrite(path, [json.dumps(header, separators=(",", ":")), *lines[1:]])
    with pytest.raises(
        TraceError,
        match=rf"line {gather + 1}: layer: a gather needs the "
        r"header's feedback entry",
    ):
        read_trace(path)


def test_conv_geometry_must_match_im2col(tmp_path, trace):
    lines, path = _lines(tmp_path, trace)
    index = next(i for i, line in enumerate(lines) if '"kind":"conv2d"' in line)
    _rewrite(path, _edit_line(lines, index, op__m=999, macs=999 * 9 * 2))
    with pytest.raises(TraceError, match=r"m, k, n must be \[144, 9, 2\] for a forward pass"):
        read_trace(path)


def test_truncated_mid_line(tmp_path, trace):
    path = write_trace(tmp_path / "t.jsonl", trace)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    with pytest.raises(TraceError, match=r"line \d+: not valid JSON \(the file looks truncated\)"):
        read_trace(path)


def test_truncated_at_a_line_boundary(tmp_path, trace):
    lines, path = _lines(tmp_path, trace)
    _rewrite(path, lines[:-3])
    with pytest.raises(
        TraceError,
        match=f"promises {len(trace.records)} records but the file has {len(trace.records) - 3}",
    ):
        read_trace(path)


def test_other_file_faults(tmp_path, trace):
    with pytest.raises(TraceError, match="nope.jsonl: file not found"):
        read_trace(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TraceError, match="empty file, expected a trace header on line 1"):
        read_trace(empty)
    lines, path = _lines(tmp_path, trace)
    _rewrite(path, [lines[0], "", *lines[1:]])
    with pytest.raises(TraceError, match="line 2: blank line inside the trace"):
        read_trace(path)
    _rewrite(path, [lines[0], "[1, 2]", *lines[1:]])
    with pytest.raises(TraceError, match="line 2: expected a JSON object \\(got list\\)"):
        read_trace(path)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(np.random.default_rng(0).bytes(4000))[:300])
    with pytest.raises(TraceError, match="broken.jsonl.gz: corrupt or truncated gzip data"):
        read_trace(broken)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TraceError, match="not UTF-8 text"):
        read_trace(binary)
    with pytest.raises(TraceError, match="is a directory"):
        read_trace(tmp_path)


def test_failed_write_leaves_nothing(tmp_path, trace, monkeypatch):
    import hwsim.io.traces as traces

    class FillsTheDisk:
        """Some bytes go out, then the disk is full."""

        def compress(self, data):
            return data[:100]

        def flush(self):
            raise OSError("disk full")

    monkeypatch.setattr(traces.zlib, "compressobj", lambda *args: FillsTheDisk())
    with pytest.raises(OSError, match="disk full"):
        write_trace(tmp_path / "t.jsonl.gz", trace)
    assert list(tmp_path.iterdir()) == []


def test_the_header_of_the_largest_network_fits_the_header_line_bound(trace):
    """A network at the layer cap, every name 64 characters, dense feedback to every layer:
    its trace header still reads back (records are bounded separately, at 1 MiB a line)."""
    from hwsim.io.traces import MAX_HEADER_LINE_BYTES, MAX_TRACE_LINE_BYTES
    from hwsim.specs.network import MAX_LAYERS
    from hwsim.specs.trace import FeedbackInfo, LayerInfo

    names = [f"{index:d}".rjust(64, "x") for index in range(MAX_LAYERS)]
    big = 2**40
    layers = [
        LayerInfo(
            name=name,
            type="conv2d",
            input_shape=[big, big, big],
            output_shape=[big, big, big],
            trainable=True,
            weights=big,
            parameters=big,
        )
        for name in names
    ]
    feedback = [
        FeedbackInfo(
            layer=name,
            classes=2**20,
            neurons=big,
            nonzeros=big,
            nonzeros_per_neuron=None,
            rank=None,
        )
        for name in names
    ]
    header = trace.header.model_copy(
        update={"layers": layers, "feedback": feedback, "algorithm": Algorithm.DFA}
    )
    size = len(header.model_dump_json()) + 1
    assert MAX_TRACE_LINE_BYTES < size <= MAX_HEADER_LINE_BYTES
