"""The on-chip network: hop geometry per topology (pure) and transfers over contended links.

Regions of tiles are contiguous in a row-major 2-D mesh (a bus runs past the tiles in the same
order); the DRAM controller sits at tile 0.  A transfer is simulated as one event on the links
into its destination region (a bus has one shared link for everything), never per tile, so
cost does not grow with the tile count.  Counted per transfer: bytes injected (`inject`),
bytes written into tiles (`deliver`) and link traversals × bytes (`byte_hop`, what NoC energy
is priced on).  A bus hop is one tile pitch of bus wire: a transfer drives the stretch of bus
between the farthest tiles it touches, so its byte-hops and its latency grow with that span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import simpy

from hwsim.sim.components import Ledger, Process, Scope, Unit, ceil_div
from hwsim.sim.mapping import Placement, Region
from hwsim.specs.arch import Noc, Topology

MEMORY = None  # a transfer's source when it comes from DRAM


@dataclass(frozen=True)
class Transfer:
    """What one NoC transfer costs, before contention."""

    injected_bytes: int
    delivered_bytes: int
    byte_hops: int
    cycles: int

    def part(self, share: int, parts: int) -> Transfer:
        """`share` of `parts` equal slices (cycles keep their latency in every slice)."""

        def cut(value: int) -> int:
            return value * share // parts

        return replace(
            self,
            injected_bytes=cut(self.injected_bytes),
            delivered_bytes=cut(self.delivered_bytes),
            byte_hops=cut(self.byte_hops),
            cycles=max(1, cut(self.cycles)),
        )


class Geometry:
    """Hop distances of one placement on one topology."""

    def __init__(self, noc: Noc, placement: Placement) -> None:
        self.noc = noc
        self.placement = placement
        self.side = max(1, math.isqrt(placement.total_tiles - 1) + 1)
        self.tree_depth = max(1, math.ceil(math.log2(max(2, placement.total_tiles))))

    def _position(self, tile: int) -> tuple[int, int]:
        return divmod(tile, self.side)

    def bus_span(self, source: Region | None, destination: Region) -> int:
        """Tile pitches of bus wire between the farthest tiles a transfer touches (≥ 1)."""
        ends = [destination.first_tile, destination.first_tile + destination.tiles - 1]
        if source is None:
            ends.append(0)
        else:
            ends += [source.first_tile, source.first_tile + source.tiles - 1]
        return max(1, max(ends) - min(ends))

    def distance(self, source: Region | None, destination: Region) -> int:
        """Hops from the source region's centre (or the DRAM controller) to the destination's."""
        if self.noc.topology == Topology.BUS:
            return self.bus_span(source, destination)
        if self.noc.topology == Topology.TREE:
            return 2 * self.tree_depth
        a = self._position(0 if source is None else source.first_tile + source.tiles // 2)
        b = self._position(destination.first_tile + destination.tiles // 2)
        return abs(a[0] - b[0]) + abs(a[1] - b[1])

    def hops_to_tiles(self, source: Region | None, destination: Region) -> int:
        """Mesh hops, summed over the destination's tiles, from the source region's centre (or
        the DRAM controller) to each tile: what a scatter or a unicast copy to every tile
        travels under dimension-order routing.  Exact for the row-major placement: a partial
        first row, full rows, a partial last row, each summed in closed form."""
        centre = 0 if source is None else source.first_tile + source.tiles // 2
        row, column = self._position(centre)
        side, first, last = (
            self.side,
            destination.first_tile,
            destination.first_tile + destination.tiles - 1,
        )
        (top, left), (bottom, right) = divmod(first, side), divmod(last, side)
        if top == bottom:
            return (right - left + 1) * abs(top - row) + _distance_sum(left, right, column)
        full = bottom - top - 1  # rows wholly in the region
        return (
            (side - left) * abs(top - row)
            + _distance_sum(left, side - 1, column)
            + side * _distance_sum(top + 1, bottom - 1, row)
            + full * _distance_sum(0, side - 1, column)
            + (right + 1) * abs(bottom - row)
            + _distance_sum(0, right, column)
        )

    def spread(self, region: Region) -> int:
        """Hops across a region (its diameter)."""
        if self.noc.topology == Topology.MESH:
            return 2 * math.isqrt(max(0, region.tiles - 1)) + 1 if region.tiles > 1 else 0
        if self.noc.topology == Topology.TREE:
            return 2 * math.ceil(math.log2(region.tiles)) if region.tiles > 1 else 0
        return 0

    def _serial(self, nbytes: int) -> int:
        return ceil_div(nbytes, self.noc.link_bandwidth_bytes_per_cycle)

    def _latency(self, hops: int) -> int:
        return hops * self.noc.hop_latency_cycles

    def broadcast(
        self,
        nbytes: int,
        source: Region | None,
        destination: Region,
        per_tile_bytes: int | None = None,
        sources: int = 1,
    ) -> Transfer:
        """Every destination tile receives `per_tile_bytes` (default: all `nbytes`), injected
        by `sources` tiles at once (each its slice) on a mesh or tree."""
        tiles = destination.tiles
        each = nbytes if per_tile_bytes is None else per_tile_bytes
        distance = self.distance(source, destination)
        delivered = each * tiles
        if self.noc.topology == Topology.BUS:  # one drive of the bus reaches every tap
            return Transfer(
                nbytes, delivered, nbytes * distance, self._serial(nbytes) + self._latency(distance)
            )
        if self.noc.multicast:
            edges = tiles - 1 if self.noc.topology == Topology.MESH else 2 * tiles - 2
            hops = nbytes * distance + each * edges
            serial = self._serial(max(ceil_div(nbytes, sources), each))
            cycles = serial + self._latency(distance + self.spread(destination))
            return Transfer(nbytes, delivered, hops, cycles)
        latency = self._latency(distance + self.spread(destination))
        return Transfer(
            delivered,
            delivered,
            self._unicast_hops(delivered, source, destination),
            self._serial(ceil_div(delivered, sources)) + latency,
        )

    def _unicast_hops(self, nbytes: int, source: Region | None, destination: Region) -> int:
        """Byte-hops of `nbytes` sent in equal slices, one to each destination tile: on a
        mesh each slice travels its own tile's distance; on a tree, the distance to the
        region's root and half its depth."""
        if self.noc.topology == Topology.MESH:
            return nbytes * self.hops_to_tiles(source, destination) // destination.tiles
        average = self.distance(source, destination) + self.spread(destination) // 2
        return nbytes * average

    def scatter(self, nbytes: int, source: Region | None, destination: Region) -> Transfer:
        """Each destination tile receives its own slice; `nbytes` in all."""
        distance = self.distance(source, destination)
        if self.noc.topology == Topology.BUS:
            return Transfer(
                nbytes, nbytes, nbytes * distance, self._serial(nbytes) + self._latency(distance)
            )
        cycles = self._serial(nbytes) + self._latency(distance + self.spread(destination))
        return Transfer(nbytes, nbytes, self._unicast_hops(nbytes, source, destination), cycles)

    def neighbours(self, delivered_bytes: int, injected_bytes: int, region: Region) -> Transfer:
        """Tiles of one region swap data with their neighbours (halo exchange, re-cutting a
        map between layers that share the tiles): one hop per byte, all links at once."""
        if self.noc.topology == Topology.BUS:
            span = self.bus_span(region, region)
            return Transfer(
                injected_bytes,
                delivered_bytes,
                injected_bytes * span,
                self._serial(injected_bytes) + self._latency(span),
            )
        hops = 1 if self.noc.topology == Topology.MESH else 2
        per_tile = ceil_div(delivered_bytes, region.tiles)
        return Transfer(
            injected_bytes,
            delivered_bytes,
            delivered_bytes * hops,
            self._serial(per_tile) + self._latency(hops),
        )

    def reduce(self, partial_bytes: int, source: Region, destination: Region) -> Transfer:
        """Every source tile holds a `partial_bytes` partial sum; their sum goes to `destination`
        (scattered over its tiles)."""
        tiles = source.tiles
        distance = self.distance(source, destination)
        injected = partial_bytes * tiles
        if self.noc.topology == Topology.BUS:  # every partial sum crosses the bus on its own
            return Transfer(
                injected,
                injected,
                injected * distance,
                self._serial(injected) + self._latency(distance),
            )
        edges = tiles - 1 if self.noc.topology == Topology.MESH else 2 * tiles - 2
        hops = partial_bytes * edges + partial_bytes * distance
        cycles = self._serial(partial_bytes) + self._latency(self.spread(source) + distance)
        return Transfer(injected, partial_bytes * (tiles - 1) + partial_bytes, hops, cycles)


def _distance_sum(low: int, high: int, point: int) -> int:
    """Σ |i − point| for i from `low` to `high` (0 when the range is empty)."""
    if high < low:
        return 0
    if point <= low:
        return (low + high - 2 * point) * (high - low + 1) // 2
    if point >= high:
        return (2 * point - low - high) * (high - low + 1) // 2
    return (point - low) * (point - low + 1) // 2 + (high - point) * (high - point + 1) // 2


class Network:
    """The contended links: one ingress per region (and time-shared group), or one bus."""

    def __init__(
        self, env: simpy.Environment, noc: Noc, placement: Placement, ledger: Ledger
    ) -> None:
        self.env = env
        self.ledger = ledger
        self.geometry = Geometry(noc, placement)
        self.bus = Unit(env, "noc.bus", ledger) if noc.topology == Topology.BUS else None
        self.ingress: dict[str, Unit] = {}

    def _ingress(self, destination: Region) -> Unit:
        if self.bus is not None:
            return self.bus
        if destination.key not in self.ingress:
            self.ingress[destination.key] = Unit(self.env, f"noc.{destination.key}", self.ledger)
        return self.ingress[destination.key]

    def hold(self, transfer: Transfer, destination: Region, priority: int = 0) -> Process:
        """Occupy the links into `destination` for the transfer's cycles (no counting);
        waiting transfers go lowest `priority` first."""
        if transfer.injected_bytes > 0 or transfer.delivered_bytes > 0:
            yield from self._ingress(destination).hold(
                transfer.cycles, transfer.injected_bytes, priority
            )

    def count(self, scope: Scope, transfer: Transfer) -> None:
        if transfer.injected_bytes <= 0 and transfer.delivered_bytes <= 0:
            return
        self.ledger.add(
            scope, "noc", "inject", count=1, nbytes=transfer.injected_bytes, cycles=transfer.cycles
        )
        self.ledger.add(scope, "noc", "deliver", nbytes=transfer.delivered_bytes)
        self.ledger.add(scope, "noc", "byte_hop", count=transfer.byte_hops)

    def send(self, scope: Scope, transfer: Transfer, destination: Region) -> Process:
        yield from self.hold(transfer, destination, scope.priority)
        self.count(scope, transfer)
