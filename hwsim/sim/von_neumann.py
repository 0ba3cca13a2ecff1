"""The von Neumann substrate: DRAM, one global buffer, one PE array.

Weights, feedback matrices and optimizer state live in DRAM and stream through the buffer
every time an op needs them.  Activations, errors and gradients stay in the buffer's reuse
share between the op that writes them and the ops that read them, as long as they fit (least
recently used out first; written back to DRAM only if evicted while still needed).  What the
reuse share does not hold is the stream space: each op gets a mapping (hwsim.sim.tiling and
hwsim.sim.loopnest) that fits the stream space free when it starts, holds that space while it
runs, and runs as a double-buffered pipeline — a prologue (the first tile's reads), a steady
state in which the DRAM channels and the PE array work side by side, and an epilogue (the last
tile's compute and writes) — so the cost of simulating an op does not depend on its size.
Ops that the trace lets run together contend for DRAM, the buffer space and the array.
"""

from __future__ import annotations

from array import array
from collections import Counter, OrderedDict, deque
from collections.abc import Hashable
from functools import partial

import simpy

from hwsim.errors import CapacityError
from hwsim.sim.components import Compute, Dram, Ledger, Process, Scope, SharedUnit, ceil_div
from hwsim.sim.facts import TraceFacts, facts_of
from hwsim.sim.loopnest import Objective
from hwsim.sim.result import MAPPING_KINDS
from hwsim.sim.schedule import critical_path_ranks
from hwsim.sim.sparsity import SAVED, SKIPPED, Zeros, action
from hwsim.sim.tiling import (
    Kept,
    NoFit,
    OpPlan,
    Planner,
    bits_of,
    compute_cycles,
    machine_of,
    operand_bytes,
)
from hwsim.specs.arch import ActionEnergies, MappingObjective, Precision, VonNeumannSpec
from hwsim.specs.trace import Operand, OpRecord, Role, Trace
from hwsim.units import BITS_PER_BYTE, format_bytes

BUFFER = "global_buffer"
REUSABLE_ROLES = (Role.INPUT, Role.LABEL, Role.ACTIVATION, Role.ERROR, Role.GRADIENT)


class ReuseShare:
    """Tensors kept in the buffer between ops: least recently used out first; tensors that a
    running op uses are pinned and never evicted under it."""

    def __init__(self, capacity_bytes: int, pending_reads: Counter[str]) -> None:
        self.capacity_bytes = capacity_bytes
        self.pending = pending_reads  # records that will still read each tensor
        self.held: OrderedDict[str, tuple[int, bool]] = OrderedDict()  # tensor → bytes, dirty
        self.pins: Counter[str] = Counter()
        self.used_bytes = 0
        # With DRAM compression, the tensors written back, which the substrate prices in
        # their DRAM format (None: not noted, the dense path).
        self.written_back: list[str] | None = None

    def __contains__(self, tensor: str) -> bool:
        return tensor in self.held

    def touch(self, tensor: str) -> None:
        self.held.move_to_end(tensor)

    def drop(self, tensor: str) -> None:
        if tensor in self.held and not self.pins[tensor]:
            self.used_bytes -= self.held.pop(tensor)[0]

    def keep(self, tensor: str, nbytes: int, dirty: bool, limit_bytes: int) -> int | None:
        """Hold `tensor` within min(capacity, `limit_bytes`); None if it cannot fit, else the
        bytes of still-needed dirty tensors evicted to make room (the caller writes them back
        to DRAM)."""
        self.drop(tensor)
        limit = min(self.capacity_bytes, limit_bytes)
        evictable = sum(size for name, (size, _) in self.held.items() if not self.pins[name])
        if tensor in self.held or self.used_bytes - evictable + nbytes > limit:
            return None
        written_back = 0
        for victim in list(self.held):
            if self.used_bytes + nbytes <= limit:
                break
            if self.pins[victim]:
                continue
            size, victim_dirty = self.held.pop(victim)
            self.used_bytes -= size
            if victim_dirty and self.pending[victim] > 0:
                written_back += size
                if self.written_back is not None:
                    self.written_back.append(victim)
        self.held[tensor] = (nbytes, dirty)
        self.used_bytes += nbytes
        return written_back


OperandFacts = tuple[tuple[str, bool, int], ...]  # per operand: tensor, reusable, bytes


def _operand_facts(trace: Trace, precision: Precision) -> list[tuple[OperandFacts, OperandFacts]]:
    """Per record (by id): its reads' and writes' tensors, whether the reuse share may keep
    them, and their bytes."""

    def facts(side: tuple[Operand, ...]) -> OperandFacts:
        return tuple(
            (o.tensor, o.role in REUSABLE_ROLES, operand_bytes(o, precision)) for o in side
        )

    return [(facts(record.reads), facts(record.writes)) for record in trace.records]


def mapping_objective(arch: VonNeumannSpec, energies: ActionEnergies | None) -> Objective:
    """What the mapping search ranks by (schedule.mapping_objective); energy and edp price the
    bytes moved at the tech table's DRAM and buffer energies (read and write averaged)."""
    kind = arch.schedule.mapping_objective
    if kind in (MappingObjective.DRAM_BYTES, MappingObjective.LATENCY):
        return Objective(kind.value)
    if energies is None:
        raise CapacityError(
            "schedule.mapping_objective",
            f"{kind.value} ranks mappings by the tech table's energies, which this simulation "
            "was not given",
            "simulate the spec from its file (hwsim simulate, hw.simulate) or pass energies",
        )
    dram = (energies.dram_read_pj_per_bit + energies.dram_write_pj_per_bit) / 2
    buffer = (energies.sram_read_pj_per_bit + energies.sram_write_pj_per_bit) / 2
    return Objective(kind.value, dram * BITS_PER_BYTE, buffer * BITS_PER_BYTE)


def search_key(arch: VonNeumannSpec, energies: ActionEnergies | None) -> Hashable:
    """What the mapping search's cached frontiers depend on besides the op: the Machine it
    searches for (hwsim.sim.tiling.machine_of) and the precision of the op's operands, not
    the buffer's capacity.  Specs with equal keys reuse every frontier, so a sweep runs them
    on one worker, one after another."""
    dram = arch.dram
    machine = machine_of(
        arch.pe_array,
        dram.channels * dram.bandwidth_bytes_per_cycle,
        arch.global_buffer.bandwidth_bytes_per_cycle,
        mapping_objective(arch, energies),
    )
    return (machine, arch.precision)


class VonNeumannSubstrate:
    def __init__(
        self,
        env: simpy.Environment,
        arch: VonNeumannSpec,
        trace: Trace,
        ledger: Ledger,
        energies: ActionEnergies | None = None,
    ) -> None:
        self.env = env
        self.arch = arch
        self.ledger = ledger
        self.objective = mapping_objective(arch, energies)
        dram = arch.dram
        self.dram = Dram(
            env, dram.channels, dram.bandwidth_bytes_per_cycle, dram.latency_cycles, ledger
        )
        self.buffer = buffer = arch.global_buffer
        self.pe_array = arch.pe_array
        self.capacity_bytes = buffer.capacity_bytes
        facts = facts_of(trace)
        self.reuse = ReuseShare(
            int(buffer.capacity_bytes * buffer.reuse_fraction), Counter(facts.readers)
        )
        self.stream_bytes = 0  # stream space held by running ops
        # Ops waiting for stream space, woken one at a time in arrival order while space lasts
        # (waking every waiter on every release is quadratic in a wide DFA step's waiters).
        self.waiting: deque[simpy.Event] = deque()
        self.retry: list[simpy.Event] = []  # did not fit this time: first in line next time
        self.waking = False  # a woken op is still trying: it passes the turn on
        # An op waits for stream space rather than start with less than half the share.
        self.min_budget_bytes = (self.capacity_bytes - self.reuse.capacity_bytes) // 2
        # The MAC array and the vector unit beside it work in parallel.  They and the buffer's
        # port serve the op with the least work left (a short op slips in between a long
        # op's tiles); DRAM serves the op on the longest path first (hwsim.sim.schedule).
        self.pe = Compute(env, "pe_array", "pe_array", ledger, shared=True, shortest_first=True)
        self.vector = Compute(
            env, "pe_array", "vector_unit", ledger, shared=True, shortest_first=True
        )
        self.port = SharedUnit(env, BUFFER, ledger, shortest_first=True)
        self.fused = facts.fused_gradients if arch.schedule.fused_weight_update else frozenset()
        self.zeros = Zeros.of(arch, trace.header)
        # The operand each tensor the reuse share keeps dirty was written as: its DRAM format
        # when it is written back (only with DRAM compression).
        self.kept_operands: dict[str, Operand] | None = None
        if self.zeros is not None and self.zeros.sparsity.compresses:
            self.kept_operands = {}
            self.reuse.written_back = []
        self._check_dram_capacity(trace, facts)
        self._memoized(trace, facts)

    def _memoized(self, trace: Trace, facts: TraceFacts) -> None:
        """What every point of a sweep's bundle shares, memoized by the chip's fields it
        depends on: the schedule's ranks and each record's scope (array, precision, DRAM),
        and the plans (all but the buffer's capacity)."""
        arch = self.arch
        planner_fields = (
            arch.precision,
            self.pe_array,
            self.dram.bytes_per_cycle,
            self.buffer.bandwidth_bytes_per_cycle,
            self.zeros,
            self.objective,
        )
        self.planner: Planner = facts.memo(
            ("von_neumann plans", *planner_fields), partial(Planner, *planner_fields)
        )
        self.rank = facts.memo(
            ("von_neumann ranks", self.pe_array, arch.precision, arch.dram),
            partial(self._critical_path_ranks, trace),
        )
        self.operands: list[tuple[OperandFacts, OperandFacts]] = facts.memo(
            ("von_neumann operands", arch.precision), partial(_operand_facts, trace, arch.precision)
        )
        self.scopes: list[Scope] = facts.memo(
            ("von_neumann scopes", self.pe_array, arch.precision, arch.dram),
            lambda: [
                Scope(record.layer, record.phase.value, self.rank[record.id])
                for record in trace.records
            ],
        )

    def _critical_path_ranks(self, trace: Trace) -> array:
        """Where records contend, the one on the longest estimated path to the end of the
        step goes first (hwsim.sim.schedule).  A record alone is estimated from its shape, no
        mapping search: max(compute cycles, every operand moved once over DRAM) + latency."""
        arch = self.arch
        alone = {
            record.id: max(
                compute_cycles(
                    record,
                    vector_ops_per_cycle=self.pe_array.vector_ops_per_cycle,
                    pe=self.pe_array,
                ),
                ceil_div(
                    sum(self._bytes(operand) for operand in (*record.reads, *record.writes)),
                    self.dram.bytes_per_cycle,
                ),
            )
            + arch.dram.latency_cycles
            for record in trace.records
        }
        return critical_path_ranks(trace.records, alone)

    def _check_dram_capacity(self, trace: Trace, facts: TraceFacts) -> None:
        capacity = self.arch.dram.capacity_bytes
        if capacity is None:
            return
        needed = facts.memo(
            ("von_neumann dram bytes", self.arch.precision, self.fused),
            partial(self._dram_bytes, trace),
        )
        if needed > capacity:
            header = trace.header
            raise CapacityError(
                "dram.capacity_bytes",
                f"{header.network} {header.algorithm.value} (batch {header.batch_size}) keeps "
                f"{format_bytes(needed)} ({needed:,} bytes) of weights, optimizer state, "
                f"feedback, data, activations, errors and gradients in DRAM (got "
                f"{format_bytes(capacity)})",
            )

    def _dram_bytes(self, trace: Trace) -> int:
        """Bytes DRAM holds for the step: every tensor at its largest, but fused gradients."""
        sizes: dict[str, int] = {}
        for record in trace.records:
            for operand in (*record.reads, *record.writes):
                if operand.tensor not in self.fused:
                    sizes[operand.tensor] = max(sizes.get(operand.tensor, 0), self._bytes(operand))
        return sum(sizes.values())

    def _bytes(self, operand: Operand) -> int:
        return operand_bytes(operand, self.arch.precision)

    def _reuse(
        self, record: OpRecord
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int, list[str]]:
        """Which reads the buffer already holds, which writes it keeps, which writes are
        consumed on chip, bytes to write back, and the tensors pinned for this op."""
        cached: list[int] = []
        kept: list[int] = []
        consumed: list[int] = []
        written_back = 0
        limit = self.capacity_bytes - self.stream_bytes
        pinned: list[str] = []
        reuse, fused = self.reuse, self.fused
        reads, writes = self.operands[record.id]
        for index, (tensor, reusable, nbytes) in enumerate(reads):
            if tensor in fused:
                cached.append(index)  # applied tile by tile as the gradient op produces it
            elif tensor in reuse:
                reuse.touch(tensor)
                cached.append(index)
            elif reusable and reuse.pending[tensor] > 1:
                written_back += reuse.keep(tensor, nbytes, False, limit) or 0
            if tensor in reuse:
                reuse.pins[tensor] += 1
                pinned.append(tensor)
        for index, (tensor, reusable, nbytes) in enumerate(writes):
            if tensor in fused:
                consumed.append(index)  # applied to the weights on chip: never written to DRAM
                continue
            # A result no later record reads is an output of the step: it goes to DRAM.
            if not reusable or reuse.pending[tensor] == 0:
                reuse.drop(tensor)
                continue
            evicted = reuse.keep(tensor, nbytes, True, limit)
            if evicted is not None and self.kept_operands is not None:
                self.kept_operands[tensor] = record.writes[index]
            if evicted is not None:
                kept.append(index)
                written_back += evicted
                reuse.pins[tensor] += 1
                pinned.append(tensor)
        # Tuples (ascending: indices are visited in order), not frozensets: up to the engine's
        # issue window of records hold them while they wait (a frozenset is 216 bytes even
        # when empty; the empty tuple is shared).
        return tuple(cached), tuple(kept), tuple(consumed), written_back, pinned

    def _try(self, record: OpRecord, kept: Kept, woken: bool) -> OpPlan | simpy.Event:
        """Plan the op in the stream space free and take it, if there is enough to try and
        it fits; else the turn to wait for before trying again (`woken`: this is a try after
        a wait)."""
        turn: simpy.Event
        if self._space_to_try():
            free = self._free_bytes()
            try:
                plan = self.planner.plan(record, free, kept)
            except NoFit as problem:
                if self.stream_bytes == 0:
                    raise CapacityError(
                        "global_buffer.capacity_bytes",
                        f"record {record.id} ({record.layer} {record.phase.value}): "
                        f"{problem} do not fit in the {free:,} bytes the buffer leaves "
                        f"for streams (got {self.capacity_bytes:,})",
                    ) from None
                turn = self.env.event()
                self.retry.append(turn)  # more space after the next release
            else:
                self.stream_bytes += plan.footprint_bytes
                if woken:
                    self._pass_turn()
                return plan
        else:
            turn = self.env.event()
            if woken:
                self.waiting.appendleft(turn)  # keeps its place in line
            else:
                self.waiting.append(turn)
        if woken:
            self._pass_turn()
        return turn

    def _free_bytes(self) -> int:
        return self.capacity_bytes - self.reuse.used_bytes - self.stream_bytes

    def _space_to_try(self) -> bool:
        """An op starts with no less than half the stream space, unless it would run alone."""
        return self.stream_bytes == 0 or self._free_bytes() >= self.min_budget_bytes

    def _pass_turn(self) -> None:
        """Wake the next waiting op if there is space for it to try."""
        self.waking = False
        if self.waiting and self._space_to_try():
            self.waking = True
            self.waiting.popleft().succeed()

    def _occupied(self) -> None:
        held = self.reuse.used_bytes + self.stream_bytes
        assert held <= self.capacity_bytes, "global buffer oversubscribed"
        self.ledger.occupy(BUFFER, held)

    def _release(self, nbytes: int) -> None:
        self.stream_bytes -= nbytes
        if self.retry:
            self.waiting.extendleft(reversed(self.retry))
            self.retry.clear()
        if not self.waking:
            self._pass_turn()

    def execute(self, record: OpRecord) -> Process:
        scope = self.scopes[record.id]
        cached, kept, consumed, written_back, pinned = self._reuse(record)
        dram_written_back, drained = self._written_back(scope, written_back)  # before others'
        self._occupied()
        # Wait for enough stream space, then plan the op in what is free and take it.
        outcome = self._try(record, (cached, kept, consumed), woken=False)
        while not isinstance(outcome, OpPlan):
            yield outcome
            outcome = self._try(record, (cached, kept, consumed), woken=True)
        plan = outcome
        self._occupied()
        if self.ledger.details:
            self._log_mapping(record, plan)
        if written_back:
            yield from self.dram.transfer(scope, dram_written_back, "write")
            self.ledger.add(scope, BUFFER, "drain", nbytes=drained)
        if self.zeros is not None:
            self._log_zeros(scope, plan)
        yield from self._pipeline(scope, plan)
        for tensor in pinned:
            self.reuse.pins[tensor] -= 1
        for tensor in {operand.tensor for operand in record.reads}:
            self.reuse.pending[tensor] -= 1
            if self.reuse.pending[tensor] == 0:
                self.reuse.drop(tensor)
        self._release(plan.footprint_bytes)

    def _written_back(self, scope: Scope, dense_bytes: int) -> tuple[int, int]:
        """DRAM bytes and buffer bytes of the `dense_bytes` the reuse share just evicted: in
        their DRAM format and their buffer format (`compression.sram`) when these compress
        them (the savings counted by role)."""
        victims, operands = self.reuse.written_back, self.kept_operands
        if not dense_bytes or victims is None or operands is None or self.zeros is None:
            return dense_bytes, dense_bytes
        compression = self.zeros.sparsity.compression
        moved = {"dram": dense_bytes, BUFFER: dense_bytes}
        for victim in victims:
            operand = operands[victim]
            size = self._bytes(operand)
            bits = bits_of(operand, self.arch.precision)
            for level, form in (("dram", compression.dram), (BUFFER, compression.sram)):
                cut = size - self.zeros.scaled(size, operand, form, bits)
                if cut:
                    self.ledger.add(scope, level, action(SAVED, operand.role.value), nbytes=cut)
                moved[level] -= cut
        victims.clear()
        return moved["dram"], moved[BUFFER]

    def _log_zeros(self, scope: Scope, plan: OpPlan) -> None:
        """The DRAM bytes compression saved and the MACs zeros gated, by role."""
        for role, saved in plan.saved_by_role:
            self.ledger.add(scope, "dram", action(SAVED, role), nbytes=saved)
        for role, saved in plan.buffer_saved_by_role:
            self.ledger.add(scope, BUFFER, action(SAVED, role), nbytes=saved)
        if plan.skipped_macs:
            self.ledger.add(
                scope, "pe_array", action(SKIPPED, plan.gating_roles), count=plan.skipped_macs
            )

    def _pipeline(self, scope: Scope, plan: OpPlan) -> Process:
        """Prologue (first tile in), steady state (DRAM, array and buffer port side by side),
        epilogue (last tile computed and written)."""
        stages = self.planner.pipelines.get(id(plan))
        if stages is None or stages[0] is not plan:
            stages = self.planner.pipelines[id(plan)] = self._stages(plan)
        _, first_read, middle, last, last_write = stages
        # The buffer fills and drains what DRAM moves, in the buffer's format.
        self.ledger.add(scope, BUFFER, "fill", nbytes=plan.fill_bytes)
        self.ledger.add(scope, BUFFER, "drain", nbytes=plan.drain_bytes)
        self.ledger.add(scope, BUFFER, "read", nbytes=plan.buffer_read_bytes)
        self.ledger.add(scope, BUFFER, "write", nbytes=plan.buffer_write_bytes)
        if first_read > 0:
            yield from self.dram.move(scope, first_read, 0)
        skipping = plan.skipped_macs > 0
        if middle is not None:
            work, streams = middle
            yield self._stage(scope, *work, skipping=skipping, streams=streams)
        yield self._stage(scope, *last, skipping=skipping)
        if last_write > 0:
            yield from self.dram.move(scope, 0, last_write)

    def _stages(self, plan: OpPlan) -> tuple:
        """The pipeline of `plan`: its first tile's DRAM reads; the steady state's work
        (cycles, port cycles, MACs, vector ops, buffer bytes) and DRAM streams (reads,
        writes), None for one step; the last tile's work; its DRAM writes (kept by the
        planner with the plan: the same for every op that runs it)."""
        steps = plan.steps
        bandwidth = self.buffer.bandwidth_bytes_per_cycle
        moved = plan.buffer_read_bytes + plan.buffer_write_bytes
        work = (plan.compute_cycles, ceil_div(moved, bandwidth), plan.macs, plan.vector_ops, moved)
        last = tuple(ceil_div(amount, steps) for amount in work)
        first_read = ceil_div(plan.dram_read_bytes, steps)
        last_write = ceil_div(plan.dram_write_bytes, steps)
        middle = None
        if steps > 1:
            middle = (
                tuple(amount - tail for amount, tail in zip(work, last, strict=True)),
                (plan.dram_read_bytes - first_read, plan.dram_write_bytes - last_write),
            )
        return plan, first_read, middle, last, last_write

    def _stage(
        self,
        scope: Scope,
        cycles: int,
        port_cycles: int,
        macs: int,
        vector_ops: int,
        moved_bytes: int,
        *,
        skipping: bool = False,
        streams: tuple[int, int] = (0, 0),
    ) -> simpy.Event:
        """The array (or the vector unit), the buffer port and the DRAM `streams` (reads,
        writes) side by side: the event that succeeds when all are done.  `skipping`: an op
        on the array whose MACs zeros gate (all of them, perhaps)."""
        unit = self.pe if macs or skipping else self.vector
        jobs = [
            job
            for job in (
                self.dram.stream(scope, *streams),
                unit.job(scope, cycles, macs, vector_ops),
                self.port.job(port_cycles, moved_bytes, scope.priority),
            )
            if job is not None
        ]
        done = self.env.event()
        left = len(jobs)

        def one(_: simpy.Event) -> None:
            nonlocal left
            left -= 1
            if not left:
                done.succeed()

        for job in jobs:
            job.callbacks.append(one)
        if not jobs:
            done.succeed()
        return done

    def _nest_columns(self, record: OpRecord, plan: OpPlan) -> dict:
        """A matmul's or conv's mapping.csv columns: loop order, tiles, and how many times
        each operand's bytes go between DRAM and the buffer."""
        mapping = plan.mapping
        assert mapping is not None
        operands = (*record.reads, *record.writes)
        by_tensor = {o.tensor: operand_bytes(o, self.arch.precision) for o in operands}
        a, b, c = plan.operands
        output = mapping.output_write_bytes + mapping.partial_bytes
        return {
            "loop_order": mapping.order,
            "tile_m": mapping.tiles[0],
            "tile_k": mapping.tiles[1],
            "tile_n": mapping.tiles[2],
            "tensor_a": a,
            "tensor_b": b,
            "tensor_c": c,
            "reread_a": mapping.read_bytes[0] / by_tensor[a] if by_tensor[a] else 0.0,
            "reread_b": mapping.read_bytes[1] / by_tensor[b] if by_tensor[b] else 0.0,
            "writes_c": output / by_tensor[c] if by_tensor[c] else 0.0,
        }

    def _log_mapping(self, record: OpRecord, plan: OpPlan) -> None:
        mapping = plan.mapping
        dram_cycles = ceil_div(
            plan.dram_read_bytes + plan.dram_write_bytes, self.dram.bytes_per_cycle
        )
        buffer_cycles = ceil_div(
            plan.buffer_read_bytes + plan.buffer_write_bytes,
            self.buffer.bandwidth_bytes_per_cycle,
        )
        bound = max(
            (plan.compute_cycles, "compute"),
            (buffer_cycles, "buffer"),
            (dram_cycles, "dram"),
            key=lambda pair: pair[0],
        )[1]
        row = {
            "id": record.id,
            "layer": record.layer,
            "phase": record.phase.value,
            "op": record.op.kind,
            "loop_order": "stream",
            "tile_m": 0,
            "tile_k": 0,
            "tile_n": 0,
            "steps": plan.steps,
            "tensor_a": "",
            "tensor_b": "",
            "tensor_c": "",
            "reread_a": 1.0,
            "reread_b": 1.0,
            "writes_c": 1.0,
            "footprint_bytes": plan.footprint_bytes,
            "dram_read_bytes": plan.dram_read_bytes,
            "dram_write_bytes": plan.dram_write_bytes,
            "compute_cycles": plan.compute_cycles,
            "buffer_cycles": buffer_cycles,
            "dram_cycles": dram_cycles,
            "bound": bound,
        }
        if mapping is not None:
            row.update(self._nest_columns(record, plan))
        self.ledger.log_mapping(row, MAPPING_KINDS)
