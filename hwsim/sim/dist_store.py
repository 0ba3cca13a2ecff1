"""The distributed substrate's storing of results: what an op writes stays in its tiles, is
summed over a convolution's partition (or, a normalization's per-channel or per-row sums and
attention's softmax row sums, over the tiles holding each channel or row), waits as partial
sums for its reader, or is spilled to DRAM beyond the activation reserve.  A part of
DistributedSubstrate (hwsim.sim.distributed), apart by concept."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import simpy

from hwsim.errors import CapacityError
from hwsim.sim.components import Dram, Ledger, Process, Scope, ceil_div
from hwsim.sim.dist_conv import input_window_elements, map_copies
from hwsim.sim.dist_gemm import ROW_REDUCING, row_holders_of
from hwsim.sim.dist_norm import channel_holders, row_holders, statistics_exchange
from hwsim.sim.mapping import ConvGroup, Placement, Region
from hwsim.sim.noc import MEMORY, Geometry, Network, Transfer
from hwsim.sim.sparsity import SAVED, Zeros, action
from hwsim.sim.tiling import bits_of
from hwsim.specs.arch import DistributedSpec
from hwsim.specs.trace import (
    Conv2DOp,
    ElementwiseOp,
    MatmulOp,
    Operand,
    OpRecord,
    ReduceOp,
    Role,
)
from hwsim.units import bits_to_bytes

RESIDENT_ROLES = (Role.WEIGHT, Role.BIAS, Role.OPTIMIZER_STATE, Role.FEEDBACK)
HELD_ROLES = (Role.ACTIVATION, Role.ERROR)  # what the activation reserve must hold
_PARTITIONED_ROLES = (Role.GRADIENT, Role.ACTIVATION, Role.ERROR)  # summed over a partition
SRAM = "tile_sram"


@dataclass(frozen=True)
class Pending:
    """An error not yet delivered: partial sums in `region`, or a whole transposed product."""

    scope: Scope
    region: Region
    partial_bytes: int = 0
    record: OpRecord | None = None  # transpose_weights: computed where it is consumed


def _is(op: object, kind: type, function: str) -> bool:
    return isinstance(op, kind) and getattr(op, "function", None) == function


def saved_at(operand: Operand, *levels: tuple[str, int]) -> tuple[tuple[str, str, int], ...]:
    """(component, role, bytes) of the levels where compression moved fewer (or more) bytes."""
    return tuple((level, operand.role.value, nbytes) for level, nbytes in levels if nbytes)


class StorePath:
    """The storing half of DistributedSubstrate: the state it shares, and what it calls."""

    arch: DistributedSpec
    ledger: Ledger
    placement: Placement
    norm_layers: dict[str, tuple[str, int]]  # normalization layer → (type, channels)
    row_products: dict[str, MatmulOp]  # attention scores (and their error) → its product
    dram: Dram
    network: Network
    geometry: Geometry
    reserve_bytes: int
    zeros: Zeros | None
    home: dict[str, Region]
    copies: dict[str, str | set[str]]
    spilled: dict[str, int]
    pending: dict[str, Pending]

    def _bytes(self, operand: Operand) -> int:
        raise NotImplementedError

    def _compressed(self, nbytes: int, operand: Operand, level: str) -> int:
        raise NotImplementedError

    def _keep_in_dram(self, nbytes: int, what: str) -> None:
        raise NotImplementedError

    def _store(
        self,
        scope: Scope,
        record: OpRecord,
        own: Region,
        region: Region,
        group: ConvGroup | None,
        partial_sums: bool,
    ) -> Process:
        accumulator_bits = self.arch.precision.accumulator_bits
        yield from self._combine_statistics(scope, record, region)
        held = 0
        for operand in record.writes:
            nbytes = self._bytes(operand)
            if operand.role in RESIDENT_ROLES:
                spilled = math.ceil(nbytes * own.spilled_fraction)
                if spilled:
                    written = self._compressed(spilled, operand, "dram")
                    sent = self._compressed(spilled, operand, "noc")
                    for component, role, saved in saved_at(
                        operand, ("dram", spilled - written), ("noc", spilled - sent)
                    ):
                        self.ledger.add(scope, component, action(SAVED, role), nbytes=saved)
                    yield from self.dram.transfer(scope, written, "write")
                    yield from self.network.send(
                        scope, self.geometry.scatter(sent, MEMORY, own), own
                    )
            elif partial_sums:  # partial sums wait in this region for their reader
                partial = bits_to_bytes(operand.elements * accumulator_bits)
                self.pending[operand.tensor] = Pending(scope, region, partial_bytes=partial)
            elif group is not None and operand.role in _PARTITIONED_ROLES:
                held += yield from self._store_partitioned(
                    scope, record, operand, own, region, group
                )
            else:
                self._written(operand.tensor, region)
                if operand.role in HELD_ROLES:
                    held += nbytes
        yield from self._hold_or_spill(scope, record, region, held)

    def _combine_statistics(self, scope: Scope, record: OpRecord, region: Region) -> Process:
        """A normalization's per-channel or per-row reduction (hwsim.sim.dist_norm), reduced
        in parts by the tiles holding each channel or row, gathered by one of them and sent
        back to the others between neighbouring tiles."""
        reduced = self._reduced_parts(record, region)
        if reduced is None:
            return
        holders, combined_bits = reduced
        exchange = statistics_exchange(holders, combined_bits, self.arch.noc.multicast)
        for delivered, injected in exchange.steps:
            if delivered:
                transfer = self.geometry.neighbours(delivered, injected, region)
                yield from self._send_into(scope, transfer, region)

    def _reduced_parts(self, record: OpRecord, region: Region) -> tuple[list[int], int] | None:
        """(tiles holding each reduced channel or row, the bits its values take in all) of a
        normalization record that reduces over tiles; None for any other record."""
        op = record.op
        precision = self.arch.precision
        if isinstance(op, ElementwiseOp) and op.function in ROW_REDUCING:
            product = self.row_products.get(record.reads[0].tensor)
            if product is None:  # the loss's softmax over a dense layer's logits
                return None
            # Forward the online softmax's (max, Σ exp) pair a row, combined in one exchange;
            # backward Σ dA·A a row: at the bits of what the record writes.
            values = 2 if op.function == "softmax" else 1
            rows = product.groups * product.m
            return row_holders_of(product, region.tiles), values * rows * bits_of(
                record.writes[0], precision
            )
        norm = self.norm_layers.get(record.layer)
        if norm is None:
            return None
        kind, channels = norm
        written_bits = sum(
            operand.elements * bits_of(operand, precision) for operand in record.writes
        )
        if kind == "layer_norm" and (
            _is(op, ReduceOp, "mean_variance") or _is(op, ElementwiseOp, "layer_norm_derivative")
        ):
            rows = record.reads[0].elements // channels
            if isinstance(op, ElementwiseOp):  # Σg and Σg·x̂, at the input error's bits
                written_bits = 2 * rows * bits_of(record.writes[0], precision)
            return row_holders(rows, channels, region.tiles), written_bits
        if not isinstance(op, ReduceOp):
            return None
        group = self.placement.groups.get(region.layer)
        if group is not None and group.region == region:
            cut = group.partition
            holders = channel_holders(
                channels, cut.channel_groups, cut.input_groups, cut.spatial_blocks
            )
        else:
            holders = channel_holders(channels, 1, region.tiles, 1)
        return holders, written_bits

    def _store_partitioned(
        self,
        scope: Scope,
        record: OpRecord,
        operand: Operand,
        own: Region,
        region: Region,
        group: ConvGroup,
    ) -> Generator[simpy.Event, object, int]:
        """A result of a convolution spread over a partition: its partial sums are added up
        (at home, or between neighbouring tiles); the bytes the region then holds."""
        accumulator_bits = self.arch.precision.accumulator_bits
        partition = group.partition
        if operand.role == Role.GRADIENT:
            # Each spatial block holds a partial weight gradient: sum them at home.
            if partition.spatial_blocks > 1 or region.key != own.key:
                # ⌈⌈bits / 8⌉ / groups⌉ = ⌈bits / (8 · groups)⌉: one group's share
                partial = ceil_div(
                    bits_to_bytes(operand.elements * accumulator_bits),
                    partition.channel_groups * partition.input_groups,
                )
                yield from self._send_into(scope, self.geometry.reduce(partial, region, own), own)
            self._written(operand.tensor, own)
            return 0
        if operand.role == Role.ACTIVATION:
            # The output map: the input groups' partial sums are added up between
            # neighbouring tiles.
            moved = bits_to_bytes(
                (partition.input_groups - 1) * operand.elements * accumulator_bits
            )
        else:
            # δ of the input map: channel groups' partial sums and overlapping windows
            # are summed between neighbouring tiles.
            op = record.op
            assert isinstance(op, Conv2DOp), "only a convolution's records run on a ConvGroup"
            windows = map_copies(
                input_window_elements(op, partition),
                op.output_channels,
                partition.channel_groups,
                op.groups,
            )
            # Fewer window elements than the map (a stride beyond the kernel skips input
            # rows) move nothing, as none overlap.
            overlap = max(0, windows - operand.elements)
            moved = bits_to_bytes(overlap * accumulator_bits)
        if moved > 0:
            yield from self._send_into(
                scope, self.geometry.neighbours(moved, moved, region), region
            )
        self._written(operand.tensor, region)
        return self._bytes(operand)

    def _send_into(self, scope: Scope, transfer: Transfer, region: Region) -> Process:
        """Send results into `region`: what arrives is written into its tiles' SRAM."""
        yield from self.network.send(scope, transfer, region)
        self.ledger.add(scope, SRAM, "write", nbytes=transfer.delivered_bytes)

    def _hold_or_spill(self, scope: Scope, record: OpRecord, region: Region, held: int) -> Process:
        """What the op's tiles must keep of activations and errors; beyond the reserve it
        goes to DRAM (counted, read back by whoever reads it) or the spec is refused."""
        excess = held - self.reserve_bytes * region.tiles
        if excess <= 0:
            return
        if not self.arch.mapping.allow_spill:
            raise CapacityError(
                "mapping.allow_spill",
                f"{record.layer}'s {record.phase.value} op writes {held:,} bytes of "
                f"activations and errors into {region.tiles:,} tiles whose reserves "
                f"(mapping.activation_reserve_fraction of tiles.sram.capacity_bytes) hold "
                f"{self.reserve_bytes * region.tiles:,} (got false)",
                "allow spilling to DRAM or enlarge the reserve",
            )
        self._keep_in_dram(excess, f"activations and errors spilled by {record.layer}")
        shares = [
            (operand, ceil_div(excess * self._bytes(operand), held))
            for operand in record.writes
            if operand.role in HELD_ROLES
        ]
        written = excess
        if self.zeros is not None:  # each tensor's share goes to DRAM in its format
            for operand, spilled in shares:
                compressed = self._compressed(spilled, operand, "dram")
                written -= spilled - compressed
                for component, role, nbytes in saved_at(operand, ("dram", spilled - compressed)):
                    self.ledger.add(scope, component, action(SAVED, role), nbytes=nbytes)
        yield from self.dram.transfer(scope, max(0, written), "write")
        for operand, spilled in shares:
            self.spilled[operand.tensor] = spilled

    def _written(self, tensor: str, region: Region) -> None:
        self.home[tensor] = region
        self.copies[tensor] = region.key
        self.spilled.pop(tensor, None)

    def _has_copy(self, tensor: str, key: str) -> bool:
        held = self.copies.get(tensor)
        return held == key if isinstance(held, str) else held is not None and key in held

    def _add_copy(self, tensor: str, key: str) -> None:
        held = self.copies.get(tensor)
        if held is None:
            self.copies[tensor] = key
        elif isinstance(held, set):
            held.add(key)
        elif held != key:
            self.copies[tensor] = {held, key}
