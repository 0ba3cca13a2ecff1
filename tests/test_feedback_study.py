"""`hwsim study feedback` (the paper's Fig 5/6 study): every allowed pair × seed once, values
in range, byte-identical re-runs, a resume after SIGKILL, and bad input refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hwsim.cli import main
from hwsim.errors import SpecError
from hwsim.feedback_study import COLUMNS, plan_study, read_run
from hwsim.io.networks import load_network
from hwsim.specs.trace import Algorithm
from hwsim.train.datasets import load_dataset
from hwsim.train.loop import TrainConfig, train
from tests.conftest import FEEDBACK_STUDY_ARGS

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("1", "full"), ("2", "5"), ("2", "full"), ("dense", "5"), ("dense", "full")]
KILL_AFTER_RUNS = 2


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "study.csv", dtype={"nonzeros_per_neuron": str, "rank": str})


def test_every_allowed_pair_and_seed_runs_once_in_range(feedback_study):
    folder, out, err = feedback_study
    table = _table(folder)
    assert list(table.columns) == list(COLUMNS)
    expected = [(s, r, seed) for s, r in PAIRS for seed in (0, 1)]
    columns = (table["nonzeros_per_neuron"], table["rank"], table["seed"])
    assert list(zip(*columns, strict=True)) == expected
    assert set(table["network"]) == {"digits_fc"} and set(table["epochs"]) == {1}
    for column in ("test_accuracy", "train_accuracy"):
        assert table[column].between(0, 1).all() and table[column].max() > 0.2
    assert table["angle_deg"].between(0, 180).all() and table["angle_deg"].notna().all()
    assert len(list((folder / "runs").glob("*.json"))) == 10
    assert (folder / "index.html").is_file() and (folder / "plotly.min.js").is_file()
    assert json.loads((folder / "study.json").read_text())["skipped"] == [[1, 5]]
    assert "skipped 1 pair with s·r < 10" in err and "s=1 r=5" in err
    assert f"{folder / 'study.csv'}: 10 runs (5 pairs × 2 seeds, 1 epoch each)" in out


def test_a_row_is_what_hwsim_train_gives(feedback_study):
    folder, _, _ = feedback_study
    network = load_network("digits_fc")
    config = TrainConfig.from_network(
        network, Algorithm.SSDFA, epochs=1, seed=1, nonzeros_per_neuron=2, rank=5
    )
    final = train(network, load_dataset("digits"), config).final
    row = _table(folder).query("nonzeros_per_neuron == '2' and rank == '5' and seed == 1")
    assert row["test_accuracy"].item() == round(final.test_accuracy, 6)
    assert row["angle_deg"].item() == round(final.feedback_output_angle_deg, 3)


def test_a_rerun_trains_nothing_and_writes_the_same_bytes(feedback_study, capsys):
    folder, _, _ = feedback_study
    before = (folder / "study.csv").read_bytes()
    assert main([*FEEDBACK_STUDY_ARGS, "--jobs", "1", "--out", str(folder)]) == 0
    assert "10 runs already finished" in capsys.readouterr().err
    assert (folder / "study.csv").read_bytes() == before


def test_resume_after_sigkill_trains_only_what_is_missing(feedback_study, tmp_path):
    """Killed mid-study on a pool of two workers; the re-run trains the rest, each once, and
    the table is byte for byte the uninterrupted study's."""
    whole, _, _ = feedback_study
    out = tmp_path / "killed"
    argv = [*FEEDBACK_STUDY_ARGS, "--jobs", "2", "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "hwsim", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while len(list((out / "runs").glob("*.json"))) < KILL_AFTER_RUNS:
        assert process.poll() is None, "the study finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {path.name for path in (out / "runs").glob("*.json")}
    assert KILL_AFTER_RUNS <= len(finished) < 10
    assert not (out / "study.csv").exists()

    from hwsim.feedback_study import run_study

    network = load_network("digits_fc")
    plan = plan_study(
        network,
        load_dataset("digits"),
        nonzeros=[1, 2, "dense"],
        ranks=[5, "full"],
        seeds=2,
        epochs=1,
    )
    trained: list[str] = []
    starts: list[tuple[int, int]] = []
    run_study(
        plan, out, jobs=1, on_start=lambda *counts: starts.append(counts), on_result=trained.append
    )
    assert starts == [(10 - len(finished), len(finished))]
    assert len(trained) == len(set(trained)) == 10 - len(finished)
    assert finished.isdisjoint(f"{key}.json" for key in trained)
    assert (out / "study.csv").read_bytes() == (whole / "study.csv").read_bytes()


def test_a_dask_cluster_finishes_a_study_to_the_same_bytes(feedback_study, tmp_path, capsys):
    """The Dask path (`--dask-local 1`): a copy of the pool's study with two runs removed is
    finished on a one-worker local cluster, which trains those two only; every run file and
    the table are byte for byte the pool's."""
    whole, _, _ = feedback_study
    out = tmp_path / "study"
    shutil.copytree(whole, out)
    removed = sorted((out / "runs").glob("*.json"))[3:5]
    for path in removed:
        path.unlink()
    (out / "study.csv").unlink()
    capsys.readouterr()
    assert main([*FEEDBACK_STUDY_ARGS, "--dask-local", "1", "--out", str(out)]) == 0
    assert "8 runs already finished" in capsys.readouterr().err
    for path in removed:
        assert path.read_bytes() == (whole / "runs" / path.name).read_bytes()
    assert (out / "study.csv").read_bytes() == (whole / "study.csv").read_bytes()


def test_a_damaged_row_is_trained_again(feedback_study, tmp_path):
    folder, _, _ = feedback_study
    plan = plan_study(
        load_network("digits_fc"),
        load_dataset("digits"),
        nonzeros=[1],
        ranks=["full"],
        seeds=1,
        epochs=1,
    )
    (run,) = plan.runs
    assert read_run(folder, run) is not None  # the fixture's row for s=1, full rank, seed 0
    copy = tmp_path / "runs"
    copy.mkdir()
    record = json.loads((folder / "runs" / f"{run.key}.json").read_text())
    for damage in ({"test_accuracy": 1.5}, {"angle_deg": -1}, {"key": "0" * 20}):
        (copy / f"{run.key}.json").write_text(json.dumps(record | damage))
        assert read_run(tmp_path, run) is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nonzeros", "0"], "argument --nonzeros: must be ≥ 1 or 'dense' (got 0)"),
        (["--ranks", "low"], "argument --ranks: expected a whole number ≥ 1 or 'full' (got 'low')"),
        (["--seeds", "0"], "argument --seeds: must be ≥ 1 (got 0)"),
        (["--nonzeros", "11"], "--nonzeros: 11 is more than the 10 classes (at most C)"),
        (["--ranks", "1", "20"], "--ranks: 20 is more than the 10 classes (at most C)"),
        (
            ["--nonzeros", "1", "2", "--ranks", "2"],
            "--nonzeros, --ranks: no pair has s·r ≥ 10, the classes of digits_fc",
        ),
        (["--network", "nope"], "unknown network 'nope'"),
        (["--epochs", "2000000"], "--epochs: "),
        (["--data-path", "."], "dataset digits ships with scikit-learn; --data-path is not used"),
        (["--network", "mnist_fc"], "dataset mnist needs --data-path"),
        (["--jobs", "2", "--dask-local", "2"], "--jobs sets the local process pool"),
        (["--jobs", "1000"], "--jobs: at most"),
    ],
)
def test_bad_input_is_one_message_exit_2_and_nothing_written(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    assert main(["study", "feedback", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_it_did_not_write_is_refused(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / ".hwsim-output.json").write_text(
        json.dumps({"written_by": "hwsim", "command": "sweep", "layout": "sweep"})
    )
    for folder, message in (
        (mine, "holds files hwsim did not write"),
        (sweep, "was written by `hwsim sweep`, not a study"),
    ):
        assert main(["study", "feedback", "--out", str(folder)]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in sweep.iterdir()) == [".hwsim-output.json"]


def test_the_library_names_its_parameters():
    network, dataset = load_network("digits_fc"), load_dataset("digits")
    with pytest.raises(SpecError, match=r"^nonzeros: expected a whole number ≥ 1 or 'dense'"):
        plan_study(network, dataset, nonzeros=["full"], ranks=[1], seeds=1)
    with pytest.raises(SpecError, match=r"^seeds: expected a whole number ≥ 1 \(got 0\)"):
        plan_study(network, dataset, nonzeros=[10], ranks=[1], seeds=0)
