"""The mapping search's frontier (one ranking of every candidate, budget aside) picks what a
search per budget picks: the oracle below is that search, order by order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.sim import loopnest
from hwsim.sim.loopnest import (
    ORDERS,
    ConvGeometry,
    Gemm,
    Machine,
    Objective,
    Operand,
    search,
)
from hwsim.specs.trace import ConvPass


def _per_budget(gemm, budget, machine, aligned, fixed):
    """The search before the frontier: per order, the first fitting candidate by
    (objective, tie-break, steps); the best over orders, an earlier order winning ties."""
    tiles, trips, tile_elements, sweep_elements = loopnest._grid(
        gemm, loopnest._alignment(machine, aligned)
    )
    compute = loopnest._tiled_compute(machine, tiles, trips, gemm)
    operands = (gemm.a, gemm.b, gemm.c)
    sweep = [loopnest._bytes(sweep_elements[i], operands[i].bits) for i in range(3)]
    tile = [loopnest._bytes(tile_elements[i], operands[i].bits) for i in range(3)]
    accumulating = loopnest._bytes(tile_elements[2], gemm.accumulator_bits)
    output = gemm.c
    write = -(-output.elements * output.bits // 8) if output.written and not output.resident else 0
    steps = trips[0] * trips[1] * trips[2]
    best = None
    for order in ORDERS:
        multipliers, footprint = loopnest._revisits(order, trips, operands, tile, accumulating)
        fits = footprint <= budget
        if not fits.any():
            continue
        reads = [sweep[i] * multipliers[i] * (not operands[i].resident) for i in (0, 1)]
        partial_elements = multipliers[2] * sweep_elements[2] - gemm.c.elements
        partial = loopnest._bytes(partial_elements, gemm.accumulator_bits) * (not gemm.c.resident)
        traffic = reads[0] + reads[1] + 2 * partial + write
        array = sweep[0] * multipliers[0] + sweep[1] * multipliers[1]
        port = array + 2 * partial + (write if machine.objective.kind == "dram_bytes" else fixed)
        fill = loopnest._fill_cycles(machine, compute, traffic, port, reads[0] + reads[1], steps)
        primary, secondary = loopnest._ranked(machine, traffic, fill, array + 2 * partial + write)
        key = np.lexsort((steps, secondary, primary))
        choice = int(key[fits[key]][0])
        score = (primary[choice], secondary[choice], int(steps[choice]), order)
        if best is None or score < best[0]:
            best = (
                score,
                order,
                loopnest._pick(tiles, choice),
                int(footprint[choice]),
                int(traffic[choice]),
            )
    return None if best is None else best[1:]


def _reference(gemm, budget, machine, fixed):
    found = _per_budget(gemm, budget, machine, True, fixed)
    return found if found is not None else _per_budget(gemm, budget, machine, False, fixed)


def _gemm(draw) -> Gemm:
    m, k, n = (draw(st.integers(1, 300)) for _ in range(3))
    bits = draw(st.sampled_from([8, 16, 32]))
    flags = [draw(st.booleans()) for _ in range(4)]
    conv = None
    if draw(st.booleans()):
        size, kernel, stride = draw(st.integers(3, 12)), draw(st.integers(1, 3)), 1
        out = size - kernel + 1
        channels, filters, batch = draw(st.integers(1, 8)), draw(st.integers(1, 8)), 2
        conv_pass = draw(st.sampled_from(list(ConvPass)))
        conv = ConvGeometry(
            conv_pass,
            batch,
            size,
            size,
            channels,
            out,
            out,
            filters,
            kernel,
            kernel,
            stride,
            stride,
        )
        positions, window = batch * out * out, channels * kernel * kernel
        m, k, n = {
            ConvPass.FORWARD: (positions, window, filters),
            ConvPass.BACKWARD_DATA: (positions, filters, window),
            ConvPass.BACKWARD_WEIGHT: (window, positions, filters),
        }[conv_pass]
    a = Operand(m * k, bits, resident=flags[0])
    b = Operand(k * n, bits, resident=flags[1])
    c = Operand(m * n, bits, resident=flags[2], written=flags[3])
    return Gemm(m, k, n, a, b, c, 32, conv)


@st.composite
def problems(draw):
    gemm = _gemm(draw)
    kind = draw(st.sampled_from(["dram_bytes", "latency", "energy", "edp"]))
    objective = Objective(kind, draw(st.floats(1, 200)), draw(st.floats(0.1, 10)))
    machine = Machine(
        draw(st.sampled_from([1, 2, 4, 8, 16, 64])),
        draw(st.sampled_from([1, 2, 4, 8, 16, 64])),
        draw(st.booleans()),
        draw(st.sampled_from([1.0, 4.0, 17.0, 64.0])),
        draw(st.sampled_from([8.0, 32.0, 128.0])),
        objective,
    )
    fixed = draw(st.integers(0, 10_000))
    budgets = draw(st.lists(st.integers(0, 2_000_000), min_size=1, max_size=6))
    return gemm, machine, fixed, budgets


@settings(max_examples=150, deadline=None)
@given(problems())
def test_the_frontier_picks_what_a_search_per_budget_picks(problem):
    gemm, machine, fixed, budgets = problem
    frontier = loopnest._frontier(gemm, machine, True, fixed).mappings
    # Budgets at every kept footprint and one byte below it, and random ones.
    edges = [mapping.footprint_bytes + d for mapping in frontier for d in (0, -1)]
    for budget in [*budgets, *edges]:
        found = search(gemm, budget, machine, fixed)
        expected = _reference(gemm, budget, machine, fixed)
        if expected is None:
            assert found is None
            continue
        order, tiles, footprint, traffic = expected
        assert found is not None and found.tiles == tiles
        assert found is not None and found.footprint_bytes == footprint <= budget
        assert found.order == ">".join(loopnest.LOOPS[loop] for loop in order)
        assert found.dram_bytes == traffic


def test_one_frontier_serves_every_budget():
    a, b, c = Operand(64 * 96, 16), Operand(96 * 80, 16), Operand(64 * 80, 16)
    gemm = Gemm(64, 96, 80, a, b, c, 32)
    machine = Machine(8, 8, True, 16.0, 64.0)
    before = loopnest._frontier.cache_info()
    for budget in range(20_000, 60_000, 997):
        search(gemm, budget, machine, 0)
    after = loopnest._frontier.cache_info()
    assert after.misses - before.misses == 1  # the aligned frontier, built once
    assert after.hits - before.hits >= 39


@settings(max_examples=100, deadline=None)
@given(problems())
def test_a_budget_function_of_the_search_finds_what_the_search_finds(problem):
    """loopnest.fitting (the planner's: one frontier, bisected) against `search` itself, at
    every kept footprint, a byte below it, below every aligned tile (the unaligned
    candidates) and at random budgets."""
    gemm, machine, fixed, budgets = problem
    best = loopnest.fitting(gemm, machine, fixed)
    frontier = loopnest._frontier(gemm, machine, True, fixed).mappings
    edges = [mapping.footprint_bytes + d for mapping in frontier for d in (0, -1)]
    for budget in [*budgets, *edges, 0, 1]:
        assert best(budget) == search(gemm, budget, machine, fixed)
