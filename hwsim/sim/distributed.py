"""The distributed-memory substrate: tiles with local SRAM and MACs, joined by a NoC.

Weights stay in their region's SRAM.  A tensor lives where it was written; another region that
reads it gets a copy over the NoC (forward activations are multicast to the next layer's
tiles).  BP's error for the layer below moves partial sums — or the transposed weights — across
the network: the weight-transport problem made visible.  DFA multicasts the C-element output
error to every tile of a hidden layer; SSDFA delivers to each tile only the errors its neurons
listen to.  Updates are local.  Spilled weights are read from (and written to) DRAM.
"""

from __future__ import annotations

import math

import simpy

from hwsim.sim.components import Compute, Dram, Ledger, Process, Scope, ceil_div
from hwsim.sim.mapping import Placement, Region, distinct_errors_per_tile, place
from hwsim.sim.noc import MEMORY, Network
from hwsim.sim.tiling import compute_cycles, operand_bytes
from hwsim.specs.arch import ArchSpec, BackwardTransport
from hwsim.specs.trace import GatherOp, Operand, OpRecord, Phase, Role, TraceHeader

RESIDENT_ROLES = (Role.WEIGHT, Role.BIAS, Role.OPTIMIZER_STATE, Role.FEEDBACK)
SRAM = "tile_sram"


class DistributedSubstrate:
    def __init__(self, env: simpy.Environment, arch: ArchSpec, header: TraceHeader,
                 ledger: Ledger, source: str = "arch") -> None:
        self.env = env
        self.arch = arch
        self.ledger = ledger
        self.placement: Placement = place(header, arch, source)
        self.network = Network(env, arch.noc, self.placement, ledger)
        self.geometry = self.network.geometry
        dram = arch.dram
        self.dram = Dram(env, dram.channels, dram.bandwidth_bytes_per_cycle,
                         dram.latency_cycles, ledger)
        self.compute = {name: Compute(env, "tiles", f"tiles.{name}", ledger)
                        for name in self.placement.regions}
        self.feedback = {info.layer: info for info in header.feedback}
        self.home: dict[str, Region] = {}
        self.copies: dict[str, set[str]] = {}

    def _bytes(self, operand: Operand) -> int:
        return operand_bytes(operand, self.arch.precision)

    def execute(self, record: OpRecord) -> Process:
        scope = Scope(record.layer, record.phase.value)
        own = self.placement.region_of(record.layer)
        weight_transport = record.phase == Phase.ERROR and any(
            operand.role == Role.WEIGHT for operand in record.reads)
        destination = own
        if weight_transport:
            below = record.writes[0].tensor.removesuffix(".error")
            destination = self.home.get(below, own)
        transpose = weight_transport and \
            self.arch.mapping.backward == BackwardTransport.TRANSPOSE_WEIGHTS
        region = destination if transpose else own
        received = 0
        for operand in record.reads:
            received += yield from self._fetch(scope, record, operand, own, region)
        read_bytes = sum(self._bytes(operand) for operand in record.reads)
        write_bytes = sum(self._bytes(operand) for operand in record.writes)
        yield from self._run(scope, record, region, read_bytes + write_bytes)
        self.ledger.add(scope, SRAM, "read", nbytes=read_bytes)
        self.ledger.add(scope, SRAM, "write", nbytes=write_bytes + received)
        for operand in record.writes:
            if weight_transport and not transpose:
                partial = operand.elements * self.arch.precision.accumulator_bits // 8
                transfer = self.geometry.reduce(partial, own, destination)
                yield from self.network.send(scope, transfer, destination)
                self.ledger.add(scope, SRAM, "write", nbytes=transfer.delivered_bytes)
                self._written(operand.tensor, destination)
            elif operand.role in RESIDENT_ROLES:
                yield from self._spill(scope, own, self._bytes(operand), "write")
            else:
                self._written(operand.tensor, region)

    def _written(self, tensor: str, region: Region) -> None:
        self.home[tensor] = region
        self.copies[tensor] = {region.layer}

    def _spill(self, scope: Scope, owner: Region, nbytes: int, action: str) -> Process:
        spilled = math.ceil(nbytes * owner.spilled_fraction)
        if spilled:
            yield from self.dram.transfer(scope, spilled, action)
            transfer = self.geometry.scatter(spilled, MEMORY, owner)
            yield from self.network.send(scope, transfer, owner)

    def _fetch(self, scope: Scope, record: OpRecord, operand: Operand, own: Region,
               region: Region) -> Process:
        """Bring one read operand to `region`; returns the bytes written into its tiles."""
        nbytes = self._bytes(operand)
        if operand.role in RESIDENT_ROLES:
            yield from self._spill(scope, own, nbytes, "read")
            if region is own:
                return 0
            transfer = self.geometry.scatter(nbytes, own, region)
        elif region.layer in self.copies.get(operand.tensor, ()):
            return 0
        elif operand.role in (Role.INPUT, Role.LABEL):
            yield from self.dram.transfer(scope, nbytes, "read")
            transfer = (self.geometry.broadcast(nbytes, MEMORY, region)
                        if operand.role == Role.INPUT
                        else self.geometry.scatter(nbytes, MEMORY, region))
        else:
            source = self.home.get(operand.tensor)
            if source is None or source is region:
                return 0
            per_tile = None
            if isinstance(record.op, GatherOp) and operand.role == Role.ERROR:
                wanted = distinct_errors_per_tile(self.feedback[record.layer], region.tiles,
                                                  self.arch.mapping.policy)
                per_tile = math.ceil(nbytes * wanted / record.op.classes)
            transfer = self.geometry.broadcast(nbytes, source, region, per_tile)
        yield from self.network.send(scope, transfer, region)
        self.copies.setdefault(operand.tensor, set()).add(region.layer)
        return transfer.delivered_bytes

    def _run(self, scope: Scope, record: OpRecord, region: Region, sram_bytes: int) -> Process:
        tiles = self.arch.tiles
        cycles = compute_cycles(record, vector_ops_per_cycle=region.tiles *
                                tiles.vector_ops_per_cycle,
                                macs_per_cycle=region.tiles * tiles.macs_per_cycle)
        bandwidth = region.tiles * tiles.sram.bandwidth_bytes_per_cycle
        cycles = max(cycles, ceil_div(sram_bytes, bandwidth))
        yield from self.compute[region.layer].run(scope, cycles, record.macs, record.other_ops)
