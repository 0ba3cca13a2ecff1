"""The layers of a transformer over a token sequence [tokens, width]: patch_embed (a map to
tokens), layer_norm, attention (multi-head self-attention) and token_pool (tokens to one
vector).  Each describes its ops per phase (`hwsim.train.ops`) beside the numpy that runs
them, as the other layers do.

Attention over T tokens of width W in H heads of d = W / H, for a batch of B (timm's layout:
one fused projection [W, 3W] to queries, keys and values, and an output projection [W, W],
both with biases) records, forward:

* `qkv = x · W_qkv + b` — a matmul [B·T, W] @ [W, 3W] (the weight in slot b);
* `split_heads` — qkv copied out into the heads' queries, keys and values (no arithmetic);
* `scores = Q · Kᵀ / √d` — a matmul of B·H groups [T, d] @ [d, T] whose two operands are both
  activations (no weight), one vector op a score for the scale;
* `softmax` over each row of scores (3 vector ops a score, as the loss's softmax);
* `context = A · V` — B·H groups [T, T] @ [T, d], both operands activations;
* `out = context · W_proj + b` — [B·T, W] @ [W, W];

and backward the gradients of both projections, the errors of the context (δ·W_projᵀ), of the
attention (dC · Vᵀ) and of the values (Aᵀ · dC), the softmax's Jacobian (`softmax_derivative`:
dS = A ⊙ (dA − Σ_j dA·A) / √d, 5 vector ops a score), the queries' (dS · K) and keys'
(dSᵀ · Q) errors, `merge_heads` (the three errors copied into one [B·T, 3W]), and the input
error dqkv · W_qkvᵀ when asked.

Token layers start from random weights under every rule: an attention at zero passes no error
to its projections (its values and output projection are zero), so it would never learn.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.specs.network import (
    AttentionLayer,
    LayerNormLayer,
    LayerShape,
    PatchEmbedLayer,
    TokenPoolLayer,
    TokenPoolMode,
)
from hwsim.specs.token_shapes import patch_dimensions
from hwsim.specs.trace import MatmulOp, Phase, ReduceOp, Role, Slot
from hwsim.train.layer_base import Layer, StepContext
from hwsim.train.ops import OpDesc, OperandDesc, elementwise, op, reduction, spread

EMBEDDING_STD = 0.02  # timm's initial class token and position embedding scale


def _gradient(param: OperandDesc, slot: Slot | None = None) -> OperandDesc:
    return OperandDesc(f"{param.tensor}.grad", Role.GRADIENT, param.elements, slot)


def _matmul(m: int, k: int, n: int, groups: int = 1) -> MatmulOp:
    return MatmulOp(kind="matmul", groups=groups, m=m, k=k, n=n)


def _glorot(rng: np.random.Generator, rows: int, columns: int, dtype: np.dtype) -> np.ndarray:
    limit = np.sqrt(6.0 / (rows + columns))
    return rng.uniform(-limit, limit, size=(rows, columns)).astype(dtype)


def _rows(array: np.ndarray) -> np.ndarray:
    """Every token of every example a row."""
    return array.reshape(-1, array.shape[-1])


class TokenLayer(Layer):
    """A token layer with trained parameters, set up by `initialize`."""

    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        raise NotImplementedError


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
                reduction(name, Phase.GRADIENT, "sum", dy, _gradient(params["position_embedding"]))
            )
        if self.trainable and "class_token" in params:
            grad = _gradient(params["class_token"])
            ops.append(reduction(name, Phase.GRADIENT, "sum", dy, grad, batch * self.width))
        if self.spec.class_token:
            ops.append(
                elementwise(name, Phase.ERROR, "split", [dy], [dpatches], dpatches.elements, 0)
            )
        if self.trainable:
            gemm = _matmul(self.window, rows, self.width)
            reads = [self.input_operand(batch, Slot.A), dpatches.as_slot(Slot.B)]
            ops.append(op(name, Phase.GRADIENT, gemm, reads, [_gradient(params["weight"], Slot.C)]))
            ops.append(reduction(name, Phase.GRADIENT, "sum", dpatches, _gradient(params["bias"])))
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


class LayerNorm(TokenLayer):
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
    has_params = True

    def __init__(self, spec: LayerNormLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.trainable = spec.trainable
        self.features = shape.output_shape[-1]
        self._kept_arrays: tuple[np.ndarray, ...] | None = None

    def parameters(self) -> list[tuple[str, OperandDesc]]:
        return [
            (name, OperandDesc(f"{self.name}.{name}", Role.BIAS, self.features))
            for name in ("scale", "shift")
        ]

    def _statistics(self, batch: int) -> OperandDesc:
        rows = batch * math.prod(self.shape.input_shape[:-1])
        return OperandDesc(f"{self.name}.statistics", Role.ACTIVATION, 2 * rows)

    def forward_ops(self, batch: int) -> list[OpDesc]:
        x, y, stats = self.input_operand(batch), self.output_operand(batch), self._statistics(batch)
        (_, scale), (_, shift) = self.parameters()
        return [
            reduction(self.name, Phase.FORWARD, "mean_variance", x, stats, 2 * x.elements),
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
        (_, scale), (_, shift) = self.parameters()
        ops = []
        if self.trainable:
            sums = [_gradient(scale), _gradient(shift)]
            reduce = ReduceOp(
                kind="reduce",
                function="scale_shift_gradient",
                inputs=dy.elements,
                outputs=2 * self.features,
            )
            ops.append(op(self.name, Phase.GRADIENT, reduce, [dy, x, stats], sums, 4 * dy.elements))
        if input_error:
            dx = self.input_error_operand(batch)
            reads = [dy, x, stats, scale]
            ops.append(
                elementwise(
                    self.name, Phase.ERROR, "layer_norm_derivative", reads, [dx], dx.elements, 10
                )
            )
        return ops

    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        features = self.features
        self.params = {
            "scale": np.ones(features, dtype=dtype),
            "shift": np.zeros(features, dtype=dtype),
        }

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        mean, variance = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
        inverse = 1.0 / np.sqrt(variance + self.spec.epsilon)
        x_hat = (x - mean) * inverse
        p = self.params
        y = p["scale"] * x_hat + p["shift"]
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


class Attention(TokenLayer):
    """Multi-head self-attention (the module docstring lists its records)."""

    spec: AttentionLayer
    has_weights = True
    has_params = True
    main_weight = "qkv_weight"

    def __init__(self, spec: AttentionLayer, shape: LayerShape, input_tensor: str) -> None:
        super().__init__(spec, shape, input_tensor)
        self.trainable = spec.trainable
        self.tokens, self.width = shape.input_shape
        self.heads = spec.heads
        self.head_width = self.width // self.heads
        self.scale = 1.0 / math.sqrt(self.head_width)
        self._kept_arrays: tuple[np.ndarray, ...] | None = None

    # ------------------------------------------------------------ what it does
    def parameters(self) -> list[tuple[str, OperandDesc]]:
        name, width = self.name, self.width
        return [
            ("qkv_weight", OperandDesc(f"{name}.qkv_weight", Role.WEIGHT, 3 * width * width)),
            ("qkv_bias", OperandDesc(f"{name}.qkv_bias", Role.BIAS, 3 * width)),
            ("proj_weight", OperandDesc(f"{name}.proj_weight", Role.WEIGHT, width * width)),
            ("proj_bias", OperandDesc(f"{name}.proj_bias", Role.BIAS, width)),
        ]

    def _tensor(
        self, part: str, batch: int, per_row: int = 1, slot: Slot | None = None
    ) -> OperandDesc:
        """An activation of the layer: `per_row` widths a token."""
        elements = batch * self.tokens * self.width * per_row
        return OperandDesc(f"{self.name}.{part}", Role.ACTIVATION, elements, slot)

    def _scores(self, part: str, batch: int, role: Role = Role.ACTIVATION) -> OperandDesc:
        """[tokens, tokens] a head of each example."""
        elements = batch * self.heads * self.tokens * self.tokens
        return OperandDesc(f"{self.name}.{part}", role, elements)

    @staticmethod
    def _error(operand: OperandDesc) -> OperandDesc:
        return OperandDesc(f"{operand.tensor}.error", Role.ERROR, operand.elements)

    def _per_head(self, batch: int, m: int, k: int, n: int) -> MatmulOp:
        return _matmul(m, k, n, groups=batch * self.heads)

    def forward_ops(self, batch: int) -> list[OpDesc]:
        name, params = self.name, dict(self.parameters())
        t, w, d = self.tokens, self.width, self.head_width
        rows = batch * t
        qkv = self._tensor("qkv", batch, 3)
        query, key, value = (self._tensor(part, batch) for part in ("query", "key", "value"))
        context = self._tensor("context", batch)
        scores, attention = self._scores("scores", batch), self._scores("attention", batch)
        x, y = self.input_operand(batch, Slot.A), self.output_operand(batch, Slot.C)
        return [
            op(
                name,
                Phase.FORWARD,
                _matmul(rows, w, 3 * w),
                [x, params["qkv_weight"].as_slot(Slot.B), params["qkv_bias"]],
                [qkv.as_slot(Slot.C)],
                qkv.elements,
            ),
            elementwise(
                name, Phase.FORWARD, "split_heads", [qkv], [query, key, value], qkv.elements, 0
            ),
            op(
                name,
                Phase.FORWARD,
                self._per_head(batch, t, d, t),
                [query.as_slot(Slot.A), key.as_slot(Slot.B)],
                [scores.as_slot(Slot.C)],
                scores.elements,
            ),
            elementwise(name, Phase.FORWARD, "softmax", [scores], [attention], scores.elements, 3),
            op(
                name,
                Phase.FORWARD,
                self._per_head(batch, t, t, d),
                [attention.as_slot(Slot.A), value.as_slot(Slot.B)],
                [context.as_slot(Slot.C)],
            ),
            op(
                name,
                Phase.FORWARD,
                _matmul(rows, w, w),
                [
                    context.as_slot(Slot.A),
                    params["proj_weight"].as_slot(Slot.B),
                    params["proj_bias"],
                ],
                [y],
                y.elements,
            ),
        ]

    def backward_ops(self, batch: int, input_error: bool) -> list[OpDesc]:
        if not (self.trainable or input_error):
            return []
        name, params = self.name, dict(self.parameters())
        t, w, d = self.tokens, self.width, self.head_width
        rows = batch * t
        query, key, value = (self._tensor(part, batch) for part in ("query", "key", "value"))
        context, attention = self._tensor("context", batch), self._scores("attention", batch)
        dy = self.output_error_operand(batch)
        d_context, d_attention = self._error(context), self._error(attention)
        d_scores = self._error(self._scores("scores", batch))
        d_query, d_key, d_value = self._error(query), self._error(key), self._error(value)
        d_qkv = self._error(self._tensor("qkv", batch, 3))
        ops = []
        if self.trainable:
            ops += [
                op(
                    name,
                    Phase.GRADIENT,
                    _matmul(w, rows, w),
                    [context.as_slot(Slot.A), dy.as_slot(Slot.B)],
                    [_gradient(params["proj_weight"], Slot.C)],
                ),
                reduction(name, Phase.GRADIENT, "sum", dy, _gradient(params["proj_bias"])),
            ]
        ops += [
            op(
                name,
                Phase.ERROR,
                _matmul(rows, w, w),
                [dy.as_slot(Slot.A), params["proj_weight"].as_slot(Slot.B)],
                [d_context.as_slot(Slot.C)],
            ),
            op(
                name,
                Phase.ERROR,
                self._per_head(batch, t, d, t),
                [d_context.as_slot(Slot.A), value.as_slot(Slot.B)],
                [d_attention.as_slot(Slot.C)],
            ),
            op(
                name,
                Phase.ERROR,
                self._per_head(batch, t, t, d),
                [attention.as_slot(Slot.A), d_context.as_slot(Slot.B)],
                [d_value.as_slot(Slot.C)],
            ),
            elementwise(
                name,
                Phase.ERROR,
                "softmax_derivative",
                [d_attention, attention],
                [d_scores],
                d_scores.elements,
                5,
            ),
            op(
                name,
                Phase.ERROR,
                self._per_head(batch, t, t, d),
                [d_scores.as_slot(Slot.A), key.as_slot(Slot.B)],
                [d_query.as_slot(Slot.C)],
            ),
            op(
                name,
                Phase.ERROR,
                self._per_head(batch, t, t, d),
                [d_scores.as_slot(Slot.A), query.as_slot(Slot.B)],
                [d_key.as_slot(Slot.C)],
            ),
            elementwise(
                name,
                Phase.ERROR,
                "merge_heads",
                [d_query, d_key, d_value],
                [d_qkv],
                d_qkv.elements,
                0,
            ),
        ]
        if self.trainable:
            x = self.input_operand(batch, Slot.A)
            ops += [
                op(
                    name,
                    Phase.GRADIENT,
                    _matmul(w, rows, 3 * w),
                    [x, d_qkv.as_slot(Slot.B)],
                    [_gradient(params["qkv_weight"], Slot.C)],
                ),
                reduction(name, Phase.GRADIENT, "sum", d_qkv, _gradient(params["qkv_bias"])),
            ]
        if input_error:
            ops.append(
                op(
                    name,
                    Phase.ERROR,
                    _matmul(rows, 3 * w, w),
                    [d_qkv.as_slot(Slot.A), params["qkv_weight"].as_slot(Slot.B)],
                    [self.input_error_operand(batch, Slot.C)],
                )
            )
        return ops

    # ------------------------------------------------------------- how it runs
    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        w = self.width
        self.params = {
            "qkv_weight": np.concatenate([_glorot(rng, w, w, dtype) for _ in range(3)], axis=1),
            "qkv_bias": np.zeros(3 * w, dtype=dtype),
            "proj_weight": _glorot(rng, w, w, dtype),
            "proj_bias": np.zeros(w, dtype=dtype),
        }

    def _split(self, qkv: np.ndarray) -> np.ndarray:
        """[B, T, 3W] → [3, B, H, T, d]: the queries, keys and values of every head."""
        batch = qkv.shape[0]
        view = qkv.reshape(batch, self.tokens, 3, self.heads, self.head_width)
        return np.ascontiguousarray(view.transpose(2, 0, 3, 1, 4))

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        p, batch = self.params, x.shape[0]
        qkv = x @ p["qkv_weight"] + p["qkv_bias"]
        query, key, value = self._split(qkv)
        scores = (query @ key.transpose(0, 1, 3, 2)) * self.scale
        exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attention = exp / exp.sum(axis=-1, keepdims=True)
        heads = attention @ value  # [B, H, T, d]
        context = heads.transpose(0, 2, 1, 3).reshape(batch, self.tokens, self.width)
        y = context @ p["proj_weight"] + p["proj_bias"]
        if ctx.tracer is not None:
            arrays = [
                ([x, p["qkv_weight"], p["qkv_bias"]], [qkv]),
                ([qkv], [query, key, value]),
                ([query, key], [scores]),
                ([scores], [attention]),
                ([attention, value], [context]),
                ([context, p["proj_weight"], p["proj_bias"]], [y]),
            ]
            ctx.tracer.record_pass(self.name, self.forward_ops(batch), arrays)
        if ctx.training:
            self._kept_arrays = (x, query, key, value, attention, context)
        return y

    def backward(self, dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        if self._kept_arrays is None:
            raise RuntimeError(f"layer '{self.name}': backward needs a training forward pass")
        x, query, key, value, attention, context = self._kept_arrays
        p, batch, t = self.params, dy.shape[0], self.tokens
        arrays: list = []
        grads: dict[str, np.ndarray] = {}
        if self.trainable:
            grads["proj_weight"] = _rows(context).T @ _rows(dy)
            grads["proj_bias"] = dy.sum(axis=(0, 1))
            arrays += [([context, dy], [grads["proj_weight"]]), ([dy], [grads["proj_bias"]])]
        d_context = dy @ p["proj_weight"].T
        d_heads = d_context.reshape(batch, t, self.heads, self.head_width).transpose(0, 2, 1, 3)
        d_attention = d_heads @ value.transpose(0, 1, 3, 2)
        d_value = attention.transpose(0, 1, 3, 2) @ d_heads
        d_scores = attention * (d_attention - (d_attention * attention).sum(axis=-1, keepdims=True))
        d_scores *= self.scale
        d_query = d_scores @ key
        d_key = d_scores.transpose(0, 1, 3, 2) @ query
        d_qkv = np.stack([d_query, d_key, d_value]).transpose(1, 3, 0, 2, 4).reshape(batch, t, -1)
        arrays += [
            ([dy, p["proj_weight"]], [d_context]),
            ([d_context, value], [d_attention]),
            ([attention, d_context], [d_value]),
            ([d_attention, attention], [d_scores]),
            ([d_scores, key], [d_query]),
            ([d_scores, query], [d_key]),
            ([d_query, d_key, d_value], [d_qkv]),
        ]
        if self.trainable:
            grads["qkv_weight"] = _rows(x).T @ _rows(d_qkv)
            grads["qkv_bias"] = d_qkv.sum(axis=(0, 1))
            arrays += [([x, d_qkv], [grads["qkv_weight"]]), ([d_qkv], [grads["qkv_bias"]])]
            self.grads = grads
        dx = None
        if input_error:
            dx = d_qkv @ p["qkv_weight"].T
            arrays.append(([d_qkv, p["qkv_weight"]], [dx]))
        if ctx.tracer is not None:
            ctx.tracer.record_pass(self.name, self.backward_ops(batch, input_error), arrays)
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
