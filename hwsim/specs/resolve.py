"""An arch spec resolved against its technology table: the energy of every action and the
area of every component (`resolve_energies`), each the spec's own number where it gives one,
else the tech table's.  docs/arch-spec.md documents the resolution."""

from __future__ import annotations

import difflib

from hwsim.specs.arch import (
    ArchSpec,
    DistributedSpec,
    FeedbackWeights,
    Noc,
    PeArray,
    Sram,
    Tiles,
    VonNeumannSpec,
)
from hwsim.specs.area import resolve_area
from hwsim.specs.common import raise_problems
from hwsim.specs.tech import ActionEnergies, TechSpec, sram_energy_pj_per_access
from hwsim.units import KIB_BYTES


def _table(table: dict, key: object, problem: str, fix: str, problems: list[str]) -> float:
    if key in table:
        return table[key]
    known = ", ".join(str(k) for k in sorted(table))
    problems.append(f"{problem} (known: {known}; or set {fix})")
    return 0.0


def _dram_energies(arch: ArchSpec, tech: TechSpec, problems: list[str]) -> tuple[float, float]:
    """DRAM read and write pJ/bit: the spec's, else its technology's in the tech table."""
    dram_read, dram_write = arch.dram.read_energy_pj_per_bit, arch.dram.write_energy_pj_per_bit
    if dram_read is not None and dram_write is not None:
        return dram_read, dram_write
    technology = arch.dram.technology
    if technology in tech.dram_energy_pj_per_bit:
        dram_default = tech.dram_energy_pj_per_bit[technology]
    else:
        near = difflib.get_close_matches(technology, tech.dram_energy_pj_per_bit, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        problems.append(
            f"dram.technology: {technology!r} is not in tech {tech.name} "
            f"(known: {', '.join(sorted(tech.dram_energy_pj_per_bit))}){hint}"
        )
        dram_default = 0.0
    return (
        dram_default if dram_read is None else dram_read,
        dram_default if dram_write is None else dram_write,
    )


def _sram_energies(sram: Sram, tech: TechSpec) -> tuple[float, float]:
    """SRAM read and write pJ/bit: the spec's, else from the tech table's access energy at
    the bank's capacity."""
    sram_read = sram.read_energy_pj_per_bit
    if sram_read is None:
        bank_bytes = sram.capacity_bytes / sram.banks
        sram_read = (
            sram_energy_pj_per_access(tech.sram_read_energy_pj_per_access, bank_bytes)
            / tech.sram_access_bits
        )
    sram_write = sram.write_energy_pj_per_bit
    if sram_write is None:
        sram_write = sram_read * tech.sram_write_to_read_ratio
    return sram_read, sram_write


def _generator_energy(arch: ArchSpec, tech: TechSpec, source: str) -> float:
    """pJ per feedback value regenerated on chip (0 when B is stored)."""
    if arch.schedule.feedback_weights == FeedbackWeights.STORED:
        return 0.0
    per_bit = tech.feedback_generator_energy_pj_per_bit
    if per_bit is None:
        raise_problems(
            source,
            [
                "schedule.feedback_weights: generated needs "
                f"feedback_generator_energy_pj_per_bit in tech {tech.name}"
            ],
        )
        return 0.0
    return per_bit * arch.precision.feedback_bits


def _compute_energies(
    arch: ArchSpec, compute: PeArray | Tiles, prefix: str, tech: TechSpec, problems: list[str]
) -> tuple[float, float]:
    """pJ per MAC and per vector op: the spec's, else the tech table's at the precision."""
    weight_bits, activation_bits = arch.precision.weight_bits, arch.precision.activation_bits

    mac = compute.mac_energy_pj
    if mac is None:
        mac = _table(
            tech.mac_energy_pj,
            weight_bits,
            f"precision.weight_bits: no MAC energy for {weight_bits}-bit operands in "
            f"tech {tech.name}",
            f"{prefix}.mac_energy_pj",
            problems,
        )
    vector = compute.vector_op_energy_pj
    if vector is None:
        vector = _table(
            tech.vector_op_energy_pj,
            activation_bits,
            f"precision.activation_bits: no vector-op energy for {activation_bits}-"
            f"bit operands in tech {tech.name}",
            f"{prefix}.vector_op_energy_pj",
            problems,
        )
    return mac, vector


def resolve_energies(arch: ArchSpec, tech: TechSpec, source: str = "arch spec") -> ActionEnergies:
    """Per-action energies (the spec's own numbers where given, else the tech table's) and
    the chip's area by component (`hwsim.specs.area`), resolved against one tech table.

    SpecError (naming `source` and the field) lists every key the tech table lacks: every
    energy's first, then, once the energies resolve, every area's.
    """
    problems: list[str] = []
    compute: PeArray | Tiles
    sram: Sram
    noc: Noc | None = None
    if isinstance(arch, VonNeumannSpec):
        compute, prefix, sram, sram_count = arch.pe_array, "pe_array", arch.global_buffer, 1
    elif isinstance(arch, DistributedSpec):
        compute, prefix, noc = arch.tiles, "tiles", arch.noc
        sram, sram_count = arch.tiles.sram, arch.tiles.count
    else:
        raise TypeError(f"an arch spec is a VonNeumannSpec or a DistributedSpec (got {arch!r})")
    mac, vector = _compute_energies(arch, compute, prefix, tech, problems)
    dram_read, dram_write = _dram_energies(arch, tech, problems)
    raise_problems(source, problems)

    sram_read, sram_write = _sram_energies(sram, tech)
    noc_pj = 0.0
    if noc is not None:
        noc_override = noc.energy_pj_per_bit_per_hop
        noc_pj = tech.noc_energy_pj_per_bit_per_hop if noc_override is None else noc_override
    leakage = sram.leakage_pj_per_cycle
    if leakage is None:
        leakage = tech.sram_leakage_pj_per_cycle_per_kib * sram.capacity_bytes / KIB_BYTES
    feedback_generate_pj = _generator_energy(arch, tech, source)
    return ActionEnergies(
        area=resolve_area(arch, tech, source),  # once every energy resolves
        feedback_generate_pj=feedback_generate_pj,
        mac_pj=mac,
        vector_op_pj=vector,
        dram_read_pj_per_bit=dram_read,
        dram_write_pj_per_bit=dram_write,
        sram_read_pj_per_bit=sram_read,
        sram_write_pj_per_bit=sram_write,
        noc_pj_per_bit_per_hop=noc_pj,
        leakage_pj_per_cycle=leakage * sram_count,
    )
