"""Damaged and hand-edited inputs (issue 14, items 5–6): every one is exit 2 and one line
naming the file and what is wrong — or, in a sweep folder, a damaged row or spec is redone —
never a traceback, a silent NaN or a number outside what the file schemas allow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwsim.cli import main
from hwsim.cli.common import finite_json
from tests.sweep.conftest import write_sweep


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, digits_shape_trace) -> Path:
    """One `hwsim simulate --out` folder of a small shape-only step."""
    trace = digits_shape_trace
    out = tmp_path_factory.mktemp("damaged") / "sim"
    assert (
        main(["simulate", "--arch", "von_neumann", "--trace", str(trace), "--out", str(out)]) == 0
    )
    return out


def _refused(capsys, argv: list[str], *fragments: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwsim: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _edit_summary(folder: Path, change) -> None:
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    change(summary)
    path.write_text(json.dumps(summary))


DAMAGE = {
    "an empty breakdown": (
        lambda f: (f / "breakdown.csv").write_text(""),
        "breakdown.csv: is empty, expected a simulate breakdown",
    ),
    "a breakdown without its columns": (
        lambda f: (f / "breakdown.csv").write_text("a,b\n1,2\n"),
        "breakdown.csv: no column layer, phase, component, action, count, bytes, cycles, "
        "energy_pj; expected a simulate breakdown",
    ),
    "text in a numeric column": (
        lambda f: (f / "breakdown.csv").write_text(
            (f / "breakdown.csv")
            .read_text()
            .replace("\n", "\nfc1,forward,dram,read,lots,1,1,1\n", 1)
        ),
        "breakdown.csv: line 2: column count holds 'lots', expected a finite number",
    ),
    "an empty resources table": (
        lambda f: (f / "resources.csv").write_text(""),
        "resources.csv: is empty, expected a simulate resources table",
    ),
    "a timeline with infinity": (
        lambda f: (f / "timeline.csv").write_text(
            "resource,start_cycle,end_cycle,busy_fraction,bytes_per_cycle\ndram,0,inf,0.5,1\n"
        ),
        "timeline.csv: line 2: column end_cycle holds 'inf', expected a finite number",
    ),
    "a summary without a figure": (
        lambda f: _edit_summary(f, lambda s: s.pop("energy_pj")),
        "summary.json: no energy_pj (written by an older hwsim? simulate it again)",
    ),
    "a summary from before delivered bytes": (
        lambda f: _edit_summary(f, lambda s: s.pop("noc_delivered_bytes")),
        "summary.json: no noc_delivered_bytes (written by an older hwsim? simulate it again)",
    ),
    "a summary with text for a figure": (
        lambda f: _edit_summary(f, lambda s: s.update(cycles="many")),
        "summary.json: cycles: expected a finite number ≥ 0 (got 'many')",
    ),
    "a summary with batch 0": (
        lambda f: _edit_summary(f, lambda s: s["run"].update(batch_size=0)),
        "summary.json: run.batch_size: expected a whole number ≥ 1 (got 0)",
    ),
    "a summary that is a list": (
        lambda f: (f / "summary.json").write_text("[]"),
        "summary.json: not a simulate summary (no run)",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_simulation_folder_is_one_line(simulated, tmp_path, capsys, case):
    damage, message = DAMAGE[case]
    folder = tmp_path / "sim"
    shutil.copytree(simulated, folder)
    damage(folder)
    _refused(capsys, ["report", str(folder), "--out", str(tmp_path / "report")], message)
    assert not (tmp_path / "report").exists()  # nothing half-written


def test_a_run_folders_history_is_checked(simulated, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(simulated, run / "steps" / "digits_fc" / "bp" / "von_neumann")
    (run / "history.csv").write_text("")  # a run that trained nothing: no history
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    (run / "history.csv").write_text(
        "network,algorithm,epoch,train_loss,train_accuracy,test_loss,test_accuracy\n"
        "digits_fc,bp,one,0.1,0.9,0.1,0.9\n"
    )
    _refused(
        capsys,
        ["report", str(run), "--out", str(tmp_path / "report2")],
        "history.csv: line 2: column epoch holds 'one', expected a finite number",
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A finished small sweep folder (2 points × 1 workload)."""
    root = tmp_path_factory.mktemp("swept")
    sweep = write_sweep(
        root,
        workloads={
            "networks": [{"network": "digits_fc", "algorithms": ["bp"], "batch_sizes": [2]}]
        },
        axes=[{"path": "dram.channels", "values": [1, 2]}],
    )
    assert main(["sweep", str(sweep), "--out", str(root / "out"), "--jobs", "1"]) == 0
    return root


def test_a_damaged_results_table_is_one_line(swept, tmp_path, capsys):
    folder = tmp_path / "out"
    shutil.copytree(swept / "out", folder)
    table = pd.read_csv(folder / "results.csv")
    table["cycles"] = table["cycles"].astype(object)
    table.loc[1, "cycles"] = "fast"
    table.to_csv(folder / "results.csv", index=False)
    _refused(
        capsys,
        ["report", str(folder), "--out", str(tmp_path / "report")],
        "results.csv: line 3: column cycles holds 'fast', expected a finite number",
    )
    (folder / "results.csv").write_text("")
    _refused(
        capsys,
        ["report", str(folder), "--out", str(tmp_path / "report")],
        "results.csv: is empty, expected a `hwsim sweep` results table",
    )


def test_damaged_rows_and_specs_are_redone_on_resume(swept, tmp_path, capsys):
    folder = tmp_path / "out"
    shutil.copytree(swept / "out", folder)
    sweep = swept / "sweep.yaml"
    rows = sorted((folder / "points").iterdir())
    record = json.loads(rows[0].read_text())
    record["metrics"] = None  # a hand edit: null metrics
    rows[0].write_text(json.dumps(record))
    rows[1].write_text(
        '{"key": "' + rows[1].stem + '", "status": "ok", "metrics": {"cycles": NaN}}'
    )
    spec = sorted((folder / "specs").iterdir())[0]
    good = spec.read_text()
    spec.write_text("damaged: [")
    capsys.readouterr()
    assert main(["sweep", str(sweep), "--out", str(folder), "--jobs", "1"]) == 0
    assert "already finished" not in capsys.readouterr().err  # both rows ran again
    assert spec.read_text() == good
    assert pd.read_csv(folder / "results.csv").equals(pd.read_csv(swept / "out" / "results.csv"))


def test_a_killed_writes_part_files_do_not_refuse_the_folder(swept, tmp_path, capsys):
    """A SIGKILL mid-write leaves atomic_output's hidden temporary file: the next run resumes
    (issue 17: a study tolerated it, a sweep refused its own folder)."""
    folder = tmp_path / "out"
    shutil.copytree(swept / "out", folder)
    row = sorted((folder / "points").iterdir())[0]
    (folder / "points" / f".{row.name}.k2_x9a.part").write_text('{"key": "')
    spec = sorted((folder / "specs").iterdir())[0]
    (folder / "specs" / f".{spec.name}.q1w2e3.part").write_text("arch")
    (folder / ".results.csv.zz81ab.part").write_text("point")
    capsys.readouterr()
    assert main(["sweep", str(swept / "sweep.yaml"), "--out", str(folder), "--jobs", "1"]) == 0
    assert pd.read_csv(folder / "results.csv").equals(pd.read_csv(swept / "out" / "results.csv"))


def test_points_being_a_file_is_one_line(swept, tmp_path, capsys):
    folder = tmp_path / "out"
    shutil.copytree(swept / "out", folder)
    shutil.rmtree(folder / "points")
    (folder / "points").write_text("")
    _refused(
        capsys,
        ["sweep", str(swept / "sweep.yaml"), "--out", str(folder), "--jobs", "1"],
        f"{folder / 'points'}: is a file, expected the sweep's folder of finished rows",
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "1e308"], "--lr: must be less than or equal to 1000 (got 1e+308)"),
        (["--batch-size", "100000000000"], "--batch-size: must be less than or equal to 1048576"),
        (["--epochs", "10000000"], "--epochs: must be less than or equal to 1000000"),
    ],
)
def test_numeric_flags_are_bounded_as_network_files_are(tmp_path, capsys, flags, message):
    _refused(
        capsys,
        ["train", "--network", "digits_fc", "--algorithm", "bp", *flags, "--json"],
        message,
        "(the bounds of a network file's training)",
    )


def test_a_shape_only_step_too_large_to_trace_is_one_line(tmp_path, capsys):
    network = tmp_path / "wide.yaml"
    network.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "kind": "network",
                "name": "wide",
                "dataset": "synthetic",
                "input_shape": [2**24],
                "classes": 10,
                "layers": [
                    {"type": "dense", "name": "fc1", "units": 2**24},
                    {"type": "dense", "name": "out", "units": 10},
                ],
            }
        )
    )
    argv = ["trace", "--network", str(network), "--algorithm", "bp", "--shape-only"]
    _refused(
        capsys,
        [*argv, "--batch-size", "1024", "--out", str(tmp_path / "t.jsonl")],
        "wide: batch 1,024: the step is too large to trace (OpRecord macs:",
        "trace a smaller batch",
    )
    assert not (tmp_path / "t.jsonl").exists()


def test_json_never_holds_nan_or_infinity():
    clean, replaced = finite_json(
        {"loss": float("nan"), "ok": 1.5, "angles": {"fc1": float("inf")}, "list": [1, -1e999]}
    )
    assert clean == {"loss": None, "ok": 1.5, "angles": {"fc1": None}, "list": [1, None]}
    assert replaced == ["loss", "angles.fc1", "list.1"]
    assert json.dumps(clean, allow_nan=False)


def test_train_json_writes_null_for_a_diverged_figure_and_says_so(capsys, monkeypatch):
    from hwsim.train.loop import TrainResult

    real = TrainResult.summary
    monkeypatch.setattr(
        TrainResult, "summary", lambda self: real(self) | {"train_loss": float("nan")}
    )
    argv = ["train", "--network", "digits_fc", "--algorithm", "bp", "--epochs", "1"]
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["train_loss"] is None
    assert (
        "train_loss: not a finite number (the training diverged?); written as null" in printed.err
    )


def test_worker_counts_are_bounded_before_any_work(swept, tmp_path, capsys):
    from hwsim.sweep.runner import max_workers

    sweep = str(swept / "sweep.yaml")
    too_many = str(max_workers() + 1)
    for flag in ("--jobs", "--dask-local"):
        _refused(
            capsys,
            ["sweep", sweep, "--out", str(tmp_path / "out"), flag, too_many],
            f"{flag}: at most {max_workers()} local worker processes (4 per CPU",
        )
    assert not (tmp_path / "out").exists()


def test_a_seed_out_of_range_names_its_flag(capsys):
    err = _refused(
        capsys,
        ["train", "--network", "digits_fc", "--algorithm", "bp", "--seed", "-1"],
        "--seed: must be a whole number from 0 to 2**128 - 1 (got -1)",
    )
    assert "network file" not in err


def test_a_sweep_folder_under_a_file_is_one_line(swept, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    _refused(
        capsys,
        ["sweep", str(swept / "sweep.yaml"), "--out", str(tmp_path / "file" / "out")],
        "file is a file, not a folder",
    )
    assert (tmp_path / "file").read_text() == "mine"
