"""Zeros priced from the densities the trainer measured (pure functions, no simpy).

An operand of e elements, density d (its fraction of non-zeros) and b bits per value stored
in a sparse format takes (docs/model.md):

- bitmask: e·1 + d·e·b bits (one presence bit an element, the non-zeros' values);
- rle (Eyeriss's run-length coding, r = `rle_run_bits`): a (run, value) pair of r + b bits per
  non-zero, plus a pair for every M = 2^r zeros in a row (a zero stored as a value ends a run
  that the run field cannot count); with the zeros at random positions the pairs are
  min(d·e + (1 − d)·e / M, d·e / (1 − (1 − d)^M)) (e / M when d = 0);
- csr: a value and an index of ⌈log₂ e⌉ bits per non-zero: d·e·(b + ⌈log₂ e⌉) bits.

Every format spends at least d·e·b bits; at d = 1 each spends more than dense.  A trace whose
densities were not measured (`densities_measured: false`) is priced at d = 1, so it never
claims a saving.  Zero skipping keeps the MACs whose gating operands are both non-zero: a
fraction Π d of the gating operands (one or two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.specs.arch import ArchSpec
from hwsim.specs.sparsity import CompressionFormat, Sparsity
from hwsim.specs.trace import GatherOp, Operand, OpRecord, Slot, TraceHeader

SAVED = "compression_saved"  # breakdown action: bytes a level did not move, by role
SKIPPED = "skipped_mac"  # breakdown action: MACs gated by zeros, by gating roles


def rle_pairs(elements: int, density: float, run_bits: int) -> float:
    """Expected (run, value) pairs of run-length coding with zeros at random positions."""
    if elements <= 0:
        return 0.0
    longest = 2**run_bits  # zeros one pair can stand for: M − 1 in its run, one as its value
    nonzeros = density * elements
    if density <= 0.0:
        return elements / longest
    runs = nonzeros / -math.expm1(longest * math.log1p(-density)) if density < 1.0 else nonzeros
    return min(nonzeros + (elements - nonzeros) / longest, runs)


def compressed_bits(
    elements: int, density: float, bits: int, form: CompressionFormat, run_bits: int = 5
) -> float:
    """Bits an operand takes in `form` (docs/model.md; at least density·elements·bits)."""
    if form == CompressionFormat.NONE:
        return float(elements * bits)
    nonzeros = density * elements
    if form == CompressionFormat.BITMASK:
        return elements + nonzeros * bits
    if form == CompressionFormat.RLE:
        return rle_pairs(elements, density, run_bits) * (run_bits + bits)
    index_bits = max(1, math.ceil(math.log2(max(2, elements))))
    return nonzeros * (bits + index_bits)


def action(kind: str, roles: str) -> str:
    """A breakdown action of one kind for one role (or gating roles a+b)."""
    return f"{kind}.{roles}"


@dataclass(frozen=True)
class Zeros:
    """What one run does with zeros: the spec's `sparsity` and whether densities count."""

    sparsity: Sparsity
    measured: bool  # the trace's densities were measured (else every operand counts as dense)

    @classmethod
    def of(cls, arch: ArchSpec, header: TraceHeader) -> Zeros | None:
        """None when the spec leaves zeros alone (the simulators' untouched dense path)."""
        sparsity = arch.sparsity
        if not sparsity.active:
            return None
        return cls(sparsity, header.densities_measured)

    def density(self, operand: Operand) -> float:
        return operand.density if self.measured else 1.0

    def ratio(self, operand: Operand, form: CompressionFormat, bits: int) -> float:
        """Compressed ÷ dense size of `operand` in `form` (1 for a role kept dense)."""
        if form == CompressionFormat.NONE or operand.role not in self.sparsity.compressed_roles:
            return 1.0
        dense = operand.elements * bits
        if dense == 0:
            return 1.0
        run_bits = self.sparsity.rle_run_bits
        return compressed_bits(operand.elements, self.density(operand), bits, form, run_bits) / (
            dense
        )

    def scaled(self, nbytes: int, operand: Operand, form: CompressionFormat, bits: int) -> int:
        """`nbytes` of `operand` (the whole tensor or any share of it) moved in `form`."""
        ratio = self.ratio(operand, form, bits)
        return nbytes if ratio == 1.0 else math.ceil(nbytes * ratio)

    def gating(self, record: OpRecord) -> tuple[float, str]:
        """The fraction of `record`'s MACs performed, and the roles whose zeros gate them
        ('' when none does)."""
        skip = self.sparsity.skip_zero_macs
        if not record.macs or not skip:
            return 1.0, ""
        if isinstance(record.op, GatherOp):
            gates = [operand for operand in record.reads if operand.role in skip]
        else:
            gates = [
                operand
                for operand in record.reads
                if operand.slot in (Slot.A, Slot.B) and operand.role in skip
            ]
        if not gates:
            return 1.0, ""
        kept = math.prod(self.density(operand) for operand in gates)
        return kept, "+".join(operand.role.value for operand in gates)

    def skipped_macs(self, record: OpRecord) -> tuple[int, str]:
        """MACs of `record` that zeros gate, and the gating roles."""
        kept, roles = self.gating(record)
        if not roles:
            return 0, ""
        return record.macs - math.ceil(record.macs * kept), roles

    def skip_cycles(self, cycles: int, record: OpRecord) -> int:
        """Compute cycles once skipped MACs take none (`skip_cycles`), else `cycles`."""
        if not self.sparsity.skip_cycles:
            return cycles
        kept, roles = self.gating(record)
        return math.ceil(cycles * kept) if roles else cycles


def is_action(name: str, kind: str) -> bool:
    """Whether breakdown action `name` is one of `kind`'s (SAVED, SKIPPED) rows."""
    return name.startswith(kind + ".")
