"""The von Neumann substrate: DRAM, one global buffer, one PE array.

Weights, activations, feedback matrices and optimizer state live in DRAM.  Each op is cut into
chunks (hwsim.sim.tiling); a loader fills the buffer from DRAM, the PE array computes, a writer
drains results — three processes, two buffer slots per op, so loads overlap compute.  Ops that
the trace lets run together contend for the channels, the buffer space and the array.
"""

from __future__ import annotations

import simpy

from hwsim.sim.components import Compute, Dram, Ledger, Process, Scope, ceil_div
from hwsim.sim.tiling import Chunk, plan_von_neumann
from hwsim.specs.arch import ArchSpec
from hwsim.specs.trace import OpRecord, TraceHeader

BUFFER = "global_buffer"


class VonNeumannSubstrate:
    def __init__(self, env: simpy.Environment, arch: ArchSpec, header: TraceHeader,
                 ledger: Ledger) -> None:
        self.env = env
        self.arch = arch
        self.ledger = ledger
        dram = arch.dram
        self.dram = Dram(env, dram.channels, dram.bandwidth_bytes_per_cycle,
                         dram.latency_cycles, ledger)
        capacity = arch.global_buffer.capacity_bytes
        self.half_buffer = capacity // 2
        self.space = simpy.Container(env, capacity=capacity, init=capacity)
        self.pe = Compute(env, "pe_array", "pe_array", ledger)

    def plan(self, record: OpRecord) -> list[Chunk]:
        return plan_von_neumann(record, self.arch.precision,
                                self.arch.global_buffer.capacity_bytes, self.arch.pe_array)

    def execute(self, record: OpRecord) -> Process:
        env = self.env
        scope = Scope(record.layer, record.phase.value)
        chunks = self.plan(record)
        slots = simpy.Resource(env, capacity=2)
        loaded = [env.event() for _ in chunks]
        computed = [env.event() for _ in chunks]
        env.process(self._load(scope, chunks, slots, loaded))
        env.process(self._compute(scope, chunks, loaded, computed))
        for chunk, done in zip(chunks, computed, strict=True):
            slot, space = yield done
            yield from self.dram.transfer(scope, chunk.dram_write_bytes, "write")
            self.ledger.add(scope, BUFFER, "drain", nbytes=chunk.dram_write_bytes)
            yield self.space.put(space)
            slots.release(slot)

    def _load(self, scope: Scope, chunks: list[Chunk], slots: simpy.Resource,
              loaded: list[simpy.Event]) -> Process:
        for chunk, done in zip(chunks, loaded, strict=True):
            slot = slots.request()
            yield slot
            space = max(1, min(chunk.footprint_bytes, self.half_buffer))
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
