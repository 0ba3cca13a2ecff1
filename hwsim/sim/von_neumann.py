"""The von Neumann substrate: DRAM, one global buffer, one PE array.

Weights, feedback matrices and optimizer state live in DRAM and stream through the buffer
every time an op needs them.  Activations, errors and gradients stay in the buffer's reuse
share between the op that writes them and the ops that read them, as long as they fit (least
recently used out first; written back to DRAM only if evicted while still needed); what the
share does not hold when an op starts is lent to that op's streams.  Each op is cut into
chunks (hwsim.sim.tiling); a loader fills the buffer from DRAM, the PE array computes, a writer
drains results — three processes, two buffer slots per op, so loads overlap compute.  Ops that
the trace lets run together contend for the channels, the buffer and the array.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

import simpy

from hwsim.sim.components import Compute, Dram, Ledger, Process, Scope, ceil_div
from hwsim.sim.tiling import Chunk, operand_bytes, plan_von_neumann
from hwsim.specs.arch import ArchSpec
from hwsim.specs.trace import OpRecord, Role, Trace

BUFFER = "global_buffer"
REUSABLE_ROLES = (Role.INPUT, Role.LABEL, Role.ACTIVATION, Role.ERROR, Role.GRADIENT)


class ReuseShare:
    """Tensors kept in the buffer between ops: least recently used out first."""

    def __init__(self, capacity_bytes: int, pending_reads: Counter[str]) -> None:
        self.capacity_bytes = capacity_bytes
        self.pending = pending_reads  # records that will still read each tensor
        self.held: OrderedDict[str, tuple[int, bool]] = OrderedDict()  # tensor → bytes, dirty
        self.used_bytes = 0

    def __contains__(self, tensor: str) -> bool:
        return tensor in self.held

    def touch(self, tensor: str) -> None:
        self.held.move_to_end(tensor)

    def drop(self, tensor: str) -> None:
        if tensor in self.held:
            self.used_bytes -= self.held.pop(tensor)[0]

    def keep(self, tensor: str, nbytes: int, dirty: bool) -> int | None:
        """Hold `tensor`; None if it cannot fit, else the bytes of still-needed dirty tensors
        evicted to make room (the caller writes them back to DRAM)."""
        self.drop(tensor)
        if nbytes > self.capacity_bytes:
            return None
        written_back = 0
        while self.used_bytes + nbytes > self.capacity_bytes:
            victim, (size, victim_dirty) = self.held.popitem(last=False)
            self.used_bytes -= size
            if victim_dirty and self.pending[victim] > 0:
                written_back += size
        self.held[tensor] = (nbytes, dirty)
        self.used_bytes += nbytes
        return written_back


class VonNeumannSubstrate:
    def __init__(self, env: simpy.Environment, arch: ArchSpec, trace: Trace,
                 ledger: Ledger) -> None:
        self.env = env
        self.arch = arch
        self.ledger = ledger
        dram = arch.dram
        self.dram = Dram(env, dram.channels, dram.bandwidth_bytes_per_cycle,
                         dram.latency_cycles, ledger)
        buffer = arch.global_buffer
        self.capacity_bytes = buffer.capacity_bytes
        pending = Counter(operand.tensor for record in trace.records
                          for operand in {o.tensor: o for o in record.reads}.values())
        self.reuse = ReuseShare(int(buffer.capacity_bytes * buffer.reuse_fraction), pending)
        # Streams may use whatever the reuse share does not hold when an op starts.
        self.space = simpy.Container(env, capacity=self.capacity_bytes, init=self.capacity_bytes)
        self.pe = Compute(env, "pe_array", "pe_array", ledger)

    def _bytes(self, operand) -> int:
        return operand_bytes(operand, self.arch.precision)

    def _reuse(self, record: OpRecord) -> tuple[frozenset[int], frozenset[int], int]:
        """Which reads the buffer already holds, which writes it keeps, bytes to write back."""
        cached, kept, written_back = set(), set(), 0
        for index, operand in enumerate(record.reads):
            if operand.tensor in self.reuse:
                self.reuse.touch(operand.tensor)
                cached.add(index)
            elif operand.role in REUSABLE_ROLES and self.reuse.pending[operand.tensor] > 1:
                written_back += self.reuse.keep(operand.tensor, self._bytes(operand), False) or 0
        for index, operand in enumerate(record.writes):
            if operand.role not in REUSABLE_ROLES:
                self.reuse.drop(operand.tensor)
                continue
            if self.reuse.capacity_bytes and self.reuse.pending[operand.tensor] == 0:
                kept.add(index)  # nothing reads it later: it never leaves the chip
                continue
            evicted = self.reuse.keep(operand.tensor, self._bytes(operand), True)
            if evicted is not None:
                kept.add(index)
                written_back += evicted
        return frozenset(cached), frozenset(kept), written_back

    def execute(self, record: OpRecord) -> Process:
        env = self.env
        scope = Scope(record.layer, record.phase.value)
        cached, kept, written_back = self._reuse(record)
        stream_bytes = self.capacity_bytes - self.reuse.used_bytes
        chunks = plan_von_neumann(record, self.arch.precision, stream_bytes,
                                  self.arch.pe_array, cached, kept)
        if written_back:
            yield from self.dram.transfer(scope, written_back, "write")
            self.ledger.add(scope, BUFFER, "drain", nbytes=written_back)
        slots = simpy.Resource(env, capacity=2)
        loaded = [env.event() for _ in chunks]
        computed = [env.event() for _ in chunks]
        env.process(self._load(scope, chunks, slots, loaded, stream_bytes // 2))
        env.process(self._compute(scope, chunks, loaded, computed))
        for chunk, done in zip(chunks, computed, strict=True):
            slot, space = yield done
            yield from self.dram.transfer(scope, chunk.dram_write_bytes, "write")
            self.ledger.add(scope, BUFFER, "drain", nbytes=chunk.dram_write_bytes)
            yield self.space.put(space)
            slots.release(slot)
        for tensor in {operand.tensor for operand in record.reads}:
            self.reuse.pending[tensor] -= 1
            if self.reuse.pending[tensor] == 0:
                self.reuse.drop(tensor)

    def _load(self, scope: Scope, chunks: list[Chunk], slots: simpy.Resource,
              loaded: list[simpy.Event], half: int) -> Process:
        for chunk, done in zip(chunks, loaded, strict=True):
            slot = slots.request()
            yield slot
            space = max(1, min(chunk.footprint_bytes, half))
            yield self.space.get(space)
            yield from self.dram.transfer(scope, chunk.dram_read_bytes, "read")
            self.ledger.add(scope, BUFFER, "fill", nbytes=chunk.dram_read_bytes)
            done.succeed((slot, space))

    def _compute(self, scope: Scope, chunks: list[Chunk], loaded: list[simpy.Event],
                 computed: list[simpy.Event]) -> Process:
        bandwidth = self.arch.global_buffer.bandwidth_bytes_per_cycle
        for chunk, ready, done in zip(chunks, loaded, computed, strict=True):
            held = yield ready
            moved = chunk.buffer_read_bytes + chunk.buffer_write_bytes
            cycles = max(chunk.compute_cycles, ceil_div(moved, bandwidth))
            start = self.env.now
            yield from self.pe.run(scope, cycles, chunk.macs, chunk.vector_ops)
            self.ledger.busy(BUFFER, start, self.env.now, moved)
            self.ledger.add(scope, BUFFER, "read", nbytes=chunk.buffer_read_bytes)
            self.ledger.add(scope, BUFFER, "write", nbytes=chunk.buffer_write_bytes)
            done.succeed(held)
