"""A matmul with no stationary operand on the distributed substrate (pure functions): both of
its inputs are activations or errors (attention's Q·Kᵀ and A·V and their backward products),
so neither stays in the tiles and both travel to the tiles that compute it.

The op's `groups` independent GEMMs c[m, n] += a[m, k] · b[k, n] share the region's T tiles:
whole GEMMs a tile when groups ≥ T, else each GEMM's output cut over ⌊T / groups⌋ tiles in a
p × q grid (p blocks of rows, q of columns).  A tile needs the m/p rows of a and the n/q
columns of b of its block, so a is delivered q times and b p times: q·|a| + p·|b| values,
with p·q the tiles a GEMM has (powers of two, p ≤ m, q ≤ n) chosen to minimise it.

A row of the product lies in parts on its q column blocks: attention's softmax (its max and
Σ exp) and the softmax's derivative (Σ dA·A) reduce along rows, so each row's parts combine over
those q tiles (row_products, row_holders_of; exchanged as hwsim.sim.dist_norm's statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

from hwsim.specs.trace import ElementwiseOp, MatmulOp, OpRecord, Role, TraceHeader

# The element-wise ops that reduce along each row of attention's scores: softmax forward
# (each row's max and Σ exp), its derivative backward (each row's Σ dA·A).
ROW_REDUCING = ("softmax", "softmax_derivative")
_STREAMED = (Role.ACTIVATION, Role.ERROR)


def operand_copies(op: MatmulOp, tiles: int) -> tuple[int, int]:
    """How many times the region's tiles together receive a and b (q and p above)."""
    per_gemm = max(1, tiles // op.groups)
    best: tuple[int, int, int] | None = None
    rows = 1
    while rows <= min(per_gemm, op.m):
        columns = min(per_gemm // rows, op.n)
        cost = columns * op.m + rows * op.n  # ∝ q·|a| + p·|b| (each over k)
        if best is None or cost < best[0]:
            best = (cost, columns, rows)
        rows *= 2
    assert best is not None, "a GEMM has at least one row"
    return best[1], best[2]


def row_products(header: TraceHeader, records: Sequence[OpRecord]) -> dict[str, MatmulOp]:
    """The attention products whose rows a softmax (or its derivative) reduces: tensor → the
    matmul that wrote it, both its operands streamed (Q·Kᵀ forward, dC·Vᵀ backward)."""
    attention = {layer.name for layer in header.layers if layer.type == "attention"}
    reduced = {
        record.reads[0].tensor
        for record in records
        if record.layer in attention
        and isinstance(record.op, ElementwiseOp)
        and record.op.function in ROW_REDUCING
    }
    return {
        record.writes[0].tensor: record.op
        for record in records
        if isinstance(record.op, MatmulOp)
        and record.writes
        and record.writes[0].tensor in reduced
        and all(operand.role in _STREAMED for operand in record.reads)
    }


def row_holders_of(op: MatmulOp, tiles: int) -> list[int]:
    """Tiles holding parts of each row of the product (q above: each GEMM's rows are cut over
    its q column blocks), one entry a row of every group."""
    columns, _ = operand_copies(op, tiles)
    return [columns] * (op.groups * op.m)
