"""The distributed-memory substrate: tiles with local SRAM and MACs, joined by a NoC.

Weights stay in their layer's storage region (hwsim.sim.mapping).  A tensor lives where it was
written; another region that reads it gets a copy over the NoC (forward activations are
multicast to the next dense layer's tiles; a convolution's tiles receive only their input
window plus halo).  A convolution that time-shares the chip reloads its weights into the
borrowed tiles every time it runs.  BP's error for the layer below moves partial sums — or the
transposed weights — across the network: the weight-transport problem made visible.  DFA
multicasts the C-element output error to every tile of a hidden layer; SSDFA delivers to each
tile only the errors its neurons listen to.  Updates are local.  Spilled weights are read from
(and written to) DRAM; so are activations and errors that overflow a tile's reserve.

Which region an error feeds comes from the data flow, never from tensor names: partial sums
stay where they were computed until the first record that reads the error asks for them, and
are then reduced into that record's region.  Fetches overlap compute: an op whose operands
take more than half a tile's reserve is cut into blocks, and the blocks after the first arrive
while the tiles compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import simpy

from hwsim.errors import CapacityError
from hwsim.sim.components import Dram, Ledger, Process, Scope, ceil_div
from hwsim.sim.dist_conv import input_window_elements, map_copies
from hwsim.sim.dist_gemm import operand_copies, row_products
from hwsim.sim.dist_store import RESIDENT_ROLES, SRAM, Pending, StorePath, saved_at
from hwsim.sim.dist_tiles import TileGroups
from hwsim.sim.mapping import (
    ConvGroup,
    Placement,
    Region,
    conv_groups,
    distinct_errors_per_tile,
    place,
    reserve_bytes,
)
from hwsim.sim.noc import MEMORY, Network, Transfer
from hwsim.sim.schedule import critical_path_ranks
from hwsim.sim.sparsity import SAVED, SKIPPED, Zeros, action
from hwsim.sim.tiling import bits_of, compute_cycles, gemm_slots, operand_bytes
from hwsim.specs.arch import BackwardTransport, DistributedSpec
from hwsim.specs.sparsity import CompressionFormat
from hwsim.specs.trace import (
    Conv2DOp,
    GatherOp,
    MatmulOp,
    Operand,
    OpRecord,
    Phase,
    Role,
    Slot,
    TraceHeader,
)

MAP_ROLES = (Role.INPUT, Role.ACTIVATION)  # a convolution's input map: read as windows


@dataclass(frozen=True)
class Move:
    """One piece of an op's fetch: bytes read from DRAM, then a NoC transfer into `region`."""

    dram_read_bytes: int
    transfer: Transfer | None
    region: Region
    scope: Scope | None = None  # whom the transfer is counted for; None: the op that fetches
    # With compression (hwsim.sim.sparsity): the bytes the tiles receive once decompressed
    # (None: what the NoC delivers), and what each level did not move: (component, role,
    # bytes).
    dense_delivered_bytes: int | None = None
    saved: tuple[tuple[str, str, int], ...] = ()
    partial_sums: bool = False  # partial sums reduced into the reader (accumulator precision)

    def part(self, share: int, parts: int) -> Move:
        transfer = None if self.transfer is None else self.transfer.part(share, parts)
        return Move(
            self.dram_read_bytes * share // parts,
            transfer,
            self.region,
            self.scope,
            partial_sums=self.partial_sums,
        )

    @property
    def received_bytes(self) -> int:
        """What the move writes into its tiles' SRAM, dense (decompressed as it arrives)."""
        if self.dense_delivered_bytes is not None:
            return self.dense_delivered_bytes
        return 0 if self.transfer is None else self.transfer.delivered_bytes


class DistributedSubstrate(StorePath):
    def __init__(
        self,
        env: simpy.Environment,
        arch: DistributedSpec,
        header: TraceHeader,
        ledger: Ledger,
        records: Sequence[OpRecord] = (),
    ) -> None:
        self.env = env
        self.arch = arch
        self.ledger = ledger
        self.network_name = header.network
        self.tile_spec = arch.tiles
        self.noc = arch.noc
        self.placement: Placement = place(header, arch, conv_groups(records))
        self.network = Network(env, self.noc, self.placement, ledger)
        self.geometry = self.network.geometry
        dram = arch.dram
        self.dram = Dram(
            env, dram.channels, dram.bandwidth_bytes_per_cycle, dram.latency_cycles, ledger
        )
        self.tiles = TileGroups(env, self.tile_spec.count, ledger)
        self.reserve_bytes = reserve_bytes(arch)
        self.feedback = header.feedback_by_layer
        self.norm_layers = {
            layer.name: (layer.type, layer.output_shape[-1])
            for layer in header.layers
            if layer.type in ("batch_norm", "layer_norm")
        }
        self.row_products = row_products(header, records)
        self.home: dict[str, Region] = {}
        # tensor → the regions holding a copy: one region's key, or a set of keys once there
        # are more (a 200,000-record step writes 150,000 tensors: a set each is 36 MB)
        self.copies: dict[str, str | set[str]] = {}
        self.spilled: dict[str, int] = {}  # tensor → bytes of it kept in DRAM
        self.pending: dict[str, Pending] = {}
        self.dram_bytes = self.placement.spilled_bytes  # what the substrate keeps in DRAM
        self.in_dram: set[str] = set()
        self.zeros = Zeros.of(arch, header)
        self.rank = critical_path_ranks(
            records, {record.id: self._alone(record) for record in records}
        )

    def _alone(self, record: OpRecord) -> int:
        """A record's cycles alone, roughly: compute on its tiles, or its operands over one
        link into them, or its spilled share from DRAM — for ranking only."""
        region, _ = self._region(record)
        tiles = self.tile_spec
        compute = compute_cycles(
            record,
            vector_ops_per_cycle=region.tiles * tiles.vector_ops_per_cycle,
            macs_per_cycle=region.tiles * tiles.macs_per_cycle,
        )
        own = self.placement.region_of(record.layer)
        moved = sum(
            self._bytes(operand)
            for operand in record.reads
            if operand.role not in RESIDENT_ROLES or region.key != own.key
        )
        spilled = math.ceil(
            sum(
                self._bytes(operand)
                for operand in (*record.reads, *record.writes)
                if operand.role in RESIDENT_ROLES
            )
            * own.spilled_fraction
        )
        return max(
            compute,
            ceil_div(moved, self.noc.link_bandwidth_bytes_per_cycle),
            ceil_div(spilled, self.dram.bytes_per_cycle),
        )

    def _bytes(self, operand: Operand) -> int:
        return operand_bytes(operand, self.arch.precision)

    def _compressed(self, nbytes: int, operand: Operand, level: str) -> int:
        """`nbytes` of `operand` as `level` (`dram`, `noc`, `sram`) holds or moves it."""
        zeros = self.zeros
        if zeros is None:
            return nbytes
        form: CompressionFormat = getattr(zeros.sparsity.compression, level)
        return zeros.scaled(nbytes, operand, form, bits_of(operand, self.arch.precision))

    def _from_dram(self, nbytes: int, operand: Operand, region: Region) -> Move:
        """`nbytes` of `operand` read from DRAM and scattered into `region`."""
        dram = self._compressed(nbytes, operand, "dram")
        noc = self._compressed(nbytes, operand, "noc")
        move = Move(dram, self.geometry.scatter(noc, MEMORY, region), region)
        if dram == nbytes and noc == nbytes:
            return move
        saved = saved_at(operand, ("dram", nbytes - dram), ("noc", nbytes - noc))
        return Move(move.dram_read_bytes, move.transfer, region, None, nbytes, saved)

    def _keep_in_dram(self, nbytes: int, what: str) -> None:
        self.dram_bytes += nbytes
        capacity = self.arch.dram.capacity_bytes
        if capacity is not None and self.dram_bytes > capacity:
            raise CapacityError(
                "dram.capacity_bytes",
                f"{self.network_name} needs {self.dram_bytes:,} bytes of DRAM ({what}) "
                f"(got {capacity:,})",
            )

    # -- where an op runs -----------------------------------------------------------------

    def _region(self, record: OpRecord) -> tuple[Region, ConvGroup | None]:
        own = self.placement.region_of(record.layer)
        group = self.placement.group_of(record.layer)
        if group is not None and isinstance(record.op, Conv2DOp):
            return group.region, group
        if _beside_resident(record):
            return own, None  # next to the weights, feedback or optimizer state it reads
        return (group.region, None) if group is not None else (own, None)

    def execute(self, record: OpRecord, region: Region | None = None) -> Process:
        scope = Scope(record.layer, record.phase.value, self.rank[record.id])
        own = self.placement.region_of(record.layer)
        transport = (
            record.phase == Phase.ERROR
            and not isinstance(record.op, Conv2DOp)
            and any(o.role == Role.WEIGHT for o in record.reads)
        )
        transpose = self.arch.mapping.backward == BackwardTransport.TRANSPOSE_WEIGHTS
        if transport and transpose and region is None:
            for operand in record.writes:  # computed in the region that first reads it
                self.pending[operand.tensor] = Pending(scope, own, record=record)
            return
        partial_sums = transport and not transpose
        group = None
        if region is None:
            region, group = self._region(record)
        for operand in record.reads:
            pending = self.pending.get(operand.tensor)
            if pending is not None and pending.record is not None:
                del self.pending[operand.tensor]
                yield from self.execute(pending.record, region)
        fetched = [
            (operand, self._fetch(scope, record, operand, own, region, group))
            for operand in record.reads
        ]
        moves = [move for _, some in fetched for move in some]
        read_bytes, write_bytes, received = self._sram_bytes(scope, record, fetched)
        cycles = self._cycles(record, region, read_bytes + write_bytes)
        macs = record.macs
        if self.zeros is not None:
            macs -= self._log_zeros(scope, record, moves)
        yield from self._fetch_and_compute(scope, moves, region, cycles, received)
        if macs:
            self.ledger.add(scope, "tiles", "mac", count=macs, cycles=cycles)
        if record.other_ops:
            self.ledger.add(
                scope,
                "tiles",
                "vector_op",
                count=record.other_ops,
                cycles=0 if record.macs else cycles,
            )
        self.ledger.add(scope, SRAM, "read", nbytes=read_bytes)
        self.ledger.add(scope, SRAM, "write", nbytes=write_bytes + received)
        yield from self._store(scope, record, own, region, group, partial_sums)

    def _sram_bytes(
        self, scope: Scope, record: OpRecord, fetched: list[tuple[Operand, list[Move]]]
    ) -> tuple[int, int, int]:
        """The tile SRAM bytes the op reads, writes and receives (what its moves bring in):
        dense, or for the compressed roles in `compression.sram`'s format (the bytes saved
        counted by role); partial sums, at accumulator precision, stay dense."""
        zeros = self.zeros
        if zeros is None or zeros.sparsity.compression.sram == CompressionFormat.NONE:
            return (
                sum(self._bytes(operand) for operand in record.reads),
                sum(self._bytes(operand) for operand in record.writes),
                sum(move.received_bytes for _, moves in fetched for move in moves),
            )
        reads = [(operand, self._bytes(operand)) for operand in record.reads]
        writes = [(operand, self._bytes(operand)) for operand in record.writes]
        received = [
            (operand, sum(move.received_bytes for move in moves if not move.partial_sums))
            for operand, moves in fetched
        ]
        partial = sum(
            move.received_bytes for _, moves in fetched for move in moves if move.partial_sums
        )
        totals = [sum(nbytes for _, nbytes in part) for part in (reads, writes, received)]
        saved: dict[str, int] = {}
        for index, part in enumerate((reads, writes, received)):
            for operand, nbytes in part:
                cut = nbytes - self._compressed(nbytes, operand, "sram")
                if cut:
                    saved[operand.role.value] = saved.get(operand.role.value, 0) + cut
                    totals[index] -= cut
        for role, nbytes in sorted(saved.items()):
            self.ledger.add(scope, SRAM, action(SAVED, role), nbytes=nbytes)
        return totals[0], totals[1], totals[2] + partial

    def _log_zeros(self, scope: Scope, record: OpRecord, moves: list[Move]) -> int:
        """Count the bytes compression saved the moves and the MACs zeros gate, by role;
        the MACs skipped."""
        assert self.zeros is not None, "only with a sparsity section"
        for move in moves:
            for component, role, nbytes in move.saved:
                self.ledger.add(move.scope or scope, component, action(SAVED, role), nbytes=nbytes)
        skipped, roles = self.zeros.skipped_macs(record)
        if skipped:
            self.ledger.add(scope, "tiles", action(SKIPPED, roles), count=skipped)
        return skipped

    def _cycles(self, record: OpRecord, region: Region, sram_bytes: int) -> int:
        tiles = self.tile_spec
        cycles = compute_cycles(
            record,
            vector_ops_per_cycle=region.tiles * tiles.vector_ops_per_cycle,
            macs_per_cycle=region.tiles * tiles.macs_per_cycle,
        )
        if self.zeros is not None:
            cycles = self.zeros.skip_cycles(cycles, record)
        bandwidth = region.tiles * tiles.sram.bandwidth_bytes_per_cycle
        return max(cycles, ceil_div(sram_bytes, bandwidth))

    # -- double buffering -----------------------------------------------------------------

    def _perform(self, scope: Scope, moves: list[Move]) -> Process:
        """The moves one after another; DRAM streams into the NoC (both busy at once)."""
        for move in moves:
            steps = []
            if move.dram_read_bytes:
                steps.append(self.dram.transfer(scope, move.dram_read_bytes, "read"))
            if move.transfer is not None:
                steps.append(self.network.hold(move.transfer, move.region, scope.priority))
            if len(steps) == 1:
                yield from steps[0]
            elif steps:
                yield self.env.all_of([self.env.process(step) for step in steps])

    def _fetch_and_compute(
        self, scope: Scope, moves: list[Move], region: Region, cycles: int, received: int
    ) -> Process:
        """The first block's operands, then the rest while the tiles compute, then the last
        block's compute; one block when everything fits in half the reserve."""
        for move in moves:
            if move.transfer is not None:
                self.network.count(move.scope or scope, move.transfer)
        per_tile = ceil_div(received, region.tiles)
        blocks = max(1, ceil_div(per_tile, max(1, self.reserve_bytes // 2)))
        if blocks == 1 or cycles == 0 or not moves:
            yield from self._perform(scope, moves)
            yield from self.tiles.hold(region, cycles, scope.priority)
            return
        yield from self._perform(scope, [move.part(1, blocks) for move in moves])
        rest = [move.part(blocks - 1, blocks) for move in moves]
        tail = ceil_div(cycles, blocks)
        yield self.env.all_of(
            [
                self.env.process(self._perform(scope, rest)),
                self.env.process(self.tiles.hold(region, cycles - tail, scope.priority)),
            ]
        )
        yield from self.tiles.hold(region, tail, scope.priority)

    # -- fetching operands ----------------------------------------------------------------

    def _fetch_resident(
        self, operand: Operand, own: Region, region: Region, group: ConvGroup | None
    ) -> list[Move]:
        """A weight-like operand stored on the layer's own tiles: what spilled comes back from
        DRAM; a reloaded or replicated copy goes out to `region` (tile SRAM to tile SRAM:
        dense, as the tiles hold it)."""
        geometry = self.geometry
        moves = []
        nbytes = self._bytes(operand)
        spilled = math.ceil(nbytes * own.spilled_fraction)
        if spilled:
            moves.append(self._from_dram(spilled, operand, own))
        if group is not None and (region.key != own.key or group.partition.spatial_blocks > 1):
            # Reloaded (time-shared) or replicated over the spatial blocks: every tile
            # gets its channel group's share, sent by the tiles that store it.
            per_tile = ceil_div(
                nbytes, group.partition.channel_groups * group.partition.input_groups
            )
            moves.append(
                Move(
                    0,
                    geometry.broadcast(nbytes, own, region, per_tile, sources=own.tiles),
                    region,
                )
            )
        elif region.key != own.key:
            moves.append(Move(0, geometry.scatter(nbytes, own, region), region))
        return moves

    def _fetch(
        self,
        scope: Scope,
        record: OpRecord,
        operand: Operand,
        own: Region,
        region: Region,
        group: ConvGroup | None,
    ) -> list[Move]:
        """What brings one read operand into `region`'s tiles."""
        nbytes = self._bytes(operand)
        geometry = self.geometry
        if operand.role in RESIDENT_ROLES:
            return self._fetch_resident(operand, own, region, group)
        spilled = self.spilled.get(operand.tensor, 0)
        streamed = _streamed(record)  # re-cut over the tiles by every such product
        if not streamed and self._has_copy(operand.tensor, region.key):
            if not spilled:
                return []  # a copy is already here
            return [self._from_dram(spilled, operand, region)]
        moves = []
        if operand.role in (Role.INPUT, Role.LABEL):
            if operand.tensor not in self.in_dram:
                self.in_dram.add(operand.tensor)
                self._keep_in_dram(nbytes, f"the {operand.role.value} data")
            source: Region | None = MEMORY
            dram_read = self._compressed(nbytes, operand, "dram")
        else:
            pending = self.pending.pop(operand.tensor, None)
            if pending is not None:  # partial sums reduced into the region that reads them
                reduction = geometry.reduce(pending.partial_bytes, pending.region, region)
                self._written(operand.tensor, region)
                return [Move(0, reduction, region, pending.scope, partial_sums=True)]
            source = self.home.get(operand.tensor)
            if source is None:
                return []
            dram_read = 0
            if spilled:  # what overflowed its writer's reserve comes back from DRAM
                moves.append(self._from_dram(spilled, operand, region))
            if source.key == region.key and not streamed:
                return moves
        noc = self._compressed(nbytes, operand, "noc")
        transfer = self._transfer(record, operand, noc, source, region, group)
        move = Move(dram_read, transfer, region)
        if noc != nbytes or dram_read != (nbytes if source is MEMORY else 0):
            dense = self._transfer(record, operand, nbytes, source, region, group)
            saved = saved_at(
                operand,
                ("dram", nbytes - dram_read if source is MEMORY else 0),
                ("noc", dense.delivered_bytes - transfer.delivered_bytes),
            )
            move = Move(dram_read, transfer, region, None, dense.delivered_bytes, saved)
        moves.append(move)
        if ceil_div(move.received_bytes, region.tiles) <= self.reserve_bytes:
            self._add_copy(operand.tensor, region.key)  # kept for later
        return moves

    def _transfer(
        self,
        record: OpRecord,
        operand: Operand,
        nbytes: int,
        source: Region | None,
        region: Region,
        group: ConvGroup | None,
    ) -> Transfer:
        geometry = self.geometry
        if isinstance(record.op, MatmulOp) and _streamed(record):
            return self._streamed_transfer(record.op, operand, nbytes, source, region)
        near = (
            source is not None
            and self._is_group(source)
            and self._is_group(region)
            and _overlap(source, region)
        )
        if group is not None and operand.role in MAP_ROLES:
            # A convolution's tiles each receive their input window: halo included, once per
            # channel group (of a grouped conv, the channels of the conv groups it holds).
            op = record.op
            assert isinstance(op, Conv2DOp), "only a convolution's records run on a ConvGroup"
            windows = math.ceil(
                nbytes * input_window_elements(op, group.partition) / max(1, operand.elements)
            )
            delivered = map_copies(
                windows, op.output_channels, group.partition.channel_groups, op.groups
            )
            if near:  # multicast injects each element once for all the tiles that need it
                injected = nbytes if self.noc.multicast else delivered
                return geometry.neighbours(delivered, injected, region)
            sources = 1 if source is None else source.tiles
            return geometry.broadcast(
                nbytes, source, region, ceil_div(delivered, region.tiles), sources
            )
        if group is not None and operand.role == Role.ERROR and group.partition.input_groups > 1:
            # δ of the output map, its slices wanted by the tiles of every input group.
            delivered = group.partition.input_groups * nbytes
            injected = nbytes if self.noc.multicast else delivered
            if near:
                return geometry.neighbours(delivered, injected, region)
            sources = 1 if source is None else source.tiles
            return geometry.broadcast(
                nbytes, source, region, ceil_div(delivered, region.tiles), sources
            )
        if isinstance(record.op, GatherOp) and operand.role == Role.ERROR:
            return self._sparse_errors(record, record.op, nbytes, source, region)
        if isinstance(record.op, MatmulOp) and operand.role != Role.LABEL:
            return geometry.broadcast(nbytes, source, region)  # every tile needs all of it
        # Element-wise work and convolution errors are cut like the tiles' outputs: each
        # tile receives its own slice.
        if near:
            return geometry.neighbours(nbytes, nbytes, region)
        return geometry.scatter(nbytes, source, region)

    def _sparse_errors(
        self, record: OpRecord, op: GatherOp, nbytes: int, source: Region | None, region: Region
    ) -> Transfer:
        """SSDFA's E to a region whose tiles each receive only the errors their neurons listen
        to; tiles that together listen to fewer than C (fewer neurons than classes) need no
        more injected than they receive."""
        wanted = distinct_errors_per_tile(
            self.feedback[record.layer], region.tiles, self.arch.mapping.policy
        )
        per_tile = math.ceil(nbytes * wanted / op.classes)
        injected = min(nbytes, per_tile * region.tiles)
        return self.geometry.broadcast(injected, source, region, per_tile)

    def _streamed_transfer(
        self, op: MatmulOp, operand: Operand, nbytes: int, source: Region | None, region: Region
    ) -> Transfer:
        """Neither operand is stationary: each tile receives its block's rows of a or columns
        of b (hwsim.sim.dist_gemm), re-cut between the tiles when this region made it."""
        copy_a, copy_b = operand_copies(op, region.tiles)
        delivered = (copy_a if operand.slot == Slot.A else copy_b) * nbytes
        if source is not None and source.key == region.key:
            injected = nbytes if self.noc.multicast else delivered
            return self.geometry.neighbours(delivered, injected, region)
        return self.geometry.broadcast(nbytes, source, region, ceil_div(delivered, region.tiles))

    def _is_group(self, region: Region) -> bool:
        group = self.placement.groups.get(region.layer)
        return group is not None and group.region == region


_STREAMED_ROLES = (Role.ACTIVATION, Role.ERROR)


def _streamed(record: OpRecord) -> bool:
    """A matmul with no stationary operand: it reads activations or errors in slots a and b
    and writes one (attention's products; not a weight gradient, computed where it is kept)."""
    if not isinstance(record.op, MatmulOp):
        return False
    a, b, c = gemm_slots(record)
    return (
        record.reads[a].role in _STREAMED_ROLES
        and record.reads[b].role in _STREAMED_ROLES
        and record.writes[c].role in _STREAMED_ROLES
    )


def _beside_resident(record: OpRecord) -> bool:
    """Whether a record runs on its layer's storage tiles, beside the weight-like operands it
    reads: unless they are only per-channel vectors (the `bias` role) of fewer values than the
    rest of what it reads — a batch norm's scale, shift and statistics go to its map on the
    convolution's tiles, not its map to them. Weights, feedback and optimizer state stay put."""
    vectors = other = 0
    for operand in record.reads:
        if operand.role == Role.BIAS:
            vectors += operand.elements
        elif operand.role in RESIDENT_ROLES:
            return True
        else:
            other += operand.elements
    return vectors > 0 and vectors >= other


def _overlap(a: Region, b: Region) -> bool:
    return a.first_tile < b.first_tile + b.tiles and b.first_tile < a.first_tile + a.tiles
