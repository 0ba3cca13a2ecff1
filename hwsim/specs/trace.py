"""The trace: what one training step did, as a header plus one record per operation.

Hardware-independent: elements and MACs, never bytes.  docs/trace-format.md describes every field.

A trace can hold hundreds of thousands of records, so a record and its parts are slotted, frozen
pydantic dataclasses (a BaseModel with its per-instance `__dict__` and fields-set costs about
4.7 KB), and read_trace keeps equal parts of records once (`SharedParts`): about 0.55 KB a
record.  `RECORD` validates and serialises them.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from typing import Annotated, Any, Final, Literal, TypeVar, cast, dataclass_transform

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass

from hwsim.specs.common import FrozenModel
from hwsim.specs.token_shapes import layer_example_sizes
from hwsim.specs.vocab import Algorithm as Algorithm
from hwsim.specs.vocab import ConvPass as ConvPass
from hwsim.specs.vocab import Padding
from hwsim.specs.vocab import Phase as Phase
from hwsim.specs.vocab import Role as Role
from hwsim.specs.vocab import Slot as Slot

TRACE_SCHEMA_VERSION: Final = 3

# Bounds that keep every count, byte and cycle total of a simulation inside int64 (a record
# of more than 2^52 MACs would be a year of a 100k-MAC chip); read_trace also bounds the totals.
MAX_ELEMENTS = 2**48
MAX_RECORD_MACS = 2**52
Count = Annotated[int, Field(gt=0, le=MAX_ELEMENTS)]
Amount = Annotated[int, Field(ge=0, le=MAX_ELEMENTS)]
Work = Annotated[int, Field(ge=0, le=MAX_RECORD_MACS)]  # MACs or other operations of a record


def _encodable(text: str) -> str:
    """JSON can carry lone UTF-16 surrogates ("\\ud800") that no output file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"must be valid Unicode text (a lone surrogate at character {exc.start})"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]


_RecordT = TypeVar("_RecordT")
_make_record_type = dataclass(
    frozen=True, slots=True, kw_only=True, config=ConfigDict(extra="forbid")
)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(Field,))
def _record_type(cls: type[_RecordT]) -> type[_RecordT]:
    """A frozen, slotted, validating value: the building block of trace records."""
    # pydantic types what its dataclass returns as a bare PydanticDataclass; it is `cls`'s
    # fields and methods in a new, slotted class.
    return cast("type[_RecordT]", _make_record_type(cls))


Name = Annotated[Text, Field(min_length=1)]


@_record_type
class Operand:
    tensor: Name
    role: Role
    elements: Amount
    density: Annotated[float, Field(ge=0.0, le=1.0)]
    slot: Slot | None = None  # matmul and conv records only: a and b read, c written


def _ungrouped(groups: int) -> bool:
    return groups == 1


def _absent(value: object) -> bool:
    return value is None


@_record_type
class MatmulOp:
    """[m, k] @ [k, n]: m·k·n MACs, `groups` times over independent operands (attention's
    per-example, per-head products; `groups` is left out of a record when it is 1, so every
    other matmul's record reads as it always has)."""

    kind: Literal["matmul"]
    groups: Count = Field(default=1, exclude_if=_ungrouped)
    m: Count
    k: Count
    n: Count

    @property
    def macs(self) -> int:
        return self.groups * self.m * self.k * self.n

    def slot_elements(self) -> tuple[int, int, int]:
        """Elements of a [m, k], b [k, n] and c [m, n] (each of every group)."""
        groups = self.groups
        return groups * self.m * self.k, groups * self.k * self.n, groups * self.m * self.n


def one_or_pair(height: int, width: int) -> int | tuple[int, int]:
    """A record's stride or dilation: one number when it is the same along both axes (as
    every record written before rectangular strides has it), else (height, width)."""
    return height if height == width else (height, width)


def _undilated(dilation: int | tuple[int, int]) -> bool:
    return dilation == 1


def _hw(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


@_record_type
class Conv2DOp:
    """A convolution pass with its geometry and its im2col matmul [m, k] @ [k, n], once per
    group: `groups` independent convolutions, each over input_channels ÷ groups input and
    output_channels ÷ groups output channels (`groups` is left out of a record when it is 1,
    so an ungrouped conv's record reads as it always has).  `stride`: one number, or
    [height, width] when they differ; `dilation` likewise, the step between a window's taps,
    left out when it is 1 (an undilated conv's record reads as it always has): the window
    spans (kernel − 1) · dilation + 1 inputs, its MACs and filters as undilated."""

    kind: Literal["conv2d"]
    conv_pass: ConvPass
    batch: Count
    input_height: Count
    input_width: Count
    input_channels: Count
    output_height: Count
    output_width: Count
    output_channels: Count
    kernel_height: Count
    kernel_width: Count
    stride: Count | tuple[Count, Count]
    dilation: Count | tuple[Count, Count] = Field(default=1, exclude_if=_undilated)
    padding: Padding
    groups: Count = Field(default=1, exclude_if=_ungrouped)
    m: Count
    k: Count
    n: Count

    @property
    def macs(self) -> int:
        return self.groups * self.m * self.k * self.n

    @property
    def stride_height(self) -> int:
        return _hw(self.stride)[0]

    @property
    def stride_width(self) -> int:
        return _hw(self.stride)[1]

    @property
    def dilation_height(self) -> int:
        return _hw(self.dilation)[0]

    @property
    def dilation_width(self) -> int:
        return _hw(self.dilation)[1]

    @property
    def reach_height(self) -> int:
        """Input rows one window spans: (kernel_height − 1) · dilation + 1."""
        return (self.kernel_height - 1) * self.dilation_height + 1

    @property
    def reach_width(self) -> int:
        """Input columns one window spans."""
        return (self.kernel_width - 1) * self.dilation_width + 1

    def slot_elements(self) -> tuple[int, int, int]:
        """Elements of a, b and c: the feature maps and the filters of this pass."""
        image_in = self.batch * self.input_height * self.input_width * self.input_channels
        image_out = self.batch * self.output_height * self.output_width * self.output_channels
        filters = (
            self.kernel_height
            * self.kernel_width
            * (self.input_channels // self.groups)
            * self.output_channels
        )
        return {
            ConvPass.FORWARD: (image_in, filters, image_out),
            ConvPass.BACKWARD_DATA: (image_out, filters, image_in),
            ConvPass.BACKWARD_WEIGHT: (image_in, image_out, filters),
        }[self.conv_pass]

    @model_validator(mode="after")
    def _im2col(self) -> Conv2DOp:
        groups = self.groups
        if self.input_channels % groups or self.output_channels % groups:
            raise ValueError(
                f"groups must divide input_channels ({self.input_channels}) and "
                f"output_channels ({self.output_channels}) (got {groups})"
            )
        positions = self.batch * self.output_height * self.output_width
        window = self.kernel_height * self.kernel_width * (self.input_channels // groups)
        outputs = self.output_channels // groups
        expected = {
            ConvPass.FORWARD: (positions, window, outputs),
            ConvPass.BACKWARD_DATA: (positions, outputs, window),
            ConvPass.BACKWARD_WEIGHT: (window, positions, outputs),
        }[self.conv_pass]
        if (self.m, self.k, self.n) != expected:
            per_group = " per group" if groups > 1 else ""
            raise ValueError(
                f"m, k, n must be {list(expected)}{per_group} for a {self.conv_pass.value} "
                f"pass of this geometry (got {[self.m, self.k, self.n]})"
            )
        return self


@_record_type
class ElementwiseOp:
    """`function` applied to `elements` numbers (activation, its derivative, dropout, loss, ...)."""

    kind: Literal["elementwise"]
    function: Name
    elements: Count

    @property
    def macs(self) -> int:
        return 0


@_record_type
class GatherOp:
    """SSDFA's error delivery: each of `neurons` picks `nonzeros_per_neuron` of `classes` errors."""

    kind: Literal["gather"]
    rows: Count
    classes: Count
    neurons: Count
    nonzeros_per_neuron: Count

    @property
    def macs(self) -> int:
        return self.rows * self.neurons * self.nonzeros_per_neuron


@_record_type
class ReduceOp:
    """`function` (sum, max, mean) folding `inputs` numbers into `outputs`."""

    kind: Literal["reduce"]
    function: Name
    inputs: Count
    outputs: Count

    @property
    def macs(self) -> int:
        return 0


OpSpec = Annotated[
    MatmulOp | Conv2DOp | ElementwiseOp | GatherOp | ReduceOp, Field(discriminator="kind")
]


@_record_type
class OpRecord:
    schema_version: Literal[3]
    id: Amount
    layer: Text
    phase: Phase
    op: OpSpec
    macs: Work
    other_ops: Work
    reads: tuple[Operand, ...]
    writes: tuple[Operand, ...]
    deps: tuple[Amount, ...]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> OpRecord:
        if isinstance(info.context, SharedParts):
            info.context.share(self)
        if self.macs != self.op.macs:
            raise ValueError(
                f"macs must equal the op's closed form {self.op.macs} (got {self.macs})"
            )
        if any(dep >= self.id for dep in self.deps):
            earlier = f"(< {self.id}) (got {list(self.deps)})"
            raise ValueError(f"deps must name earlier records {earlier}")
        self._check_slots()
        return self

    def _check_slots(self) -> None:
        """A matmul or conv names its GEMM operands: one read in slot a, one in b, one write
        in c, of the sizes its shape implies; no other record uses slots."""
        reads = [operand.slot for operand in self.reads]
        writes = [operand.slot for operand in self.writes]
        if not isinstance(self.op, MatmulOp | Conv2DOp):
            if any(slot is not None for slot in reads + writes):
                raise ValueError(
                    f"slot: only matmul and conv2d operands have one "
                    f"(a {self.op.kind} has reads {reads}, writes {writes})"
                )
            return
        if sorted(slot for slot in reads if slot) != [Slot.A, Slot.B] or [
            slot for slot in writes if slot
        ] != [Slot.C]:
            raise ValueError(
                f"slot: a {self.op.kind} reads one operand in slot 'a' and one in "
                f"'b' and writes one in 'c' (got reads "
                f"{[s and s.value for s in reads]}, writes "
                f"{[s and s.value for s in writes]})"
            )
        expected = dict(zip(Slot, self.op.slot_elements(), strict=True))
        for operand in (*self.reads, *self.writes):
            if operand.slot is not None and operand.elements != expected[operand.slot]:
                raise ValueError(
                    f"slot: the '{operand.slot.value}' operand {operand.tensor!r} "
                    f"of this {self.op.kind} must have "
                    f"{expected[operand.slot]} elements (got {operand.elements})"
                )

    def slot_index(self, slot: Slot) -> int:
        """Index of the operand in `slot` among the reads (a, b) or the writes (c)."""
        operands = self.writes if slot == Slot.C else self.reads
        return next(i for i, operand in enumerate(operands) if operand.slot == slot)


class SharedParts:
    """What a trace's records have in common, kept once: read_trace validates each record with
    one of these as context, and equal parts of different records become one object — a
    tensor written by one record and read by the next, an op shape, a layer name, a tensor
    name, a number (a dependency and the id it names).  Measured on the 200,007-record step
    of benchmarks/big_trace.py, the objects a record reaches take 544 bytes instead of 740."""

    __slots__ = ("floats", "ints", "parts")

    def __init__(self) -> None:
        self.parts: dict[Any, Any] = {}  # operands, ops, names and tuples of them
        self.ints: dict[int, int] = {}  # apart from floats: 1 == 1.0 but they are not one
        self.floats: dict[float, float] = {}

    def share(self, record: OpRecord) -> None:
        """Replace the record's parts by equal ones seen before (a new record, not yet
        anyone else's: its frozen fields are set in place)."""
        parts, ints = self.parts, self.ints
        for name in ("id", "macs", "other_ops"):
            value = getattr(record, name)
            object.__setattr__(record, name, ints.setdefault(value, value))
        for name in ("layer", "op"):
            value = getattr(record, name)
            object.__setattr__(record, name, parts.setdefault(value, value))
        for name in ("reads", "writes"):
            operands = tuple(map(self._operand, getattr(record, name)))
            object.__setattr__(record, name, parts.setdefault(operands, operands))
        deps = tuple(ints.setdefault(dep, dep) for dep in record.deps)
        object.__setattr__(record, "deps", parts.setdefault(deps, deps))

    def _operand(self, operand: Operand) -> Operand:
        """An operand's first occurrence has its name and numbers shared too."""
        shared = self.parts.setdefault(operand, operand)
        if shared is operand:
            object.__setattr__(
                operand, "tensor", self.parts.setdefault(operand.tensor, operand.tensor)
            )
            object.__setattr__(
                operand, "elements", self.ints.setdefault(operand.elements, operand.elements)
            )
            object.__setattr__(
                operand, "density", self.floats.setdefault(operand.density, operand.density)
            )
        return shared


RECORD: TypeAdapter[OpRecord] = TypeAdapter(OpRecord)
"""Validates a record from JSON text (`RECORD.validate_json`) or plain data
(`RECORD.validate_python`) and writes one back (`record_json`)."""


def record_json(record: OpRecord) -> str:
    """A record as one compact JSON line, fields in declaration order."""
    return RECORD.dump_json(record).decode("utf-8")


@_record_type
class LayerInfo:
    name: Text
    type: Text
    input_shape: list[Count]
    output_shape: list[Count]
    trainable: bool
    weights: Amount
    parameters: Amount
    heads: Count | None = Field(default=None, exclude_if=_absent)  # attention layers only

    def example_sizes(self) -> set[int]:
        """Per-example sizes of the activations and errors this layer's records hold."""
        return layer_example_sizes(
            self.type, tuple(self.input_shape), tuple(self.output_shape), self.heads
        )


@_record_type
class FeedbackInfo:
    """The fixed random matrix B [classes × neurons] that carries the output error to a layer."""

    layer: Text
    classes: Count
    neurons: Count
    nonzeros: Amount
    nonzeros_per_neuron: Count | None
    rank: Count | None

    @model_validator(mode="after")
    def _fits(self) -> FeedbackInfo:
        if self.nonzeros > self.classes * self.neurons:
            raise ValueError(
                f"nonzeros cannot exceed classes × neurons = "
                f"{self.classes * self.neurons} (got {self.nonzeros})"
            )
        return self


class OptimizerInfo(FrozenModel):
    name: Literal["sgd", "adam"]
    learning_rate: float = Field(gt=0)
    momentum: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    epsilon: float | None = None
    state_tensors_per_weight: Amount


def _not_inference(inference: bool) -> bool:
    return not inference


class TraceHeader(FrozenModel):
    schema_version: Literal[3]
    kind: Literal["trace"]
    hwsim_version: Text
    network: Text
    classes: Annotated[int, Field(ge=2)]
    layers: list[LayerInfo] = Field(min_length=1)
    algorithm: Algorithm
    feedback: list[FeedbackInfo]
    optimizer: OptimizerInfo
    batch_size: Count
    dataset: Text
    seed: int
    dtype: Literal["float32", "float64"]
    densities_measured: bool  # false: built from shapes (`trace --shape-only`), densities 1.0
    record_count: Amount
    # A forward pass only (`hwsim trace --inference`); written only when true, so a training
    # trace's header is what it was.
    inference: bool = Field(default=False, exclude_if=_not_inference)

    @model_validator(mode="after")
    def _feedback_matches_algorithm(self) -> TraceHeader:
        if self.inference and (self.algorithm != Algorithm.BP or self.feedback):
            raise ValueError("an inference trace has no learning rule: algorithm bp, no feedback")
        names = Counter(layer.name for layer in self.layers)
        repeated = sorted(name for name, count in names.items() if count > 1)
        if repeated:
            raise ValueError(f"layers: names must be unique; repeated: {', '.join(repeated)}")
        targets = [info.layer for info in self.feedback]
        unknown = [name for name in targets if name not in names]
        if unknown:
            raise ValueError(
                f"feedback: names layers the header does not have: {', '.join(map(repr, unknown))}"
            )
        if len(set(targets)) != len(targets):
            raise ValueError("feedback: one entry per layer (a layer is named twice)")
        if self.algorithm == Algorithm.BP and self.feedback:
            raise ValueError("a bp trace has no feedback matrices")
        sparse = [info.layer for info in self.feedback if info.nonzeros_per_neuron is None]
        if self.algorithm == Algorithm.SSDFA and sparse:
            raise ValueError(f"ssdfa feedback must be sparse; dense for {', '.join(sparse)}")
        return self

    @cached_property
    def feedback_by_layer(self) -> dict[str, FeedbackInfo]:
        """Each feedback entry under its layer's name."""
        return {info.layer: info for info in self.feedback}

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def trained_weights(self) -> int:
        return sum(layer.weights for layer in self.layers if layer.trainable)


class Trace(FrozenModel):
    """A whole trace: header plus records in file order (schedule by `deps`, not by order)."""

    header: TraceHeader
    records: list[OpRecord]

    @property
    def macs(self) -> int:
        return sum(record.macs for record in self.records)

    def macs_by_phase(self) -> dict[Phase, int]:
        totals = dict.fromkeys(Phase, 0)
        for record in self.records:
            totals[record.phase] += record.macs
        return totals
