"""Area per component of one design point: a pure function of the arch spec and its tech table
(docs/model.md "Area").  Every row is count × the area of one unit; the chip is their sum."""

from __future__ import annotations

import math

from hwsim.specs.arch import (
    ArchSpec,
    DistributedSpec,
    Dram,
    Noc,
    PeArray,
    Sram,
    Tiles,
    Topology,
    VonNeumannSpec,
)
from hwsim.specs.common import raise_problems
from hwsim.specs.tech import AreaComponent, AreaRow, ChipArea, TechSpec
from hwsim.units import BITS_PER_BYTE, UM2_PER_MM2


def sram_ports(sram: Sram, tech: TechSpec) -> int:
    """Ports per bank: the spec's bandwidth over its banks, in accesses of the tech's port
    width (at least one)."""
    port_bytes = tech.sram_access_bits / BITS_PER_BYTE
    return max(1, math.ceil(sram.bandwidth_bytes_per_cycle / sram.banks / port_bytes - 1e-9))


def sram_bank_area_um2(sram: Sram, tech: TechSpec) -> float:
    """One bank: its bit cells (grown by every port beyond the first) over the array
    efficiency, plus the bank's fixed periphery."""
    bits = sram.capacity_bytes // sram.banks * BITS_PER_BYTE
    cell = tech.sram_bit_cell_area_um2 * (
        1 + (sram_ports(sram, tech) - 1) * tech.sram_extra_port_area_ratio
    )
    return bits * cell / tech.sram_array_efficiency + tech.sram_bank_periphery_area_um2


def _sram_row(component: AreaComponent, sram: Sram, copies: int, tech: TechSpec) -> AreaRow:
    bank = sram_bank_area_um2(sram, tech)
    source = (
        f"tech {tech.name}: {sram.banks} bank(s) of {sram.capacity_bytes // sram.banks} B, "
        f"{sram_ports(sram, tech)} port(s) each: bits × sram_bit_cell_area_um2 "
        f"({tech.sram_bit_cell_area_um2:g}) × ports factor / sram_array_efficiency "
        f"({tech.sram_array_efficiency:g}) + sram_bank_periphery_area_um2 "
        f"({tech.sram_bank_periphery_area_um2:g}) = {bank:.6g} µm² a bank"
    )
    banks = sram.banks * copies
    return AreaRow(
        component=component, count=banks, area_mm2=banks * bank / UM2_PER_MM2, source=source
    )


def _unit_area(
    override: float | None,
    table: dict[int, float],
    bits: int,
    what: tuple[str, str, str, str],
    tech: TechSpec,
    problems: list[str],
) -> tuple[float, str]:
    """(µm² of one unit, where it comes from): the spec's override, else the tech table at
    `bits`; a miss is a problem naming the precision field and the override.  `what` is
    (precision field, what the unit is, the table's field, the override's field)."""
    field, noun, table_field, fix = what
    if override is not None:
        return override, f"{fix} = {override:g} µm² each (spec)"
    if bits in table:
        return table[bits], f"tech {tech.name}: {table_field}[{bits}] = {table[bits]:g} µm² each"
    known = ", ".join(str(key) for key in sorted(table))
    problems.append(
        f"{field}: no {noun} area for {bits}-bit operands in tech {tech.name} "
        f"(known: {known}; or set {fix})"
    )
    return 0.0, ""


def _compute_rows(
    arch: ArchSpec, tech: TechSpec, problems: list[str]
) -> tuple[list[AreaRow], float]:
    """The MAC and vector-lane rows, and the µm² of one copy's share of them (a tile's on a
    distributed chip)."""
    compute: PeArray | Tiles
    if isinstance(arch, VonNeumannSpec):
        compute, prefix, copies = arch.pe_array, "pe_array", 1
        macs, mac_component = arch.peak_macs_per_cycle, AreaComponent.PE_ARRAY
    elif isinstance(arch, DistributedSpec):
        compute, prefix, copies = arch.tiles, "tiles", arch.tiles.count
        macs, mac_component = arch.peak_macs_per_cycle, AreaComponent.TILE_MACS
    else:
        raise TypeError(f"an arch spec is a VonNeumannSpec or a DistributedSpec (got {arch!r})")
    precision = arch.precision
    mac, mac_source = _unit_area(
        compute.mac_area_um2,
        tech.mac_area_um2,
        precision.weight_bits,
        ("precision.weight_bits", "MAC", "mac_area_um2", f"{prefix}.mac_area_um2"),
        tech,
        problems,
    )
    lane, lane_source = _unit_area(
        compute.vector_op_area_um2,
        tech.vector_op_area_um2,
        precision.activation_bits,
        (
            "precision.activation_bits",
            "vector-op",
            "vector_op_area_um2",
            f"{prefix}.vector_op_area_um2",
        ),
        tech,
        problems,
    )
    lanes = compute.vector_ops_per_cycle * copies
    rows = [
        AreaRow(
            component=mac_component,
            count=macs,
            area_mm2=macs * mac / UM2_PER_MM2,
            source=mac_source,
        ),
        AreaRow(
            component=AreaComponent.VECTOR_UNIT,
            count=lanes,
            area_mm2=lanes * lane / UM2_PER_MM2,
            source=lane_source,
        ),
    ]
    return rows, (macs * mac + lanes * lane) / copies


def noc_links(topology: Topology, tiles: int) -> tuple[int, int, int, int]:
    """(routers, ports per router, links, directions per link) of a topology over `tiles`
    tiles placed row-major on a square grid, as hwsim.sim.noc places them: a mesh has a
    5-port router per tile and a two-way link per neighbour pair; a tree, the tiles as
    leaves of a binary tree of 3-port switches (2 × (tiles − 1) two-way links); a bus, a
    one-port interface per tile and one shared segment per tile pitch."""
    if topology == Topology.MESH:
        side = max(1, math.isqrt(tiles - 1) + 1)
        full_rows, last = divmod(tiles, side)
        horizontal = full_rows * (side - 1) + max(0, last - 1)
        vertical = max(0, tiles - side)
        return tiles, 5, horizontal + vertical, 2
    if topology == Topology.TREE:
        return max(0, tiles - 1), 3, 2 * max(0, tiles - 1), 2
    return tiles, 1, max(0, tiles - 1), 1


def _noc_rows(noc: Noc, tiles: int, tile_um2: float, tech: TechSpec) -> list[AreaRow]:
    """Routers and links; a link is one tile pitch (√ of a tile's area, router included) of
    link-width wires at the tech's pitch, per direction."""
    routers, ports, links, directions = noc_links(noc.topology, tiles)
    link_bits = math.ceil(noc.link_bandwidth_bytes_per_cycle * BITS_PER_BYTE - 1e-9)
    router_um2 = ports * link_bits * tech.noc_router_area_um2_per_port_bit
    per_tile_router = routers * router_um2 / tiles
    pitch_um = math.sqrt(tile_um2 + per_tile_router)
    link_um2 = directions * link_bits * tech.noc_wire_pitch_um * pitch_um
    return [
        AreaRow(
            component=AreaComponent.NOC_ROUTER,
            count=routers,
            area_mm2=routers * router_um2 / UM2_PER_MM2,
            source=f"tech {tech.name}: {ports} ports × {link_bits} bits × "
            f"noc_router_area_um2_per_port_bit ({tech.noc_router_area_um2_per_port_bit:g})",
        ),
        AreaRow(
            component=AreaComponent.NOC_LINK,
            count=links,
            area_mm2=links * link_um2 / UM2_PER_MM2,
            source=f"tech {tech.name}: {directions} direction(s) × {link_bits} wires × "
            f"noc_wire_pitch_um ({tech.noc_wire_pitch_um:g}) × a tile pitch of "
            f"{pitch_um:.4g} µm",
        ),
    ]


def _dram_row(dram: Dram, tech: TechSpec, problems: list[str]) -> AreaRow:
    per_channel = dram.phy_area_mm2_per_channel
    source = f"dram.phy_area_mm2_per_channel = {per_channel} mm² each (spec)"
    if per_channel is None:
        table = tech.dram_phy_area_mm2_per_channel
        per_channel = table.get(dram.technology, 0.0)
        source = f"tech {tech.name}: dram_phy_area_mm2_per_channel[{dram.technology}]"
        if dram.technology not in table:
            problems.append(
                f"dram.technology: no DRAM PHY area for {dram.technology!r} in tech "
                f"{tech.name} (known: {', '.join(sorted(table))}; or set "
                "dram.phy_area_mm2_per_channel)"
            )
    return AreaRow(
        component=AreaComponent.DRAM_PHY,
        count=dram.channels,
        area_mm2=dram.channels * per_channel,
        source=f"{source} = {per_channel:g} mm² each",
    )


def resolve_area(arch: ArchSpec, tech: TechSpec, source: str = "arch spec") -> ChipArea:
    """The chip's area by component.  SpecError (naming `source` and the field) lists every
    unit the tech table has no area for."""
    problems: list[str] = []
    rows, compute_um2_per_tile = _compute_rows(arch, tech, problems)
    if isinstance(arch, VonNeumannSpec):
        rows.append(_sram_row(AreaComponent.GLOBAL_BUFFER, arch.global_buffer, 1, tech))
    elif isinstance(arch, DistributedSpec):
        tiles, sram = arch.tiles.count, arch.tiles.sram
        rows.append(_sram_row(AreaComponent.TILE_SRAM, sram, tiles, tech))
        tile_um2 = compute_um2_per_tile + sram.banks * sram_bank_area_um2(sram, tech)
        rows.extend(_noc_rows(arch.noc, tiles, tile_um2, tech))
    rows.append(_dram_row(arch.dram, tech, problems))
    raise_problems(source, problems)
    return ChipArea(rows=tuple(rows))
