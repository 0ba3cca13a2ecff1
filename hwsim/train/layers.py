"""Layers written out by hand in numpy, vectorised over the batch (NHWC layout).

Each layer's forward and backward sit side by side.  `backward` takes the error with respect to
the layer's output and returns the error with respect to its input (only when asked: DFA and
SSDFA never propagate through a weight layer).  When the step is traced, every op is recorded
where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hwsim.specs.network import (
    Activation,
    ActivationLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    LayerShape,
    LayerSpec,
    MaxPoolLayer,
    Padding,
    same_padding,
)
from hwsim.specs.trace import (
    Conv2DOp,
    ConvPass,
    ElementwiseOp,
    MatmulOp,
    Phase,
    ReduceOp,
    Role,
    Slot,
)
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


class WeightLayer(Layer):
    """Dense and conv2d: a weight, an optional bias and an optional fused activation."""

    has_weights = True

    def __init__(
        self, spec: DenseLayer | Conv2DLayer, shape: LayerShape, input_tensor: str
    ) -> None:
        super().__init__(spec, shape, input_tensor)
        self.trainable = spec.trainable
        self.activation = spec.activation
        fused = self.activation != Activation.LINEAR
        self.pre_tensor = f"{self.name}.pre" if fused else self.output_tensor
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def weight_reads(self) -> list[Access]:
        """The weights (the GEMM's b) and the bias a forward pass reads."""
        reads = [Access(f"{self.name}.weight", Role.WEIGHT, self.params["weight"], Slot.B)]
        if "bias" in self.params:
            reads.append(Access(f"{self.name}.bias", Role.BIAS, self.params["bias"]))
        return reads

    def _activate(self, h: np.ndarray, ctx: StepContext) -> np.ndarray:
        if self.activation == Activation.LINEAR:
            return h
        y = activate(self.activation, h)
        self._elementwise(
            ctx,
            Phase.FORWARD,
            self.activation.value,
            [Access(self.pre_tensor, Role.ACTIVATION, h)],
            [Access(self.output_tensor, Role.ACTIVATION, y)],
            h.size,
        )
        return y

    def _activation_backward(self, dy: np.ndarray, ctx: StepContext) -> np.ndarray:
        if self.activation == Activation.LINEAR:
            return dy
        dh = dy * activation_derivative(self.activation, self._y)
        self._elementwise(
            ctx,
            Phase.ERROR,
            f"{self.activation.value}_derivative",
            [
                Access(self.output_error_tensor, Role.ERROR, dy),
                Access(self.output_tensor, Role.ACTIVATION, self._y),
            ],
            [Access(f"{self.pre_tensor}.error", Role.ERROR, dh)],
            dh.size,
        )
        return dh

    def _bias_gradient(self, dh: np.ndarray, ctx: StepContext) -> None:
        if "bias" not in self.params:
            return
        reduce_axes = tuple(range(dh.ndim - 1))
        self.grads["bias"] = dh.sum(axis=reduce_axes)
        if ctx.tracer is not None:
            ctx.tracer.record(
                layer=self.name,
                phase=Phase.GRADIENT,
                op=ReduceOp(
                    kind="reduce", function="sum", inputs=dh.size, outputs=self.grads["bias"].size
                ),
                reads=[Access(f"{self.pre_tensor}.error", Role.ERROR, dh)],
                writes=[Access(f"{self.name}.bias.grad", Role.GRADIENT, self.grads["bias"])],
                other_ops=dh.size,
            )


class Dense(WeightLayer):
    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        weight = self.params["weight"]
        h = x @ weight
        if "bias" in self.params:
            h += self.params["bias"]
        if ctx.tracer is not None:
            ctx.tracer.record(
                layer=self.name,
                phase=Phase.FORWARD,
                op=MatmulOp(kind="matmul", m=x.shape[0], k=weight.shape[0], n=weight.shape[1]),
                reads=[
                    Access(self.input_tensor, self.input_role(), x, Slot.A),
                    *self.weight_reads(),
                ],
                writes=[Access(self.pre_tensor, Role.ACTIVATION, h, Slot.C)],
                other_ops=h.size if "bias" in self.params else 0,
            )
        y = self._activate(h, ctx)
        if ctx.training:
            self._x, self._y = x, y
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        dh = self._activation_backward(dy, ctx)
        x, weight = self._x, self.params["weight"]
        error_tensor = Access(f"{self.pre_tensor}.error", Role.ERROR, dh)
        if self.trainable:
            self.grads["weight"] = x.T @ dh
            if ctx.tracer is not None:
                ctx.tracer.record(
                    layer=self.name,
                    phase=Phase.GRADIENT,
                    op=MatmulOp(kind="matmul", m=x.shape[1], k=x.shape[0], n=dh.shape[1]),
                    reads=[
                        Access(self.input_tensor, self.input_role(), x, Slot.A),
                        error_tensor.as_slot(Slot.B),
                    ],
                    writes=[
                        Access(
                            f"{self.name}.weight.grad", Role.GRADIENT, self.grads["weight"], Slot.C
                        )
                    ],
                )
            self._bias_gradient(dh, ctx)
        if not input_error:
            return None
        dx = dh @ weight.T
        if ctx.tracer is not None:
            ctx.tracer.record(
                layer=self.name,
                phase=Phase.ERROR,
                op=MatmulOp(kind="matmul", m=dh.shape[0], k=dh.shape[1], n=weight.shape[0]),
                reads=[
                    error_tensor.as_slot(Slot.A),
                    Access(f"{self.name}.weight", Role.WEIGHT, weight, Slot.B),
                ],
                writes=[Access(self.input_error_tensor, Role.ERROR, dx, Slot.C)],
            )
        return dx


def _window_padding(size: int, kernel: int, stride: int, padding: Padding) -> tuple[int, int]:
    if padding == Padding.SAME:
        return same_padding(size, kernel, stride)
    return 0, 0


def windows(
    x: np.ndarray,
    kernel: int,
    stride: int,
    out_h: int,
    out_w: int,
    pads: tuple[tuple[int, int], tuple[int, int]],
    fill: float = 0.0,
) -> np.ndarray:
    """Strided view [B, out_h, out_w, C, kernel, kernel] of the padded input."""
    if any(pads[0]) or any(pads[1]):
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill)
    view = sliding_window_view(x, (kernel, kernel), axis=(1, 2))
    return view[:, ::stride, ::stride][:, :out_h, :out_w]


def scatter_windows(
    dwin: np.ndarray,
    input_shape: tuple[int, ...],
    kernel: int,
    stride: int,
    pads: tuple[tuple[int, int], tuple[int, int]],
) -> np.ndarray:
    """Adjoint of `windows`: add [B, oh, ow, kernel, kernel, C] window errors back to the input."""
    batch, height, width, channels = input_shape
    out_h, out_w = dwin.shape[1], dwin.shape[2]
    padded_h = max(height + sum(pads[0]), (out_h - 1) * stride + kernel)
    padded_w = max(width + sum(pads[1]), (out_w - 1) * stride + kernel)
    dx = np.zeros((batch, padded_h, padded_w, channels), dtype=dwin.dtype)
    for i in range(kernel):
        for j in range(kernel):
            rows = slice(i, i + stride * out_h, stride)
            dx[:, rows, j : j + stride * out_w : stride, :] += dwin[:, :, :, i, j]
    top, left = pads[0][0], pads[1][0]
    return dx[:, top : top + height, left : left + width, :]


class Conv2D(WeightLayer):
    def __init__(self, spec: Conv2DLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        height, width, _ = shape.input_shape
        k, s = spec.kernel_size, spec.stride
        self.pads = (
            _window_padding(height, k, s, spec.padding),
            _window_padding(width, k, s, spec.padding),
        )
        self._cols: np.ndarray | None = None

    def _op(self, batch: int, conv_pass: ConvPass) -> Conv2DOp:
        spec = self.spec
        height, width, channels = self.shape.input_shape
        out_h, out_w, filters = self.shape.output_shape
        positions, window = batch * out_h * out_w, spec.kernel_size**2 * channels
        m, k, n = {
            ConvPass.FORWARD: (positions, window, filters),
            ConvPass.BACKWARD_DATA: (positions, filters, window),
            ConvPass.BACKWARD_WEIGHT: (window, positions, filters),
        }[conv_pass]
        return Conv2DOp(
            kind="conv2d",
            conv_pass=conv_pass,
            batch=batch,
            input_height=height,
            input_width=width,
            input_channels=channels,
            output_height=out_h,
            output_width=out_w,
            output_channels=filters,
            kernel_height=spec.kernel_size,
            kernel_width=spec.kernel_size,
            stride=spec.stride,
            padding=spec.padding,
            m=m,
            k=k,
            n=n,
        )

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        batch = x.shape[0]
        out_h, out_w, filters = self.shape.output_shape
        k = self.spec.kernel_size
        view = windows(x, k, self.spec.stride, out_h, out_w, self.pads)
        cols = view.transpose(0, 1, 2, 4, 5, 3).reshape(batch * out_h * out_w, -1)
        weight = self.params["weight"]
        h = cols @ weight.reshape(-1, filters)
        if "bias" in self.params:
            h += self.params["bias"]
        h = h.reshape(batch, out_h, out_w, filters)
        if ctx.tracer is not None:
            ctx.tracer.record(
                layer=self.name,
                phase=Phase.FORWARD,
                op=self._op(batch, ConvPass.FORWARD),
                reads=[
                    Access(self.input_tensor, self.input_role(), x, Slot.A),
                    *self.weight_reads(),
                ],
                writes=[Access(self.pre_tensor, Role.ACTIVATION, h, Slot.C)],
                other_ops=h.size if "bias" in self.params else 0,
            )
        y = self._activate(h, ctx)
        if ctx.training:
            self._x, self._y = x, y
            self._cols = cols if self.trainable else None
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        dh = self._activation_backward(dy, ctx)
        batch = dh.shape[0]
        filters = self.shape.output_shape[2]
        dh_cols = dh.reshape(-1, filters)
        weight = self.params["weight"]
        error_tensor = Access(f"{self.pre_tensor}.error", Role.ERROR, dh)
        if self.trainable:
            self.grads["weight"] = (self._cols.T @ dh_cols).reshape(weight.shape)
            if ctx.tracer is not None:
                ctx.tracer.record(
                    layer=self.name,
                    phase=Phase.GRADIENT,
                    op=self._op(batch, ConvPass.BACKWARD_WEIGHT),
                    reads=[
                        Access(self.input_tensor, self.input_role(), self._x, Slot.A),
                        error_tensor.as_slot(Slot.B),
                    ],
                    writes=[
                        Access(
                            f"{self.name}.weight.grad", Role.GRADIENT, self.grads["weight"], Slot.C
                        )
                    ],
                )
            self._bias_gradient(dh, ctx)
        if not input_error:
            return None
        k = self.spec.kernel_size
        out_h, out_w = self.shape.output_shape[:2]
        channels = self.shape.input_shape[2]
        dcols = dh_cols @ weight.reshape(-1, filters).T
        dwin = dcols.reshape(batch, out_h, out_w, k, k, channels)
        dx = scatter_windows(dwin, self._x.shape, k, self.spec.stride, self.pads)
        if ctx.tracer is not None:
            ctx.tracer.record(
                layer=self.name,
                phase=Phase.ERROR,
                op=self._op(batch, ConvPass.BACKWARD_DATA),
                reads=[
                    error_tensor.as_slot(Slot.A),
                    Access(f"{self.name}.weight", Role.WEIGHT, weight, Slot.B),
                ],
                writes=[Access(self.input_error_tensor, Role.ERROR, dx, Slot.C)],
            )
        return dx


class MaxPool(Layer):
    def __init__(self, spec: MaxPoolLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.stride = spec.stride or spec.pool_size
        height, width, _ = shape.input_shape
        self.pads = (
            _window_padding(height, spec.pool_size, self.stride, spec.padding),
            _window_padding(width, spec.pool_size, self.stride, spec.padding),
        )
        self._argmax: np.ndarray | None = None
        self._input_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        k = self.spec.pool_size
        out_h, out_w, _channels = self.shape.output_shape
        view = windows(x, k, self.stride, out_h, out_w, self.pads, fill=-np.inf)
        flat = view.reshape(*view.shape[:4], k * k)
        argmax = flat.argmax(axis=-1)
        y = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
        if ctx.tracer is not None:
            ctx.tracer.record(
                layer=self.name,
                phase=Phase.FORWARD,
                op=ReduceOp(kind="reduce", function="max", inputs=flat.size, outputs=y.size),
                reads=[Access(self.input_tensor, self.input_role(), x)],
                writes=[Access(self.output_tensor, Role.ACTIVATION, y)],
                other_ops=flat.size,
            )
        if ctx.training:
            self._argmax, self._input_shape = argmax, x.shape
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        k = self.spec.pool_size
        batch, out_h, out_w, channels = dy.shape
        dwin = np.zeros((batch, out_h, out_w, k, k, channels), dtype=dy.dtype)
        rows, cols = np.divmod(self._argmax, k)
        b, i, j, c = np.indices(dy.shape, sparse=True)
        dwin[b, i, j, rows, cols, c] = dy
        dx = scatter_windows(dwin, self._input_shape, k, self.stride, self.pads)
        self._elementwise(
            ctx,
            Phase.ERROR,
            "max_pool_route",
            [Access(self.output_error_tensor, Role.ERROR, dy)],
            [Access(self.input_error_tensor, Role.ERROR, dx)],
            dx.size,
        )
        return dx


class Flatten(Layer):
    """A reshape: no data moves, so it records nothing and its tensors alias its input's."""

    def __init__(self, spec: FlattenLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.output_tensor = input_tensor

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        return dy.reshape(dy.shape[0], *self.shape.input_shape)


class Dropout(Layer):
    def __init__(self, spec: DropoutLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self._mask: np.ndarray | None = None
        if spec.rate == 0:  # moves nothing: like flatten, its tensors are its input's
            self.output_tensor = input_tensor

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        rate = self.spec.rate
        if not (ctx.training and ctx.dropout) or rate == 0:
            self._mask = None
            return x
        keep = ctx.rng.random(x.shape, dtype=np.float32) >= rate
        self._mask = keep.astype(x.dtype) / (1 - rate)
        y = x * self._mask
        self._elementwise(
            ctx,
            Phase.FORWARD,
            "dropout",
            [Access(self.input_tensor, self.input_role(), x)],
            [
                Access(self.output_tensor, Role.ACTIVATION, y),
                Access(f"{self.name}.mask", Role.ACTIVATION, self._mask),
            ],
            x.size,
        )
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        if self._mask is None:
            return dy
        dx = dy * self._mask
        self._elementwise(
            ctx,
            Phase.ERROR,
            "dropout_mask",
            [
                Access(self.output_error_tensor, Role.ERROR, dy),
                Access(f"{self.name}.mask", Role.ACTIVATION, self._mask),
            ],
            [Access(self.input_error_tensor, Role.ERROR, dx)],
            dx.size,
        )
        return dx


class ActivationFunction(Layer):
    def __init__(self, spec: ActivationLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        y = activate(self.spec.function, x)
        self._elementwise(
            ctx,
            Phase.FORWARD,
            self.spec.function.value,
            [Access(self.input_tensor, self.input_role(), x)],
            [Access(self.output_tensor, Role.ACTIVATION, y)],
            x.size,
        )
        if ctx.training:
            self._y = y
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        dx = dy * activation_derivative(self.spec.function, self._y)
        self._elementwise(
            ctx,
            Phase.ERROR,
            f"{self.spec.function.value}_derivative",
            [
                Access(self.output_error_tensor, Role.ERROR, dy),
                Access(self.output_tensor, Role.ACTIVATION, self._y),
            ],
            [Access(self.input_error_tensor, Role.ERROR, dx)],
            dx.size,
        )
        return dx


LAYER_CLASSES: dict[str, type[Layer]] = {
    "dense": Dense,
    "conv2d": Conv2D,
    "max_pool": MaxPool,
    "flatten": Flatten,
    "dropout": Dropout,
    "activation": ActivationFunction,
}
