"""What a simulation derives from a trace before its first event, derived once per trace.

A sweep simulates the same few traces at thousands of design points, and every point used to
re-derive the same facts from the records: how many records read each tensor, the gradients
only the weight update reads, the record graph's edges, the bytes DRAM must hold.  They
depend on the trace (and, the sizes and the schedule's ranks, on a few of the chip's fields),
so they are kept with the trace object and its derivations memoized by those fields.  A trace
is a frozen model; its records are not changed after it is read.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from hwsim.specs.trace import Phase, Role, Trace

TRACES_KEPT = 8  # a sweep's workloads: more traces alive only re-derive their facts
MEMO_KEPT = 64  # derivations kept per trace (a bundle of a sweep shares one)


class TraceFacts:
    """The chip-independent facts of one trace, and a memo of its chip-dependent ones."""

    def __init__(self, trace: Trace) -> None:
        records = trace.records
        # Records that read each tensor (a record reading it twice counts once).
        self.readers = Counter(
            tensor for record in records for tensor in {o.tensor for o in record.reads}
        )
        self.fused_gradients = _fused_gradients(trace)
        self.waiting_on = tuple(len(set(record.deps)) for record in records)  # distinct deps
        self._memo: OrderedDict[Hashable, Any] = OrderedDict()

    def memo(self, key: Hashable, derive: Callable[[], Any]) -> Any:
        """`derive()`, kept under `key` (the chip's fields it depends on)."""
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = self._memo[key] = derive()
        if len(self._memo) > MEMO_KEPT:
            self._memo.popitem(last=False)
        return value


_kept: OrderedDict[int, tuple[Trace, TraceFacts]] = OrderedDict()


def facts_of(trace: Trace) -> TraceFacts:
    """The facts of `trace`, derived on its first simulation and kept for the next ones."""
    entry = _kept.get(id(trace))
    if entry is not None and entry[0] is trace:
        _kept.move_to_end(id(trace))
        return entry[1]
    facts = TraceFacts(trace)
    _kept[id(trace)] = (trace, facts)
    if len(_kept) > TRACES_KEPT:
        _kept.popitem(last=False)
    return facts


def _fused_gradients(trace: Trace) -> frozenset[str]:
    """Gradients that a gradient-phase record writes and only update records read."""
    written = {
        operand.tensor
        for record in trace.records
        if record.phase == Phase.GRADIENT
        for operand in record.writes
        if operand.role == Role.GRADIENT
    }
    readers: dict[str, set[Phase]] = {}
    for record in trace.records:
        for operand in record.reads:
            readers.setdefault(operand.tensor, set()).add(record.phase)
    return frozenset(tensor for tensor in written if readers.get(tensor, set()) == {Phase.UPDATE})
