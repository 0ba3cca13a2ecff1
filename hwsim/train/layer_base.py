"""What every layer has: the tensor names it reads and writes, the operands and ops it
describes (`hwsim.train.ops`), its parameters and gradients, and the context of the pass it
runs in; and the activation functions with their derivatives."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.specs.network import Activation, LayerShape, LayerSpec
from hwsim.specs.trace import Role, Slot
from hwsim.train.ops import OpDesc, OperandDesc
from hwsim.train.tracer import Tracer


@dataclass
class StepContext:
    """What a pass needs besides the data: train or eval mode, the dropout RNG, the tracer."""

    training: bool
    rng: np.random.Generator | None = None
    tracer: Tracer | None = None
    dropout: bool = True


def activate(function: Activation, h: np.ndarray) -> np.ndarray:
    if function == Activation.RELU:
        return np.maximum(h, 0)
    if function == Activation.RELU6:
        return np.clip(h, 0, 6)
    if function == Activation.TANH:
        return np.tanh(h)
    if function == Activation.SIGMOID:
        return 1 / (1 + np.exp(-h))
    if function == Activation.GELU:  # the tanh approximation
        return 0.5 * h * (1 + np.tanh(GELU_SCALE * (h + GELU_CUBIC * h**3)))
    return h


GELU_SCALE = math.sqrt(2 / math.pi)
GELU_CUBIC = 0.044715


def derivative_reads_input(function: Activation) -> bool:
    """Whether f' is written in terms of the pre-activation h (gelu: the output does not
    determine it) rather than the output y = f(h)."""
    return function == Activation.GELU


def activation_derivative(function: Activation, y: np.ndarray) -> np.ndarray:
    """f'(h) written in terms of the output y = f(h), or of h itself where
    `derivative_reads_input` (gelu)."""
    if function == Activation.GELU:
        h = y
        inner = np.tanh(GELU_SCALE * (h + GELU_CUBIC * h**3))
        slope = GELU_SCALE * (1 + 3 * GELU_CUBIC * h * h)
        return 0.5 * (1 + inner) + 0.5 * h * (1 - inner * inner) * slope
    if function == Activation.RELU:
        return (y > 0).astype(y.dtype)
    if function == Activation.RELU6:
        return ((y > 0) & (y < 6)).astype(y.dtype)
    if function == Activation.TANH:
        return 1 - y * y
    if function == Activation.SIGMOID:
        return y * (1 - y)
    return np.ones_like(y)


class Layer:
    """Base: names of the tensors the layer reads and writes, and no parameters."""

    trainable = False
    has_weights = False  # a weight of MACs (dense, conv2d)
    has_params = False  # any trained parameter (the weight layers, batch norm)
    main_weight = "weight"  # the parameter whose gradient `Trainer.angles` compares

    @property
    def trains(self) -> bool:
        """Whether the optimizer updates its parameters."""
        return self.has_params and self.trainable

    def parameters(self) -> list[tuple[str, OperandDesc]]:
        """Each parameter's name and operand, in the order the optimizer updates them."""
        return []

    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """Set up the parameters whose start no rule decides (a norm's scale and shift, a
        token layer's weights); the model starts the weight layers' by the rule."""

    inference = False  # describes its inference pass (`for_inference`)

    def for_inference(self) -> None:
        """Describe the inference pass from now on (most layers: the same as in training)."""
        self.inference = True

    def __init__(
        self, spec: LayerSpec, shape: LayerShape, input_tensor: str, *more_inputs: str
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.shape = shape
        self.input_tensors = [input_tensor, *more_inputs]
        self.output_tensor = f"{self.name}.out"
        # The error tensors this layer reads and writes; a model whose tensors fan out names
        # them apart (`Model._name_errors`): a chain keeps these.
        self.input_error_tensors = [f"{tensor}.error" for tensor in self.input_tensors]
        # Which inputs backward sends an error to (the model clears those that need none: the
        # network's input, a frozen branch's output).
        self.sends_error = [True] * len(self.input_tensors)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    @property
    def input_tensor(self) -> str:
        return self.input_tensors[0]

    @property
    def aliases_input(self) -> bool:
        """A re-view of its input (flatten, dropout at rate 0): it moves nothing."""
        return self.output_tensor == self.input_tensor

    @property
    def input_error_tensor(self) -> str:
        return self.input_error_tensors[0]

    @property
    def output_error_tensor(self) -> str:
        return self._output_error_tensor or f"{self.output_tensor}.error"

    @output_error_tensor.setter
    def output_error_tensor(self, name: str) -> None:
        self._output_error_tensor = name

    _output_error_tensor: str | None = None

    def input_role(self, tensor: str | None = None) -> Role:
        tensor = self.input_tensor if tensor is None else tensor
        return Role.INPUT if tensor == "input" else Role.ACTIVATION

    # --------------------------------------------------- operands, for a batch
    def input_elements(self, batch: int) -> int:
        return batch * math.prod(self.shape.input_shape)

    def output_elements(self, batch: int) -> int:
        return batch * math.prod(self.shape.output_shape)

    def input_operand(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        return OperandDesc(self.input_tensor, self.input_role(), self.input_elements(batch), slot)

    def output_operand(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        return OperandDesc(self.output_tensor, Role.ACTIVATION, self.output_elements(batch), slot)

    def output_error_operand(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        return OperandDesc(self.output_error_tensor, Role.ERROR, self.output_elements(batch), slot)

    def input_error_operand(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        return OperandDesc(self.input_error_tensor, Role.ERROR, self.input_elements(batch), slot)

    # ------------------------------------------------ the ops, in the order they run
    def forward_ops(self, batch: int) -> list[OpDesc]:
        """The records of a training forward pass over `batch` examples (none: a re-view)."""
        return []

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        """The records of a backward pass (`input_error`: also the error for the input)."""
        return []

    def _kept(self, array: np.ndarray | None, what: str) -> np.ndarray:
        """An array the last training forward pass kept for backward."""
        if array is None:
            raise RuntimeError(
                f"layer '{self.name}': backward needs the {what} kept by a training forward pass"
            )
        return array

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        raise NotImplementedError

    def forward_many(self, xs: list[np.ndarray], ctx: StepContext) -> np.ndarray:
        """The output from each input's value (a layer of one input: `forward`)."""
        (x,) = xs
        return self.forward(x, ctx)

    def backward_many(
        self, dy: np.ndarray, ctx: StepContext, input_error: bool
    ) -> list[np.ndarray | None]:
        """The error for each input (None: not asked), in `input_error_tensors` order."""
        dx = self.backward(dy, ctx, input_error)
        return [dx if input_error else None] * len(self.input_tensors)
