"""AlexNet BP on `von_neumann` at 45, 22 and 7 nm (issue 19, acceptance): energy per example
and area strictly fall with the node, and each component's energy moves between nodes by the
tables' ratio for its actions; `tech` works in a spec, as `--set tech=…` and as a sweep axis;
a bad tech name or a table missing an action is one line and exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwsim.cli import main
from hwsim.energy import per_example_breakdown, summarize
from hwsim.io.arch import TECH_DIR, load_tech_file
from hwsim.io.overrides import load_arch_with_values
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
from hwsim.specs.tech import sram_energy_pj_per_access
from hwsim.sweep.runner import run_sweep

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "workloads" / "traces" / "alexnet_bp_b8.jsonl.gz"
NODES = ("45nm", "22nm", "7nm")


@pytest.fixture(scope="module")
def alexnet():
    """{node: (energies, per-example breakdown, summary)} for AlexNet BP on von_neumann."""
    trace = read_trace(TRACE)
    priced = {}
    for node in NODES:
        arch, energies = load_arch_with_values("von_neumann", [("tech", node)])
        result = simulate(arch, trace)
        breakdown = per_example_breakdown(result, energies)
        priced[node] = (energies, breakdown, summarize(result, energies))
    return priced


def test_energy_and_area_strictly_fall_from_45_to_22_to_7nm(alexnet):
    energy = [alexnet[node][2]["energy_pj"] for node in NODES]
    area = [alexnet[node][2]["area_mm2"] for node in NODES]
    assert energy[0] > energy[1] > energy[2] > 0
    assert area[0] > area[1] > area[2] > 0
    for component in alexnet["45nm"][2]["breakdown"]["area_mm2_by_component"]:
        by_node = [
            alexnet[node][2]["breakdown"]["area_mm2_by_component"][component] for node in NODES
        ]
        assert by_node[0] > by_node[1] > by_node[2], component
    # The node reprices; it moves nothing: every count is the same.
    counts = {key: value for key, value in alexnet["45nm"][2].items() if key.endswith("bytes")}
    for node in NODES[1:]:
        assert {key: alexnet[node][2][key] for key in counts} == counts
        assert alexnet[node][2]["cycles"] == alexnet["45nm"][2]["cycles"]


def _table_prices(node: str) -> dict[tuple[str, str], float]:
    """pJ per unit of every (component, action) von_neumann counts, read from the tech table
    itself (16-bit MACs and adds; 32 KiB banks of a 64-bit port; LPDDR4; 256 KiB of SRAM)."""
    tech = load_tech_file(TECH_DIR / f"{node}.yaml")
    sram_pj_per_byte = (
        sram_energy_pj_per_access(tech.sram_read_energy_pj_per_access, 32 * 1024)
        / tech.sram_access_bits
        * 8
    )
    dram_pj_per_byte = tech.dram_energy_pj_per_bit["lpddr4"] * 8
    return {
        ("pe_array", "mac"): tech.mac_energy_pj[16],
        ("pe_array", "vector_op"): tech.vector_op_energy_pj[16],
        **{
            ("global_buffer", action): sram_pj_per_byte
            for action in ("read", "write", "fill", "drain")
        },
        ("dram", "read"): dram_pj_per_byte,
        ("dram", "write"): dram_pj_per_byte,
        ("chip", "leakage"): tech.sram_leakage_pj_per_cycle_per_kib * 256,
    }


def _by_action(breakdown: pd.DataFrame) -> pd.DataFrame:
    return breakdown.groupby(["component", "action"])[["count", "bytes", "energy_pj"]].sum()


def test_each_component_moves_by_the_tables_ratio_for_its_actions(alexnet):
    base = _by_action(alexnet["45nm"][1])
    old_prices = _table_prices("45nm")
    assert set(base.index) <= set(old_prices)  # every priced action is in the table
    for node in NODES[1:]:
        prices = _table_prices(node)
        rows = _by_action(alexnet[node][1])
        # per action: energy ratio = price ratio
        for key, row in rows.iterrows():
            if base.loc[key, "energy_pj"] == 0:
                continue
            ratio = row["energy_pj"] / base.loc[key, "energy_pj"]
            assert ratio == pytest.approx(prices[key] / old_prices[key], rel=1e-9), (node, key)
        # per component: the count-weighted ratio of its actions' prices
        for component in rows.index.get_level_values("component").unique():
            mine = rows.loc[component]
            quantity = [
                row["bytes"] if row["bytes"] else row["count"] for _, row in mine.iterrows()
            ]
            actions = list(mine.index)
            expected = math.fsum(
                q * prices[component, a] for q, a in zip(quantity, actions, strict=True)
            ) / math.fsum(
                q * old_prices[component, a] for q, a in zip(quantity, actions, strict=True)
            )
            got = mine["energy_pj"].sum() / base.loc[component, "energy_pj"].sum()
            assert got == pytest.approx(expected, rel=1e-9), (node, component)


def test_tech_in_a_spec_and_as_a_set_flag(tmp_path, capsys):
    spec = yaml.safe_load((ROOT / "arch_specs" / "von_neumann.yaml").read_text())
    path = tmp_path / "seven.yaml"
    path.write_text(yaml.safe_dump({**spec, "tech": "7nm"}))
    printed = []
    for argv in (["--arch", str(path)], ["--arch", "von_neumann", "--set", "tech=7nm"]):
        assert main(["simulate", *argv, "--trace", str(TRACE), "--format", "json"]) == 0
        printed.append(json.loads(capsys.readouterr().out))
    assert printed[0]["energy_pj"] == printed[1]["energy_pj"]
    assert printed[0]["area_mm2"] == printed[1]["area_mm2"]
    assert printed[0]["breakdown"]["area_mm2_by_component"]["pe_array"] == pytest.approx(
        256 * 177e-6
    )


def test_a_sweep_over_tech(tmp_path):
    sweep = {
        "schema_version": 1,
        "kind": "sweep",
        "name": "nodes",
        "base": ["von_neumann"],
        "workloads": {"traces": [str(TRACE)]},
        "axes": [{"path": "tech", "values": list(NODES)}],
        "metrics": ["energy_pj", "area_mm2"],
    }
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    table = run_sweep(path, tmp_path / "out", jobs=1)
    assert list(table["tech"]) == list(NODES)
    assert table["energy_pj"].is_monotonic_decreasing and table["energy_pj"].is_unique
    assert table["area_mm2"].is_monotonic_decreasing and table["area_mm2"].is_unique


def _tech_without(tmp_path: Path, edit) -> Path:
    tech = yaml.safe_load((TECH_DIR / "45nm.yaml").read_text())
    edit(tech)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({**tech, "name": "mine"}))
    spec = yaml.safe_load((ROOT / "arch_specs" / "von_neumann.yaml").read_text())
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**spec, "tech": "mine.yaml"}))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda tech: tech.pop("mac_area_um2"),
            "{dir}/mine.yaml: mac_area_um2: required key is missing",
        ),
        (
            lambda tech: tech.pop("noc_energy_pj_per_bit_per_hop"),
            "{dir}/mine.yaml: noc_energy_pj_per_bit_per_hop: required key is missing",
        ),
        (
            lambda tech: tech["mac_area_um2"].pop(16),
            "{dir}/spec.yaml: precision.weight_bits: no MAC area for 16-bit operands in tech "
            "mine (known: 8, 32; or set pe_array.mac_area_um2)",
        ),
        (
            lambda tech: tech["dram_phy_area_mm2_per_channel"].pop("lpddr4"),
            "{dir}/spec.yaml: dram.technology: no DRAM PHY area for 'lpddr4' in tech mine "
            "(known: ddr3, gddr5, hbm2, hmc; or set dram.phy_area_mm2_per_channel)",
        ),
    ],
)
def test_a_table_missing_an_action_is_one_line_and_exit_2(tmp_path, capsys, edit, message):
    spec = _tech_without(tmp_path, edit)
    assert main(["simulate", "--arch", str(spec), "--trace", str(TRACE), "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"hwsim: error: {message.format(dir=tmp_path)}\n"


def test_an_unknown_tech_name_is_one_line_and_exit_2(capsys):
    argv = ["simulate", "--arch", "von_neumann", "--set", "tech=5nm", "--trace", str(TRACE)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("hwsim: error: ") and "von_neumann.yaml: tech: unknown tech '5nm'" in err
    assert "available: 22nm, 45nm, 7nm" in err
