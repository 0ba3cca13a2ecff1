"""The on-chip network: hop geometry per topology (pure) and transfers over contended links.

Regions of tiles are contiguous in a row-major 2-D mesh; the DRAM controller sits at tile 0.
A transfer is simulated as one event on the links into its destination region (a bus has one
shared link for everything), never per tile, so cost does not grow with the tile count.
Counted per transfer: bytes injected (`inject`), bytes written into tiles (`deliver`) and
link traversals × bytes (`byte_hop`, what NoC energy is priced on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


class Geometry:
    """Hop distances of one placement on one topology."""

    def __init__(self, noc: Noc, placement: Placement) -> None:
        self.noc = noc
        self.placement = placement
        self.side = max(1, math.isqrt(placement.total_tiles - 1) + 1)
        self.tree_depth = max(1, math.ceil(math.log2(max(2, placement.total_tiles))))

    def _position(self, tile: int) -> tuple[int, int]:
        return divmod(tile, self.side)

    def distance(self, source: Region | None, destination: Region) -> int:
        """Hops from the source region's centre (or the DRAM controller) to the destination's."""
        if self.noc.topology == Topology.BUS:
            return 1
        if self.noc.topology == Topology.TREE:
            return 2 * self.tree_depth
        a = self._position(0 if source is None else source.first_tile + source.tiles // 2)
        b = self._position(destination.first_tile + destination.tiles // 2)
        return abs(a[0] - b[0]) + abs(a[1] - b[1])

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

    def broadcast(self, nbytes: int, source: Region | None, destination: Region,
                  per_tile_bytes: int | None = None) -> Transfer:
        """Every destination tile receives `per_tile_bytes` (default: all `nbytes`)."""
        tiles = destination.tiles
        each = nbytes if per_tile_bytes is None else per_tile_bytes
        distance = self.distance(source, destination)
        delivered = each * tiles
        if self.noc.topology == Topology.BUS:
            return Transfer(nbytes, delivered, nbytes, self._serial(nbytes) + self._latency(1))
        if self.noc.multicast:
            edges = tiles - 1 if self.noc.topology == Topology.MESH else 2 * tiles - 2
            hops = nbytes * distance + each * edges
            cycles = self._serial(nbytes) + self._latency(distance + self.spread(destination))
            return Transfer(nbytes, delivered, hops, cycles)
        average = distance + self.spread(destination) // 2
        latency = self._latency(distance + self.spread(destination))
        return Transfer(delivered, delivered, delivered * average,
                        self._serial(delivered) + latency)

    def scatter(self, nbytes: int, source: Region | None, destination: Region) -> Transfer:
        """Each destination tile receives its own slice; `nbytes` in all."""
        distance = self.distance(source, destination)
        average = distance + self.spread(destination) // 2
        cycles = self._serial(nbytes) + self._latency(distance + self.spread(destination))
        return Transfer(nbytes, nbytes, nbytes * average, cycles)

    def reduce(self, partial_bytes: int, source: Region, destination: Region) -> Transfer:
        """Every source tile holds a `partial_bytes` partial sum; their sum goes to `destination`
        (scattered over its tiles)."""
        tiles = source.tiles
        distance = self.distance(source, destination)
        injected = partial_bytes * tiles
        if self.noc.topology == Topology.BUS:
            return Transfer(injected, injected, injected, self._serial(injected) + 1)
        edges = tiles - 1 if self.noc.topology == Topology.MESH else 2 * tiles - 2
        hops = partial_bytes * edges + partial_bytes * distance
        cycles = self._serial(partial_bytes) + self._latency(self.spread(source) + distance)
        return Transfer(injected, partial_bytes * (tiles - 1) + partial_bytes, hops, cycles)


class Network:
    """The contended links: one ingress per region, or one shared bus."""

    def __init__(self, env: simpy.Environment, noc: Noc, placement: Placement,
                 ledger: Ledger) -> None:
        self.env = env
        self.ledger = ledger
        self.geometry = Geometry(noc, placement)
        if noc.topology == Topology.BUS:
            bus = Unit(env, "noc.bus", ledger)
            self.ingress = dict.fromkeys(placement.regions, bus)
        else:
            self.ingress = {name: Unit(env, f"noc.{name}", ledger) for name in placement.regions}

    def send(self, scope: Scope, transfer: Transfer, destination: Region) -> Process:
        if transfer.injected_bytes <= 0:
            return
        yield from self.ingress[destination.layer].hold(transfer.cycles, transfer.injected_bytes)
        self.ledger.add(scope, "noc", "inject", count=1, nbytes=transfer.injected_bytes,
                        cycles=transfer.cycles)
        self.ledger.add(scope, "noc", "deliver", nbytes=transfer.delivered_bytes)
        self.ledger.add(scope, "noc", "byte_hop", count=transfer.byte_hops)
