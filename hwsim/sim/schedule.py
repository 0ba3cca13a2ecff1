"""Who goes first where records contend: list scheduling by bottom level.

A record's rank is the longest estimated path from its start to the end of the step (its own
length plus the longest path among the records that wait for it), longest first, ties by
record id — the critical-path rule of HLFET.  Both substrates serve contending records in this
order, so a schedule follows the step's data flow, not the file order of independent records,
and a rule that does less work does not finish later for scheduling reasons alone.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence

from hwsim.specs.trace import OpRecord


def critical_path_ranks(records: Sequence[OpRecord], alone_cycles: Mapping[int, int]) -> array:
    """Rank of every record (0 first), indexed by record id (records are numbered 0, 1, 2,
    ... in order), given each one's estimated cycles alone; 8 bytes a record."""
    remaining = [0] * len(records)  # longest path from a record to the end of the step
    for record in reversed(records):  # deps name earlier records only
        remaining[record.id] += alone_cycles[record.id]
        for dep in record.deps:
            remaining[dep] = max(remaining[dep], remaining[record.id])
    order = sorted(range(len(records)), key=lambda record_id: (-remaining[record_id], record_id))
    ranks = array("q", bytes(8 * len(records)))
    for rank, record_id in enumerate(order):
        ranks[record_id] = rank
    return ranks
