"""Records the operations of one training step as they run, with data-flow `deps`.

`deps` are derived from the tensors each op reads and writes — read-after-write,
write-after-read and write-after-write — so they reflect what the rule really needs: under BP a
layer's error waits for the layer above; under DFA/SSDFA only for the output error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hwsim.specs.trace import TRACE_SCHEMA_VERSION, Operand, OpRecord, OpSpec, Phase, Role, Slot


@dataclass(frozen=True)
class Access:
    """A tensor touched by an op: its trace name, role, the array itself (for measuring) and,
    for a matmul or conv, its slot in the GEMM (a, b read; c written)."""

    tensor: str
    role: Role
    array: np.ndarray
    slot: Slot | None = None

    def as_slot(self, slot: Slot) -> Access:
        return replace(self, slot=slot)


def measure(access: Access | Operand) -> Operand:
    if isinstance(access, Operand):
        return access
    array = access.array
    elements = int(array.size)
    density = float(np.count_nonzero(array)) / elements if elements else 0.0
    return Operand(
        tensor=access.tensor, role=access.role, elements=elements, density=density, slot=access.slot
    )


class Tracer:
    """Collects `OpRecord`s; one tracer per traced training step."""

    def __init__(self) -> None:
        self.records: list[OpRecord] = []
        self._last_writer: dict[str, int] = {}
        self._readers: dict[str, list[int]] = {}

    def record(
        self,
        *,
        layer: str,
        phase: Phase,
        op: OpSpec,
        reads: Sequence[Access | Operand],
        writes: Sequence[Access | Operand],
        other_ops: int = 0,
    ) -> int:
        """Append one record; returns its id.  An `Operand` is taken as already measured
        (an in-place op measures what it read before it overwrites it)."""
        record_id = len(self.records)
        deps: set[int] = set()
        for access in reads:
            if access.tensor in self._last_writer:
                deps.add(self._last_writer[access.tensor])
        for access in writes:
            if access.tensor in self._last_writer:
                deps.add(self._last_writer[access.tensor])
            deps.update(self._readers.get(access.tensor, ()))
        deps.discard(record_id)
        self.records.append(
            OpRecord(
                schema_version=TRACE_SCHEMA_VERSION,
                id=record_id,
                layer=layer,
                phase=phase,
                op=op,
                macs=op.macs,
                other_ops=int(other_ops),
                reads=tuple(measure(a) for a in reads),
                writes=tuple(measure(a) for a in writes),
                deps=tuple(sorted(deps)),
            )
        )
        for access in reads:
            self._readers.setdefault(access.tensor, []).append(record_id)
        for access in writes:
            self._last_writer[access.tensor] = record_id
            self._readers[access.tensor] = []
        return record_id
