"""Technology tables (`kind: tech`): the per-action energies of one node, and the per-action
energies an arch spec resolves to against one (`hwsim.specs.arch.resolve_energies`).

docs/arch-spec.md documents every field.
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Annotated, Literal

from pydantic import Field, field_validator

from hwsim.specs.common import FrozenModel, NotBool, finite_range
from hwsim.specs.quantities import BITS, Bytes, Energy, ResolvedEnergy


class TechSpec(FrozenModel):
    """Per-action energies of one technology node, with their sources in the file's comments."""

    schema_version: Literal[1] = Field(description="format version, 1")
    kind: Literal["tech"] = Field(description="file kind, 'tech'")
    name: str = Field(description="node name, e.g. 45nm")
    node_nm: Annotated[float, NotBool, finite_range(gt=0, le=1e4)] = Field(
        description="feature size in nanometres"
    )
    mac_energy_pj: dict[int, Energy] = Field(  # by operand bits: multiply + add
        description="one multiply-accumulate (multiply + add), by operand bits"
    )
    vector_op_energy_pj: dict[int, Energy] = Field(  # by operand bits: one add-class operation
        description="one element-wise (add-class) operation, by operand bits"
    )
    sram_access_bits: Annotated[int, NotBool, Field(ge=1, le=4096)] = Field(
        default=64, description="bits per access of the SRAM curve's port"
    )
    # [capacity_bytes, pJ per access of sram_access_bits] points, interpolated in log-log.
    sram_read_energy_pj_per_access: list[tuple[Bytes, Energy]] = Field(
        min_length=2,
        description="[capacity_bytes, pJ per read of sram_access_bits] points, "
        "capacities increasing; interpolated in log-log",
    )
    sram_write_to_read_ratio: Annotated[float, NotBool, finite_range(gt=0, le=100)] = Field(
        default=1.0, description="SRAM write energy / read energy"
    )
    sram_leakage_pj_per_cycle_per_kib: Energy = Field(
        default=0.0, description="SRAM leakage per cycle per KiB of capacity"
    )
    dram_energy_pj_per_bit: dict[str, Energy] = Field(
        description="DRAM read or write energy per bit, by technology"
    )
    noc_energy_pj_per_bit_per_hop: Energy = Field(description="one bit over one NoC hop")
    feedback_generator_energy_pj_per_bit: Energy | None = Field(
        default=None,
        description="one bit of a feedback weight regenerated on chip by a pseudo-random "
        "generator (schedule.feedback_weights: generated); required only by such a spec",
    )

    @field_validator("mac_energy_pj", "vector_op_energy_pj")
    @classmethod
    def _operand_bits(cls, table: dict[int, float]) -> dict[int, float]:
        odd = sorted(bits for bits in table if bits not in BITS)
        if odd:
            raise ValueError(
                f"keys are operand bits, one of {', '.join(map(str, BITS))}; "
                f"{', '.join(map(str, odd))} is not"
            )
        return table

    @field_validator("sram_read_energy_pj_per_access")
    @classmethod
    def _increasing_curve(cls, curve: list[tuple[int, float]]) -> list[tuple[int, float]]:
        capacities = [capacity for capacity, _ in curve]
        if any(later <= earlier for earlier, later in itertools.pairwise(capacities)):
            raise ValueError("capacities must increase strictly from point to point")
        if any(energy <= 0 for _, energy in curve):
            raise ValueError("energies must be > 0 (the curve is interpolated in log-log)")
        return curve


class ActionEnergies(FrozenModel):
    """Energy per action after resolving a spec against its technology table."""

    mac_pj: ResolvedEnergy
    vector_op_pj: ResolvedEnergy
    dram_read_pj_per_bit: ResolvedEnergy
    dram_write_pj_per_bit: ResolvedEnergy
    sram_read_pj_per_bit: ResolvedEnergy  # the global buffer (von Neumann) or one tile's SRAM
    sram_write_pj_per_bit: ResolvedEnergy
    noc_pj_per_bit_per_hop: ResolvedEnergy
    leakage_pj_per_cycle: ResolvedEnergy  # whole chip
    # One feedback value regenerated on chip (0 when B is stored: nothing is generated).
    feedback_generate_pj: ResolvedEnergy = 0.0


def sram_energy_pj_per_access(curve: list[tuple[int, float]], capacity_bytes: float) -> float:
    """The SRAM curve at `capacity_bytes`: straight lines between points in log-log, and the
    end segments extended beyond the first and last point."""
    capacities = [capacity for capacity, _ in curve]
    index = min(max(bisect.bisect_left(capacities, capacity_bytes), 1), len(curve) - 1)
    (c0, e0), (c1, e1) = curve[index - 1], curve[index]
    slope = math.log(e1 / e0) / math.log(c1 / c0)
    return e0 * math.exp(slope * math.log(capacity_bytes / c0))
