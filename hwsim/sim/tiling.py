"""How one trace record is cut into chunks that fit a buffer (pure functions, no simpy).

The working set of a chunk is at most half the buffer, so the next chunk can load while this
one computes (double buffering).  When a matmul-class op does not fit, its largest operand is
cut into blocks and the other operands are re-read once per block — the DRAM cost of a small
buffer.  Outputs are written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.sim.components import ceil_div
from hwsim.specs.arch import Dataflow, PeArray, Precision
from hwsim.specs.trace import Conv2DOp, GatherOp, MatmulOp, Operand, OpRecord

MAX_CHUNKS = 32  # chunks simulated per op; more blocks than this are merged
BLOCK_SHARE = 0.75  # share of a half-buffer given to the block of the largest operand


def operand_bytes(operand: Operand, precision: Precision) -> int:
    bits = getattr(precision, f"{operand.role.value}_bits")
    return (operand.elements * bits + 7) // 8


@dataclass(frozen=True)
class Chunk:
    """One double-buffered step of an op on the von Neumann substrate."""

    dram_read_bytes: int
    dram_write_bytes: int
    buffer_read_bytes: int  # buffer → PE array
    buffer_write_bytes: int  # PE array → buffer
    macs: int
    vector_ops: int
    compute_cycles: int

    @property
    def footprint_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes


def is_matmul_class(record: OpRecord) -> bool:
    return isinstance(record.op, MatmulOp | Conv2DOp)


def array_cycles(m: int, k: int, n: int, pe: PeArray) -> int:
    """Cycles of an [m, k] @ [k, n] on a rows × columns array (no fill/drain overhead)."""
    if pe.dataflow == Dataflow.WEIGHT_STATIONARY:
        return m * ceil_div(k, pe.rows) * ceil_div(n, pe.columns)
    return k * ceil_div(m, pe.rows) * ceil_div(n, pe.columns)


def compute_cycles(record: OpRecord, *, vector_ops_per_cycle: int, pe: PeArray | None = None,
                   macs_per_cycle: int = 1) -> int:
    """Cycles on an array (`pe`) or on `macs_per_cycle` MAC units; other work on vector ALUs."""
    op = record.op
    if is_matmul_class(record):
        if pe is not None:
            return array_cycles(op.m, op.k, op.n, pe)
        return ceil_div(record.macs, macs_per_cycle)
    if isinstance(op, GatherOp):
        return ceil_div(record.macs, vector_ops_per_cycle)
    return ceil_div(record.other_ops, vector_ops_per_cycle)


def partial_sum_bytes(record: OpRecord, pe: PeArray, precision: Precision) -> int:
    """Extra buffer traffic when the reduction dimension is folded over the array."""
    if not is_matmul_class(record):
        return 0
    op = record.op
    folds = ceil_div(op.k, pe.rows) if pe.dataflow == Dataflow.WEIGHT_STATIONARY else 1
    return 2 * (folds - 1) * op.m * op.n * precision.accumulator_bits // 8


def _spread(total: int, parts: int) -> list[int]:
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def plan_von_neumann(record: OpRecord, precision: Precision, stream_capacity_bytes: int,
                     pe: PeArray, cached_reads: frozenset[int] = frozenset(),
                     kept_writes: frozenset[int] = frozenset()) -> list[Chunk]:
    """Chunks of `record`: DRAM traffic after blocking, buffer traffic, MACs and cycles.

    `cached_reads` and `kept_writes` index operands the buffer's reuse share already holds or
    keeps: the PE array still reads and writes them, DRAM does not.
    """
    half = stream_capacity_bytes // 2
    reads = [operand_bytes(operand, precision) for operand in record.reads]
    writes = [operand_bytes(operand, precision) for operand in record.writes]
    from_dram = [i not in cached_reads for i in range(len(reads))]
    read_all, write_all = sum(reads), sum(writes)
    read_dram = sum(size for size, dram in zip(reads, from_dram, strict=True) if dram)
    write_dram = sum(size for i, size in enumerate(writes) if i not in kept_writes)
    if read_dram + write_dram <= half:
        passes, pe_read, dram_read = 1, read_all, read_dram
    elif is_matmul_class(record):
        block = max(reads + writes)
        passes = ceil_div(block, int(half * BLOCK_SHARE))
        if block in reads:  # the blocked operand is read once, the others once per block
            index = reads.index(block)
            pe_read = block + passes * (read_all - block)
            block_dram = block if from_dram[index] else 0
            dram_read = block_dram + passes * (read_dram - block_dram)
        else:
            pe_read, dram_read = passes * read_all, passes * read_dram
    else:  # streamed: every byte once
        passes = ceil_div(read_dram + write_dram, half)
        pe_read, dram_read = read_all, read_dram
    chunks = min(passes, MAX_CHUNKS)
    cycles = compute_cycles(record, vector_ops_per_cycle=pe.vector_ops_per_cycle, pe=pe)
    psums = partial_sum_bytes(record, pe, precision)
    columns = zip(_spread(dram_read, chunks), _spread(write_dram, chunks),
                  _spread(pe_read + psums // 2, chunks),
                  _spread(write_all + psums // 2, chunks), _spread(record.macs, chunks),
                  _spread(record.other_ops, chunks), _spread(cycles, chunks), strict=True)
    return [Chunk(*column) for column in columns]
