"""Records the ops of one training step, each from its description (`hwsim.train.ops`), with
data-flow `deps`.

`deps` are derived from the tensors each op reads and writes — read-after-write,
write-after-read and write-after-write — so they reflect what the rule really needs: under BP a
layer's error waits for the layer above; under DFA/SSDFA only for the output error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwsim.specs.trace import TRACE_SCHEMA_VERSION, Operand, OpRecord
from hwsim.train.ops import OpDesc, OperandDesc

UNMEASURED_DENSITY = 1.0  # what a shape-only trace states: nothing was measured

Measured = np.ndarray | float  # an array to measure, or a density measured before (in place)


def density(array: np.ndarray) -> float:
    """The fraction of an array's values that are not zero."""
    elements = int(array.size)
    return float(np.count_nonzero(array)) / elements if elements else 0.0


def _densities(desc: OpDesc, operands: Sequence[OperandDesc], arrays: Sequence[Measured]):
    """The densities of the arrays an op ran on, each checked against its description."""
    if len(arrays) != len(operands):
        raise RuntimeError(
            f"layer '{desc.layer}': a {desc.op.kind} op described with {len(operands)} operands "
            f"ran with {len(arrays)}"
        )
    densities = []
    for operand, array in zip(operands, arrays, strict=True):
        if isinstance(array, float):
            densities.append(array)
            continue
        if int(array.size) != operand.elements:
            raise RuntimeError(
                f"layer '{desc.layer}': {operand.tensor} is described with "
                f"{operand.elements:,} elements but the op ran on {int(array.size):,}"
            )
        densities.append(density(array))
    return densities


class Tracer:
    """Collects `OpRecord`s; one tracer per traced training step."""

    def __init__(self) -> None:
        self.records: list[OpRecord] = []
        self._last_writer: dict[str, int] = {}
        self._readers: dict[str, list[int]] = {}

    def record_run(
        self, desc: OpDesc, reads: Sequence[Measured], writes: Sequence[Measured]
    ) -> int:
        """Record an op the trainer ran, from the arrays it read and wrote (in the order its
        description lists them); returns the record's id."""
        return self.record(
            desc, _densities(desc, desc.reads, reads), _densities(desc, desc.writes, writes)
        )

    def record_pass(
        self,
        layer: str,
        descs: Sequence[OpDesc],
        arrays: Sequence[tuple[Sequence[Measured], Sequence[Measured]]],
    ) -> None:
        """Record a layer's pass: its ops as it describes them (`Layer.forward_ops` or
        `backward_ops`), each with the (reads, writes) arrays it ran on."""
        if len(arrays) != len(descs):
            raise RuntimeError(f"layer '{layer}': {len(descs)} ops described, {len(arrays)} ran")
        for desc, (reads, writes) in zip(descs, arrays, strict=True):
            self.record_run(desc, reads, writes)

    def record(
        self,
        desc: OpDesc,
        read_densities: Sequence[float] | None = None,
        write_densities: Sequence[float] | None = None,
    ) -> int:
        """Append one record (densities not given: not measured); returns its id."""
        record_id = len(self.records)
        deps: set[int] = set()
        for access in desc.reads:
            if access.tensor in self._last_writer:
                deps.add(self._last_writer[access.tensor])
        for access in desc.writes:
            if access.tensor in self._last_writer:
                deps.add(self._last_writer[access.tensor])
            deps.update(self._readers.get(access.tensor, ()))
        deps.discard(record_id)
        self.records.append(
            OpRecord(
                schema_version=TRACE_SCHEMA_VERSION,
                id=record_id,
                layer=desc.layer,
                phase=desc.phase,
                op=desc.op,
                macs=desc.op.macs,
                other_ops=desc.other_ops,
                reads=_operands(desc.reads, read_densities),
                writes=_operands(desc.writes, write_densities),
                deps=tuple(sorted(deps)),
            )
        )
        for access in desc.reads:
            self._readers.setdefault(access.tensor, []).append(record_id)
        for access in desc.writes:
            self._last_writer[access.tensor] = record_id
            self._readers[access.tensor] = []
        return record_id


def _operands(
    operands: Sequence[OperandDesc], densities: Sequence[float] | None
) -> tuple[Operand, ...]:
    if densities is None:
        densities = [UNMEASURED_DENSITY] * len(operands)
    return tuple(
        Operand(
            tensor=operand.tensor,
            role=operand.role,
            elements=operand.elements,
            density=value,
            slot=operand.slot,
        )
        for operand, value in zip(operands, densities, strict=True)
    )
