"""What every layer has: the tensor names it reads and writes, its parameters and gradients,
and the context of the pass it runs in; and the activation functions with their derivatives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.specs.network import Activation, LayerShape, LayerSpec
from hwsim.specs.trace import ElementwiseOp, Phase, Role
from hwsim.train.tracer import Access, Tracer


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
    if function == Activation.TANH:
        return np.tanh(h)
    if function == Activation.SIGMOID:
        return 1 / (1 + np.exp(-h))
    return h


def activation_derivative(function: Activation, y: np.ndarray) -> np.ndarray:
    """f'(h) written in terms of the output y = f(h)."""
    if function == Activation.RELU:
        return (y > 0).astype(y.dtype)
    if function == Activation.TANH:
        return 1 - y * y
    if function == Activation.SIGMOID:
        return y * (1 - y)
    return np.ones_like(y)


class Layer:
    """Base: names of the tensors the layer reads and writes, and no parameters."""

    trainable = False
    has_weights = False

    def __init__(self, spec: LayerSpec, shape: LayerShape, input_tensor: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.shape = shape
        self.input_tensor = input_tensor
        self.output_tensor = f"{self.name}.out"
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    @property
    def input_error_tensor(self) -> str:
        return f"{self.input_tensor}.error"

    @property
    def output_error_tensor(self) -> str:
        return f"{self.output_tensor}.error"

    def input_role(self) -> Role:
        return Role.INPUT if self.input_tensor == "input" else Role.ACTIVATION

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

    def _elementwise(
        self,
        ctx: StepContext,
        phase: Phase,
        function: str,
        reads: list[Access],
        writes: list[Access],
        elements: int,
    ) -> None:
        if ctx.tracer is not None:
            ctx.tracer.record(
                layer=self.name,
                phase=phase,
                op=ElementwiseOp(kind="elementwise", function=function, elements=elements),
                reads=reads,
                writes=writes,
                other_ops=elements,
            )
