"""What one trace record costs on the von Neumann substrate (pure functions, no simpy).

Matmul and conv records get a mapping from the search in hwsim.sim.loopnest (loop order and
tile sizes that fit the buffer space the op is given, least DRAM traffic); element-wise,
reduce and gather records stream every operand once, double-buffered.  The plan says what
moves between DRAM, the buffer and the PE array, how many pipeline steps the op takes, and
how much buffer space its tiles hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass

from hwsim.sim.components import ceil_div
from hwsim.sim.loopnest import DRAM_BYTES, Machine, Mapping, Objective, fitting, gemm_of
from hwsim.sim.loopnest import Operand as GemmOperand
from hwsim.sim.sparsity import Zeros
from hwsim.specs.arch import Dataflow, PeArray, Precision
from hwsim.specs.sparsity import CompressionFormat
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
    # With `sparsity` (hwsim.sim.sparsity): DRAM bytes compression saved, by role; the bytes
    # the buffer fills and drains (None: what DRAM moves, decompressed: the buffer holds
    # operands dense unless `compression.sram` compresses them) and the buffer bytes its
    # format saved (fills, drains and the array's reads and writes), by role; the MACs zeros
    # gated.
    dram_read_saved_bytes: int = 0
    dram_write_saved_bytes: int = 0
    saved_by_role: tuple[tuple[str, int], ...] = ()
    buffer_fill_bytes: int | None = None
    buffer_drain_bytes: int | None = None
    buffer_saved_by_role: tuple[tuple[str, int], ...] = ()
    skipped_macs: int = 0
    gating_roles: str = ""

    @property
    def fill_bytes(self) -> int:
        """What the buffer takes in from DRAM, in the buffer's format."""
        if self.buffer_fill_bytes is not None:
            return self.buffer_fill_bytes
        return self.dram_read_bytes + self.dram_read_saved_bytes

    @property
    def drain_bytes(self) -> int:
        """What the buffer gives out to DRAM, in the buffer's format."""
        if self.buffer_drain_bytes is not None:
            return self.buffer_drain_bytes
        return self.dram_write_bytes + self.dram_write_saved_bytes


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


def _stream_plan(
    record: OpRecord, reads: list[int], writes: list[int], dram: tuple[int, int], cycles: int
) -> Callable[[int], OpPlan]:
    """A vector op: its operands stream through the buffer, double-buffered, in as few
    steps as the budget allows; `dram`: the bytes read from and written to DRAM.  The plan
    of a number of steps, given it."""
    moved = dram[0] + dram[1]

    def of_steps(steps: int) -> OpPlan:
        footprint = moved if steps == 1 else 2 * ceil_div(moved, steps)
        return OpPlan(
            dram[0],
            dram[1],
            sum(reads),
            sum(writes),
            record.macs,
            record.other_ops,
            cycles,
            steps,
            footprint,
            None,
        )

    return of_steps


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


Kept = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # cached, kept, consumed


class _Family:
    """The plans of one record with given reads cached and writes kept or consumed, by the
    one thing the budget changes: a streamed op's steps, a GEMM's mapping."""

    def __init__(self, planner: Planner, record: OpRecord, kept: Kept) -> None:
        self.record = record
        self.by_steps: dict[int, OpPlan] = {}  # a streamed op's plans
        self.by_mapping: dict[int, tuple[Mapping, OpPlan]] = {}  # a GEMM's, by id(mapping)
        self.zeros = planner.zeros
        self.kept = kept
        self.precision = precision = planner.precision
        pe = planner.pe
        cached_reads, kept_writes, consumed_writes = kept
        reads = [operand_bytes(operand, precision) for operand in record.reads]
        writes = [operand_bytes(operand, precision) for operand in record.writes]
        cycles = compute_cycles(record, vector_ops_per_cycle=pe.vector_ops_per_cycle, pe=pe)
        self.best: Callable[[int], Mapping | None] | None = None  # a GEMM's search
        self.moved = 0  # a streamed op's DRAM bytes
        self.held = 0  # a GEMM's small operands, held whole
        if not is_matmul_class(record):
            read_dram = sum(size for i, size in enumerate(reads) if i not in cached_reads)
            write_dram = sum(
                size
                for i, size in enumerate(writes)
                if i not in kept_writes and i not in consumed_writes
            )
            self.moved = read_dram + write_dram
            self.of_steps = _stream_plan(record, reads, writes, (read_dram, write_dram), cycles)
            return
        self._gemm(planner, reads, writes, cycles)

    def _gemm(self, planner: Planner, reads: list[int], writes: list[int], cycles: int) -> None:
        """A matmul or conv: the searched loop nest's traffic, plus the small operands (a
        bias) held whole."""
        record, precision, pe = self.record, planner.precision, planner.pe
        cached_reads, kept_writes, consumed_writes = self.kept
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
        self.held = held = extra_dram + extra_write_dram
        op = record.op
        assert isinstance(op, MatmulOp | Conv2DOp), "only matmul-class ops are planned as GEMMs"
        folds = partial_sum_bytes(record, pe, precision)
        fixed = sum(reads[i] for i in extra_reads) + folds + sum(writes)
        machine = planner.machine
        # One group's buffer traffic no mapping changes: only the cycle estimates count it.
        fixed = 0 if machine.objective.kind == DRAM_BYTES.kind else fixed // op.groups
        self.best = fitting(gemm_of(op, a, b, c, precision.accumulator_bits), machine, fixed)
        tensors = (record.reads[first].tensor, record.reads[second].tensor)
        extra_array = sum(reads[i] for i in extra_reads) + folds // 2
        written = sum(writes) + folds // 2

        def of_mapping(group: Mapping) -> OpPlan:
            mapping = group.repeated(op.groups)
            return OpPlan(
                mapping.dram_read_bytes + extra_dram,
                mapping.dram_write_bytes + extra_write_dram,
                mapping.array_read_bytes + extra_array + mapping.partial_bytes,
                written + mapping.partial_bytes,
                record.macs,
                record.other_ops,
                # The array's time is its tiles' (each folds its own reduction), never
                # below the whole op's.
                max(cycles, mapping.compute_cycles),
                mapping.steps,
                mapping.footprint_bytes + held,
                mapping,
                (*tensors, record.writes[output].tensor),
            )

        self.of_mapping = of_mapping

    def plan(self, budget_bytes: int) -> OpPlan:
        if self.best is None:
            steps = max(1, ceil_div(self.moved, max(1, budget_bytes // 2)))
            plan = self.by_steps.get(steps)
            if plan is None:
                plan = self.by_steps[steps] = self._finished(self.of_steps(steps))
            if plan.footprint_bytes > budget_bytes:
                raise NoFit(f"streams of {self.moved} bytes")
            return plan
        mapping = self.best(budget_bytes - self.held)
        if mapping is None:
            raise NoFit("its smallest tiles")
        entry = self.by_mapping.get(id(mapping))
        if entry is None or entry[0] is not mapping:
            plan = self._finished(self.of_mapping(mapping))
            entry = self.by_mapping[id(mapping)] = (mapping, plan)
        return entry[1]

    def _finished(self, plan: OpPlan) -> OpPlan:
        """`plan` with the spec's zeros priced (compression, skipping), if it has any."""
        if self.zeros is None:
            return plan
        return _with_zeros(plan, self.record, self.precision, self.zeros, self.kept)


class Planner:
    """`plan_op` on one chip, memoized: a record's plans with given reads cached and writes
    kept or consumed are built once, by the steps or the mapping the budget picks (one
    search per budget, the frontier bisected), and shared by every later op, point or
    trace step that asks for them again."""

    def __init__(
        self,
        precision: Precision,
        pe: PeArray,
        dram_bytes_per_cycle: float = 1.0,
        buffer_bytes_per_cycle: float = 1.0,
        zeros: Zeros | None = None,
        objective: Objective = DRAM_BYTES,
    ) -> None:
        self.precision = precision
        self.pe = pe
        self.zeros = zeros
        self.machine = machine_of(pe, dram_bytes_per_cycle, buffer_bytes_per_cycle, objective)
        self.families: dict[tuple[int, Kept], _Family] = {}
        # The substrate's: each plan's pipeline stages, by id(plan) (the plan kept with them).
        self.pipelines: dict[int, tuple] = {}

    def plan(self, record: OpRecord, budget_bytes: int, kept: Kept = ((), (), ())) -> OpPlan:
        """The cost of `record` given `budget_bytes` of stream space; `kept`: the reads the
        buffer already holds, the writes it keeps whole, the writes used on chip and never
        written to DRAM.  Raises NoFit when its smallest tiles need more than the budget."""
        key = (id(record), kept)
        family = self.families.get(key)
        if family is None or family.record is not record:
            family = self.families[key] = _Family(self, record, kept)
        return family.plan(budget_bytes)


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
    """The cost of `record` given `budget_bytes` of stream space (a Planner's, once).

    `cached_reads` index reads the buffer already holds; `kept_writes` writes it keeps whole;
    `consumed_writes` writes used on chip and never written to DRAM (a fused weight update's
    gradient).  `zeros`: compression of DRAM transfers and zero skipping (None: dense).
    `objective`: what the mapping search ranks by (schedule.mapping_objective).
    Raises NoFit when the op's smallest tiles need more than the budget.
    """
    planner = Planner(precision, pe, dram_bytes_per_cycle, buffer_bytes_per_cycle, zeros, objective)
    kept = (tuple(sorted(cached_reads)), tuple(sorted(kept_writes)), tuple(sorted(consumed_writes)))
    return planner.plan(record, budget_bytes, kept)


def _with_zeros(
    plan: OpPlan,
    record: OpRecord,
    precision: Precision,
    zeros: Zeros,
    kept: tuple[Collection[int], Collection[int], Collection[int]],
) -> OpPlan:
    """`plan` with its DRAM transfers in the spec's DRAM format and its zero-gated MACs
    skipped, and the buffer's bytes in its own format (`_in_buffer`).  The mapping stays the
    dense one, its tiles sized dense: a tile's density is not known when the nest is fixed."""
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
    plan = dataclasses.replace(
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
    return _in_buffer(plan, record, precision, zeros, (reads, writes))


def _in_buffer(
    plan: OpPlan,
    record: OpRecord,
    precision: Precision,
    zeros: Zeros,
    moved: tuple[list[tuple[int, Operand]], list[tuple[int, Operand]]],
) -> OpPlan:
    """`plan` with the compressed roles held in the buffer in `compression.sram`'s format:
    its fills and drains (what DRAM moves, `moved`: the reads and writes that cross DRAM)
    and the array's reads and writes of them take the format's bytes; partial sums (at
    accumulator precision) and the array's folds stay dense.  The mapping stays the dense
    one, its tiles sized dense.  Unchanged with `sram: none`."""
    form = zeros.sparsity.compression.sram
    if form == CompressionFormat.NONE:
        return plan
    saved: dict[str, int] = {}

    def save(nbytes: int, operand: Operand) -> int:  # what the buffer's format cuts
        cut = nbytes - zeros.scaled(nbytes, operand, form, bits_of(operand, precision))
        if cut:
            saved[operand.role.value] = saved.get(operand.role.value, 0) + cut
        return cut

    reads, writes = moved
    mapping = plan.mapping
    if mapping is None:
        fill_cut = sum(save(operand_bytes(o, precision), o) for _, o in reads)
        drain_cut = sum(save(operand_bytes(o, precision), o) for _, o in writes)
        read_cut = sum(save(operand_bytes(o, precision), o) for o in record.reads)
    else:
        first, second, output = gemm_slots(record)
        a, b = record.reads[first], record.reads[second]
        others = [(i, o) for i, o in reads if i not in (first, second)]
        fill_cut = (
            save(mapping.read_bytes[0], a)
            + save(mapping.read_bytes[1], b)
            + sum(save(operand_bytes(o, precision), o) for _, o in others)
        )
        drain_cut = sum(
            save(mapping.output_write_bytes if i == output else operand_bytes(o, precision), o)
            for i, o in writes
        )
        read_cut = (
            save(mapping.array_reads[0], a)
            + save(mapping.array_reads[1], b)
            + sum(
                save(operand_bytes(o, precision), o)
                for i, o in enumerate(record.reads)
                if i not in (first, second)
            )
        )
    write_cut = sum(save(operand_bytes(o, precision), o) for o in record.writes)
    return dataclasses.replace(
        plan,
        buffer_read_bytes=plan.buffer_read_bytes - read_cut,
        buffer_write_bytes=plan.buffer_write_bytes - write_cut,
        buffer_fill_bytes=plan.fill_bytes - fill_cut,
        buffer_drain_bytes=plan.drain_bytes - drain_cut,
        buffer_saved_by_role=tuple(sorted(saved.items())),
    )
