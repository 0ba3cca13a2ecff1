"""The layers with weights, dense and conv2d: the ops they describe (forward, and the backward
passes to the weight gradient and, when asked, the input error), and the numpy that runs them.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.specs.network import Activation, Conv2DLayer, DenseLayer, LayerShape
from hwsim.specs.trace import Conv2DOp, ConvPass, MatmulOp, Phase, Role, Slot, one_or_pair
from hwsim.train.layer_base import (
    Layer,
    StepContext,
    activate,
    activation_derivative,
    derivative_reads_input,
)
from hwsim.train.ops import OpDesc, OperandDesc, elementwise, gradient_of, op, reduction
from hwsim.train.tracer import Measured
from hwsim.train.windows import scatter_windows, window_padding, windows

Arrays = list[tuple[list[Measured], list[Measured]]]


class WeightLayer(Layer):
    """Dense and conv2d: a weight, an optional bias and an optional fused activation."""

    has_weights = True
    has_params = True
    spec: DenseLayer | Conv2DLayer

    def __init__(
        self, spec: DenseLayer | Conv2DLayer, shape: LayerShape, input_tensor: str
    ) -> None:
        super().__init__(spec, shape, input_tensor)
        self.trainable = spec.trainable
        self.activation = spec.activation
        self.fused = self.activation != Activation.LINEAR
        self.pre_tensor = f"{self.name}.pre" if self.fused else self.output_tensor
        self._reads_pre = derivative_reads_input(self.activation)  # gelu: f' needs h
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None  # what the derivative reads: y, or h for gelu

    # ------------------------------------------------------------ what it does
    def gemm(self, batch: int, conv_pass: ConvPass) -> MatmulOp | Conv2DOp:
        """The GEMM of a pass over `batch` examples."""
        raise NotImplementedError

    def parameters(self) -> list[tuple[str, OperandDesc]]:
        """Each parameter's name and operand, in the order the optimizer updates them."""
        params = [("weight", OperandDesc(f"{self.name}.weight", Role.WEIGHT, self.shape.weights))]
        if self.spec.use_bias:
            bias = OperandDesc(f"{self.name}.bias", Role.BIAS, self.shape.output_shape[-1])
            params.append(("bias", bias))
        return params

    def _pre(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        return OperandDesc(self.pre_tensor, Role.ACTIVATION, self.output_elements(batch), slot)

    def _derivative_operand(self, batch: int) -> OperandDesc:
        """What f'(h) is computed from: the output y, or h where it needs it (gelu)."""
        return self._pre(batch) if self._reads_pre else self.output_operand(batch)

    def _pre_error(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        """The error of h: its own tensor when an activation is fused, else the output's."""
        elements = self.output_elements(batch)
        tensor = f"{self.pre_tensor}.error" if self.fused else self.output_error_tensor
        return OperandDesc(tensor, Role.ERROR, elements, slot)

    def forward_ops(self, batch: int) -> list[OpDesc]:
        """h = input · W (+ bias): the input in slot a, W in b, h in c; then f(h) if fused."""
        (_, weight), *bias = self.parameters()
        reads = [self.input_operand(batch, Slot.A), weight.as_slot(Slot.B), *(b for _, b in bias)]
        y = self.output_elements(batch)
        gemm = self.gemm(batch, ConvPass.FORWARD)
        ops = [op(self.name, Phase.FORWARD, gemm, reads, [self._pre(batch, Slot.C)], y * len(bias))]
        if self.fused:
            ops.append(
                elementwise(
                    self.name,
                    Phase.FORWARD,
                    self.activation.value,
                    [self._pre(batch)],
                    [self.output_operand(batch)],
                    y,
                )
            )
        return ops

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        """f'(h) if fused; dW = inputᵀ · error (a, b → c) and the bias sum if trained; the
        input error = error · Wᵀ if asked."""
        ops = []
        name, error = self.name, self._pre_error(batch)
        if self.fused:
            ops.append(
                elementwise(
                    name,
                    Phase.ERROR,
                    f"{self.activation.value}_derivative",
                    [self.output_error_operand(batch), self._derivative_operand(batch)],
                    [error],
                    self.output_elements(batch),
                )
            )
        (_, weight), *bias = self.parameters()
        if self.trainable:
            gemm = self.gemm(batch, ConvPass.BACKWARD_WEIGHT)
            reads = [self.input_operand(batch, Slot.A), error.as_slot(Slot.B)]
            ops.append(op(name, Phase.GRADIENT, gemm, reads, [gradient_of(weight, Slot.C)]))
            ops.extend(
                reduction(name, Phase.GRADIENT, "sum", error, gradient_of(b)) for _, b in bias
            )
        if input_error:
            gemm = self.gemm(batch, ConvPass.BACKWARD_DATA)
            reads = [error.as_slot(Slot.A), weight.as_slot(Slot.B)]
            ops.append(
                op(name, Phase.ERROR, gemm, reads, [self.input_error_operand(batch, Slot.C)])
            )
        return ops

    # ------------------------------------------------------------- how it runs
    def _finish_forward(self, x: np.ndarray, h: np.ndarray, ctx: StepContext) -> np.ndarray:
        y = activate(self.activation, h) if self.fused else h
        if ctx.tracer is not None:
            arrays: Arrays = [([x, *self.params.values()], [h])]
            if self.fused:
                arrays.append(([h], [y]))
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), arrays)
        if ctx.training:
            self._x, self._y = x, h if self._reads_pre else y
        return y

    def _error_before_activation(self, dy: np.ndarray) -> np.ndarray:
        if not self.fused:
            return dy
        return dy * activation_derivative(self.activation, self._kept(self._y, "output"))

    def _bias_gradient(self, dh: np.ndarray) -> None:
        if "bias" in self.params:
            self.grads["bias"] = dh.sum(axis=tuple(range(dh.ndim - 1)))

    def _trace_backward(
        self, ctx: StepContext, dy: np.ndarray, dh: np.ndarray, dx: np.ndarray | None
    ) -> None:
        if ctx.tracer is None:
            return
        arrays: Arrays = []
        if self.fused:
            arrays.append(([dy, self._kept(self._y, "output")], [dh]))
        if self.trainable:
            arrays.append(([self._kept(self._x, "input"), dh], [self.grads["weight"]]))
            if "bias" in self.grads:
                arrays.append(([dh], [self.grads["bias"]]))
        if dx is not None:
            arrays.append(([dh, self.params["weight"]], [dx]))
        ctx.tracer.record_pass(self.name, self.backward_ops(dh.shape[0], dx is not None), arrays)


class Dense(WeightLayer):
    spec: DenseLayer

    def gemm(self, batch: int, conv_pass: ConvPass) -> MatmulOp:
        """On a token sequence [tokens, features] the same layer runs on every token: the
        GEMM's rows are batch · tokens."""
        features, units = self.shape.input_shape[-1], self.shape.output_shape[-1]
        rows = batch * math.prod(self.shape.input_shape[:-1])
        m, k, n = {
            ConvPass.FORWARD: (rows, features, units),
            ConvPass.BACKWARD_WEIGHT: (features, rows, units),
            ConvPass.BACKWARD_DATA: (rows, units, features),
        }[conv_pass]
        return MatmulOp(kind="matmul", m=m, k=k, n=n)

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        h = x @ self.params["weight"]
        if "bias" in self.params:
            h += self.params["bias"]
        return self._finish_forward(x, h, ctx)

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        dh = self._error_before_activation(dy)
        weight = self.params["weight"]
        if self.trainable:
            x = self._kept(self._x, "input")
            if x.ndim == 2:
                self.grads["weight"] = x.T @ dh
            else:  # tokens: every token of every example a row
                self.grads["weight"] = x.reshape(-1, x.shape[-1]).T @ dh.reshape(-1, dh.shape[-1])
            self._bias_gradient(dh)
        dx = dh @ weight.T if input_error else None
        self._trace_backward(ctx, dy, dh, dx)
        return dx


class Conv2D(WeightLayer):
    spec: Conv2DLayer

    def __init__(self, spec: Conv2DLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        height, width, _ = shape.input_shape
        (reach_h, reach_w), (stride_h, stride_w) = spec.reach, spec.strides
        self.pads = (  # a dilated window pads as the inputs it spans
            window_padding(height, reach_h, stride_h, spec.padding),
            window_padding(width, reach_w, stride_w, spec.padding),
        )
        self._cols: np.ndarray | None = None

    def gemm(self, batch: int, conv_pass: ConvPass) -> Conv2DOp:
        """The pass's im2col GEMM of one group (`groups` of them: the op's MACs)."""
        spec = self.spec
        height, width, channels = self.shape.input_shape
        out_h, out_w, filters = self.shape.output_shape
        groups, (kernel_h, kernel_w) = spec.groups, spec.kernel
        positions, window = batch * out_h * out_w, kernel_h * kernel_w * (channels // groups)
        outputs = filters // groups
        m, k, n = {
            ConvPass.FORWARD: (positions, window, outputs),
            ConvPass.BACKWARD_DATA: (positions, outputs, window),
            ConvPass.BACKWARD_WEIGHT: (window, positions, outputs),
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
            kernel_height=kernel_h,
            kernel_width=kernel_w,
            stride=one_or_pair(*spec.strides),
            dilation=one_or_pair(*spec.dilations),
            padding=spec.padding,
            groups=groups,
            m=m,
            k=k,
            n=n,
        )

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        batch = x.shape[0]
        out_h, out_w, filters = self.shape.output_shape
        spec = self.spec
        view = windows(
            x, spec.kernel, spec.strides, out_h, out_w, self.pads, dilation=spec.dilations
        )
        if self.spec.groups == 1:
            cols = view.transpose(0, 1, 2, 4, 5, 3).reshape(batch * out_h * out_w, -1)
            h = cols @ self.params["weight"].reshape(-1, filters)
        else:
            cols = self._group_columns(view)
            h = _ungroup(cols @ self._group_weights())
        if "bias" in self.params:
            h += self.params["bias"]
        if ctx.training:
            self._cols = cols if self.trainable else None
        return self._finish_forward(x, h.reshape(batch, out_h, out_w, filters), ctx)

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        dh = self._error_before_activation(dy)
        filters, groups = self.shape.output_shape[2], self.spec.groups
        dh_cols = dh.reshape(-1, filters)
        weight = self.params["weight"]
        if groups == 1:
            if self.trainable:
                cols = self._kept(self._cols, "im2col columns")
                self.grads["weight"] = (cols.T @ dh_cols).reshape(weight.shape)
                self._bias_gradient(dh)
            dx = self._input_error(dh_cols @ weight.reshape(-1, filters).T) if input_error else None
            self._trace_backward(ctx, dy, dh, dx)
            return dx
        dh_groups = dh_cols.reshape(len(dh_cols), groups, -1).transpose(1, 0, 2)  # [G, P, F/G]
        if self.trainable:
            cols = self._kept(self._cols, "im2col columns")  # [G, P, k·k·C/G]
            grad = cols.transpose(0, 2, 1) @ dh_groups  # [G, k·k·C/G, F/G]
            self.grads["weight"] = _ungroup(grad).reshape(weight.shape)
            self._bias_gradient(dh)
        dx = None
        if input_error:
            dcols = dh_groups @ self._group_weights().transpose(0, 2, 1)  # [G, P, k·k·C/G]
            dx = self._input_error(self._window_errors(dcols))
        self._trace_backward(ctx, dy, dh, dx)
        return dx

    # Group g takes input channels [g·C/G, (g+1)·C/G) and makes output channels
    # [g·F/G, (g+1)·F/G), as TensorFlow's and PyTorch's grouped convolutions do.
    def _group_columns(self, view: np.ndarray) -> np.ndarray:
        """The im2col columns of each group, [G, positions, kh·kw·C/G], from the window view
        [B, out_h, out_w, C, kh, kw]."""
        batch, out_h, out_w, channels, kernel_h, kernel_w = view.shape
        groups = self.spec.groups
        grouped = view.reshape(batch, out_h, out_w, groups, channels // groups, kernel_h, kernel_w)
        cols = grouped.transpose(3, 0, 1, 2, 5, 6, 4)
        return cols.reshape(groups, batch * out_h * out_w, -1)

    def _group_weights(self) -> np.ndarray:
        """The weight [kh, kw, C/G, F] as each group's filters [G, kh·kw·C/G, F/G]."""
        weight, groups = self.params["weight"], self.spec.groups
        rows = weight.shape[0] * weight.shape[1] * weight.shape[2]
        return weight.reshape(rows, groups, -1).transpose(1, 0, 2)

    def _window_errors(self, dcols: np.ndarray) -> np.ndarray:
        """Each group's column errors [G, P, kh·kw·C/G] as one [P, kh·kw·C] (kernel rows,
        kernel columns, then channels: the layout `_input_error` reads)."""
        groups, positions, _ = dcols.shape
        kernel_h, kernel_w = self.spec.kernel
        per_group = dcols.reshape(groups, positions, kernel_h, kernel_w, -1)
        per_group = per_group.transpose(1, 2, 3, 0, 4)
        return per_group.reshape(positions, -1)

    def _input_error(self, dcols: np.ndarray) -> np.ndarray:
        """The input error from the error of each im2col column."""
        input_shape = self._kept(self._x, "input").shape
        out_h, out_w = self.shape.output_shape[:2]
        (kernel_h, kernel_w), channels = self.spec.kernel, self.shape.input_shape[2]
        dwin = dcols.reshape(input_shape[0], out_h, out_w, kernel_h, kernel_w, channels)
        spec = self.spec
        return scatter_windows(
            dwin, input_shape, spec.kernel, spec.strides, self.pads, dilation=spec.dilations
        )


def _ungroup(per_group: np.ndarray) -> np.ndarray:
    """[G, rows, F/G] → [rows, F], output channels group by group."""
    groups, rows, outputs = per_group.shape
    return per_group.transpose(1, 0, 2).reshape(rows, groups * outputs)
