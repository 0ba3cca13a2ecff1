"""The distributed substrate's tiles as a resource: a chip-wide pool every op draws its tiles
from, granted by rank, and one op at a time per region."""

from __future__ import annotations

import heapq

import simpy

from hwsim.sim.components import Ledger, Process, now
from hwsim.sim.mapping import Region


class TilePool:
    """The chip's free tiles, granted lowest priority first (then first come): a request
    waits while an earlier-ranked one that does not fit yet is waiting, so a large group
    cannot be starved by a stream of small ones, nor delay the step's critical path."""

    def __init__(self, env: simpy.Environment, count: int) -> None:
        self.env = env
        self.free = count
        self.waiting: list[tuple[int, int, int, simpy.Event]] = []
        self.sequence = 0

    def get(self, tiles: int, priority: int) -> simpy.Event:
        granted = self.env.event()
        self.sequence += 1
        heapq.heappush(self.waiting, (priority, self.sequence, tiles, granted))
        self._grant()
        return granted

    def put(self, tiles: int) -> None:
        self.free += tiles
        self._grant()

    def _grant(self) -> None:
        while self.waiting and self.waiting[0][2] <= self.free:
            _, _, tiles, granted = heapq.heappop(self.waiting)
            self.free -= tiles
            granted.succeed()


class TileGroups:
    """The chip's tiles: a pool every op draws its tiles from, one op at a time per region."""

    def __init__(self, env: simpy.Environment, count: int, ledger: Ledger) -> None:
        self.env = env
        self.ledger = ledger
        self.pool = TilePool(env, count)
        self.locks: dict[str, simpy.PriorityResource] = {}

    def hold(self, region: Region, cycles: int, priority: int = 0) -> Process:
        name = f"tiles.{region.key}"
        lock = self.locks.setdefault(region.key, simpy.PriorityResource(self.env, capacity=1))
        asked = now(self.env)
        with lock.request(priority=priority) as request:
            yield request
            yield self.pool.get(region.tiles, priority)
            start = now(self.env)
            self.ledger.waits[name] += start - asked
            if cycles > 0:
                yield self.env.timeout(cycles)
            self.ledger.busy(name, start, now(self.env))
            self.pool.put(region.tiles)
