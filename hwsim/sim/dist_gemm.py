"""A matmul with no stationary operand on the distributed substrate (pure functions): both of
its inputs are activations or errors (attention's Q·Kᵀ and A·V and their backward products),
so neither stays in the tiles and both travel to the tiles that compute it.

The op's `groups` independent GEMMs c[m, n] += a[m, k] · b[k, n] share the region's T tiles:
whole GEMMs a tile when groups ≥ T, else each GEMM's output cut over ⌊T / groups⌋ tiles in a
p × q grid (p blocks of rows, q of columns).  A tile needs the m/p rows of a and the n/q
columns of b of its block, so a is delivered q times and b p times: q·|a| + p·|b| values,
with p·q the tiles a GEMM has (powers of two, p ≤ m, q ≤ n) chosen to minimise it.
"""

from __future__ import annotations

from hwsim.specs.trace import MatmulOp


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
