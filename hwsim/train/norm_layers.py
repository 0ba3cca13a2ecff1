"""Batch normalization: the ops it describes in each phase and the numpy that runs them.

Over a batch of B examples with E values of C channels (the last axis; E / C values a channel),
a training step records, forward:

* `mean_variance` (reduce): x → the batch statistics μ, σ² (2C values), two vector ops a value
  (Σx and Σx² in one pass);
* `batch_norm` (elementwise): y = scale · (x − μ) / √(σ² + ε) + shift, two vector ops a value
  (each channel's scale and offset folded first);
* `running_statistics` (elementwise): running ← (1 − momentum) · running + momentum · batch,
  two vector ops for each of the 2C statistics (kept across steps: optimizer-state role);

and backward:

* `scale_shift_gradient` (reduce): Σ dy and Σ dy · x̂ per channel, from dy, x and μ, σ² (four
  vector ops a value) — the shift's and scale's gradients, which the input error needs too;
* `batch_norm_derivative` (elementwise, when the input error is asked): dx = scale / σ ·
  (dy − Σdy / n − x̂ · Σ(dy · x̂) / n), five vector ops a value.

The per-channel vectors (scale, shift, batch statistics) have the `bias` role: small,
per-channel, kept beside the layer's other parameters.
"""

from __future__ import annotations

import numpy as np

from hwsim.specs.network import BatchNormLayer, LayerNormLayer, LayerShape
from hwsim.specs.trace import ElementwiseOp, Phase, ReduceOp, Role
from hwsim.train.layer_base import Layer, StepContext
from hwsim.train.ops import OpDesc, OperandDesc, elementwise, gradient_of, op


class ScaleShift(Layer):
    """A normalization: x̂ = (x − μ) / √(σ² + ε) over some axes, then y = scale · x̂ + shift
    with a trained scale and shift per feature of the last axis (the `bias` role)."""

    spec: BatchNormLayer | LayerNormLayer
    has_params = True

    def __init__(
        self, spec: BatchNormLayer | LayerNormLayer, shape: LayerShape, input_tensor: str
    ) -> None:
        super().__init__(spec, shape, input_tensor)
        self.trainable = spec.trainable
        self.features = shape.output_shape[-1]
        self._kept_arrays: tuple[np.ndarray, ...] | None = None

    def parameters(self) -> list[tuple[str, OperandDesc]]:
        return [
            (name, OperandDesc(f"{self.name}.{name}", Role.BIAS, self.features))
            for name in ("scale", "shift")
        ]

    def _scale_shift_gradient(
        self, phase: Phase, dy: OperandDesc, x: OperandDesc, stats: OperandDesc
    ) -> OpDesc:
        """Σ dy · x̂ and Σ dy per feature (4 vector ops a value): the scale's and shift's
        gradients."""
        sums = [gradient_of(param) for _, param in self.parameters()]
        reduce = ReduceOp(
            kind="reduce",
            function="scale_shift_gradient",
            inputs=dy.elements,
            outputs=2 * self.features,
        )
        return op(self.name, phase, reduce, [dy, x, stats], sums, 4 * dy.elements)

    def _normalized(
        self, x: np.ndarray, mean: np.ndarray, variance: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x̂, 1/√(σ² + ε), y)."""
        inverse = 1.0 / np.sqrt(variance + self.spec.epsilon)
        x_hat = (x - mean) * inverse
        return x_hat, inverse, self.params["scale"] * x_hat + self.params["shift"]

    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        self.params = {
            "scale": np.ones(self.features, dtype=dtype),
            "shift": np.zeros(self.features, dtype=dtype),
        }


class BatchNorm(ScaleShift):
    spec: BatchNormLayer

    def __init__(self, spec: BatchNormLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.channels = self.features
        self.running: dict[str, np.ndarray] = {}

    def _statistics(self) -> OperandDesc:
        return OperandDesc(f"{self.name}.batch_statistics", Role.BIAS, 2 * self.channels)

    def _inference_ops(self, batch: int) -> list[OpDesc]:
        """y = scale · (x − running mean) / √(running variance + ε) + shift: 2 vector ops a
        value, the running statistics read as fixed per-channel values."""
        x, y = self.input_operand(batch), self.output_operand(batch)
        (_, scale), (_, shift) = self.parameters()
        running = OperandDesc(f"{self.name}.running_statistics", Role.BIAS, 2 * self.channels)
        reads = [x, running, scale, shift]
        return [
            elementwise(self.name, Phase.FORWARD, "batch_norm_inference", reads, [y], y.elements, 2)
        ]

    def forward_ops(self, batch: int) -> list[OpDesc]:
        if self.inference:
            return self._inference_ops(batch)
        x, y, stats = self.input_operand(batch), self.output_operand(batch), self._statistics()
        (_, scale), (_, shift) = self.parameters()
        running = OperandDesc(
            f"{self.name}.running_statistics", Role.OPTIMIZER_STATE, stats.elements
        )
        reduce = ReduceOp(
            kind="reduce", function="mean_variance", inputs=x.elements, outputs=stats.elements
        )
        return [
            op(self.name, Phase.FORWARD, reduce, [x], [stats], 2 * x.elements),
            elementwise(
                self.name, Phase.FORWARD, "batch_norm", [x, stats, scale, shift], [y], y.elements, 2
            ),
            elementwise(
                self.name,
                Phase.FORWARD,
                "running_statistics",
                [stats, running],
                [running],
                stats.elements,
                2,
            ),
        ]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        dy, x, stats = (
            self.output_error_operand(batch),
            self.input_operand(batch),
            self._statistics(),
        )
        (_, scale), _ = self.parameters()
        phase = Phase.GRADIENT if self.trainable else Phase.ERROR
        gradient = self._scale_shift_gradient(phase, dy, x, stats)
        ops = [gradient]
        if input_error:
            dx = self.input_error_operand(batch)
            spec = ElementwiseOp(
                kind="elementwise", function="batch_norm_derivative", elements=dx.elements
            )
            reads = [dy, x, stats, scale, *gradient.writes]
            ops.append(op(self.name, Phase.ERROR, spec, reads, [dx], 5 * dx.elements))
        return ops

    # ------------------------------------------------------------- how it runs
    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        super().initialize(rng, dtype)
        c = self.channels
        self.running = {"mean": np.zeros(c, dtype=dtype), "variance": np.ones(c, dtype=dtype)}

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        axes = tuple(range(x.ndim - 1))
        if ctx.training:
            mean, variance = x.mean(axis=axes), x.var(axis=axes)
        else:
            mean, variance = self.running["mean"], self.running["variance"]
        x_hat, inverse, y = self._normalized(x, mean, variance)
        if not ctx.training:
            if ctx.tracer is not None and self.inference:
                running = np.concatenate([self.running["mean"], self.running["variance"]])
                arrays = [([x, running, self.params["scale"], self.params["shift"]], [y])]
                ctx.tracer.record_pass(self.name, self._inference_ops(x.shape[0]), arrays)
            return y
        n = x.size // self.channels
        m = self.spec.momentum
        stats = np.concatenate([mean, variance])
        before = np.concatenate([self.running["mean"], self.running["variance"]])
        self.running["mean"] = (1 - m) * self.running["mean"] + m * mean
        unbiased = variance * (n / (n - 1)) if n > 1 else variance
        self.running["variance"] = (1 - m) * self.running["variance"] + m * unbiased
        if ctx.tracer is not None:
            after = np.concatenate([self.running["mean"], self.running["variance"]])
            p = self.params
            arrays = [
                ([x], [stats]),
                ([x, stats, p["scale"], p["shift"]], [y]),
                ([stats, before], [after]),
            ]
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), arrays)
        self._kept_arrays = (x, x_hat, inverse, stats)
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        if self._kept_arrays is None:
            raise RuntimeError(f"layer '{self.name}': backward needs a training forward pass")
        x, x_hat, inverse, stats = self._kept_arrays
        axes = tuple(range(dy.ndim - 1))
        d_shift = dy.sum(axis=axes)
        d_scale = (dy * x_hat).sum(axis=axes)
        if self.trainable:
            self.grads = {"scale": d_scale, "shift": d_shift}
        dx = None
        if input_error:
            n = dy.size // self.channels
            dx = self.params["scale"] * inverse * (dy - d_shift / n - x_hat * (d_scale / n))
        if ctx.tracer is not None:
            arrays: list = [([dy, x, stats], [d_scale, d_shift])]
            if input_error:
                arrays.append(([dy, x, stats, self.params["scale"], d_scale, d_shift], [dx]))
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], input_error), arrays)
        return dx
