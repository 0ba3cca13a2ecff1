"""`hwsim simulate`, called in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwsim.cli import main
from hwsim.energy import SUMMARY_KEYS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("t") / "digits_ssdfa.jsonl.gz"
    assert (
        main(
            [
                "trace",
                "--network",
                "digits_fc",
                "--algorithm",
                "ssdfa",
                "--batch-size",
                "4",
                "--out",
                str(path),
            ]
        )
        == 0
    )
    return str(path)


@pytest.mark.parametrize("spec", ["von_neumann", "distributed", "arch_specs/distributed_tree.yaml"])
def test_json_has_the_documented_keys(trace_path, spec, capsys):
    capsys.readouterr()
    assert main(["simulate", "--arch", spec, "--trace", trace_path, "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary)[: len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    assert summary["macs"] == (84480 * 2 + 512)  # forward + gradient + SSDFA's error, per example
    assert summary["run"]["batch_size"] == 4
    assert set(summary["breakdown"]) == {
        "energy_pj_by_component",
        "energy_pj_by_phase",
        "energy_pj_by_layer",
        "area_mm2_by_component",
    }
    by_component = summary["breakdown"]["area_mm2_by_component"]
    assert summary["area_mm2"] == pytest.approx(sum(by_component.values()))


def test_table_csv_and_out_folder(trace_path, tmp_path, capsys):
    capsys.readouterr()
    assert main(["simulate", "--arch", "von_neumann", "--trace", trace_path]) == 0
    table = capsys.readouterr().out
    assert "per training example (batch 4)" in table and "energy_pj" in table
    assert "area by component (mm², the design point's):" in table
    out = tmp_path / "out"
    assert (
        main(
            [
                "simulate",
                "--arch",
                "distributed",
                "--trace",
                trace_path,
                "--format",
                "csv",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith("layer,phase,component,action,count,bytes,cycles,energy_pj\n")
    assert sorted(p.name for p in out.iterdir()) == [
        ".hwsim-output.json",
        "area.csv",
        "breakdown.csv",
        "mapping.csv",
        "resources.csv",
        "spec.csv",
        "summary.json",
        "timeline.csv",
    ]
    breakdown = pd.read_csv(out / "breakdown.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert breakdown["energy_pj"].sum() == pytest.approx(summary["energy_pj"])
    resources = pd.read_csv(out / "resources.csv")
    assert {"busy_cycles", "idle_cycles", "wait_cycles", "utilization"} <= set(resources)
    timeline = pd.read_csv(out / "timeline.csv")
    assert (timeline["busy_fraction"].between(0, 1)).all()
    area = pd.read_csv(out / "area.csv")
    assert list(area.columns) == ["component", "count", "area_mm2", "source"]
    assert area["area_mm2"].sum() == pytest.approx(summary["area_mm2"], rel=1e-12)
    assert set(area["component"]) == {
        "tile_macs",
        "vector_unit",
        "tile_sram",
        "noc_router",
        "noc_link",
        "dram_phy",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["simulate", "--arch", "von_neuman", "--trace", "t.jsonl"],
            "unknown arch spec 'von_neuman'; did you mean 'von_neumann'?",
        ),
        (
            ["simulate", "--arch", "von_neumann", "--trace", "missing.jsonl"],
            "missing.jsonl: file not found",
        ),
        (
            ["simulate", "--arch", "von_neumann", "--trace", "t.jsonl", "--format", "xml"],
            "argument --format: invalid choice: 'xml'",
        ),
    ],
)
def test_bad_input(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwsim: error: ") and message in err
    assert list(tmp_path.iterdir()) == []


def test_out_must_be_a_folder(trace_path, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    assert (
        main(["simulate", "--arch", "von_neumann", "--trace", trace_path, "--out", str(taken)]) == 2
    )
    assert f"--out {taken}: exists and is not a folder" in capsys.readouterr().err


def test_a_spec_that_forbids_spilling(trace_path, tmp_path, capsys):
    spec = tmp_path / "cramped.yaml"
    text = (ROOT / "arch_specs" / "distributed_small.yaml").read_text()
    text = text.replace("allow_spill: true", "allow_spill: false")
    spec.write_text(text.replace("capacity_bytes: 64 KiB", "capacity_bytes: 1 KiB"))
    assert main(["simulate", "--arch", str(spec), "--trace", trace_path]) == 2
    err = capsys.readouterr().err
    assert f"hwsim: error: {spec}: mapping.allow_spill: digits_fc's weights" in err


def test_out_is_written_as_one_set(trace_path, tmp_path, capsys):
    """The files of one run replace a folder hwsim wrote whole: nothing of an earlier run
    survives; a folder hwsim did not write is refused, its files untouched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    argv = ["simulate", "--arch", "von_neumann", "--trace", trace_path, "--out", str(out)]
    capsys.readouterr()
    assert main([*argv, "--format", "json"]) == 2
    assert capsys.readouterr().err == (
        f"hwsim: error: --out {out}: holds files hwsim did not write; give a new or empty "
        "folder (hwsim writes only folders it made)\n"
    )
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    assert main([*argv, "--format", "json"]) == 0
    (out / "from_an_earlier_run.csv").unlink(missing_ok=True)
    (out / "breakdown.csv").write_text("stale\n")  # hwsim's own file, changed: still hwsim's
    assert main([*argv, "--format", "json"]) == 0
    assert "from_an_earlier_run.csv" not in {path.name for path in out.iterdir()}
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".part")]
    spec = (out / "spec.csv").read_text()
    assert spec.startswith("arch,field,value,source\n") and ",von_neumann\n" in spec


@pytest.mark.parametrize("spec", ["von_neumann", "von_neumann_sparse", "distributed_stationary"])
def test_a_summary_alone_prints_what_out_writes(trace_path, spec, tmp_path, capsys):
    """Without --out, json and table print from the counts alone (no tables, no pandas):
    the same JSON as the summary.json that --out writes from every table, and the same
    table as --out prints."""
    printed = {}
    for fmt in ("json", "table"):
        for out in (None, tmp_path / f"{spec}-{fmt}"):
            argv = ["simulate", "--arch", spec, "--trace", trace_path, "--format", fmt]
            capsys.readouterr()
            assert main(argv + ([] if out is None else ["--out", str(out)])) == 0
            printed[fmt, out is None] = capsys.readouterr().out
    assert printed["json", True] == printed["json", False]
    written = (tmp_path / f"{spec}-json" / "summary.json").read_text()
    assert printed["json", True] == written
    assert printed["table", True] == printed["table", False]
