"""The layers of a transformer over a token sequence [tokens, width]: patch_embed (a map to
tokens), layer_norm and token_pool (tokens to one
vector).  Each describes its ops per phase (`hwsim.train.ops`) beside the numpy that runs
them, as the other layers do.

Attention lives in `hwsim.train.attention`.

Token layers start from random weights under every rule: an attention at zero passes no error
to its projections (its values and output projection are zero), so it would never learn.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.specs.network import (
    LayerNormLayer,
    LayerShape,
    PatchEmbedLayer,
    TokenPoolLayer,
    TokenPoolMode,
)
from hwsim.specs.token_shapes import patch_dimensions
from hwsim.specs.trace import MatmulOp, Phase, ReduceOp, Role, Slot
from hwsim.train.layer_base import Layer, StepContext
from hwsim.train.norm_layers import ScaleShift
from hwsim.train.ops import OpDesc, OperandDesc, elementwise, gradient_of, op, reduction, spread

EMBEDDING_STD = 0.02  # timm's initial class token and position embedding scale


def _matmul(m: int, k: int, n: int, groups: int = 1) -> MatmulOp:
    return MatmulOp(kind="matmul", groups=groups, m=m, k=k, n=n)


def _gemm(
    layer: str,
    phase: Phase,
    spec: MatmulOp,
    a: OperandDesc,
    b: OperandDesc,
    c: OperandDesc,
    extra: tuple[OperandDesc, ...] = (),
    other_ops: int = 0,
) -> OpDesc:
    """c = a @ b (with `extra` reads: a bias), the operands in their GEMM slots."""
    reads = [a.as_slot(Slot.A), b.as_slot(Slot.B), *extra]
    return op(layer, phase, spec, reads, [c.as_slot(Slot.C)], other_ops)


def _glorot(rng: np.random.Generator, rows: int, columns: int, dtype: np.dtype) -> np.ndarray:
    limit = np.sqrt(6.0 / (rows + columns))
    return rng.uniform(-limit, limit, size=(rows, columns)).astype(dtype)


def _rows(array: np.ndarray) -> np.ndarray:
    """Every token of every example a row."""
    return array.reshape(-1, array.shape[-1])


class TokenLayer(Layer):
    """A token layer with trained weights, which it starts itself (random under every rule:
    `initialize`)."""


class PatchEmbed(TokenLayer):
    """[H, W, C] → [tokens, width]: each ph × pw patch (stride = patch) flattened and projected,
    a GEMM [B·P, ph·pw·C] @ [ph·pw·C, width] (the patches are a re-view of the map: they do
    not overlap); then, optionally, a trained class token prepended and a trained position
    embedding added (`token_embed`, one vector op a value when it adds)."""

    spec: PatchEmbedLayer
    has_weights = True
    has_params = True

    def __init__(self, spec: PatchEmbedLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.trainable = spec.trainable
        self.patch = patch_dimensions(spec.patch_size)
        height, width, channels = shape.input_shape
        self.patches = (height // self.patch[0]) * (width // self.patch[1])
        self.window = self.patch[0] * self.patch[1] * channels
        self.width = spec.width
        self.embeds = spec.class_token or spec.position_embedding
        self.patches_tensor = f"{self.name}.patches" if self.embeds else self.output_tensor
        self._columns: np.ndarray | None = None

    # ------------------------------------------------------------ what it does
    def parameters(self) -> list[tuple[str, OperandDesc]]:
        name, width = self.name, self.width
        params = [
            ("weight", OperandDesc(f"{name}.weight", Role.WEIGHT, self.window * width)),
            ("bias", OperandDesc(f"{name}.bias", Role.BIAS, width)),
        ]
        if self.spec.class_token:
            params.append(("class_token", OperandDesc(f"{name}.class_token", Role.BIAS, width)))
        if self.spec.position_embedding:
            elements = self.shape.output_elements
            embedding = OperandDesc(f"{name}.position_embedding", Role.BIAS, elements)
            params.append(("position_embedding", embedding))
        return params

    def _patches(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        elements = batch * self.patches * self.width
        return OperandDesc(self.patches_tensor, Role.ACTIVATION, elements, slot)

    def _patches_error(self, batch: int, slot: Slot | None = None) -> OperandDesc:
        """The patches' error: the output's, without the class token's row."""
        tensor = f"{self.patches_tensor}.error" if self.spec.class_token else None
        elements = batch * self.patches * self.width
        return OperandDesc(tensor or self.output_error_tensor, Role.ERROR, elements, slot)

    def forward_ops(self, batch: int) -> list[OpDesc]:
        (_, weight), (_, bias), *embeddings = self.parameters()
        rows = batch * self.patches
        reads = [self.input_operand(batch, Slot.A), weight.as_slot(Slot.B), bias]
        patches = self._patches(batch)
        gemm = _matmul(rows, self.window, self.width)
        ops = [
            op(self.name, Phase.FORWARD, gemm, reads, [patches.as_slot(Slot.C)], rows * self.width)
        ]
        if self.embeds:
            y = self.output_operand(batch)
            adds = 1 if self.spec.position_embedding else 0
            reads = [patches, *(param for _, param in embeddings)]
            ops.append(
                elementwise(self.name, Phase.FORWARD, "token_embed", reads, [y], y.elements, adds)
            )
        return ops

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        """The embeddings' gradients (sums over the batch), the patches' error (a `split` off
        the class token's row), the weight and bias gradients, the input error if asked."""
        name, params = self.name, dict(self.parameters())
        dy, dpatches = self.output_error_operand(batch), self._patches_error(batch)
        rows = batch * self.patches
        ops = []
        if self.trainable and "position_embedding" in params:
            ops.append(
                reduction(
                    name, Phase.GRADIENT, "sum", dy, gradient_of(params["position_embedding"])
                )
            )
        if self.trainable and "class_token" in params:
            grad = gradient_of(params["class_token"])
            ops.append(reduction(name, Phase.GRADIENT, "sum", dy, grad, batch * self.width))
        if self.spec.class_token:
            ops.append(
                elementwise(name, Phase.ERROR, "split", [dy], [dpatches], dpatches.elements, 0)
            )
        if self.trainable:
            gemm = _matmul(self.window, rows, self.width)
            reads = [self.input_operand(batch, Slot.A), dpatches.as_slot(Slot.B)]
            ops.append(
                op(name, Phase.GRADIENT, gemm, reads, [gradient_of(params["weight"], Slot.C)])
            )
            ops.append(
                reduction(name, Phase.GRADIENT, "sum", dpatches, gradient_of(params["bias"]))
            )
        if input_error:
            gemm = _matmul(rows, self.width, self.window)
            reads = [dpatches.as_slot(Slot.A), params["weight"].as_slot(Slot.B)]
            ops.append(
                op(name, Phase.ERROR, gemm, reads, [self.input_error_operand(batch, Slot.C)])
            )
        return ops

    # ------------------------------------------------------------- how it runs
    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        self.params = {
            "weight": _glorot(rng, self.window, self.width, dtype),
            "bias": np.zeros(self.width, dtype=dtype),
        }
        if self.spec.class_token:
            self.params["class_token"] = (EMBEDDING_STD * rng.standard_normal(self.width)).astype(
                dtype
            )
        if self.spec.position_embedding:
            shape = self.shape.output_shape
            self.params["position_embedding"] = (EMBEDDING_STD * rng.standard_normal(shape)).astype(
                dtype
            )

    def _patch_columns(self, x: np.ndarray) -> np.ndarray:
        """[B, H, W, C] → [B, patches, ph·pw·C] (patch rows, patch columns, then channels)."""
        batch, height, width, channels = x.shape
        ph, pw = self.patch
        view = x.reshape(batch, height // ph, ph, width // pw, pw, channels)
        return view.transpose(0, 1, 3, 2, 4, 5).reshape(batch, self.patches, self.window)

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        columns = self._patch_columns(x)
        p = self.params
        patches = columns @ p["weight"] + p["bias"]
        y = patches
        if self.spec.class_token:
            token = np.broadcast_to(p["class_token"], (x.shape[0], 1, self.width))
            y = np.concatenate([token, patches], axis=1)
        if self.spec.position_embedding:
            y = y + p["position_embedding"]
        if ctx.tracer is not None:
            arrays: list = [([x, p["weight"], p["bias"]], [patches])]
            if self.embeds:
                embeddings = [p[key] for key in ("class_token", "position_embedding") if key in p]
                arrays.append(([patches, *embeddings], [y]))
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), arrays)
        if ctx.training:
            self._columns = columns
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        columns = self._kept(self._columns, "patches")
        p, arrays = self.params, []
        dpatches = np.ascontiguousarray(dy[:, 1:]) if self.spec.class_token else dy
        if self.trainable:
            grads: dict[str, np.ndarray] = {}
            if self.spec.position_embedding:
                grads["position_embedding"] = dy.sum(axis=0)
                arrays.append(([dy], [grads["position_embedding"]]))
            if self.spec.class_token:
                grads["class_token"] = dy[:, 0].sum(axis=0)
                arrays.append(([dy], [grads["class_token"]]))
        if self.spec.class_token:
            arrays.append(([dy], [dpatches]))
        if self.trainable:
            grads["weight"] = _rows(columns).T @ _rows(dpatches)
            grads["bias"] = dpatches.sum(axis=(0, 1))
            arrays += [([columns, dpatches], [grads["weight"]]), ([dpatches], [grads["bias"]])]
            self.grads = {key: grads[key] for key in p}
        dx = None
        if input_error:
            dcolumns = dpatches @ p["weight"].T
            batch, (height, width, channels) = dy.shape[0], self.shape.input_shape
            ph, pw = self.patch
            view = dcolumns.reshape(batch, height // ph, width // pw, ph, pw, channels)
            dx = view.transpose(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)
            arrays.append(([dpatches, p["weight"]], [dx]))
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], input_error), arrays)
        return dx


class LayerNorm(ScaleShift):
    """Each row (a token: the last axis, D features) normalized by its own mean and variance —
    in training and inference alike — then scaled and shifted per feature.  Over R rows and
    E = R·D values, forward: `mean_variance` (reduce, x → 2R statistics, 2E vector ops) and
    `layer_norm` (y = scale · (x − μ) / √(σ² + ε) + shift: subtract, multiply, multiply, add,
    4E); backward: `scale_shift_gradient` (reduce over the rows, Σ dy · x̂ and Σ dy, 4E, when
    it trains) and `layer_norm_derivative` (when the input error is asked: x̂ again (2),
    g = scale · dy (1), g · x̂ (1), the row sums of g and g · x̂ (2) and
    dx = (g − Σg/D − x̂ · Σ(g·x̂)/D) / √(σ² + ε) (4): 10E).  The statistics are per-token
    activations; the scale and shift have the `bias` role, as batch_norm's."""

    spec: LayerNormLayer

    def _statistics(self, batch: int) -> OperandDesc:
        rows = batch * math.prod(self.shape.input_shape[:-1])
        return OperandDesc(f"{self.name}.statistics", Role.ACTIVATION, 2 * rows)

    def forward_ops(self, batch: int) -> list[OpDesc]:
        x, y, stats = self.input_operand(batch), self.output_operand(batch), self._statistics(batch)
        (_, scale), (_, shift) = self.parameters()
        statistics = ReduceOp(
            kind="reduce", function="mean_variance", inputs=x.elements, outputs=stats.elements
        )
        return [
            op(self.name, Phase.FORWARD, statistics, [x], [stats], 2 * x.elements),
            elementwise(
                self.name, Phase.FORWARD, "layer_norm", [x, stats, scale, shift], [y], y.elements, 4
            ),
        ]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        dy, x, stats = (
            self.output_error_operand(batch),
            self.input_operand(batch),
            self._statistics(batch),
        )
        (_, scale), _ = self.parameters()
        ops = []
        if self.trainable:
            ops.append(self._scale_shift_gradient(Phase.GRADIENT, dy, x, stats))
        if input_error:
            dx = self.input_error_operand(batch)
            reads = [dy, x, stats, scale]
            ops.append(
                elementwise(
                    self.name, Phase.ERROR, "layer_norm_derivative", reads, [dx], dx.elements, 10
                )
            )
        return ops

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        mean, variance = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
        x_hat, inverse, y = self._normalized(x, mean, variance)
        p = self.params
        stats = np.concatenate([mean, variance], axis=-1)
        if ctx.tracer is not None:
            arrays = [([x], [stats]), ([x, stats, p["scale"], p["shift"]], [y])]
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), arrays)
        if ctx.training:
            self._kept_arrays = (x, x_hat, inverse, stats)
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        if self._kept_arrays is None:
            raise RuntimeError(f"layer '{self.name}': backward needs a training forward pass")
        x, x_hat, inverse, stats = self._kept_arrays
        axes = tuple(range(dy.ndim - 1))
        arrays: list = []
        if self.trainable:
            self.grads = {"scale": (dy * x_hat).sum(axis=axes), "shift": dy.sum(axis=axes)}
            arrays.append(([dy, x, stats], [self.grads["scale"], self.grads["shift"]]))
        dx = None
        if input_error:
            g = dy * self.params["scale"]
            mean_g = g.mean(axis=-1, keepdims=True)
            mean_gx = (g * x_hat).mean(axis=-1, keepdims=True)
            dx = inverse * (g - mean_g - x_hat * mean_gx)
            arrays.append(([dy, x, stats, self.params["scale"]], [dx]))
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], input_error), arrays)
        return dx


class TokenPool(Layer):
    """[tokens, width] → [width]: the tokens' mean (a `mean` reduce; backward each error,
    divided by the tokens, to every token: `token_pool_spread`), or the first token
    (`class_token`, a copy; backward `class_token_error`: the error to the first token, zeros
    to the others)."""

    spec: TokenPoolLayer

    def forward_ops(self, batch: int) -> list[OpDesc]:
        x, y = self.input_operand(batch), self.output_operand(batch)
        if self.spec.mode == TokenPoolMode.MEAN:
            return [reduction(self.name, Phase.FORWARD, "mean", x, y)]
        return [elementwise(self.name, Phase.FORWARD, "class_token", [x], [y], y.elements, 0)]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        dy, dx = self.output_error_operand(batch), self.input_error_operand(batch)
        if self.spec.mode == TokenPoolMode.MEAN:
            return [spread(self.name, Phase.ERROR, "token_pool_spread", dy, dx, dx.elements)]
        return [
            elementwise(self.name, Phase.ERROR, "class_token_error", [dy], [dx], dx.elements, 0)
        ]

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        y = x.mean(axis=1) if self.spec.mode == TokenPoolMode.MEAN else x[:, 0].copy()
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.forward_ops(x.shape[0]), [([x], [y])])
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        tokens, width = self.shape.input_shape
        if self.spec.mode == TokenPoolMode.MEAN:
            dx = np.broadcast_to(dy[:, None, :] / tokens, (dy.shape[0], tokens, width)).copy()
        else:
            dx = np.zeros((dy.shape[0], tokens, width), dtype=dy.dtype)
            dx[:, 0] = dy
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.backward_ops(dy.shape[0], True), [([dy], [dx])])
        return dx
