"""SGD (with momentum) and Adam.  Their state is traced: Adam reads and writes two extra
tensors per weight, momentum SGD one."""

from __future__ import annotations

import numpy as np

from hwsim.specs.network import OptimizerName
from hwsim.specs.trace import OptimizerInfo, Phase, Role
from hwsim.train.layers import Layer, StepContext
from hwsim.train.ops import OpDesc, OperandDesc, elementwise
from hwsim.train.tracer import density

SGD_OPS_PER_ELEMENT = 2  # w -= lr·g
MOMENTUM_OPS_PER_ELEMENT = 4  # v = μv + g; w -= lr·v
ADAM_OPS_PER_ELEMENT = 12  # two moment updates, bias corrections, sqrt, divide, update


def state_names(info: OptimizerInfo) -> tuple[str, ...]:
    """The state tensors the optimizer keeps per parameter."""
    if info.name == OptimizerName.ADAM:
        return ("adam_m", "adam_v")
    return ("momentum",) if info.momentum else ()


def ops_per_element(info: OptimizerInfo) -> int:
    if info.name == OptimizerName.ADAM:
        return ADAM_OPS_PER_ELEMENT
    return MOMENTUM_OPS_PER_ELEMENT if info.momentum else SGD_OPS_PER_ELEMENT


def update_op(info: OptimizerInfo, layer: str, param: OperandDesc) -> OpDesc:
    """The update of one parameter: it reads the parameter, its gradient and its state, and
    writes the parameter and its state."""
    states = [
        OperandDesc(f"{param.tensor}.{state}", Role.OPTIMIZER_STATE, param.elements)
        for state in state_names(info)
    ]
    gradient = OperandDesc(f"{param.tensor}.grad", Role.GRADIENT, param.elements)
    return elementwise(
        layer,
        Phase.UPDATE,
        f"{info.name}_update",
        [param, gradient, *states],
        [param, *states],
        param.elements,
        ops_per_element(info),
    )


class Optimizer:
    def __init__(self, info: OptimizerInfo) -> None:
        self.info = info
        self.state: dict[tuple[str, str], list[np.ndarray]] = {}
        self.steps = 0

    def step(self, layers: list[Layer], ctx: StepContext) -> None:
        self.steps += 1
        for layer in layers:
            for param, operand in layer.parameters():
                value, grad = layer.params[param], layer.grads[param]
                key = (layer.name, param)
                if key not in self.state:
                    self.state[key] = [np.zeros_like(value) for _ in state_names(self.info)]
                state = self.state[key]
                tracing = ctx.tracer is not None  # measure before the update overwrites
                reads = [density(array) for array in (value, grad, *state)] if tracing else []
                self._apply(value, grad, state)
                if ctx.tracer is not None:
                    desc = update_op(self.info, layer.name, operand)
                    ctx.tracer.record_run(desc, reads, [value, *state])

    def _apply(self, value: np.ndarray, grad: np.ndarray, state: list[np.ndarray]) -> None:
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
        elif state:
            (velocity,) = state
            velocity *= info.momentum
            velocity += grad
            value -= info.learning_rate * velocity
        else:
            value -= info.learning_rate * grad


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
