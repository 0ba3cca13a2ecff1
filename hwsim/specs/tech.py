"""Technology tables (`kind: tech`): the per-action energies of one node, and the per-action
energies an arch spec resolves to against one (`hwsim.specs.arch.resolve_energies`).

docs/arch-spec.md documents every field.
"""

from __future__ import annotations

import bisect
import itertools
import math
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from hwsim.specs.common import FrozenModel, NotBool, finite_range
from hwsim.specs.quantities import BITS, Area, Bytes, Energy, ResolvedEnergy


class TechSpec(FrozenModel):
    """Per-action energies of one technology node, with their sources in the file's comments."""

    schema_version: Literal[1] = Field(description="format version, 1")
    kind: Literal["tech"] = Field(description="file kind, 'tech'")
    name: str = Field(description="node name, e.g. 45nm")
    node_nm: Annotated[float, finite_range(gt=0, le=1e4), NotBool] = Field(
        description="feature size in nanometres"
    )
    mac_energy_pj: dict[int, Energy] = Field(  # by operand bits: multiply + add
        description="one multiply-accumulate (multiply + add), by operand bits"
    )
    vector_op_energy_pj: dict[int, Energy] = Field(  # by operand bits: one add-class operation
        description="one element-wise (add-class) operation, by operand bits"
    )
    sram_access_bits: Annotated[int, Field(ge=1, le=4096), NotBool] = Field(
        default=64, description="bits per access of the SRAM curve's port"
    )
    # [capacity_bytes, pJ per access of sram_access_bits] points, interpolated in log-log.
    sram_read_energy_pj_per_access: list[tuple[Bytes, Energy]] = Field(
        min_length=2,
        description="[capacity_bytes, pJ per read of sram_access_bits] points, "
        "capacities increasing; interpolated in log-log",
    )
    sram_write_to_read_ratio: Annotated[float, finite_range(gt=0, le=100), NotBool] = Field(
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
    # Area (hwsim.specs.area; docs/model.md "Area").
    sram_bit_cell_area_um2: Area = Field(description="one SRAM bit cell (6T, high density)")
    sram_array_efficiency: Annotated[float, finite_range(gt=0, le=1), NotBool] = Field(
        description="share of an SRAM bank's array area that is bit cells"
    )
    sram_bank_periphery_area_um2: Area = Field(
        description="fixed area of one SRAM bank beyond its array (decoders, sense amps, I/O)"
    )
    sram_extra_port_area_ratio: Annotated[float, finite_range(ge=0, le=10), NotBool] = Field(
        description="cell area added by each port beyond the first, as a share of the cell"
    )
    mac_area_um2: dict[int, Area] = Field(
        description="one multiply-accumulate unit (multiplier + adder), by operand bits"
    )
    vector_op_area_um2: dict[int, Area] = Field(
        description="one element-wise lane (an adder), by operand bits"
    )
    noc_router_area_um2_per_port_bit: Area = Field(
        description="router area per port per bit of link width"
    )
    noc_wire_pitch_um: Annotated[float, finite_range(gt=0, le=100), NotBool] = Field(
        description="pitch of one NoC link wire"
    )
    dram_phy_area_mm2_per_channel: dict[str, Area] = Field(
        description="on-chip DRAM interface (PHY and controller) per channel, by technology"
    )

    @field_validator("mac_energy_pj", "vector_op_energy_pj", "mac_area_um2", "vector_op_area_um2")
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


class AreaComponent(StrEnum):
    """What a chip's area is priced by (the closed vocabulary of `area.csv`)."""

    PE_ARRAY = "pe_array"  # the von Neumann array's MAC units
    TILE_MACS = "tile_macs"  # the distributed tiles' MAC units
    VECTOR_UNIT = "vector_unit"  # element-wise lanes (all tiles' on a distributed chip)
    GLOBAL_BUFFER = "global_buffer"
    TILE_SRAM = "tile_sram"
    NOC_ROUTER = "noc_router"
    NOC_LINK = "noc_link"
    DRAM_PHY = "dram_phy"


class AreaRow(FrozenModel):
    """The area of `count` instances of one component, and where its figure comes from."""

    component: AreaComponent
    count: Annotated[int, Field(ge=0)]  # MAC units, lanes, SRAM banks, routers, links, channels
    area_mm2: Annotated[float, finite_range(ge=0)]  # all `count` of them
    source: str  # the tech-table fields (or spec overrides) and the formula


class ChipArea(FrozenModel):
    """A design point's area by component (`hwsim.specs.area.resolve_area`)."""

    rows: tuple[AreaRow, ...] = ()

    @property
    def area_mm2(self) -> float:
        return math.fsum(row.area_mm2 for row in self.rows)


class ActionEnergies(FrozenModel):
    """Energy per action after resolving a spec against its technology table, and the chip's
    area resolved against the same table (empty when the energies were built by hand)."""

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
    area: ChipArea = ChipArea()


def sram_energy_pj_per_access(curve: list[tuple[int, float]], capacity_bytes: float) -> float:
    """The SRAM curve at `capacity_bytes`: straight lines between points in log-log, and the
    end segments extended beyond the first and last point."""
    capacities = [capacity for capacity, _ in curve]
    index = min(max(bisect.bisect_left(capacities, capacity_bytes), 1), len(curve) - 1)
    (c0, e0), (c1, e1) = curve[index - 1], curve[index]
    slope = math.log(e1 / e0) / math.log(c1 / c0)
    return e0 * math.exp(slope * math.log(capacity_bytes / c0))
