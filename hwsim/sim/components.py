"""Components: small classes over simpy resources with explicit counters.

A component counts where the action happens: `(layer, phase, component, action)` →
count, bytes, cycles.  Every use of a resource is also logged as a busy interval, from which
the result derives utilisation and bandwidth over time.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import numpy as np
import simpy
from numpy.typing import NDArray

Process = Generator[Any, Any, Any]
Int64s = NDArray[np.int64]
PAIR_BITS = 24  # of a Ledger row key: the (component, action) code; the scope's above it
COMPACT_EVERY = 2**14  # Ledger entries open before they are moved into int64 columns


@dataclass(frozen=True)
class Scope:
    """Whom a count belongs to: the trace record's layer and phase."""

    layer: str
    phase: str
    priority: int = 0  # lower first where ops contend (von Neumann: the record id)


@dataclass
class Ledger:
    """All counters and busy intervals of one simulation."""

    # Counts: each `add` sums its count, bytes and cycles into the open entry of its
    # (layer, phase, component, action), which holds its int key too (scope code <<
    # PAIR_BITS | pair code); once COMPACT_EVERY entries are open they are moved into int64
    # columns summed per key (numpy, exact), so memory follows the distinct rows (a
    # 25,000-layer step has 750,000) in 32 bytes each, not in Python objects.
    scopes: dict[tuple[str, str], int] = field(default_factory=dict)  # (layer, phase) → code
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)  # (component, action)
    unsummed: dict[tuple[str, str, str, str], list[int]] = field(default_factory=dict)
    summed: tuple[np.ndarray, ...] = field(
        default_factory=lambda: tuple(np.zeros(0, dtype=np.int64) for _ in range(4))
    )
    # resource → its busy intervals as three int64 columns: start, end, bytes moved (a
    # 200,000-record step logs about a million; 24 bytes each, not a 160-byte tuple)
    intervals: dict[str, tuple[array, array, array]] = field(default_factory=dict)
    waits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # The von Neumann ops' loop nests, column by column (hwsim.sim.result.MAPPING_KINDS):
    # int and float columns as arrays, 8 bytes a value rather than a Python object each.
    mappings: dict[str, array | list] | None = None
    peak_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # occupancy
    # False: only the counts are kept (a sweep's row): no loop nests, no busy intervals.
    details: bool = True

    def occupy(self, resource: str, nbytes: int) -> None:
        """Note a storage resource's occupancy; the result reports its peak."""
        self.peak_bytes[resource] = max(self.peak_bytes[resource], nbytes)

    def add(
        self,
        scope: Scope,
        component: str,
        action: str,
        *,
        count: int = 0,
        nbytes: int = 0,
        cycles: int = 0,
    ) -> None:
        key = (scope.layer, scope.phase, component, action)
        entry = self.unsummed.get(key)
        if entry is None:
            scopes, pairs = self.scopes, self.pairs
            code = scopes.setdefault((scope.layer, scope.phase), len(scopes)) << PAIR_BITS
            code |= pairs.setdefault((component, action), len(pairs))
            self.unsummed[key] = [count, nbytes, cycles, code]
            if len(self.unsummed) >= COMPACT_EVERY:
                self._compact()
        else:
            entry[0] += count
            entry[1] += nbytes
            entry[2] += cycles

    def _compact(self) -> None:
        """Move the open entries into the per-key sums: added in place to the keys already
        summed and the new keys inserted, one column at a time (the sums stay sorted by key;
        a step's 750,000 keys are never sorted again or copied more than a column at a
        time)."""
        entries, self.unsummed = self.unsummed, {}
        if not entries:
            return
        count, moved, busy, codes = np.array(list(entries.values()), dtype=np.int64).T
        pending = [codes, count, moved, busy]
        order = np.argsort(pending[0], kind="stable")  # the keys are distinct
        keys = pending[0][order]
        sums = [column[order] for column in pending[1:]]
        summed, self.summed = list(self.summed), ()
        if not len(summed[0]):  # the first: nothing to merge into
            self.summed = (keys, *sums)
            return
        at = np.searchsorted(summed[0], keys)
        found = at < len(summed[0])
        found[found] = summed[0][at[found]] == keys[found]
        new = ~found
        for i, added in enumerate([keys, *sums]):
            if i:
                summed[i][at[found]] += added[found]  # keys are unique: one add per entry
            if new.any():
                summed[i] = np.insert(summed[i], at[new], added[new])
        self.summed = tuple(summed)

    def take_counts(self) -> tuple[np.ndarray, ...]:
        """Every (layer, phase, component, action) added to, handed over (the ledger lets go
        of its counts): scope codes, pair codes, the scope table (code → layer, phase), the
        pair table (code → component, action), then count, bytes and cycles, one int64 entry
        per key."""
        self._compact()
        (keys, counts, moved, busy), self.summed = self.summed, ()
        scope_names, pair_names = _name_table(self.scopes), _name_table(self.pairs)
        self.scopes, self.pairs = {}, {}
        return (
            keys >> PAIR_BITS,
            keys & ((1 << PAIR_BITS) - 1),
            scope_names,
            pair_names,
            counts,
            moved,
            busy,
        )

    def log_mapping(self, row: dict[str, Any], kinds: dict[str, str]) -> None:
        """Append one op's loop nest; `kinds` maps each column to "q", "d" or "s"."""
        if self.mappings is None:
            self.mappings = {
                name: [] if kind == "s" else array(kind) for name, kind in kinds.items()
            }
        for name, column in self.mappings.items():
            column.append(row[name])

    def take_mappings(self, kinds: dict[str, str]) -> dict[str, np.ndarray] | None:
        """The loop nests logged, column by column, handed over (the ledger lets go of
        them); None if none were logged."""
        columns, self.mappings = self.mappings, None
        if columns is None:
            return None
        return {
            name: _mapping_column(column, kind)
            for (name, kind), column in zip(kinds.items(), columns.values(), strict=True)
        }

    def busy(self, resource: str, start: int, end: int, nbytes: int = 0) -> None:
        if end > start and self.details:
            columns = self.intervals.get(resource)
            if columns is None:
                columns = self.intervals[resource] = (array("q"), array("q"), array("q"))
            columns[0].append(start)
            columns[1].append(end)
            columns[2].append(nbytes)

    def spans(self, resource: str) -> tuple[Int64s, Int64s, Int64s]:
        """A resource's busy intervals: starts, ends and bytes, as int64 arrays."""
        starts, ends, moved = self.intervals[resource]
        return (
            np.frombuffer(starts, dtype=np.int64),
            np.frombuffer(ends, dtype=np.int64),
            np.frombuffer(moved, dtype=np.int64),
        )


def _mapping_column(column: array | list, kind: str) -> np.ndarray:
    """One logged mapping column as numpy: strings (kind "s", logged in a list) as objects,
    numbers (logged in an array of `kind`) as int64 or float64."""
    if isinstance(column, list):
        return np.array(column, dtype=object)
    return np.frombuffer(column, dtype=np.int64 if kind == "q" else np.float64)


def _name_table(codes: dict[tuple[str, str], int]) -> np.ndarray:
    """Row `code` holds the two names coded as `code` (codes count up in insertion order)."""
    table = np.empty((len(codes), 2), dtype=object)
    if codes:
        table[:] = list(codes)
    return table


def now(env: simpy.Environment) -> int:
    """The simulated time in cycles.  simpy types its clock int | float; the simulator only
    ever waits whole cycles (every timeout it schedules is an int), so the clock stays one
    (the engine checks the last cycle: a float delay would leave the clock a float)."""
    return cast(int, env.now)


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
        self.resource = simpy.PriorityResource(env, capacity=1)

    def hold(self, cycles: int, nbytes: int = 0, priority: int = 0) -> Process:
        """Wait for the unit (lowest `priority` first, then first come), keep it `cycles`,
        log the wait and the busy interval."""
        asked = now(self.env)
        with self.resource.request(priority=priority) as request:
            yield request
            start = now(self.env)
            self.ledger.waits[self.name] += start - asked
            if cycles > 0:
                yield self.env.timeout(cycles)
            self.ledger.busy(self.name, start, now(self.env), nbytes)


class SharedUnit:
    """A resource shared by everything that uses it at once: the users of the lowest priority
    present share it equally (processor sharing: n users each progress at 1/n of its rate, as
    interleaved requests of concurrent ops share DRAM channels), the others wait until they
    leave — or, `shortest_first`, the user with the least work left goes on (a short op slips
    in between a long op's tiles).  Completions land on whole cycles.  Busy intervals are the
    stretches with at least one user."""

    def __init__(
        self, env: simpy.Environment, name: str, ledger: Ledger, shortest_first: bool = False
    ) -> None:
        self.env = env
        self.name = name
        self.ledger = ledger
        self.shortest_first = shortest_first
        self.jobs: dict[simpy.Event, float] = {}  # → cycles of work left (at the full rate)
        self.priorities: dict[simpy.Event, int] = {}
        self.asked: dict[simpy.Event, tuple[int, int]] = {}  # → the cycle it came, its cycles
        self.updated = now(env)
        self.busy_since = 0
        self.busy_bytes = 0
        self.timer: simpy.Event | None = None  # the timeout set last (the others fire idle)
        self.target: int | None = None  # the cycle it fires at

    def hold(self, cycles: int, nbytes: int = 0, priority: int = 0) -> Process:
        """Do `cycles` of work (at the full rate) beside whoever else is using the unit."""
        done = self.job(cycles, nbytes, priority)
        if done is not None:
            yield done

    def job(self, cycles: int, nbytes: int = 0, priority: int = 0) -> simpy.Event | None:
        """Start `cycles` of work (at the full rate) beside whoever else is using the unit:
        the event that succeeds when it is done, or None for no work (`hold` without a
        process of its own)."""
        if cycles <= 0:
            return None
        asked = now(self.env)
        done = self.env.event()
        jobs = self.jobs
        idle = not jobs
        if idle:
            self.updated = asked
            self.busy_since, self.busy_bytes = asked, 0
        else:
            self._advance(asked)
        jobs[done] = float(cycles)
        self.priorities[done] = priority
        self.asked[done] = (asked, cycles)
        self.busy_bytes += nbytes
        if idle:  # _reschedule's, for one job
            self._set_timer(asked, max(0, math.ceil(float(cycles) - 1e-6)))
        else:
            self._reschedule(asked)
        return done

    def _retire(self, job: simpy.Event, time: int) -> None:
        """`job` is done at `time`: it leaves, its wait beyond its own work counted."""
        del self.jobs[job], self.priorities[job]
        asked, cycles = self.asked.pop(job)
        self.ledger.waits[self.name] += max(0, time - asked - cycles)
        job.succeed()

    def _active(self) -> list[simpy.Event]:
        jobs = self.jobs
        if len(jobs) == 1:
            return list(jobs)
        if self.shortest_first:  # the least work left goes on (ties by priority)
            return [min(jobs, key=lambda job: (jobs[job], self.priorities[job]))]
        first = min(self.priorities.values())
        return [job for job, priority in self.priorities.items() if priority == first]

    def _advance(self, time: int) -> None:
        """Bring the work left up to cycle `time`."""
        elapsed = time - self.updated
        if self.jobs and elapsed:
            active = self._active()
            share = elapsed / len(active)
            for job in active:
                self.jobs[job] -= share
        self.updated = time

    def _reschedule(self, time: int) -> None:
        """Set the timer for the next completion, one simpy timeout; a timer already set for
        that cycle stays (an arrival that does not change the next completion, such as a
        longer job behind a shorter one, sets none), and a superseded one fires for nothing."""
        jobs = self.jobs
        if not jobs:
            self.timer = self.target = None
            return
        if len(jobs) == 1:
            delay = max(0, math.ceil(next(iter(jobs.values())) - 1e-6))
        else:
            active = self._active()
            least = min(jobs[job] for job in active)
            delay = max(0, math.ceil(least * len(active) - 1e-6))
        self._set_timer(time, delay)

    def _set_timer(self, time: int, delay: int) -> None:
        """The timer for a completion `delay` cycles after `time`, unless one is set for then."""
        if time + delay == self.target:
            return
        self.target = time + delay
        timer = self.timer = self.env.timeout(delay)
        timer.callbacks.append(self._fire)

    def _fire(self, timer: simpy.Event) -> None:
        """The timer set `delay` cycles ago: the jobs done by now leave (their wait beyond
        their own work counted), unless an arrival or another completion has superseded
        it."""
        if timer is not self.timer:
            return
        self.target = None
        time = now(self.env)
        jobs = self.jobs
        if len(jobs) == 1:  # alone: _advance and the leaving below, for one job
            job, left = next(iter(jobs.items()))
            if time != self.updated:
                left = jobs[job] = left - (time - self.updated)
            self.updated = time
            if left > 1e-6:
                self._reschedule(time)
                return
            self._retire(job, time)
            self.ledger.busy(self.name, self.busy_since, time, self.busy_bytes)
            self.timer = None  # _reschedule's, with no job left
            return
        self._advance(time)
        for job in [job for job, left in jobs.items() if left <= 1e-6]:
            self._retire(job, time)
        if not jobs:
            self.ledger.busy(self.name, self.busy_since, time, self.busy_bytes)
        self._reschedule(time)


class Dram:
    """Off-chip memory: channels that every transfer stripes evenly, so they act as one
    resource of their summed bandwidth; a pipelined latency paid once per transfer."""

    def __init__(
        self,
        env: simpy.Environment,
        channels: int,
        bytes_per_cycle: float,
        latency_cycles: int,
        ledger: Ledger,
    ) -> None:
        self.env = env
        self.ledger = ledger
        self.bytes_per_cycle = channels * bytes_per_cycle
        self.latency_cycles = latency_cycles
        self.unit = SharedUnit(env, "dram", ledger)

    def transfer(self, scope: Scope, nbytes: int, action: str) -> Process:
        """Move `nbytes`; `action` is read or write."""
        if action == "read":
            yield from self.move(scope, nbytes, 0)
        else:
            yield from self.move(scope, 0, nbytes)

    def move(self, scope: Scope, read_bytes: int, write_bytes: int) -> Process:
        """Read and write in one stretch of the channels, then the latency (`stream`: a
        pipeline's steady state, whose latency hides behind earlier requests)."""
        nbytes = read_bytes + write_bytes
        if nbytes <= 0:
            return
        start = now(self.env)
        yield self.unit.job(ceil_div(nbytes, self.bytes_per_cycle), nbytes, scope.priority)
        if self.latency_cycles:
            yield self.env.timeout(self.latency_cycles)
        self._log(scope, read_bytes, write_bytes, start)

    def stream(self, scope: Scope, read_bytes: int, write_bytes: int) -> simpy.Event | None:
        """`move` without latency (a pipeline's steady state) and without a process of its
        own: the event that succeeds when it is done, or None for nothing to move."""
        nbytes = read_bytes + write_bytes
        if nbytes <= 0:
            return None
        done = self.unit.job(ceil_div(nbytes, self.bytes_per_cycle), nbytes, scope.priority)
        assert done is not None, "a byte takes at least a cycle"
        done.callbacks.append(partial(self._logged, scope, read_bytes, write_bytes, now(self.env)))
        return done

    def _logged(
        self, scope: Scope, read_bytes: int, write_bytes: int, start: int, _: simpy.Event
    ) -> None:
        self._log(scope, read_bytes, write_bytes, start)

    def _log(self, scope: Scope, read_bytes: int, write_bytes: int, start: int) -> None:
        nbytes = read_bytes + write_bytes
        cycles = now(self.env) - start
        for action, amount in (("read", read_bytes), ("write", write_bytes)):
            if amount:
                self.ledger.add(
                    scope, "dram", action, count=1, nbytes=amount, cycles=cycles * amount // nbytes
                )


class Compute:
    """A group of MAC units or vector ALUs: one op at a time, or (`shared`) every op that uses
    it at once progressing at an equal share of its rate."""

    def __init__(
        self,
        env: simpy.Environment,
        component: str,
        resource: str,
        ledger: Ledger,
        shared: bool = False,
        shortest_first: bool = False,
    ) -> None:
        self.unit = (
            SharedUnit(env, resource, ledger, shortest_first)
            if shared
            else Unit(env, resource, ledger)
        )
        self.component = component
        self.ledger = ledger

    def run(self, scope: Scope, cycles: int, macs: int, vector_ops: int) -> Process:
        yield from self.unit.hold(cycles, priority=scope.priority)
        self._log(scope, cycles, macs, vector_ops)

    def job(self, scope: Scope, cycles: int, macs: int, vector_ops: int) -> simpy.Event | None:
        """`run` without a process of its own (a shared unit only): the event that succeeds
        when the work is done, or None for no cycles; counted when it starts."""
        assert isinstance(self.unit, SharedUnit), "a job needs a shared unit"
        self._log(scope, cycles, macs, vector_ops)
        return self.unit.job(cycles, priority=scope.priority)

    def _log(self, scope: Scope, cycles: int, macs: int, vector_ops: int) -> None:
        if macs:
            self.ledger.add(scope, self.component, "mac", count=macs, cycles=cycles)
        if vector_ops:
            self.ledger.add(
                scope, self.component, "vector_op", count=vector_ops, cycles=0 if macs else cycles
            )
