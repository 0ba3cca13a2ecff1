"""Who goes first where records contend: list scheduling by bottom level.

A record's rank is the longest estimated path from its start to the end of the step (its own
length plus the longest path among the records that wait for it), longest first, ties by
record id — the critical-path rule of HLFET.  Both substrates serve contending records in this
order, so a schedule follows the step's data flow, not the file order of independent records,
and a rule that does less work does not finish later for scheduling reasons alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hwsim.specs.trace import OpRecord


def critical_path_ranks(
    records: Sequence[OpRecord], alone_cycles: Mapping[int, int]
) -> dict[int, int]:
    """Rank of every record (0 first) given each one's estimated cycles alone."""
    successors: dict[int, list[int]] = {record.id: [] for record in records}
    for record in records:
        for dep in record.deps:
            successors[dep].append(record.id)
    remaining: dict[int, int] = {}
    for record in reversed(records):  # deps name earlier records only
        remaining[record.id] = alone_cycles[record.id] + max(
            (remaining[later] for later in successors[record.id]), default=0
        )
    order = sorted(remaining, key=lambda record_id: (-remaining[record_id], record_id))
    return {record_id: rank for rank, record_id in enumerate(order)}
