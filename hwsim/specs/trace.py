"""The trace: what one training step did, as a header plus one record per operation.

Hardware-independent: elements and MACs, never bytes.  docs/trace-format.md describes every field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from hwsim.specs.common import FrozenModel
from hwsim.specs.network import Padding

TRACE_SCHEMA_VERSION = 1


class Phase(StrEnum):
    FORWARD = "forward"
    ERROR = "error"
    GRADIENT = "gradient"
    UPDATE = "update"


class Role(StrEnum):
    INPUT = "input"
    LABEL = "label"
    WEIGHT = "weight"
    BIAS = "bias"
    ACTIVATION = "activation"
    ERROR = "error"
    FEEDBACK = "feedback"
    GRADIENT = "gradient"
    OPTIMIZER_STATE = "optimizer_state"


class Algorithm(StrEnum):
    BP = "bp"
    DFA = "dfa"
    SSDFA = "ssdfa"


class ConvPass(StrEnum):
    FORWARD = "forward"
    BACKWARD_DATA = "backward_data"
    BACKWARD_WEIGHT = "backward_weight"


class Operand(FrozenModel):
    tensor: str = Field(min_length=1)
    role: Role
    elements: NonNegativeInt
    density: float = Field(ge=0.0, le=1.0)


class MatmulOp(FrozenModel):
    """[m, k] @ [k, n]: m·k·n MACs."""

    kind: Literal["matmul"]
    m: PositiveInt
    k: PositiveInt
    n: PositiveInt

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n


class Conv2DOp(FrozenModel):
    """A convolution pass with its geometry and its im2col matmul [m, k] @ [k, n]."""

    kind: Literal["conv2d"]
    conv_pass: ConvPass
    batch: PositiveInt
    input_height: PositiveInt
    input_width: PositiveInt
    input_channels: PositiveInt
    output_height: PositiveInt
    output_width: PositiveInt
    output_channels: PositiveInt
    kernel_height: PositiveInt
    kernel_width: PositiveInt
    stride: PositiveInt
    padding: Padding
    m: PositiveInt
    k: PositiveInt
    n: PositiveInt

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n

    @model_validator(mode="after")
    def _im2col(self) -> Conv2DOp:
        positions = self.batch * self.output_height * self.output_width
        window = self.kernel_height * self.kernel_width * self.input_channels
        expected = {
            ConvPass.FORWARD: (positions, window, self.output_channels),
            ConvPass.BACKWARD_DATA: (positions, self.output_channels, window),
            ConvPass.BACKWARD_WEIGHT: (window, positions, self.output_channels),
        }[self.conv_pass]
        if (self.m, self.k, self.n) != expected:
            raise ValueError(f"m, k, n must be {list(expected)} for a {self.conv_pass.value} "
                             f"pass of this geometry (got {[self.m, self.k, self.n]})")
        return self


class ElementwiseOp(FrozenModel):
    """`function` applied to `elements` numbers (activation, its derivative, dropout, loss, ...)."""

    kind: Literal["elementwise"]
    function: str = Field(min_length=1)
    elements: PositiveInt

    @property
    def macs(self) -> int:
        return 0


class GatherOp(FrozenModel):
    """SSDFA's error delivery: each of `neurons` picks `nonzeros_per_neuron` of `classes` errors."""

    kind: Literal["gather"]
    rows: PositiveInt
    classes: PositiveInt
    neurons: PositiveInt
    nonzeros_per_neuron: PositiveInt

    @property
    def macs(self) -> int:
        return self.rows * self.neurons * self.nonzeros_per_neuron


class ReduceOp(FrozenModel):
    """`function` (sum, max) folding `inputs` numbers into `outputs`."""

    kind: Literal["reduce"]
    function: str = Field(min_length=1)
    inputs: PositiveInt
    outputs: PositiveInt

    @property
    def macs(self) -> int:
        return 0


OpSpec = Annotated[MatmulOp | Conv2DOp | ElementwiseOp | GatherOp | ReduceOp,
                   Field(discriminator="kind")]


class OpRecord(FrozenModel):
    schema_version: Literal[1]
    id: NonNegativeInt
    layer: str
    phase: Phase
    op: OpSpec
    macs: NonNegativeInt
    other_ops: NonNegativeInt
    reads: list[Operand]
    writes: list[Operand]
    deps: list[NonNegativeInt]

    @model_validator(mode="after")
    def _consistent(self) -> OpRecord:
        if self.macs != self.op.macs:
            raise ValueError(f"macs must equal the op's closed form {self.op.macs} "
                             f"(got {self.macs})")
        if any(dep >= self.id for dep in self.deps):
            raise ValueError(f"deps must name earlier records (< {self.id}) (got {self.deps})")
        return self


class LayerInfo(FrozenModel):
    name: str
    type: str
    input_shape: list[PositiveInt]
    output_shape: list[PositiveInt]
    trainable: bool
    weights: NonNegativeInt
    parameters: NonNegativeInt


class FeedbackInfo(FrozenModel):
    """The fixed random matrix B [classes × neurons] that carries the output error to a layer."""

    layer: str
    classes: PositiveInt
    neurons: PositiveInt
    nonzeros: NonNegativeInt
    nonzeros_per_neuron: PositiveInt | None
    rank: PositiveInt | None

    @model_validator(mode="after")
    def _fits(self) -> FeedbackInfo:
        if self.nonzeros > self.classes * self.neurons:
            raise ValueError(f"nonzeros cannot exceed classes × neurons = "
                             f"{self.classes * self.neurons} (got {self.nonzeros})")
        return self


class OptimizerInfo(FrozenModel):
    name: Literal["sgd", "adam"]
    learning_rate: float = Field(gt=0)
    momentum: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    epsilon: float | None = None
    state_tensors_per_weight: NonNegativeInt


class TraceHeader(FrozenModel):
    schema_version: Literal[1]
    kind: Literal["trace"]
    hwsim_version: str
    network: str
    classes: Annotated[int, Field(ge=2)]
    layers: list[LayerInfo]
    algorithm: Algorithm
    feedback: list[FeedbackInfo]
    optimizer: OptimizerInfo
    batch_size: PositiveInt
    dataset: str
    seed: int
    dtype: Literal["float32", "float64"]
    record_count: NonNegativeInt

    @model_validator(mode="after")
    def _feedback_matches_algorithm(self) -> TraceHeader:
        if self.algorithm == Algorithm.BP and self.feedback:
            raise ValueError("a bp trace has no feedback matrices")
        sparse = [info.layer for info in self.feedback if info.nonzeros_per_neuron is None]
        if self.algorithm == Algorithm.SSDFA and sparse:
            raise ValueError(f"ssdfa feedback must be sparse; dense for {', '.join(sparse)}")
        return self

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
