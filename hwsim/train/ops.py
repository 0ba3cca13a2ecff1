"""What an op of a training step is, as data: the op (kind, geometry, MACs), the operands it
reads and writes (tensor, role, GEMM slot, element count) and its other (vector) ops.

Each layer kind describes its ops here once, per phase (`Layer.forward_ops`,
`Layer.backward_ops`); the live trainer records each description where the op runs, with the
densities it measures (`Tracer.record_run`, which also checks every array against the element
count the description states), and a shape-only trace records the same descriptions at density
1 without running numpy (`hwsim.train.shapes`).  Nothing else states what a record holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hwsim.specs.trace import ElementwiseOp, OpSpec, Phase, ReduceOp, Role, Slot


@dataclass(frozen=True)
class OperandDesc:
    """A tensor an op touches: its trace name, role, size and, for a GEMM, its slot."""

    tensor: str
    role: Role
    elements: int
    slot: Slot | None = None

    def as_slot(self, slot: Slot | None) -> OperandDesc:
        return OperandDesc(self.tensor, self.role, self.elements, slot)


@dataclass(frozen=True)
class OpDesc:
    """One op of a step, as its trace record states it (all but the densities and deps)."""

    layer: str
    phase: Phase
    op: OpSpec
    reads: tuple[OperandDesc, ...]
    writes: tuple[OperandDesc, ...]
    other_ops: int = 0


def op(
    layer: str,
    phase: Phase,
    spec: OpSpec,
    reads: Sequence[OperandDesc],
    writes: Sequence[OperandDesc],
    other_ops: int = 0,
) -> OpDesc:
    return OpDesc(layer, phase, spec, tuple(reads), tuple(writes), int(other_ops))


def elementwise(
    layer: str,
    phase: Phase,
    function: str,
    reads: Sequence[OperandDesc],
    writes: Sequence[OperandDesc],
    elements: int,
    ops_per_element: int = 1,
) -> OpDesc:
    """An op applied element by element: `elements` outputs, `ops_per_element` vector ops each."""
    spec = ElementwiseOp(kind="elementwise", function=function, elements=elements)
    return op(layer, phase, spec, reads, writes, ops_per_element * elements)


def reduction(
    layer: str,
    phase: Phase,
    function: str,
    source: OperandDesc,
    result: OperandDesc,
    inputs: int | None = None,
) -> OpDesc:
    """`inputs` values of `source` (default: each once) reduced to `result`, one vector op per
    input value (a pool's overlapping windows read some values more than once)."""
    inputs = source.elements if inputs is None else inputs
    spec = ReduceOp(kind="reduce", function=function, inputs=inputs, outputs=result.elements)
    return op(layer, phase, spec, [source], [result], inputs)


def spread(
    layer: str, phase: Phase, function: str, error: OperandDesc, result: OperandDesc, inputs: int
) -> OpDesc:
    """The adjoint of a reduction that read `inputs` values: each output's error spread back
    over the values its window read, into `result` (one element-wise op over the result's
    elements, one vector op per value read)."""
    spec = ElementwiseOp(kind="elementwise", function=function, elements=result.elements)
    return op(layer, phase, spec, [error], [result], inputs)


def gradient_of(param: OperandDesc, slot: Slot | None = None) -> OperandDesc:
    """The gradient of a parameter: `<tensor>.grad`, its size."""
    return OperandDesc(f"{param.tensor}.grad", Role.GRADIENT, param.elements, slot)
