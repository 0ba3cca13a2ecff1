"""The von Neumann planner memoizes a record's plans by what the budget changes (a streamed
op's steps, a GEMM's mapping): whatever it planned before, in any order of budgets, records
and kept operands, it plans what a fresh planner plans (plan_op: a planner used once)."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

import hwsim.api as hw
from hwsim.io.arch import load_arch
from hwsim.sim.sparsity import Zeros
from hwsim.sim.tiling import NoFit, Planner, plan_op
from tests.sim.conftest import tiny_trace


@cache
def _records():
    """Matmuls, grouped and strided convs, vector ops (a residual graph and a live step, whose
    densities the sparse spec prices)."""
    graph = hw.trace("digits_resnet", "dfa", batch_size=2, shape_only=True)
    live = tiny_trace("ssdfa")
    return [*graph.records, *live.records], live.header


@cache
def _chips():
    dense = load_arch("von_neumann")
    sparse = load_arch("von_neumann_sparse")
    small = dense.model_copy(
        update={"pe_array": dense.pe_array.model_copy(update={"rows": 4, "columns": 8})}
    )
    return [(dense, None), (small, None), (sparse, Zeros.of(sparse, _records()[1]))]


def _subset(draw, size: int) -> tuple[int, ...]:
    return tuple(sorted(draw(st.sets(st.integers(0, max(0, size - 1)), max_size=size))))


@st.composite
def asks(draw):
    records = _records()[0]
    chip = draw(st.integers(0, len(_chips()) - 1))
    sequence = []
    for _ in range(draw(st.integers(1, 12))):
        record = records[draw(st.integers(0, len(records) - 1))]
        kept = (
            _subset(draw, len(record.reads)),
            _subset(draw, len(record.writes)),
            _subset(draw, len(record.writes)),
        )
        budget = draw(st.one_of(st.integers(0, 4096), st.integers(0, 8 * 2**20)))
        sequence.append((record, budget, kept))
    # The same records again at other budgets: a memoized family serves them.
    again = [(record, budget // 2 + 1, kept) for record, budget, kept in sequence]
    return chip, sequence + again + sequence


def _fresh(arch, zeros, record, budget, kept):
    try:
        return plan_op(
            record, arch.precision, budget, arch.pe_array, *kept, 16.0, 32.0, zeros=zeros
        )
    except NoFit as problem:
        return ("NoFit", str(problem))


@settings(max_examples=120, deadline=None)
@given(asks())
def test_a_planner_plans_what_a_fresh_planner_plans(ask):
    chip, sequence = ask
    arch, zeros = _chips()[chip]
    planner = Planner(arch.precision, arch.pe_array, 16.0, 32.0, zeros)
    for record, budget, kept in sequence:
        try:
            planned = planner.plan(record, budget, kept)
        except NoFit as problem:
            planned = ("NoFit", str(problem))
        assert planned == _fresh(arch, zeros, record, budget, kept)
