"""The shipped tech tables (45, 22 and 7 nm): one vocabulary of actions, every number with its
source, and every energy and area falling with the node (issue 19, item 1)."""

from __future__ import annotations

import math
import re

import pytest
import yaml

from hwsim.io.arch import TECH_DIR, load_tech_file, shipped_techs

NODES = ("45nm", "22nm", "7nm")
NEW_NODES = ("22nm", "7nm")
# Not quantities: the file's format version and the node's name.
IDENTIFIERS = ("schema_version", "node_nm")
NUMBER = re.compile(r"(?:^|[\s\[,:])-?\d+(?:\.\d+)?(?:e-?\d+)?(?=[\s,\]#]|$)")
# Stillmaker & Baas 2017, energy ∝ a·V² + b·V + c (the coefficients hwcomponents tabulates):
STILLMAKER_BAAS = {45: (1.103, -0.362, 0.2767), 32: (0.9559, -0.7823, 0.471),
                   20: (0.373, -0.1582, 0.04104), 7: (0.1776, -0.09097, 0.02447)}  # fmt: skip


@pytest.fixture(scope="module")
def tables():
    return {node: load_tech_file(TECH_DIR / f"{node}.yaml") for node in NODES}


def test_the_three_nodes_ship():
    assert set(NODES) <= set(shipped_techs())


def _source_comment(lines: list[str], index: int) -> str:
    """The comment that sources line `index`: its own, else its block's — walking up through
    the lines of the same block (siblings, its parent key) to the comment above; '' when a
    blank line comes first."""
    text = lines[index]
    if "#" in text:
        return text.split("#", 1)[1]
    for line in reversed(lines[:index]):
        stripped = line.strip()
        if not stripped:
            return ""
        if stripped.startswith("#"):
            return stripped
        if "#" in line and stripped.split("#", 1)[0].rstrip().endswith(":"):
            return line.split("#", 1)[1]  # the parent key's own comment
    return ""


def _numbers(node: str) -> list[tuple[int, str, str]]:
    """(line number, line, its source comment) of every line of the table holding a number."""
    lines = (TECH_DIR / f"{node}.yaml").read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        data = line.split("#", 1)[0]
        if not data.strip() or data.strip().startswith(IDENTIFIERS):
            continue
        if NUMBER.search(data.split(":", 1)[-1] if ":" in data else data):
            found.append((index + 1, line, _source_comment(lines, index)))
    return found


@pytest.mark.parametrize("node", NODES)
def test_every_number_has_a_source_comment(node):
    numbers = _numbers(node)
    assert len(numbers) > 40  # every energy and area of the table was seen
    unsourced = [f"{node}.yaml:{number}: {line}" for number, line, source in numbers if not source]
    assert unsourced == []


@pytest.mark.parametrize("node", NEW_NODES)
def test_every_new_number_says_measured_scaled_or_assumed(node):
    """Which numbers are Stillmaker & Baas scaled rather than measured, said at each one."""
    vague = [
        f"{node}.yaml:{number}: {line}"
        for number, line, _ in _numbers(node)
        if not re.search(r"MEASURED|SCALED|ssumption", _block(node, number))
    ]
    assert vague == []


def _block(node: str, number: int) -> str:
    """Every comment line of the contiguous block above line `number` (1-based), with its own."""
    lines = (TECH_DIR / f"{node}.yaml").read_text(encoding="utf-8").splitlines()
    text = [lines[number - 1].split("#", 1)[1] if "#" in lines[number - 1] else ""]
    for line in reversed(lines[: number - 1]):
        if not line.strip():
            break
        if "#" in line:
            text.append(line.split("#", 1)[1])
    return " ".join(text)


def test_every_table_prices_the_same_actions(tables):
    """The closed vocabulary: every node has an energy and an area for the same operand widths
    and DRAM technologies, and the same fields."""
    first = tables["45nm"]
    for node, tech in tables.items():
        assert set(tech.model_fields_set) == set(first.model_fields_set), node
        for field in ("mac_energy_pj", "vector_op_energy_pj", "mac_area_um2", "vector_op_area_um2"):
            assert set(getattr(tech, field)) == {8, 16, 32}, (node, field)
        assert set(tech.dram_energy_pj_per_bit) == set(first.dram_energy_pj_per_bit), node
        assert set(tech.dram_phy_area_mm2_per_channel) == set(tech.dram_energy_pj_per_bit), node
        capacities = [capacity for capacity, _ in tech.sram_read_energy_pj_per_access]
        assert capacities == [capacity for capacity, _ in first.sram_read_energy_pj_per_access]


def _per_action(tech) -> dict[str, float]:
    """Every energy and area of a table that should shrink with the node, by name."""
    values = {
        "sram_leakage_pj_per_cycle_per_kib": tech.sram_leakage_pj_per_cycle_per_kib,
        "noc_energy_pj_per_bit_per_hop": tech.noc_energy_pj_per_bit_per_hop,
        "feedback_generator_energy_pj_per_bit": tech.feedback_generator_energy_pj_per_bit,
        "sram_bit_cell_area_um2": tech.sram_bit_cell_area_um2,
        "sram_bank_periphery_area_um2": tech.sram_bank_periphery_area_um2,
        "noc_router_area_um2_per_port_bit": tech.noc_router_area_um2_per_port_bit,
        "noc_wire_pitch_um": tech.noc_wire_pitch_um,
    }
    for field in ("mac_energy_pj", "vector_op_energy_pj", "mac_area_um2", "vector_op_area_um2"):
        values |= {f"{field}[{bits}]": value for bits, value in getattr(tech, field).items()}
    values |= {
        f"sram_read_energy_pj_per_access[{capacity}]": energy
        for capacity, energy in tech.sram_read_energy_pj_per_access
    }
    values |= {
        f"dram_phy_area_mm2_per_channel[{name}]": area
        for name, area in tech.dram_phy_area_mm2_per_channel.items()
    }
    return values


def test_energies_and_areas_fall_with_the_node(tables):
    old, middle, new = (_per_action(tables[node]) for node in NODES)
    rising = [name for name in old if not old[name] > middle[name] > new[name]]
    assert rising == []
    # What does not scale with the logic node stays: DRAM energy, the ratios, the port width.
    for name in ("dram_energy_pj_per_bit", "sram_write_to_read_ratio", "sram_access_bits",
                 "sram_array_efficiency", "sram_extra_port_area_ratio"):  # fmt: skip
        assert len({repr(getattr(tables[node], name)) for node in NODES}) == 1, name


def test_7nm_arithmetic_is_jouppis_table():
    """Jouppi et al., ISCA 2021, Table 2 (7 nm): MAC = multiply + add."""
    tech = load_tech_file(TECH_DIR / "7nm.yaml")
    assert tech.mac_energy_pj == pytest.approx({8: 0.07 + 0.007, 16: 0.34 + 0.16, 32: 1.31 + 0.38})
    assert tech.vector_op_energy_pj == {8: 0.007, 16: 0.16, 32: 0.38}
    assert tech.dram_energy_pj_per_bit["hbm2"] == pytest.approx(250 / 64, rel=0.01)


def _stillmaker_baas(node: int, volts: float) -> float:
    a, b, c = STILLMAKER_BAAS[node]
    return a * volts**2 + b * volts + c


def test_22nm_arithmetic_sits_where_stillmaker_and_baas_put_the_node(tables):
    """E22 = E45^(1-f) · E7^f, f the share of S&B's 45 → 7 nm log-energy drop reached at 22 nm
    (22 nm linear between S&B's 32 and 20 nm rows; 0.9, 0.8 and 0.75 V)."""
    at_22 = _stillmaker_baas(32, 0.8) + (32 - 22) / 12 * (
        _stillmaker_baas(20, 0.8) - _stillmaker_baas(32, 0.8)
    )
    f = math.log(at_22 / _stillmaker_baas(45, 0.9)) / math.log(
        _stillmaker_baas(7, 0.75) / _stillmaker_baas(45, 0.9)
    )
    assert f == pytest.approx(0.524, abs=5e-4)
    old, middle, new = (tables[node] for node in NODES)
    for field in ("mac_energy_pj", "vector_op_energy_pj"):
        for bits, energy in getattr(middle, field).items():
            expected = getattr(old, field)[bits] ** (1 - f) * getattr(new, field)[bits] ** f
            assert energy == pytest.approx(expected, rel=5e-3), (field, bits)
    generator = old.feedback_generator_energy_pj_per_bit ** (1 - f) * (0.03 / 32) ** f
    assert middle.feedback_generator_energy_pj_per_bit == pytest.approx(generator, rel=5e-3)


def test_7nm_sram_is_the_22nm_cacti_curve_scaled(tables):
    """hwcomponents-cacti's convention below 22 nm: energy × √(node / 22 nm)."""
    middle = dict(tables["22nm"].sram_read_energy_pj_per_access)
    new = dict(tables["7nm"].sram_read_energy_pj_per_access)
    for capacity, energy in new.items():
        assert energy == pytest.approx(middle[capacity] * math.sqrt(7 / 22), rel=2e-3), capacity


def test_the_tables_load_as_yaml_with_their_names():
    for node in NODES:
        data = yaml.safe_load((TECH_DIR / f"{node}.yaml").read_text(encoding="utf-8"))
        assert data["name"] == node and data["kind"] == "tech"
