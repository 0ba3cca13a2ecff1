"""Multi-head self-attention, a token layer (`hwsim.train.token_layers`).

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
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.specs.network import AttentionLayer, LayerShape
from hwsim.specs.trace import MatmulOp, Phase, Role, Slot
from hwsim.train.layer_base import StepContext
from hwsim.train.ops import OpDesc, OperandDesc, elementwise, gradient_of, op, reduction
from hwsim.train.token_layers import TokenLayer, _gemm, _glorot, _matmul, _rows


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
        w, rows = self.width, batch * self.tokens
        context, dy = self._tensor("context", batch), self.output_error_operand(batch)
        d_qkv = self._error(self._tensor("qkv", batch, 3))
        ops = []
        if self.trainable:
            proj_grad = gradient_of(params["proj_weight"])
            ops += [
                _gemm(name, Phase.GRADIENT, _matmul(w, rows, w), context, dy, proj_grad),
                reduction(name, Phase.GRADIENT, "sum", dy, gradient_of(params["proj_bias"])),
            ]
        ops += self._head_error_ops(batch)
        if self.trainable:
            x, qkv_grad = self.input_operand(batch), gradient_of(params["qkv_weight"])
            ops += [
                _gemm(name, Phase.GRADIENT, _matmul(w, rows, 3 * w), x, d_qkv, qkv_grad),
                reduction(name, Phase.GRADIENT, "sum", d_qkv, gradient_of(params["qkv_bias"])),
            ]
        if input_error:
            gemm, dx = _matmul(rows, 3 * w, w), self.input_error_operand(batch)
            ops.append(_gemm(name, Phase.ERROR, gemm, d_qkv, params["qkv_weight"], dx))
        return ops

    def _head_error_ops(self, batch: int) -> list[OpDesc]:
        """From the output's error to the queries', keys' and values' errors in one tensor."""
        name, params = self.name, dict(self.parameters())
        t, w, d = self.tokens, self.width, self.head_width
        query, key, value = (self._tensor(part, batch) for part in ("query", "key", "value"))
        context, attention = self._tensor("context", batch), self._scores("attention", batch)
        dy = self.output_error_operand(batch)
        d_context, d_attention = self._error(context), self._error(attention)
        d_scores = self._error(self._scores("scores", batch))
        d_query, d_key, d_value = self._error(query), self._error(key), self._error(value)
        d_qkv = self._error(self._tensor("qkv", batch, 3))
        scores_by_value, scores_by_key = (
            self._per_head(batch, t, d, t),
            self._per_head(batch, t, t, d),
        )
        error = Phase.ERROR
        return [
            _gemm(name, error, _matmul(batch * t, w, w), dy, params["proj_weight"], d_context),
            _gemm(name, error, scores_by_value, d_context, value, d_attention),
            _gemm(name, error, scores_by_key, attention, d_context, d_value),
            elementwise(
                name,
                error,
                "softmax_derivative",
                [d_attention, attention],
                [d_scores],
                d_scores.elements,
                5,
            ),
            _gemm(name, error, scores_by_key, d_scores, key, d_query),
            _gemm(name, error, scores_by_key, d_scores, query, d_key),
            elementwise(
                name, error, "merge_heads", [d_query, d_key, d_value], [d_qkv], d_qkv.elements, 0
            ),
        ]

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
