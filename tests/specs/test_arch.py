"""Arch specs and tech tables: every shipped one loads and resolves; every bad one gets a
message naming the file and the field."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hwsim.cli import main
from hwsim.errors import SpecError
from hwsim.io.arch import (
    ARCH_DIR,
    TECH_DIR,
    load_arch,
    load_arch_with_energies,
    load_tech,
    load_tech_file,
    shipped_archs,
    shipped_techs,
)
from hwsim.io.yamlio import load_yaml
from hwsim.specs.arch import ArchSpec, sram_energy_pj_per_access
from hwsim.specs.resolve import resolve_energies
from hwsim.units import GIB_BYTES, KIB_BYTES, MIB_BYTES

# reference/energy.md, CACTI 7 at 45 nm: pJ per 64-bit read by capacity.
CACTI_45NM = {
    512: 1.41,
    1 * KIB_BYTES: 1.67,
    2 * KIB_BYTES: 2.76,
    4 * KIB_BYTES: 3.39,
    8 * KIB_BYTES: 6.14,
    16 * KIB_BYTES: 11.6,
    32 * KIB_BYTES: 17.0,
    64 * KIB_BYTES: 25.9,
    128 * KIB_BYTES: 32.3,
    256 * KIB_BYTES: 44.7,
    512 * KIB_BYTES: 68.4,
    MIB_BYTES: 93.5,
    2 * MIB_BYTES: 128,
    4 * MIB_BYTES: 189,
}


def _shipped_files() -> list[Path]:
    return sorted(ARCH_DIR.glob("**/*.yaml"))


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda path: str(path.name))
def test_every_shipped_file_loads(path):
    kind = load_yaml(path)["kind"]
    assert kind in ("arch", "tech", "sweep")  # sweeps are tested with the sweep code
    if kind == "arch":
        arch, energies = load_arch_with_energies(path)
        assert arch.name == path.stem
        assert energies.mac_pj > 0 and energies.sram_read_pj_per_bit > 0
    elif kind == "tech":
        assert load_tech_file(path).name == path.stem


def test_the_shipped_set():
    assert {
        "von_neumann",
        "von_neumann_hbm",
        "distributed",
        "distributed_tree",
        "distributed_small",
        "distributed_small_bus",
    } <= set(shipped_archs())
    assert "45nm" in shipped_techs()
    for name in shipped_archs():
        first = (ARCH_DIR / f"{name}.yaml").read_text().splitlines()[0]
        assert first.startswith(f"# {name}: "), f"{name}.yaml must start by saying what it models"


def test_tech_45nm_matches_the_reference():
    tech = load_tech_file(TECH_DIR / "45nm.yaml")
    assert dict(tech.sram_read_energy_pj_per_access) == CACTI_45NM
    assert tech.sram_access_bits == 64
    assert tech.mac_energy_pj == pytest.approx({8: 0.2 + 0.03, 16: 1.1 + 0.4, 32: 3.7 + 0.9})
    assert tech.vector_op_energy_pj == {8: 0.03, 16: 0.4, 32: 0.9}
    assert tech.dram_energy_pj_per_bit == {
        "lpddr4": 8,
        "hbm2": 3.9,
        "hmc": 4.2,
        "gddr5": 14,
        "ddr3": 70,
    }
    assert tech.noc_energy_pj_per_bit_per_hop == 0.2


def test_von_neumann_numbers():
    arch, energies = load_arch_with_energies("von_neumann")
    assert arch.clock_hz == 1e9
    assert arch.peak_macs_per_cycle == 256
    assert arch.dram_bandwidth_bytes_per_cycle == 34  # 34 GB/s at 1 GHz: LPDDR4X-4266
    assert arch.sram_bytes == 256 * KIB_BYTES
    # One bank is 256 KiB / 8 = 32 KiB: 17.0 pJ per 64-bit read.
    assert energies.sram_read_pj_per_bit == pytest.approx(17.0 / 64)
    assert energies.sram_read_pj_per_bit == pytest.approx(0.2656, abs=1e-4)
    assert energies.sram_write_pj_per_bit == energies.sram_read_pj_per_bit
    assert energies.dram_read_pj_per_bit == energies.dram_write_pj_per_bit == 8
    assert energies.mac_pj == 1.5 and energies.vector_op_pj == 0.4
    assert energies.noc_pj_per_bit_per_hop == 0
    assert energies.leakage_pj_per_cycle == pytest.approx(256 * 0.005)


def test_hbm_variant_differs_only_in_dram():
    base, base_energies = load_arch_with_energies("von_neumann")
    hbm, hbm_energies = load_arch_with_energies("von_neumann_hbm")
    assert hbm.dram_bandwidth_bytes_per_cycle == 256
    assert hbm_energies.dram_read_pj_per_bit == 3.9
    assert hbm.global_buffer == base.global_buffer and hbm.pe_array == base.pe_array
    same_dram = {"dram_read_pj_per_bit": 8, "dram_write_pj_per_bit": 8, "area": None}
    assert hbm_energies.model_copy(update=same_dram) == base_energies.model_copy(
        update={"area": None}
    )
    # Its area differs only in the DRAM interface: 8 HBM2 channels for 2 LPDDR4 ones.
    assert hbm_energies.area.rows[:-1] == base_energies.area.rows[:-1]
    dram_phys = (hbm_energies.area.rows[-1], base_energies.area.rows[-1])
    assert [row.count for row in dram_phys] == [8, 2]


def test_distributed_numbers():
    arch, energies = load_arch_with_energies("distributed")
    assert arch.peak_macs_per_cycle == 4096 * 16
    assert arch.sram_bytes == GIB_BYTES
    # VGG16's FC head (123.6 M weights) at 16 bits, with 16-bit gradients, fits in the 75 %
    # of SRAM left after the activation reserve (the sizing argued in distributed.yaml).
    usable = arch.sram_bytes * (1 - arch.mapping.activation_reserve_fraction)
    vgg16_head = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert vgg16_head * (2 + 2) < usable < vgg16_head * (2 + 8)
    assert energies.sram_read_pj_per_bit == pytest.approx(25.9 / 64)  # 64 KiB banks
    assert energies.noc_pj_per_bit_per_hop == 0.2
    assert energies.leakage_pj_per_cycle == pytest.approx(4096 * 256 * 0.005)
    small, small_energies = load_arch_with_energies("distributed_small")
    assert small.peak_macs_per_cycle == load_arch("von_neumann").peak_macs_per_cycle
    assert small_energies.sram_read_pj_per_bit == pytest.approx(11.6 / 64)  # 16 KiB banks
    assert load_arch("distributed_tree").noc.topology == "tree"
    assert load_arch("distributed_small_bus").noc.topology == "bus"


def test_sram_curve_passes_through_its_points_and_extends_its_ends():
    curve = sorted(CACTI_45NM.items())
    for capacity, energy in curve:
        assert sram_energy_pj_per_access(curve, capacity) == pytest.approx(energy)
    between = sram_energy_pj_per_access(curve, math.sqrt(32 * 64) * KIB_BYTES)
    assert between == pytest.approx(math.sqrt(17.0 * 25.9))  # straight in log-log
    slope = math.log(1.67 / 1.41) / math.log(2)
    assert sram_energy_pj_per_access(curve, 256) == pytest.approx(1.41 / 2**slope)
    slope = math.log(189 / 128) / math.log(2)
    assert sram_energy_pj_per_access(curve, 8 * MIB_BYTES) == pytest.approx(189 * 2**slope)


@given(
    st.floats(min_value=100, max_value=64 * MIB_BYTES),
    st.floats(min_value=100, max_value=64 * MIB_BYTES),
)
def test_sram_energy_grows_with_capacity(a, b):
    curve = sorted(CACTI_45NM.items())
    low, high = sorted((a, b))
    assert sram_energy_pj_per_access(curve, low) <= sram_energy_pj_per_access(curve, high) * (
        1 + 1e-12
    )


# A tiny von Neumann spec and a tiny distributed one, written to tmp_path by the tests.
VN = {
    "schema_version": 1,
    "kind": "arch",
    "name": "tiny_vn",
    "substrate": "von_neumann",
    "clock_hz": "1 GHz",
    "dram": {"channels": 1, "bandwidth_bytes_per_cycle": 8, "latency_cycles": 10},
    "global_buffer": {"capacity_bytes": "64 KiB", "banks": 2, "bandwidth_bytes_per_cycle": 16},
    "pe_array": {"rows": 4, "columns": 4, "vector_ops_per_cycle": 4},
}
DIST = {
    "schema_version": 1,
    "kind": "arch",
    "name": "tiny_dist",
    "substrate": "distributed",
    "clock_hz": 500_000_000,
    "dram": {"channels": 1, "bandwidth_bytes_per_cycle": 8, "latency_cycles": 10},
    "tiles": {
        "count": 4,
        "macs_per_cycle": 2,
        "vector_ops_per_cycle": 1,
        "sram": {"capacity_bytes": 4096, "bandwidth_bytes_per_cycle": 8},
    },
    "noc": {"topology": "mesh", "link_bandwidth_bytes_per_cycle": 8, "hop_latency_cycles": 1},
}


def _write(tmp_path, data, name="arch.yaml") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def _edit(base: dict, path: str, value) -> dict:
    """A copy of `base` with the dotted `path` set to `value` (or removed if value is ...)."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def _rename(base: dict, old: str, new: str) -> dict:
    return {(new if key == old else key): value for key, value in base.items()}


def test_tiny_specs_resolve(tmp_path):
    arch, energies = load_arch_with_energies(_write(tmp_path, VN))
    assert arch.global_buffer.capacity_bytes == 64 * KIB_BYTES
    assert energies.sram_read_pj_per_bit == pytest.approx(17.0 / 64)  # 2 banks of 32 KiB
    arch, energies = load_arch_with_energies(_write(tmp_path, DIST))
    assert arch.clock_hz == 5e8 and arch.peak_macs_per_cycle == 8
    assert energies.sram_read_pj_per_bit == pytest.approx(3.39 / 64)
    assert energies.leakage_pj_per_cycle == pytest.approx(4 * 4 * 0.005)


def test_spec_energies_override_the_tech_table(tmp_path):
    data = _edit(VN, "pe_array.mac_energy_pj", 0.5)
    data = _edit(data, "pe_array.vector_op_energy_pj", 0.05)
    data = _edit(data, "dram.read_energy_pj_per_bit", 20.0)
    data = _edit(data, "global_buffer.read_energy_pj_per_bit", 0.1)
    data = _edit(data, "global_buffer.leakage_pj_per_cycle", 2.0)
    data = _edit(data, "precision", {"weight_bits": 4, "activation_bits": 4})  # not in the tech
    data = _edit(data, "pe_array.mac_area_um2", 50.0)  # nor are their areas
    data = _edit(data, "pe_array.vector_op_area_um2", 5.0)
    _, energies = load_arch_with_energies(_write(tmp_path, data))
    assert energies.mac_pj == 0.5 and energies.vector_op_pj == 0.05
    assert energies.dram_read_pj_per_bit == 20 and energies.dram_write_pj_per_bit == 8
    assert energies.sram_read_pj_per_bit == energies.sram_write_pj_per_bit == 0.1
    assert energies.leakage_pj_per_cycle == 2.0
    data = _edit(DIST, "noc.energy_pj_per_bit_per_hop", 0.5)
    data = _edit(data, "tiles.sram.leakage_pj_per_cycle", 0.25)
    data = _edit(data, "tiles.sram.write_energy_pj_per_bit", 1.0)
    data = _edit(data, "precision", {"weight_bits": 8, "activation_bits": 32})
    _, energies = load_arch_with_energies(_write(tmp_path, data))
    assert energies.noc_pj_per_bit_per_hop == 0.5
    assert energies.leakage_pj_per_cycle == 4 * 0.25  # per tile × tiles
    assert energies.sram_write_pj_per_bit == 1.0
    assert energies.mac_pj == 0.23 and energies.vector_op_pj == 0.9


def test_write_ratio_and_tech_path_relative_to_the_arch_file(tmp_path):
    tech = yaml.safe_load((TECH_DIR / "45nm.yaml").read_text())
    (tmp_path / "techs").mkdir()
    _write(
        tmp_path / "techs", {**tech, "name": "mine", "sram_write_to_read_ratio": 1.5}, "mine.yaml"
    )
    path = _write(tmp_path, {**VN, "tech": "techs/mine.yaml"})
    arch = load_arch(path)
    assert load_tech(arch, path).name == "mine"
    _, energies = load_arch_with_energies(path)
    assert energies.sram_write_pj_per_bit == pytest.approx(1.5 * 17.0 / 64)


def test_resolve_energies_is_pure():
    arch = ArchSpec.model_validate(VN)
    tech = load_tech_file(TECH_DIR / "45nm.yaml")
    assert resolve_energies(arch, tech) == resolve_energies(arch, tech)
    with pytest.raises(SpecError, match=r"^spec\.yaml: dram\.technology: 'ddr9'"):
        resolve_energies(_edit_model(arch, technology="ddr9"), tech, source="spec.yaml")


def _edit_model(arch: ArchSpec, **dram) -> ArchSpec:
    return arch.model_copy(update={"dram": arch.dram.model_copy(update=dram)})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _rename(VN, "global_buffer", "global_bufer"),
            "global_buffer: required key is missing\n{path}: "
            "global_bufer: unknown key; did you mean 'global_buffer'?",
        ),
        (
            _edit(VN, "global_buffer.capacity_bytes", 0),
            "global_buffer.capacity_bytes: must be greater than 0 (got 0)",
        ),
        (
            _edit(VN, "global_buffer.capacity_bytes", "-1 KiB"),
            "global_buffer.capacity_bytes: must be greater than 0 (got '-1 KiB')",
        ),
        (
            _edit(VN, "global_buffer.capacity_bytes", "256 kB"),
            "global_buffer.capacity_bytes: ambiguous unit 'kB': write KiB (1024 bytes) or a plain "
            "number of bytes (got '256 kB')",
        ),
        (
            _edit(VN, "global_buffer.capacity_bytes", "256 kibibytes"),
            "global_buffer.capacity_bytes: unknown unit 'kibibytes': use B, KiB, MiB, GiB, TiB "
            "or a "
            "plain number (got '256 kibibytes')",
        ),
        (
            _edit(VN, "global_buffer.capacity_bytes", 1000.5),
            "global_buffer.capacity_bytes: must be a whole number of bytes (got 1000.5)",
        ),
        (
            _edit(VN, "global_buffer.capacity_bytes", True),
            "global_buffer.capacity_bytes: expected a number of bytes or a string like '256 KiB' "
            "(got True)",
        ),
        (
            _edit(VN, "global_buffer.banks", 3),
            "global_buffer.banks: must split capacity_bytes (65536) into equal banks (got 3)",
        ),
        (
            _edit(VN, "clock_hz", "1 G"),
            "clock_hz: ambiguous unit 'G': write GHz or a plain number of hertz (got '1 G')",
        ),
        (_edit(VN, "clock_hz", 0), "clock_hz: must be greater than or equal to 1000 (got 0)"),
        (
            {**VN, "tiles": DIST["tiles"]},
            "substrate: von_neumann has no tiles (remove it or set substrate: distributed)",
        ),
        (_edit(DIST, "noc", ...), "substrate: distributed needs noc"),
        (
            {**_edit(DIST, "noc", ...), "pe_array": VN["pe_array"]},
            "substrate: distributed needs noc; distributed has no pe_array (remove it or set "
            "substrate: von_neumann)",
        ),
        (
            _edit(VN, "precision", {"weight_bits": 12}),
            "precision.weight_bits: must be 4, 8, 16, 32 or 64 (got 12)",
        ),
        (
            _edit(DIST, "noc.topology", "ring"),
            "noc.topology: must be 'mesh', 'bus' or 'tree' (got 'ring')",
        ),
        (
            _edit(DIST, "mapping", {"activation_reserve_fraction": 1}),
            "mapping.activation_reserve_fraction: must be less than 1 (got 1)",
        ),
        (
            _edit(VN, "substrate", "dataflow"),
            "substrate: must be 'von_neumann' or 'distributed' (got 'dataflow')",
        ),
        (_edit(VN, "dram.channels", ...), "dram.channels: required key is missing"),
        (_edit(VN, "schema_version", 2), "schema_version: must be 1 (got 2)"),
        (
            _edit(VN, "name", "tiny vn"),
            "name: String should match pattern '^[A-Za-z][A-Za-z0-9_]*$' (got 'tiny vn')",
        ),
    ],
)
def test_bad_spec_messages(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_arch_with_energies(path)
    assert str(info.value) == f"{path}: {message}".replace("{path}", str(path))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _edit(VN, "tech", "45mn"),
            "tech: unknown tech '45mn'; did you mean '45nm'? (available: {techs}; or give a path "
            "to a "
            ".yaml file)",
        ),
        (
            _edit(VN, "tech", "nowhere.yaml"),
            "tech: no tech file at {dir}/nowhere.yaml (got 'nowhere.yaml')",
        ),
        (
            _edit(VN, "dram.technology", "ddr9"),
            "dram.technology: 'ddr9' is not in tech 45nm (known: ddr3, gddr5, hbm2, hmc, lpddr4); "
            "did you mean 'ddr3'?",
        ),
        (
            _edit(VN, "dram.technology", "sram"),
            "dram.technology: 'sram' is not in tech 45nm (known: ddr3, gddr5, hbm2, hmc, lpddr4)",
        ),
        (
            _edit(VN, "precision", {"weight_bits": 4}),
            "precision.weight_bits: no MAC energy for 4-bit operands in tech 45nm (known: 8, 16, "
            "32; "
            "or set pe_array.mac_energy_pj)",
        ),
        (
            _edit(DIST, "precision", {"activation_bits": 64}),
            "precision.activation_bits: no vector-op energy for 64-bit operands in tech 45nm "
            "(known: "
            "8, 16, 32; or set tiles.vector_op_energy_pj)",
        ),
    ],
)
def test_bad_tech_references(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_arch_with_energies(path)
    expected = message.format(techs=", ".join(shipped_techs()), dir=tmp_path)
    assert str(info.value) == f"{path}: {expected}"


def test_every_problem_is_reported_at_once(tmp_path):
    data = _edit(DIST, "noc.topology", "ring")
    data = _edit(data, "tiles.sram.capacity_bytes", "4 kB")
    data = _edit(data, "clock_hz", -1)
    data = _rename(data, "dram", "dramm")
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_arch(path)
    assert str(info.value).splitlines() == [
        f"{path}: clock_hz: must be greater than or equal to 1000 (got -1)",
        f"{path}: dram: required key is missing",
        f"{path}: tiles.sram.capacity_bytes: ambiguous unit 'kB': write KiB (1024 bytes) or a "
        "plain number of bytes (got '4 kB')",
        f"{path}: noc.topology: must be 'mesh', 'bus' or 'tree' (got 'ring')",
        f"{path}: dramm: unknown key; did you mean 'dram'?",
    ]
    # Every tech-table gap is reported together as well.
    data = _edit(VN, "precision", {"weight_bits": 4, "activation_bits": 64})
    path = _write(tmp_path, _edit(data, "dram.technology", "ddr9"))
    with pytest.raises(SpecError) as info:
        load_arch_with_energies(path)
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "precision.weight_bits",
        "precision.activation_bits",
        "dram.technology",
    ]


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "schema_version: 1\nkind: arch\ndram: {channels: 2\nname: x\n")
    with pytest.raises(SpecError, match=r"arch\.yaml: line 4, column \d+: YAML syntax error"):
        load_arch(path)


def test_wrong_kind_names_and_missing_files(tmp_path):
    with pytest.raises(SpecError, match=r"arch\.yaml: kind: expected 'arch' \(got 'network'\)"):
        load_arch(_write(tmp_path, {**VN, "kind": "network"}))
    with pytest.raises(
        SpecError, match="unknown arch spec 'von_neuman'; did you mean 'von_neumann'"
    ):
        load_arch("von_neuman")
    with pytest.raises(SpecError, match=r"missing\.yaml: file not found"):
        load_arch(str(tmp_path / "missing.yaml"))


TECH = yaml.safe_load((TECH_DIR / "45nm.yaml").read_text())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**TECH, "sram_read_energy_pj_per_access": [[1024, 2.0], [512, 1.0]]},
            "sram_read_energy_pj_per_access: capacities must increase strictly from point to point "
            "(got [[1024, 2.0], [512, 1.0]])",
        ),
        (
            {**TECH, "sram_read_energy_pj_per_access": [[512, 0.0], [1024, 1.0]]},
            "sram_read_energy_pj_per_access: energies must be > 0 (the curve is interpolated in "
            "log-log) (got [[512, 0.0], [1024, 1.0]])",
        ),
        (
            {**TECH, "sram_read_energy_pj_per_access": [["1 kB", 1.0], [2048, 2.0]]},
            "sram_read_energy_pj_per_access.0.0: ambiguous unit 'kB': write KiB (1024 bytes) or a "
            "plain number of bytes (got '1 kB')",
        ),
        (
            {**TECH, "sram_read_energy_pj_per_access": [[512, 1.0]]},
            "sram_read_energy_pj_per_access: List should have at least 2 items after validation, "
            "not "
            "1 (got [[512, 1.0]])",
        ),
        (
            {**TECH, "mac_energy_pj": {12: 1.0}},
            "mac_energy_pj: keys are operand bits, one of 4, 8, 16, 32, 64; 12 is not (got {12: "
            "1.0})",
        ),
        (
            {**TECH, "noc_energy_pj_per_bit_per_hop": -0.2},
            "noc_energy_pj_per_bit_per_hop: must be greater than or equal to 0 (got -0.2)",
        ),
        ({**TECH, "kind": "arch"}, "kind: expected 'tech' (got 'arch')"),
    ],
)
def test_bad_tech_messages(tmp_path, data, message):
    path = _write(tmp_path, data, "tech.yaml")
    with pytest.raises(SpecError) as info:
        load_tech_file(path)
    assert str(info.value) == f"{path}: {message}"


# The command line, in-process.


def test_validate_arch_and_tech(capsys):
    paths = [
        "arch_specs/von_neumann.yaml",
        "arch_specs/distributed.yaml",
        "arch_specs/tech/45nm.yaml",
    ]
    assert main(["validate", *paths]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "ok: arch_specs/von_neumann.yaml: arch von_neumann (von_neumann, 1 GHz, 256 MACs/cycle, "
        "256 KiB SRAM, DRAM lpddr4 34 B/cycle; tech 45nm: MAC 1.5 pJ, SRAM 0.266 pJ/bit, "
        "DRAM 8 pJ/bit; area 5.829 mm²)",
        "ok: arch_specs/distributed.yaml: arch distributed (distributed, 1 GHz, 65,536 "
        "MACs/cycle, 4096 tiles × 256 KiB = 1 GiB SRAM, mesh NoC, DRAM lpddr4 34 B/cycle; "
        "tech 45nm: MAC 1.5 pJ, SRAM 0.405 pJ/bit, NoC 0.2 pJ/bit/hop, DRAM 8 pJ/bit; "
        "area 12,625 mm²)",
        "ok: arch_specs/tech/45nm.yaml: tech 45nm (45 nm; MAC energies for 8/16/32-bit "
        "operands, SRAM curve 512 B–4 MiB in 14 points, DRAM lpddr4, hbm2, hmc, gddr5, ddr3; "
        "SRAM bit cell 0.346 µm²)",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _edit(VN, "global_buffer.capacity_bytes", "256 kB"),
            "global_buffer.capacity_bytes: ambiguous unit 'kB'",
        ),
        (_edit(VN, "dram.technology", "ddr9"), "dram.technology: 'ddr9' is not in tech 45nm"),
        (
            {**VN, "kind": "sweeep"},
            "kind: expected 'network', 'arch', 'tech' or 'sweep' (got "
            "'sweeep'); traces end in .jsonl",
        ),
    ],
)
def test_validate_bad_arch_is_one_message_and_status_2(tmp_path, capsys, data, message):
    path = _write(tmp_path, data)
    assert main(["validate", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"hwsim: error: {path}: {message}")
    assert captured.err.count("\n") == 1


def test_schema_arch_and_tech(capsys):
    assert main(["schema", "arch"]) == 0
    schema = json.loads(capsys.readouterr().out)
    # One of two specs, told apart by `substrate`; each forbids unknown keys.
    assert schema["discriminator"]["propertyName"] == "substrate"
    variants = {name: schema["$defs"][name] for name in ("VonNeumannSpec", "DistributedSpec")}
    assert all(variant["additionalProperties"] is False for variant in variants.values())
    assert {"global_buffer", "pe_array"} <= set(variants["VonNeumannSpec"]["required"])
    assert {"tiles", "noc"} <= set(variants["DistributedSpec"]["required"])
    assert {"dram", "precision"} <= set(variants["DistributedSpec"]["properties"])
    capacity = schema["$defs"]["Sram"]["properties"]["capacity_bytes"]
    assert [option["type"] for option in capacity["anyOf"]] == ["integer", "string"]
    assert "256 KiB" in capacity["anyOf"][1]["examples"]
    clock = variants["VonNeumannSpec"]["properties"]["clock_hz"]
    assert [option["type"] for option in clock["anyOf"]] == ["number", "string"]
    assert main(["schema", "tech"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "sram_read_energy_pj_per_access" in schema["required"]


def test_validate_a_copied_spec_with_its_tech(tmp_path, capsys):
    shutil.copy(ARCH_DIR / "distributed_small.yaml", tmp_path / "mine.yaml")
    assert main(["validate", str(tmp_path / "mine.yaml")]) == 0
    assert (
        "arch distributed_small (distributed, 1 GHz, 256 MACs/cycle, 64 tiles × 64 KiB"
        in capsys.readouterr().out
    )
