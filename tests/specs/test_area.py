"""Area per component (hwsim.specs.area): closed forms on the shipped specs, and properties —
area grows with buffer capacity, array size and tile count, at every node."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.io.arch import TECH_DIR, load_arch, load_tech_file
from hwsim.specs.arch import ArchSpec, Topology
from hwsim.specs.area import noc_links, resolve_area, sram_bank_area_um2, sram_ports
from hwsim.specs.resolve import resolve_energies

NODES = ("45nm", "22nm", "7nm")
TECHS = {node: load_tech_file(TECH_DIR / f"{node}.yaml") for node in NODES}
VON_NEUMANN = load_arch("von_neumann").model_dump(mode="json")
DISTRIBUTED = load_arch("distributed_small").model_dump(mode="json")


def _spec(base: dict, **parts: dict) -> ArchSpec:
    data = {**base}
    for name, fields in parts.items():
        data[name] = {**data[name], **fields}
    return ArchSpec.model_validate(data)


def _area(base: dict, node: str, **parts: dict) -> float:
    return resolve_area(_spec(base, **parts), TECHS[node]).area_mm2


def test_von_neumann_closed_form():
    """256 fp16 MACs, 16 fp16 lanes, 8 banks of 32 KiB with one 64-bit port, 2 LPDDR4 PHYs."""
    tech = TECHS["45nm"]
    rows = {row.component.value: row for row in resolve_area(load_arch("von_neumann"), tech).rows}
    assert rows["pe_array"].count == 256 and rows["pe_array"].area_mm2 == pytest.approx(
        256 * 3000e-6
    )
    assert rows["vector_unit"].area_mm2 == pytest.approx(16 * 1360e-6)
    bank_um2 = 32 * 1024 * 8 * 0.346 / 0.7 + 370
    assert rows["global_buffer"].count == 8
    assert rows["global_buffer"].area_mm2 == pytest.approx(8 * bank_um2 / 1e6)
    assert rows["dram_phy"].count == 2 and rows["dram_phy"].area_mm2 == 4.0
    assert set(rows) == {"pe_array", "vector_unit", "global_buffer", "dram_phy"}


def test_ports_follow_the_bandwidth_per_bank():
    tech = TECHS["45nm"]
    one = _spec(VON_NEUMANN).global_buffer
    two = _spec(VON_NEUMANN, global_buffer={"bandwidth_bytes_per_cycle": 128}).global_buffer
    assert (sram_ports(one, tech), sram_ports(two, tech)) == (1, 2)
    cells = sram_bank_area_um2(one, tech) - tech.sram_bank_periphery_area_um2
    assert sram_bank_area_um2(two, tech) - tech.sram_bank_periphery_area_um2 == pytest.approx(
        cells * 1.3
    )


def test_noc_links_of_each_topology():
    assert noc_links(Topology.MESH, 64) == (64, 5, 2 * 8 * 7, 2)  # 8 × 8: 56 + 56 links
    assert noc_links(Topology.MESH, 5) == (5, 5, 3 + 2, 2)  # 3 × 3 grid, 5 tiles row-major
    assert noc_links(Topology.TREE, 64) == (63, 3, 126, 2)
    assert noc_links(Topology.BUS, 64) == (64, 1, 63, 1)
    assert noc_links(Topology.MESH, 1) == (1, 5, 0, 2)


def test_the_area_rows_sum_to_the_area_and_are_carried_by_the_energies():
    for name in ("von_neumann", "distributed_small", "distributed_tree"):
        arch = load_arch(name)
        area = resolve_area(arch, TECHS["45nm"])
        assert area.area_mm2 == pytest.approx(math.fsum(row.area_mm2 for row in area.rows))
        assert resolve_energies(arch, TECHS["45nm"]).area == area


nodes = st.sampled_from(NODES)


@settings(max_examples=40, deadline=None)
@given(
    node=nodes,
    banks=st.sampled_from([1, 2, 8]),
    kib=st.integers(1, 4096),
    more=st.integers(1, 4096),
)
def test_area_grows_with_buffer_capacity(node, banks, kib, more):
    small = {"capacity_bytes": banks * kib * 1024, "banks": banks}
    large = {"capacity_bytes": banks * (kib + more) * 1024, "banks": banks}
    assert _area(VON_NEUMANN, node, global_buffer=large) > _area(
        VON_NEUMANN, node, global_buffer=small
    )
    tiles_small = {"sram": {**DISTRIBUTED["tiles"]["sram"], **small}}
    tiles_large = {"sram": {**DISTRIBUTED["tiles"]["sram"], **large}}
    assert _area(DISTRIBUTED, node, tiles=tiles_large) > _area(DISTRIBUTED, node, tiles=tiles_small)


@settings(max_examples=40, deadline=None)
@given(node=nodes, rows=st.integers(1, 256), columns=st.integers(1, 256), grow=st.integers(1, 64))
def test_area_grows_with_array_size(node, rows, columns, grow):
    base = _area(VON_NEUMANN, node, pe_array={"rows": rows, "columns": columns})
    assert _area(VON_NEUMANN, node, pe_array={"rows": rows + grow, "columns": columns}) > base
    assert _area(VON_NEUMANN, node, pe_array={"rows": rows, "columns": columns + grow}) > base
    tiles = _area(DISTRIBUTED, node, tiles={"macs_per_cycle": rows})
    assert _area(DISTRIBUTED, node, tiles={"macs_per_cycle": rows + grow}) > tiles


@settings(max_examples=40, deadline=None)
@given(
    node=nodes,
    topology=st.sampled_from(["mesh", "bus", "tree"]),
    count=st.integers(1, 4096),
    more=st.integers(1, 512),
)
def test_area_grows_with_tile_count(node, topology, count, more):
    noc = {"topology": topology}
    small = _area(DISTRIBUTED, node, tiles={"count": count}, noc=noc)
    assert _area(DISTRIBUTED, node, tiles={"count": count + more}, noc=noc) > small
