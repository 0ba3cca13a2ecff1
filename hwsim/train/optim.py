"""SGD (with momentum) and Adam.  Their state is traced: Adam reads and writes two extra
tensors per weight, momentum SGD one."""

from __future__ import annotations

import numpy as np

from hwsim.specs.network import OptimizerName
from hwsim.specs.trace import ElementwiseOp, Operand, OptimizerInfo, Phase, Role
from hwsim.train.layers import StepContext, WeightLayer
from hwsim.train.tracer import Access, Tracer, measure

SGD_OPS_PER_ELEMENT = 2  # w -= lr·g
MOMENTUM_OPS_PER_ELEMENT = 4  # v = μv + g; w -= lr·v
ADAM_OPS_PER_ELEMENT = 12  # two moment updates, bias corrections, sqrt, divide, update


class Optimizer:
    def __init__(self, info: OptimizerInfo) -> None:
        self.info = info
        self.state: dict[tuple[str, str], list[np.ndarray]] = {}
        self.steps = 0

    @property
    def state_names(self) -> tuple[str, ...]:
        if self.info.name == OptimizerName.ADAM:
            return ("adam_m", "adam_v")
        return ("momentum",) if self.info.momentum else ()

    def step(self, layers: list[WeightLayer], ctx: StepContext) -> None:
        self.steps += 1
        for layer in layers:
            for param, value in layer.params.items():
                key = (layer.name, param)
                if key not in self.state:
                    self.state[key] = [np.zeros_like(value) for _ in self.state_names]
                state = self.state[key]
                grad = layer.grads[param]
                reads = (
                    self._reads(layer.name, param, value, grad, state)
                    if ctx.tracer is not None
                    else []
                )
                ops = self._apply(value, grad, state)
                if ctx.tracer is not None:
                    self._record(ctx.tracer, layer.name, param, value, reads, state, ops)

    def _apply(self, value: np.ndarray, grad: np.ndarray, state: list[np.ndarray]) -> int:
        info = self.info
        if info.name == OptimizerName.ADAM:
            beta1, beta2, epsilon = info.beta1, info.beta2, info.epsilon
            if beta1 is None or beta2 is None or epsilon is None:
                raise ValueError("adam needs beta1, beta2 and epsilon")
            m, v = state
            m *= beta1
            m += (1 - beta1) * grad
            scratch = np.multiply(grad, grad)
            scratch *= 1 - beta2
            v *= beta2
            v += scratch
            # A Python float keeps the arithmetic in the weights' dtype (a numpy float64
            # scalar would promote float32 tensors to float64 copies).
            step_size = float(
                info.learning_rate * np.sqrt(1 - beta2**self.steps) / (1 - beta1**self.steps)
            )
            np.sqrt(v, out=scratch)
            scratch += epsilon
            np.divide(m, scratch, out=scratch)
            scratch *= step_size
            value -= scratch
            return ADAM_OPS_PER_ELEMENT
        if state:
            (velocity,) = state
            velocity *= info.momentum
            velocity += grad
            value -= info.learning_rate * velocity
            return MOMENTUM_OPS_PER_ELEMENT
        value -= info.learning_rate * grad
        return SGD_OPS_PER_ELEMENT

    def _accesses(
        self, layer: str, param: str, value: np.ndarray, state: list[np.ndarray]
    ) -> list[Access]:
        role = Role.WEIGHT if param == "weight" else Role.BIAS
        tensor = f"{layer}.{param}"
        return [
            Access(tensor, role, value),
            *(
                Access(f"{tensor}.{name}", Role.OPTIMIZER_STATE, array)
                for name, array in zip(self.state_names, state, strict=True)
            ),
        ]

    def _reads(
        self, layer: str, param: str, value: np.ndarray, grad: np.ndarray, state: list[np.ndarray]
    ) -> list[Operand]:
        """Measured before the update overwrites them."""
        weight, *states = self._accesses(layer, param, value, state)
        gradient = Access(f"{layer}.{param}.grad", Role.GRADIENT, grad)
        return [measure(access) for access in (weight, gradient, *states)]

    def _record(
        self,
        tracer: Tracer,
        layer: str,
        param: str,
        value: np.ndarray,
        reads: list[Operand],
        state: list[np.ndarray],
        ops_per_element: int,
    ) -> None:
        tracer.record(
            layer=layer,
            phase=Phase.UPDATE,
            op=ElementwiseOp(
                kind="elementwise", function=f"{self.info.name}_update", elements=value.size
            ),
            reads=reads,
            writes=self._accesses(layer, param, value, state),
            other_ops=ops_per_element * value.size,
        )


def optimizer_info(
    name: OptimizerName,
    learning_rate: float,
    *,
    momentum: float,
    beta1: float,
    beta2: float,
    epsilon: float,
) -> OptimizerInfo:
    if name == OptimizerName.ADAM:
        return OptimizerInfo(
            name="adam",
            learning_rate=learning_rate,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            state_tensors_per_weight=2,
        )
    return OptimizerInfo(
        name="sgd",
        learning_rate=learning_rate,
        momentum=momentum,
        state_tensors_per_weight=1 if momentum else 0,
    )
