"""Sweep files → points × workloads: counts, order, keys, and every problem reported at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from hwsim.cli import main
from hwsim.energy import SUMMARY_KEYS
from hwsim.errors import SpecError
from hwsim.specs.sweep import Metric, SweepSpec
from hwsim.sweep.expand import expand, grid_indices, grid_values
from tests.sweep.conftest import ROOT, TRACES, write_sweep

SHIPPED = sorted((ROOT / "arch_specs" / "sweeps").glob("*.yaml"))


def test_grid_is_row_major_and_workloads_innermost(small_sweep):
    expansion = expand(small_sweep)
    assert [p.values for p in expansion.points] == [
        {"global_buffer.capacity_bytes": size, "dram.channels": channels}
        for size in ("64 KiB", "256 KiB")
        for channels in (1, 2, 4)
    ]
    assert [p.index for p in expansion.points] == list(range(6))
    assert [w.label for w in expansion.workloads] == ["digits_fc_bp_b4", "digits_fc_ssdfa_b4_s1"]
    rows = expansion.rows
    assert len(rows) == 12 and len({row.key for row in rows}) == 12
    assert [(row.point.index, row.workload.label) for row in rows[:3]] == [
        (0, "digits_fc_bp_b4"),
        (0, "digits_fc_ssdfa_b4_s1"),
        (1, "digits_fc_bp_b4"),
    ]
    assert expansion.points[3].arch.global_buffer.capacity_bytes == 256 * 1024
    assert expansion.points[3].arch.dram.channels == 1


def test_keys_are_content_hashes(tmp_path):
    first = expand(write_sweep(tmp_path))
    again = expand(write_sweep(tmp_path))
    assert [row.key for row in first.rows] == [row.key for row in again.rows]
    # the same spec written two ways is the same point
    same = expand(
        write_sweep(
            tmp_path, axes=[{"path": "global_buffer.capacity_bytes", "values": ["256 KiB", 262144]}]
        )
    )
    assert same.points[0].key == same.points[1].key


def test_zip_groups_advance_together_and_bases_are_outermost(tmp_path):
    expansion = expand(
        write_sweep(
            tmp_path,
            base=["von_neumann", "von_neumann_hbm"],
            axes=[
                {
                    "zip": [
                        {"path": "dram.channels", "values": [1, 2]},
                        {"path": "dram.latency_cycles", "values": [50, 200]},
                    ]
                },
                {"path": "pe_array.rows", "values": [8, 16, 32]},
            ],
        )
    )
    assert len(expansion.points) == 2 * 2 * 3
    assert [p.base for p in expansion.points] == ["von_neumann"] * 6 + ["von_neumann_hbm"] * 6
    assert expansion.points[4].values == {
        "dram.channels": 2,
        "dram.latency_cycles": 200,
        "pe_array.rows": 16,
    }


def test_seeded_sampling_keeps_grid_order(tmp_path):
    axes = [
        {"path": "pe_array.rows", "values": list(range(1, 21))},
        {"path": "pe_array.columns", "values": list(range(1, 21))},
    ]
    sampled = expand(write_sweep(tmp_path, axes=axes, sampling={"samples": 7, "seed": 3}))
    again = expand(write_sweep(tmp_path, axes=axes, sampling={"samples": 7, "seed": 3}))
    other = expand(write_sweep(tmp_path, axes=axes, sampling={"samples": 7, "seed": 4}))
    values = [p.values for p in sampled.points]
    assert len(values) == 7 and values == [p.values for p in again.points]
    assert values != [p.values for p in other.points]
    grid = [grid_values(sampled.spec.axes, i) for i in range(400)]
    positions = [grid.index(v) for v in values]
    assert positions == sorted(positions)
    everything = expand(write_sweep(tmp_path, axes=axes[:1], sampling={"samples": 50}))
    assert len(everything.points) == 20


def test_bad_axis_paths_are_named_with_the_nearest_field(tmp_path):
    path = write_sweep(
        tmp_path,
        axes=[
            {"path": "global_bufer.capacity_bytes", "values": [1]},
            {
                "zip": [
                    {"path": "dram.channels", "values": [1]},
                    {"path": "dram.bandwith_bytes_per_cycle", "values": [2]},
                ]
            },
        ],
    )
    with pytest.raises(SpecError) as caught:
        expand(path)
    assert str(caught.value).splitlines() == [
        f"{path}: axes.0.path: global_bufer.capacity_bytes: unknown field 'global_bufer'; "
        "did you mean 'global_buffer'?",
        f"{path}: axes.1.zip.1.path: dram.bandwith_bytes_per_cycle: unknown field "
        "'bandwith_bytes_per_cycle' in 'dram'; did you mean 'dram.bandwidth_bytes_per_cycle'?",
    ]


def test_every_bad_point_is_reported_before_any_runs(tmp_path):
    path = write_sweep(
        tmp_path,
        axes=[
            {"path": "global_buffer.capacity_bytes", "values": ["64 KiB", "1 kB", 0]},
            {"path": "precision.weight_bits", "values": [16, 12]},
        ],
    )
    with pytest.raises(SpecError) as caught:
        expand(path)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(
        f"{path}: point 1 (von_neumann; global_buffer.capacity_bytes='64 KiB', "
        "precision.weight_bits=12): precision.weight_bits: must be "
    )
    assert lines[0].endswith("(got 12) (and 2 more points)")
    assert any(
        "point 2 (von_neumann; global_buffer.capacity_bytes='1 kB', "
        "precision.weight_bits=16): global_buffer.capacity_bytes: ambiguous unit 'kB'" in line
        for line in lines
    )
    assert len(lines) == 3


def test_schema_errors_name_the_sweep_file(tmp_path):
    path = write_sweep(
        tmp_path,
        axes=[
            {
                "zip": [
                    {"path": "dram.channels", "values": [1, 2]},
                    {"path": "dram.latency_cycles", "values": [5]},
                ]
            },
            {"path": "pe_array.rows"},
        ],
        metrics=["energy"],
    )
    with pytest.raises(SpecError) as caught:
        expand(path)
    text = str(caught.value)
    assert (
        f"{path}: axes.0: zip: every axis needs the same number of values "
        "(got dram.channels (2), dram.latency_cycles (1))" in text
    )
    assert f"{path}: axes.1: an axis needs 'path' and 'values'" in text
    assert f"{path}: metrics.0: must be 'macs'," in text


def test_workloads_from_trace_files_and_bad_networks(tmp_path):
    trace = TRACES / "alexnet_dfa_b8.jsonl.gz"
    expansion = expand(write_sweep(tmp_path, workloads={"traces": [str(trace)]}))
    assert [w.label for w in expansion.workloads] == ["alexnet_dfa_b8"]
    assert expansion.workloads[0].columns() == {
        "workload": "alexnet_dfa_b8",
        "network": "alexnet",
        "algorithm": "dfa",
        "batch_size": 8,
        "nonzeros_per_neuron": None,
        "shape_only": False,
    }
    path = write_sweep(tmp_path, workloads={"networks": [{"network": "digits_f"}]})
    with pytest.raises(
        SpecError,
        match=r"workloads\.networks\.0: unknown network "
        r"'digits_f'; did you mean 'digits_fc'\?",
    ):
        expand(path)


def test_metrics_are_the_simulate_json_keys():
    assert tuple(metric.value for metric in Metric) == SUMMARY_KEYS


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_every_shipped_sweep_expands(path: Path):
    expansion = expand(path)
    assert expansion.spec.name == path.stem
    assert path.read_text().startswith(f"# {path.stem}: ")
    assert len(expansion.rows) == len(expansion.points) * len(expansion.workloads) > 10


def test_the_shipped_set():
    assert {path.stem for path in SHIPPED} >= {
        "buffer_dram",
        "tiles_sram",
        "ssdfa_noc",
        "precision",
        "ssdfa_placement",
    }


def test_schema_sweep(capsys):
    assert main(["schema", "sweep"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "SweepSpec"
    assert {"base", "workloads", "axes", "sampling", "metrics"} <= set(schema["properties"])


def test_a_huge_grid_must_be_sampled(tmp_path):
    axes = [
        {"path": path, "values": list(range(1, 101))}
        for path in ("pe_array.rows", "pe_array.columns", "dram.channels")
    ]
    path = write_sweep(tmp_path, axes=[*axes, {"path": "dram.latency_cycles", "values": [1, 2]}])
    started = time.monotonic()
    with pytest.raises(SpecError) as caught:
        expand(path)
    assert time.monotonic() - started < 5  # refused at once, before any point is validated
    assert str(caught.value) == (
        f"{path}: axes: 2,000,000 points is more than 50,000; draw fewer with sampling: "
        "{samples: N, seed: S}"
    )
    sampled = expand(write_sweep(tmp_path, axes=axes, sampling={"samples": 5, "seed": 1}))
    assert len(sampled.points) == 5


def test_a_grid_past_two_to_the_63_is_sampled_the_same_each_time(tmp_path):
    paths = (
        "pe_array.rows",
        "pe_array.columns",
        "dram.channels",
        "dram.latency_cycles",
        "global_buffer.banks",
        "noc.link_bytes_per_cycle",
        "pe_array.vector_ops_per_cycle",
        "dram.bandwidth_bytes_per_cycle",
        "global_buffer.bandwidth_bytes_per_cycle",
        "pe_array.mac_energy_pj",
    )
    axes = [{"path": path, "values": list(range(1, 101))} for path in paths]  # 100¹⁰ = 10²⁰
    sampling = {"samples": 4, "seed": 3}
    first = grid_indices(
        SweepSpec.model_validate(
            yaml.safe_load(write_sweep(tmp_path, axes=axes, sampling=sampling).read_text())
        )
    )
    again = grid_indices(
        SweepSpec.model_validate(
            yaml.safe_load(write_sweep(tmp_path, axes=axes, sampling=sampling).read_text())
        )
    )
    assert first == again and len(set(first)) == 4
    assert all(0 <= index < 100**10 for index in first) and max(first) > 2**63
