"""Layers written out by hand in numpy, vectorised over the batch (NHWC layout).

Each layer kind states the ops it performs (`forward_ops`, `backward_ops`: the records of its
passes, `hwsim.train.ops`) beside the forward and backward that run them.  `backward` takes the
error with respect to the layer's output and returns the error with respect to its input (only
when asked: DFA and SSDFA never propagate through a weight layer).  When the step is traced,
each pass records its described ops with the arrays they ran on.

The base class and step context live in `layer_base`, dense and conv2d in `weight_layers`, and
the window geometry in `windows`; their names are importable from here too.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.specs.network import (
    ActivationLayer,
    AddLayer,
    AvgPoolLayer,
    ConcatLayer,
    DropoutLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    LayerShape,
    MaxPoolLayer,
    ScaleLayer,
)
from hwsim.specs.trace import Phase, Role
from hwsim.train.attention import Attention
from hwsim.train.layer_base import (
    Layer,
    StepContext,
    activate,
    activation_derivative,
    derivative_reads_input,
)
from hwsim.train.norm_layers import BatchNorm
from hwsim.train.ops import OpDesc, OperandDesc, elementwise, reduction, spread
from hwsim.train.token_layers import LayerNorm, PatchEmbed, TokenPool
from hwsim.train.weight_layers import Conv2D, Dense
from hwsim.train.weight_layers import WeightLayer as WeightLayer
from hwsim.train.windows import in_bounds, scatter_windows, window_padding, windows


class MaxPool(Layer):
    spec: MaxPoolLayer

    def __init__(self, spec: MaxPoolLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.window, self.stride = spec.window, spec.strides
        height, width, _ = shape.input_shape
        self.pads = (
            window_padding(height, self.window[0], self.stride[0], spec.padding),
            window_padding(width, self.window[1], self.stride[1], spec.padding),
        )
        self._argmax: np.ndarray | None = None
        self._input_shape: tuple[int, ...] = ()

    def forward_ops(self, batch: int) -> list[OpDesc]:
        """The max over each window (pool height × width values an output, overlapping or
        not)."""
        inputs = self.output_elements(batch) * self.window[0] * self.window[1]
        source, result = self.input_operand(batch), self.output_operand(batch)
        return [reduction(self.name, Phase.FORWARD, "max", source, result, inputs)]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        """Each error routed to the input its window's max came from."""
        dy, dx = self.output_error_operand(batch), self.input_error_operand(batch)
        return [elementwise(self.name, Phase.ERROR, "max_pool_route", [dy], [dx], dx.elements)]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        out_h, out_w, _channels = self.shape.output_shape
        view = windows(x, self.window, self.stride, out_h, out_w, self.pads, fill=-np.inf)
        flat = view.reshape(*view.shape[:4], self.window[0] * self.window[1])
        argmax = flat.argmax(axis=-1)
        y = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), [([x], [y])])
        if ctx.training:
            self._argmax, self._input_shape = argmax, x.shape
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        pool_h, pool_w = self.window
        batch, out_h, out_w, channels = dy.shape
        dwin = np.zeros((batch, out_h, out_w, pool_h, pool_w, channels), dtype=dy.dtype)
        rows, cols = np.divmod(self._kept(self._argmax, "argmax"), pool_w)
        b, i, j, c = np.indices((batch, out_h, out_w, channels), sparse=True)
        dwin[b, i, j, rows, cols, c] = dy
        dx = scatter_windows(dwin, self._input_shape, self.window, self.stride, self.pads)
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.backward_ops(batch, True), [([dy], [dx])])
        return dx


class AvgPool(Layer):
    """The mean of each window.  With SAME padding a window at the border averages only the
    values inside the input (as TensorFlow does): each output divides by its own count."""

    spec: AvgPoolLayer

    def __init__(self, spec: AvgPoolLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.window, self.stride = spec.window, spec.strides
        height, width, _ = shape.input_shape
        out_h, out_w, _ = shape.output_shape
        (pool_h, pool_w), (stride_h, stride_w) = self.window, self.stride
        self.pads = (
            window_padding(height, pool_h, stride_h, spec.padding),
            window_padding(width, pool_w, stride_w, spec.padding),
        )
        self.rows = in_bounds(height, pool_h, stride_h, out_h, self.pads[0][0])
        self.columns = in_bounds(width, pool_w, stride_w, out_w, self.pads[1][0])

    def values_read(self, batch: int) -> int:
        """The input values the windows read (overlaps counted each time, padding never)."""
        return batch * self.shape.output_shape[2] * sum(self.rows) * sum(self.columns)

    def forward_ops(self, batch: int) -> list[OpDesc]:
        source, result = self.input_operand(batch), self.output_operand(batch)
        return [
            reduction(self.name, Phase.FORWARD, "mean", source, result, self.values_read(batch))
        ]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        """Each output's error, divided by its count, added to every value its window read."""
        dy, dx = self.output_error_operand(batch), self.input_error_operand(batch)
        inputs = self.values_read(batch)
        return [spread(self.name, Phase.ERROR, "avg_pool_spread", dy, dx, inputs)]

    def _counts(self, dtype: np.dtype) -> np.ndarray:
        return np.outer(self.rows, self.columns).astype(dtype)[None, :, :, None]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        out_h, out_w, _channels = self.shape.output_shape
        view = windows(x, self.window, self.stride, out_h, out_w, self.pads)
        y = view.sum(axis=(-2, -1)) / self._counts(x.dtype)
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), [([x], [y])])
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        pool_h, pool_w = self.window
        batch, out_h, out_w, channels = dy.shape
        share = dy / self._counts(dy.dtype)
        dwin = np.broadcast_to(
            share[:, :, :, None, None, :], (batch, out_h, out_w, pool_h, pool_w, channels)
        )
        input_shape = (batch, *self.shape.input_shape)
        dx = scatter_windows(dwin, input_shape, self.window, self.stride, self.pads)
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.backward_ops(batch, True), [([dy], [dx])])
        return dx


class GlobalAvgPool(Layer):
    """The mean of each channel over the whole map: [height, width, channels] → [channels]."""

    spec: GlobalAvgPoolLayer

    def forward_ops(self, batch: int) -> list[OpDesc]:
        source, result = self.input_operand(batch), self.output_operand(batch)
        return [reduction(self.name, Phase.FORWARD, "mean", source, result)]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        """Each channel's error, divided by height · width, to every position of the map."""
        dy, dx = self.output_error_operand(batch), self.input_error_operand(batch)
        return [spread(self.name, Phase.ERROR, "avg_pool_spread", dy, dx, dx.elements)]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        y = x.mean(axis=(1, 2))
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), [([x], [y])])
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        height, width, channels = self.shape.input_shape
        share = dy[:, None, None, :] / (height * width)
        dx = np.broadcast_to(share, (dy.shape[0], height, width, channels)).copy()
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], True), [([dy], [dx])])
        return dx


class Flatten(Layer):
    """A reshape: no data moves, so it records nothing and its tensors alias its input's."""

    spec: FlattenLayer

    def __init__(self, spec: FlattenLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.output_tensor = input_tensor

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        return dy.reshape(dy.shape[0], *self.shape.input_shape)


class Dropout(Layer):
    """Inverted dropout in training; at rate 0 it moves nothing, and like flatten records
    nothing and aliases its input's tensors."""

    spec: DropoutLayer

    def __init__(self, spec: DropoutLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self._mask: np.ndarray | None = None
        if spec.rate == 0:
            self.output_tensor = input_tensor

    def _mask_operand(self, batch: int) -> OperandDesc:
        return OperandDesc(f"{self.name}.mask", Role.ACTIVATION, self.input_elements(batch))

    def for_inference(self) -> None:
        """Off in inference: a re-view of its input, like rate 0."""
        super().for_inference()
        self.output_tensor = self.input_tensor

    def forward_ops(self, batch: int) -> list[OpDesc]:
        if self.spec.rate == 0 or self.inference:
            return []
        reads, writes = [self.input_operand(batch)], [self.output_operand(batch)]
        writes.append(self._mask_operand(batch))
        elements = self.input_elements(batch)
        return [elementwise(self.name, Phase.FORWARD, "dropout", reads, writes, elements)]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        if self.spec.rate == 0:
            return []
        reads = [self.output_error_operand(batch), self._mask_operand(batch)]
        dx = self.input_error_operand(batch)
        return [elementwise(self.name, Phase.ERROR, "dropout_mask", reads, [dx], dx.elements)]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        rate = self.spec.rate
        if not (ctx.training and ctx.dropout) or rate == 0:
            self._mask = None
            return x
        if ctx.rng is None:
            raise RuntimeError(f"layer '{self.name}': dropout in training needs the step's rng")
        keep = ctx.rng.random(x.shape, dtype=np.float32) >= rate
        self._mask = keep.astype(x.dtype) / (1 - rate)
        y = x * self._mask
        if ctx.tracer is not None:
            arrays = [([x], [y, self._mask])]
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), arrays)
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        if self._mask is None:
            return dy
        dx = dy * self._mask
        if ctx.tracer is not None:
            arrays = [([dy, self._mask], [dx])]
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], True), arrays)
        return dx


class ActivationFunction(Layer):
    spec: ActivationLayer

    def __init__(self, spec: ActivationLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self._y: np.ndarray | None = None  # what the derivative reads: y, or x for gelu
        self._reads_input = derivative_reads_input(spec.function)

    def forward_ops(self, batch: int) -> list[OpDesc]:
        function, elements = self.spec.function.value, self.input_elements(batch)
        reads, writes = [self.input_operand(batch)], [self.output_operand(batch)]
        return [elementwise(self.name, Phase.FORWARD, function, reads, writes, elements)]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        """f'(h) from the output, or from the input where it needs it (gelu)."""
        function = f"{self.spec.function.value}_derivative"
        kept = self.input_operand if self._reads_input else self.output_operand
        reads = [self.output_error_operand(batch), kept(batch)]
        dx = self.input_error_operand(batch)
        return [elementwise(self.name, Phase.ERROR, function, reads, [dx], dx.elements)]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        y = activate(self.spec.function, x)
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), [([x], [y])])
        if ctx.training:
            self._y = x if self._reads_input else y
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        y = self._kept(self._y, "output")
        dx = dy * activation_derivative(self.spec.function, y)
        if ctx.tracer is not None:
            arrays = [([dy, y], [dx])]
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], True), arrays)
        return dx


class Scale(Layer):
    """x · factor (an ONNX Mul or Div by a constant): an op of its own each way, reading and
    writing its tensor, as an accelerator that does not fuse it into a neighbour runs it."""

    spec: ScaleLayer

    def forward_ops(self, batch: int) -> list[OpDesc]:
        reads, writes = [self.input_operand(batch)], [self.output_operand(batch)]
        elements = self.input_elements(batch)
        return [elementwise(self.name, Phase.FORWARD, "scale", reads, writes, elements)]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        dx = self.input_error_operand(batch)
        reads = [self.output_error_operand(batch)]
        return [elementwise(self.name, Phase.ERROR, "scale", reads, [dx], dx.elements)]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        y = x * self.spec.factor
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), [([x], [y])])
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        dx = dy * self.spec.factor
        if ctx.tracer is not None:
            arrays = [([dy], [dx])]
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], True), arrays)
        return dx


class Merge(Layer):
    """A layer of several inputs (add, concat): it takes them by `forward_many`."""

    spec: AddLayer | ConcatLayer

    def _input_operands(self, batch: int) -> list[OperandDesc]:
        return [
            OperandDesc(tensor, self.input_role(tensor), batch * math.prod(shape))
            for tensor, shape in zip(self.input_tensors, self.shape.input_shapes, strict=True)
        ]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        raise RuntimeError(f"layer '{self.name}': a {self.spec.type} takes them by forward_many")


class Add(Merge):
    """y = a + b (+ …), the residual connection.  Backward, the error goes to every input
    unchanged: no op runs, and each input's error is the output's (the model names it so)."""

    spec: AddLayer

    def forward_ops(self, batch: int) -> list[OpDesc]:
        y = self.output_elements(batch)
        reads = self._input_operands(batch)
        additions = len(reads) - 1
        return [
            elementwise(
                self.name, Phase.FORWARD, "add", reads, [self.output_operand(batch)], y, additions
            )
        ]

    def forward_many(self, xs: list[np.ndarray], ctx: StepContext) -> np.ndarray:
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(y.shape[0]), [(xs, [y])])
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        return dy if input_error else None


class Concat(Merge):
    """y = [a, b, …] along the last axis: a copy (no arithmetic).  Backward, each input's
    error is its slice of the output's, copied out for the inputs that need one."""

    spec: ConcatLayer

    def forward_ops(self, batch: int) -> list[OpDesc]:
        y = self.output_operand(batch)
        reads = self._input_operands(batch)
        return [elementwise(self.name, Phase.FORWARD, "concat", reads, [y], y.elements, 0)]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        if not input_error:
            return []
        dy = self.output_error_operand(batch)
        writes = [
            OperandDesc(error, Role.ERROR, part.elements)
            for error, part, sends in zip(
                self.input_error_tensors, self._input_operands(batch), self.sends_error, strict=True
            )
            if sends
        ]
        return [elementwise(self.name, Phase.ERROR, "split", [dy], writes, dy.elements, 0)]

    def forward_many(self, xs: list[np.ndarray], ctx: StepContext) -> np.ndarray:
        y = np.concatenate(xs, axis=-1)
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(y.shape[0]), [(xs, [y])])
        return y

    def backward_many(
        self, dy: np.ndarray, ctx: StepContext, input_error: bool
    ) -> list[np.ndarray | None]:
        if not input_error:
            return [None] * len(self.input_tensors)
        widths = [shape[-1] for shape in self.shape.input_shapes]
        bounds = np.cumsum([0, *widths])
        parts: list[np.ndarray | None] = [
            dy[..., start:stop].copy() if sends else None
            for start, stop, sends in zip(bounds[:-1], bounds[1:], self.sends_error, strict=True)
        ]
        if ctx.tracer is not None:
            written = [part for part in parts if part is not None]
            ctx.tracer.record_pass(
                self.name, self.backward_ops(dy.shape[0], True), [([dy], written)]
            )
        return parts


LAYER_CLASSES: dict[str, type[Layer]] = {
    "add": Add,
    "concat": Concat,
    "dense": Dense,
    "conv2d": Conv2D,
    "max_pool": MaxPool,
    "avg_pool": AvgPool,
    "global_avg_pool": GlobalAvgPool,
    "flatten": Flatten,
    "dropout": Dropout,
    "activation": ActivationFunction,
    "scale": Scale,
    "batch_norm": BatchNorm,
    "patch_embed": PatchEmbed,
    "layer_norm": LayerNorm,
    "attention": Attention,
    "token_pool": TokenPool,
}
