"""The facts a simulation derives from a trace are kept per trace object (hwsim.sim.facts):
reusing them gives the simulation it would give without them, in any order of design points."""

from __future__ import annotations

from functools import cache

import simpy

import hwsim.api as hw
from hwsim.io.arch import load_arch
from hwsim.sim import facts
from hwsim.sim.components import Ledger
from hwsim.sim.engine import simulate_counts
from hwsim.sim.facts import facts_of
from hwsim.sim.von_neumann import VonNeumannSubstrate
from hwsim.specs.arch import ArchSpec
from tests.sim.conftest import tiny_trace


@cache
def _graph_trace():
    """A residual graph whose schedule ranks change with the array and DRAM."""
    return hw.trace("digits_resnet", "dfa", batch_size=4, shape_only=True)


def _points() -> list[ArchSpec]:
    """Design points that share some of the memoized facts and not others."""
    base = load_arch("von_neumann").model_dump()
    points = []
    for capacity in (256 * 1024, 1024 * 1024):
        for side in (4, 64):
            for bandwidth in (0.5, 64.0):
                data = dict(base)
                data["global_buffer"] = {**base["global_buffer"], "capacity_bytes": capacity}
                data["pe_array"] = {**base["pe_array"], "rows": side, "columns": side}
                data["dram"] = {**base["dram"], "bandwidth_bytes_per_cycle": bandwidth}
                points.append(ArchSpec.model_validate(data))
    return points


def _run(spec: ArchSpec, trace) -> tuple:
    counts = simulate_counts(spec, trace)
    ranks = VonNeumannSubstrate(simpy.Environment(), spec, trace, Ledger(details=False)).rank
    columns = {name: column.tolist() for name, column in counts.columns.items()}
    return counts.cycles, columns, ranks.tolist()


def test_kept_facts_give_the_simulation_fresh_ones_give():
    trace = _graph_trace()
    points = _points()
    fresh = []
    for spec in points:
        facts._kept.clear()
        fresh.append(_run(spec, trace))
    facts._kept.clear()
    kept = [_run(spec, trace) for spec in points]
    again = [_run(spec, trace) for spec in reversed(points)][::-1]
    assert kept == fresh and again == fresh
    assert len({tuple(ranks) for *_, ranks in fresh}) > 1  # the points' ranks differ


def test_facts_belong_to_one_trace_object():
    trace = tiny_trace("bp")
    copy = trace.model_copy(deep=True)
    assert facts_of(trace) is facts_of(trace)
    assert facts_of(copy) is not facts_of(trace)
    assert facts_of(copy).readers == facts_of(trace).readers


def test_only_a_few_traces_are_kept():
    traces = [tiny_trace("bp", batch_size=size) for size in range(1, facts.TRACES_KEPT + 3)]
    for trace in traces:
        facts_of(trace)
    assert len(facts._kept) == facts.TRACES_KEPT
    assert all(entry[0] is not traces[0] for entry in facts._kept.values())
