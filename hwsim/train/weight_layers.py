"""The layers with weights, dense and conv2d: forward, and the backward passes to the weight
gradient and (when asked) the input error, each recorded where it runs when the step is traced.
"""

from __future__ import annotations

import numpy as np

from hwsim.specs.network import Activation, Conv2DLayer, DenseLayer, LayerShape
from hwsim.specs.trace import Conv2DOp, ConvPass, MatmulOp, Phase, ReduceOp, Role, Slot
from hwsim.train.layer_base import Layer, StepContext, activate, activation_derivative
from hwsim.train.tracer import Access, Tracer
from hwsim.train.windows import scatter_windows, window_padding, windows


class WeightLayer(Layer):
    """Dense and conv2d: a weight, an optional bias and an optional fused activation."""

    has_weights = True
    spec: DenseLayer | Conv2DLayer

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
        y = self._kept(self._y, "output")
        dh = dy * activation_derivative(self.activation, y)
        self._elementwise(
            ctx,
            Phase.ERROR,
            f"{self.activation.value}_derivative",
            [
                Access(self.output_error_tensor, Role.ERROR, dy),
                Access(self.output_tensor, Role.ACTIVATION, y),
            ],
            [Access(f"{self.pre_tensor}.error", Role.ERROR, dh)],
            dh.size,
        )
        return dh

    def _trace_forward(
        self, tracer: Tracer, op: MatmulOp | Conv2DOp, x: np.ndarray, h: np.ndarray
    ) -> None:
        """The record of h = input · W (+ bias): the input in slot a, W in b, h in c."""
        tracer.record(
            layer=self.name,
            phase=Phase.FORWARD,
            op=op,
            reads=[Access(self.input_tensor, self.input_role(), x, Slot.A), *self.weight_reads()],
            writes=[Access(self.pre_tensor, Role.ACTIVATION, h, Slot.C)],
            other_ops=h.size if "bias" in self.params else 0,
        )

    def _trace_weight_gradient(
        self, tracer: Tracer, op: MatmulOp | Conv2DOp, x: np.ndarray, error_tensor: Access
    ) -> None:
        """The record of dW = inputᵀ · error: the input in slot a, the error in b, dW in c."""
        tracer.record(
            layer=self.name,
            phase=Phase.GRADIENT,
            op=op,
            reads=[
                Access(self.input_tensor, self.input_role(), x, Slot.A),
                error_tensor.as_slot(Slot.B),
            ],
            writes=[
                Access(f"{self.name}.weight.grad", Role.GRADIENT, self.grads["weight"], Slot.C)
            ],
        )

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
    spec: DenseLayer

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        weight = self.params["weight"]
        h = x @ weight
        if "bias" in self.params:
            h += self.params["bias"]
        if ctx.tracer is not None:
            op = MatmulOp(kind="matmul", m=x.shape[0], k=weight.shape[0], n=weight.shape[1])
            self._trace_forward(ctx.tracer, op, x, h)
        y = self._activate(h, ctx)
        if ctx.training:
            self._x, self._y = x, y
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        dh = self._activation_backward(dy, ctx)
        weight = self.params["weight"]
        error_tensor = Access(f"{self.pre_tensor}.error", Role.ERROR, dh)
        if self.trainable:
            x = self._kept(self._x, "input")
            self.grads["weight"] = x.T @ dh
            if ctx.tracer is not None:
                op = MatmulOp(kind="matmul", m=x.shape[1], k=x.shape[0], n=dh.shape[1])
                self._trace_weight_gradient(ctx.tracer, op, x, error_tensor)
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


class Conv2D(WeightLayer):
    spec: Conv2DLayer

    def __init__(self, spec: Conv2DLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        height, width, _ = shape.input_shape
        k, s = spec.kernel_size, spec.stride
        self.pads = (
            window_padding(height, k, s, spec.padding),
            window_padding(width, k, s, spec.padding),
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
            self._trace_forward(ctx.tracer, self._op(batch, ConvPass.FORWARD), x, h)
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
            cols = self._kept(self._cols, "im2col columns")
            self.grads["weight"] = (cols.T @ dh_cols).reshape(weight.shape)
            if ctx.tracer is not None:
                op = self._op(batch, ConvPass.BACKWARD_WEIGHT)
                x = self._kept(self._x, "input")
                self._trace_weight_gradient(ctx.tracer, op, x, error_tensor)
            self._bias_gradient(dh, ctx)
        if not input_error:
            return None
        k = self.spec.kernel_size
        out_h, out_w = self.shape.output_shape[:2]
        channels = self.shape.input_shape[2]
        dcols = dh_cols @ weight.reshape(-1, filters).T
        dwin = dcols.reshape(batch, out_h, out_w, k, k, channels)
        input_shape = self._kept(self._x, "input").shape
        dx = scatter_windows(dwin, input_shape, k, self.spec.stride, self.pads)
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
