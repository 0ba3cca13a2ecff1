"""What one trace record costs on the von Neumann substrate (pure functions, no simpy).

Matmul and conv records get a mapping from the search in hwsim.sim.loopnest (loop order and
tile sizes that fit the buffer space the op is given, least DRAM traffic); element-wise,
reduce and gather records stream every operand once, double-buffered.  The plan says what
moves between DRAM, the buffer and the PE array, how many pipeline steps the op takes, and
how much buffer space its tiles hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass

from hwsim.sim.components import ceil_div
from hwsim.sim.loopnest import DRAM_BYTES, Machine, Mapping, Objective, gemm_of, search
from hwsim.sim.loopnest import Operand as GemmOperand
from hwsim.sim.sparsity import Zeros
from hwsim.specs.arch import Dataflow, PeArray, Precision
from hwsim.specs.trace import Conv2DOp, GatherOp, MatmulOp, Operand, OpRecord, Slot
from hwsim.units import bits_to_bytes


def bits_of(operand: Operand, precision: Precision) -> int:
    return getattr(precision, f"{operand.role.value}_bits")


def operand_bytes(operand: Operand, precision: Precision) -> int:
    return bits_to_bytes(operand.elements * bits_of(operand, precision))


@dataclass(frozen=True)
class OpPlan:
    """One record on the von Neumann substrate: its traffic, work, steps and buffer space."""

    dram_read_bytes: int
    dram_write_bytes: int
    buffer_read_bytes: int  # buffer → PE array
    buffer_write_bytes: int  # PE array → buffer
    macs: int
    vector_ops: int
    compute_cycles: int  # array or vector-unit cycles (no memory stalls)
    steps: int  # double-buffered pipeline steps (tiles)
    footprint_bytes: int  # stream space held while the op runs
    mapping: Mapping | None  # None: streamed
    operands: tuple[str, str, str] = ("", "", "")  # tensors in the GEMM's A, B, C
    # With `sparsity` (hwsim.sim.sparsity): DRAM bytes compression saved (the buffer still
    # fills and drains the dense bytes), by role, and the MACs zeros gated.
    dram_read_saved_bytes: int = 0
    dram_write_saved_bytes: int = 0
    saved_by_role: tuple[tuple[str, int], ...] = ()
    skipped_macs: int = 0
    gating_roles: str = ""


def is_matmul_class(record: OpRecord) -> bool:
    return isinstance(record.op, MatmulOp | Conv2DOp)


def array_cycles(m: int, k: int, n: int, pe: PeArray) -> int:
    """Cycles of an [m, k] @ [k, n] on a rows × columns array (no fill/drain overhead)."""
    if pe.dataflow == Dataflow.WEIGHT_STATIONARY:
        return m * ceil_div(k, pe.rows) * ceil_div(n, pe.columns)
    return k * ceil_div(m, pe.rows) * ceil_div(n, pe.columns)


def compute_cycles(
    record: OpRecord,
    *,
    vector_ops_per_cycle: int,
    pe: PeArray | None = None,
    macs_per_cycle: int = 1,
) -> int:
    """Cycles on an array (`pe`) or on `macs_per_cycle` MAC units; other work on vector ALUs."""
    op = record.op
    if isinstance(op, MatmulOp | Conv2DOp):
        if pe is not None:  # a grouped conv: its groups one after another
            return op.groups * array_cycles(op.m, op.k, op.n, pe)
        return ceil_div(record.macs, macs_per_cycle)
    if isinstance(op, GatherOp):
        return ceil_div(record.macs, vector_ops_per_cycle)
    return ceil_div(record.other_ops, vector_ops_per_cycle)


def partial_sum_bytes(record: OpRecord, pe: PeArray, precision: Precision) -> int:
    """Extra buffer traffic when the reduction dimension is folded over the array: every
    fold after the first writes the m × n partial sums out and reads them back, at
    `accumulator_bits` (each way rounded up to whole bytes, like every other transfer), in
    each group of a grouped conv."""
    op = record.op
    if not isinstance(op, MatmulOp | Conv2DOp):
        return 0
    folds = ceil_div(op.k, pe.rows) if pe.dataflow == Dataflow.WEIGHT_STATIONARY else 1
    partials = (folds - 1) * op.groups * op.m * op.n
    return 2 * bits_to_bytes(partials * precision.accumulator_bits)


class NoFit(Exception):
    """The op's smallest tiles do not fit the buffer space it was given."""


def gemm_slots(record: OpRecord) -> tuple[int, int, int]:
    """Indexes of the reads in the GEMM's slots a and b and of the write in slot c (the
    trace names them; OpRecord validates their sizes)."""
    return record.slot_index(Slot.A), record.slot_index(Slot.B), record.slot_index(Slot.C)


def _plan_stream(
    record: OpRecord,
    reads: list[int],
    writes: list[int],
    read_dram: list[int],
    write_dram: list[int],
    cycles: int,
    budget_bytes: int,
) -> OpPlan:
    """A vector op: its operands stream through the buffer, double-buffered, in as few
    steps as the budget allows."""
    moved = sum(read_dram) + sum(write_dram)
    steps = max(1, ceil_div(moved, max(1, budget_bytes // 2)))
    footprint = moved if steps == 1 else 2 * ceil_div(moved, steps)
    if footprint > budget_bytes:
        raise NoFit(f"streams of {moved} bytes")
    return OpPlan(
        sum(read_dram),
        sum(write_dram),
        sum(reads),
        sum(writes),
        record.macs,
        record.other_ops,
        cycles,
        steps,
        footprint,
        None,
    )


def _gemm_operands(
    record: OpRecord,
    precision: Precision,
    cached_reads: Collection[int],
    kept_writes: Collection[int],
    consumed_writes: Collection[int],
) -> tuple[GemmOperand, GemmOperand, GemmOperand]:
    """The GEMM's a, b and c: their sizes, widths, and whether the buffer holds them."""
    first, second, output = gemm_slots(record)
    a = GemmOperand(
        record.reads[first].elements,
        bits_of(record.reads[first], precision),
        resident=first in cached_reads,
    )
    b = GemmOperand(
        record.reads[second].elements,
        bits_of(record.reads[second], precision),
        resident=second in cached_reads,
    )
    c = GemmOperand(
        record.writes[output].elements,
        bits_of(record.writes[output], precision),
        resident=output in kept_writes,
        written=output not in consumed_writes,
    )
    return a, b, c


def _mapping(gemm, budget_bytes: int, machine: Machine, groups: int, fixed: int) -> Mapping:
    """The loop nest the search picks for the GEMM (of one group, run `groups` times) in
    `budget_bytes`; NoFit if none fits.  `fixed`: one group's buffer traffic no mapping
    changes."""
    fixed = 0 if machine.objective.kind == DRAM_BYTES.kind else fixed  # a smaller cache key
    mapping = search(gemm, budget_bytes, machine, fixed)
    if mapping is None:
        raise NoFit("its smallest tiles")
    return mapping.repeated(groups)


def machine_of(
    pe: PeArray, dram_bytes_per_cycle: float, buffer_bytes_per_cycle: float, objective: Objective
) -> Machine:
    """What the mapping search sees of the chip (its frontiers are cached per Machine)."""
    return Machine(
        pe.rows,
        pe.columns,
        pe.dataflow == Dataflow.WEIGHT_STATIONARY,
        dram_bytes_per_cycle,
        buffer_bytes_per_cycle,
        objective,
    )


def plan_op(
    record: OpRecord,
    precision: Precision,
    budget_bytes: int,
    pe: PeArray,
    cached_reads: Collection[int] = (),
    kept_writes: Collection[int] = (),
    consumed_writes: Collection[int] = (),
    dram_bytes_per_cycle: float = 1.0,
    buffer_bytes_per_cycle: float = 1.0,
    zeros: Zeros | None = None,
    objective: Objective = DRAM_BYTES,
) -> OpPlan:
    """The cost of `record` given `budget_bytes` of stream space.

    `cached_reads` index reads the buffer already holds; `kept_writes` writes it keeps whole;
    `consumed_writes` writes used on chip and never written to DRAM (a fused weight update's
    gradient).  `zeros`: compression of DRAM transfers and zero skipping (None: dense).
    `objective`: what the mapping search ranks by (schedule.mapping_objective).
    Raises NoFit when the op's smallest tiles need more than the budget.
    """
    plan = _plan_dense(
        record,
        precision,
        budget_bytes,
        pe,
        (cached_reads, kept_writes, consumed_writes),
        dram_bytes_per_cycle,
        buffer_bytes_per_cycle,
        objective,
    )
    if zeros is None:
        return plan
    return _with_zeros(plan, record, precision, zeros, (cached_reads, kept_writes, consumed_writes))


def _plan_dense(
    record: OpRecord,
    precision: Precision,
    budget_bytes: int,
    pe: PeArray,
    kept: tuple[Collection[int], Collection[int], Collection[int]],
    dram_bytes_per_cycle: float,
    buffer_bytes_per_cycle: float,
    objective: Objective = DRAM_BYTES,
) -> OpPlan:
    """plan_op on a dense chip."""
    cached_reads, kept_writes, consumed_writes = kept
    reads = [operand_bytes(operand, precision) for operand in record.reads]
    writes = [operand_bytes(operand, precision) for operand in record.writes]
    read_dram = [size for i, size in enumerate(reads) if i not in cached_reads]
    write_dram = [
        size for i, size in enumerate(writes) if i not in kept_writes and i not in consumed_writes
    ]
    cycles = compute_cycles(record, vector_ops_per_cycle=pe.vector_ops_per_cycle, pe=pe)
    if not is_matmul_class(record):
        return _plan_stream(record, reads, writes, read_dram, write_dram, cycles, budget_bytes)
    machine = machine_of(pe, dram_bytes_per_cycle, buffer_bytes_per_cycle, objective)
    return _plan_gemm(record, precision, budget_bytes, pe, machine, reads, writes, cycles, kept)


def _plan_gemm(
    record: OpRecord,
    precision: Precision,
    budget_bytes: int,
    pe: PeArray,
    machine: Machine,
    reads: list[int],
    writes: list[int],
    cycles: int,
    kept: tuple[Collection[int], Collection[int], Collection[int]],
) -> OpPlan:
    """A matmul or conv: the searched loop nest's traffic, plus the small operands (a bias)
    held whole; `kept` is plan_op's (cached reads, kept writes, consumed writes)."""
    cached_reads, kept_writes, consumed_writes = kept
    first, second, output = gemm_slots(record)
    a, b, c = _gemm_operands(record, precision, cached_reads, kept_writes, consumed_writes)
    # Other operands (a bias) are small: read once and held whole while the op runs.
    extra_reads = [i for i in range(len(reads)) if i not in (first, second)]
    extra_dram = sum(reads[i] for i in extra_reads if i not in cached_reads)
    extra_write_dram = sum(
        writes[i]
        for i in range(len(writes))
        if i != output and i not in kept_writes and i not in consumed_writes
    )
    held = extra_dram + extra_write_dram
    op = record.op
    assert isinstance(op, MatmulOp | Conv2DOp), "plan_op plans only matmul-class ops as GEMMs"
    gemm = gemm_of(op, a, b, c, precision.accumulator_bits)
    folds = partial_sum_bytes(record, pe, precision)
    fixed = sum(reads[i] for i in extra_reads) + folds + sum(writes)
    mapping = _mapping(gemm, budget_bytes - held, machine, op.groups, fixed // op.groups)
    return OpPlan(
        mapping.dram_read_bytes + extra_dram,
        mapping.dram_write_bytes + extra_write_dram,
        mapping.array_read_bytes
        + sum(reads[i] for i in extra_reads)
        + mapping.partial_bytes
        + folds // 2,
        sum(writes) + mapping.partial_bytes + folds // 2,
        record.macs,
        record.other_ops,
        # The array's time is its tiles' (each folds its own reduction), never below the
        # whole op's.
        max(cycles, mapping.compute_cycles),
        mapping.steps,
        mapping.footprint_bytes + held,
        mapping,
        (record.reads[first].tensor, record.reads[second].tensor, record.writes[output].tensor),
    )


def _with_zeros(
    plan: OpPlan,
    record: OpRecord,
    precision: Precision,
    zeros: Zeros,
    kept: tuple[Collection[int], Collection[int], Collection[int]],
) -> OpPlan:
    """`plan` with its DRAM transfers in the spec's DRAM format and its zero-gated MACs
    skipped.  The mapping stays the dense one: the buffer holds its tiles dense (a tile's
    density is not known when the nest is fixed), only what crosses DRAM is compressed."""
    cached_reads, kept_writes, consumed_writes = kept
    form = zeros.sparsity.compression.dram
    saved: dict[str, int] = {}

    def moved(nbytes: int, operand: Operand) -> int:
        compressed = zeros.scaled(nbytes, operand, form, bits_of(operand, precision))
        if compressed != nbytes:
            role = operand.role.value
            saved[role] = saved.get(role, 0) + nbytes - compressed
        return compressed

    reads = [(i, o) for i, o in enumerate(record.reads) if i not in cached_reads]
    writes = [
        (i, o)
        for i, o in enumerate(record.writes)
        if i not in kept_writes and i not in consumed_writes
    ]
    mapping = plan.mapping
    if mapping is None:
        read = sum(moved(operand_bytes(o, precision), o) for _, o in reads)
        write = sum(moved(operand_bytes(o, precision), o) for _, o in writes)
    else:
        first, second, output = gemm_slots(record)
        read = (
            moved(mapping.read_bytes[0], record.reads[first])
            + moved(mapping.read_bytes[1], record.reads[second])
            + mapping.partial_bytes  # partial sums at accumulator precision: dense
            + sum(
                moved(operand_bytes(o, precision), o) for i, o in reads if i not in (first, second)
            )
        )
        write = (
            moved(mapping.output_write_bytes, record.writes[output])
            + mapping.partial_bytes
            + sum(moved(operand_bytes(o, precision), o) for i, o in writes if i != output)
        )
    skipped, roles = zeros.skipped_macs(record)
    return dataclasses.replace(
        plan,
        dram_read_bytes=read,
        dram_write_bytes=write,
        macs=plan.macs - skipped,
        compute_cycles=zeros.skip_cycles(plan.compute_cycles, record),
        dram_read_saved_bytes=plan.dram_read_bytes - read,
        dram_write_saved_bytes=plan.dram_write_bytes - write,
        saved_by_role=tuple(sorted(saved.items())),
        skipped_macs=skipped,
        gating_roles=roles,
    )
