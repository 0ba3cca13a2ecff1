"""Components: small classes over simpy resources with explicit counters.

A component counts where the action happens: `(layer, phase, component, action)` →
count, bytes, cycles.  Every use of a resource is also logged as a busy interval, from which
the result derives utilisation and bandwidth over time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

Process = Generator[Any, Any, Any]


@dataclass(frozen=True)
class Scope:
    """Whom a count belongs to: the trace record's layer and phase."""

    layer: str
    phase: str


@dataclass
class Ledger:
    """All counters and busy intervals of one simulation."""

    counts: dict[tuple[str, str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    intervals: list[tuple[str, int, int, int]] = field(default_factory=list)
    waits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    mappings: list[dict[str, Any]] = field(default_factory=list)  # one row per planned op
    peak_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # occupancy

    def occupy(self, resource: str, nbytes: int) -> None:
        """Note a storage resource's occupancy; the result reports its peak."""
        self.peak_bytes[resource] = max(self.peak_bytes[resource], nbytes)

    def add(self, scope: Scope, component: str, action: str, *, count: int = 0,
            nbytes: int = 0, cycles: int = 0) -> None:
        row = self.counts[(scope.layer, scope.phase, component, action)]
        row[0] += count
        row[1] += nbytes
        row[2] += cycles

    def busy(self, resource: str, start: int, end: int, nbytes: int = 0) -> None:
        if end > start:
            self.intervals.append((resource, start, end, nbytes))


def ceil_div(numerator: int, denominator: float) -> int:
    if numerator <= 0:
        return 0
    whole = numerator // denominator
    return int(whole) + (1 if whole * denominator < numerator else 0)


class Unit:
    """A resource that serves one request at a time (a PE array, a channel, a link)."""

    def __init__(self, env: simpy.Environment, name: str, ledger: Ledger) -> None:
        self.env = env
        self.name = name
        self.ledger = ledger
        self.resource = simpy.Resource(env, capacity=1)

    def hold(self, cycles: int, nbytes: int = 0) -> Process:
        """Wait for the unit, keep it `cycles`, log the wait and the busy interval."""
        asked = self.env.now
        with self.resource.request() as request:
            yield request
            self.ledger.waits[self.name] += self.env.now - asked
            start = self.env.now
            if cycles > 0:
                yield self.env.timeout(cycles)
            self.ledger.busy(self.name, start, self.env.now, nbytes)


class Dram:
    """Off-chip memory: channels that every transfer stripes evenly, so they act as one
    resource of their summed bandwidth; a pipelined latency paid once per transfer."""

    def __init__(self, env: simpy.Environment, channels: int, bytes_per_cycle: float,
                 latency_cycles: int, ledger: Ledger) -> None:
        self.env = env
        self.ledger = ledger
        self.bytes_per_cycle = channels * bytes_per_cycle
        self.latency_cycles = latency_cycles
        self.unit = Unit(env, "dram", ledger)

    def transfer(self, scope: Scope, nbytes: int, action: str) -> Process:
        """Move `nbytes`; `action` is read or write."""
        if action == "read":
            yield from self.move(scope, nbytes, 0)
        else:
            yield from self.move(scope, 0, nbytes)

    def move(self, scope: Scope, read_bytes: int, write_bytes: int,
             latency: bool = True) -> Process:
        """Read and write in one stretch of the channels; `latency=False` for transfers whose
        latency hides behind earlier requests (a pipeline's steady state)."""
        nbytes = read_bytes + write_bytes
        if nbytes <= 0:
            return
        start = self.env.now
        yield from self.unit.hold(ceil_div(nbytes, self.bytes_per_cycle), nbytes)
        if latency and self.latency_cycles:
            yield self.env.timeout(self.latency_cycles)
        cycles = self.env.now - start
        for action, amount in (("read", read_bytes), ("write", write_bytes)):
            if amount:
                self.ledger.add(scope, "dram", action, count=1, nbytes=amount,
                                cycles=cycles * amount // nbytes)


class Compute:
    """A group of MAC units and vector ALUs that runs one op at a time."""

    def __init__(self, env: simpy.Environment, component: str, resource: str,
                 ledger: Ledger) -> None:
        self.unit = Unit(env, resource, ledger)
        self.component = component
        self.ledger = ledger

    def run(self, scope: Scope, cycles: int, macs: int, vector_ops: int) -> Process:
        yield from self.unit.hold(cycles)
        if macs:
            self.ledger.add(scope, self.component, "mac", count=macs, cycles=cycles)
        if vector_ops:
            self.ledger.add(scope, self.component, "vector_op", count=vector_ops,
                            cycles=0 if macs else cycles)
