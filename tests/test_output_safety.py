"""Every command that writes a folder (issue 14, items 1–3): a folder hwsim did not write, the
working folder, an input's folder and hwsim's own files are refused with one line and exit 2;
names read from files never become paths; an input is never an output."""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import hwsim
from hwsim.cli import main
from hwsim.io.folders import MARK, OutputFolder

PACKAGE = Path(hwsim.__file__).resolve().parent
SWEEP = {
    "schema_version": 1,
    "kind": "sweep",
    "name": "tiny",
    "base": ["von_neumann"],
    "workloads": {"networks": [{"network": "digits_fc", "algorithms": ["bp"], "batch_sizes": [2]}]},
    "axes": [{"path": "dram.channels", "values": [1]}],
    "metrics": ["cycles"],
}


@pytest.fixture(scope="module")
def trace(digits_shape_trace) -> Path:
    return digits_shape_trace


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a digest of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _refused(argv: list[str], capsys, message: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err


def _simulate(trace: Path, out: str | Path) -> list[str]:
    return ["simulate", "--arch", "von_neumann", "--trace", str(trace), "--out", str(out)]


@pytest.mark.parametrize("out", [".", "..", "cwd"])
def test_simulate_into_the_working_folder_is_refused(trace, tmp_path, monkeypatch, capsys, out):
    work = tmp_path / "work"
    work.mkdir()
    copy = work / trace.name
    copy.write_bytes(trace.read_bytes())
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    given = str(work) if out == "cwd" else out
    what = "is the working folder" if out != ".." else "holds the working folder"
    _refused(_simulate(copy, given), capsys, f"hwsim: error: --out {given}: {what}")
    assert _tree(tmp_path) == before


def test_simulate_into_a_folder_that_holds_its_trace_is_refused(trace, tmp_path, capsys):
    copy = tmp_path / "data" / trace.name
    copy.parent.mkdir()
    copy.write_bytes(trace.read_bytes())
    before = _tree(tmp_path)
    _refused(
        _simulate(copy, copy.parent),
        capsys,
        f"--out {copy.parent}: holds the input {copy}, which writing it would replace",
    )
    assert _tree(tmp_path) == before


def test_simulate_through_a_symlink_writes_where_it_points(trace, tmp_path, capsys):
    real = tmp_path / "disk" / "sim"
    link = tmp_path / "sim"
    link.symlink_to(real, target_is_directory=True)
    for _ in range(2):  # made, then replaced: the link stays a link, nothing is left beside
        assert main(_simulate(trace, link)) == 0
    assert link.is_symlink() and (real / "summary.json").is_file() and (real / MARK).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "sim"]
    assert [p.name for p in real.parent.iterdir()] == ["sim"]


def test_report_into_its_own_input_is_refused(trace, tmp_path, capsys):
    sim = tmp_path / "sim"
    assert main(_simulate(trace, sim)) == 0
    before = _tree(sim)
    for out in (sim, tmp_path):
        _refused(
            ["report", str(sim), "--out", str(out)],
            capsys,
            f"--out {out}: holds the input {sim}",
        )
    inside = sim / "report"
    _refused(
        ["report", str(sim), "--out", str(inside)],
        capsys,
        f"--out {inside}: is inside the input {sim}, which would then hold it",
    )
    assert _tree(sim) == before
    assert main(["report", str(sim), "--out", str(tmp_path / "report")]) == 0  # beside: fine
    assert main(["report", str(sim), "--out", str(tmp_path / "report")]) == 0  # and again


def test_report_into_a_folder_of_the_users_is_refused(trace, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my page")
    _refused(
        ["report", str(trace), "--out", str(mine)],
        capsys,
        f"--out {mine}: holds files hwsim did not write",
    )
    assert (mine / "index.html").read_text() == "my page"


@pytest.mark.parametrize("network", ["../../escaped", "/tmp/hwsim-escaped", "..", "a/../../b"])
def test_names_read_from_a_trace_never_leave_the_folder(trace, tmp_path, capsys, network):
    lines = trace.read_text().splitlines()
    header = json.loads(lines[0])
    header["network"] = network
    hostile = tmp_path / "in" / "hostile.jsonl.gz"
    hostile.parent.mkdir()
    hostile.write_bytes(gzip.compress("\n".join([json.dumps(header), *lines[1:]]).encode()))
    out = tmp_path / "deep" / "er" / "report"
    assert main(["report", str(hostile), "--out", str(out), "--arch", "von_neumann"]) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(out in p.parents or p == hostile for p in written)
    assert not Path("/tmp/hwsim-escaped").exists()
    (step,) = (out / "steps").iterdir()
    assert step.name.endswith(f"-{hashlib.sha256(network.encode()).hexdigest()[:8]}")


def test_a_spec_given_as_a_path_is_a_safe_folder_name(trace, tmp_path, monkeypatch, capsys):
    from hwsim.io.shipped import shipped_dir

    spec = tmp_path / "specs" / "mine.yaml"
    spec.parent.mkdir()
    spec.write_text(
        (shipped_dir("arch") / "von_neumann.yaml")
        .read_text()
        .replace("name: von_neumann", "name: mine")
    )
    out = tmp_path / "report"
    relative = "../../specs/mine.yaml"
    (tmp_path / "specs" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "specs" / "sub")
    assert main(["report", str(trace), "--out", str(out), "--arch", relative]) == 0
    (spec_folder,) = {p.name for p in (out / "steps").glob("*/*/*")}
    assert "/" not in spec_folder and spec_folder.startswith("_.._specs_mine.yaml-")
    assert sorted(p.name for p in spec.parent.iterdir()) == ["mine.yaml", "sub"]


def test_sweep_never_overwrites_the_users_sweep_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("sweep.yaml").write_text("# my comments\n" + yaml.safe_dump(SWEEP))
    before = _tree(tmp_path)
    _refused(["sweep", "sweep.yaml", "--out", "."], capsys, "--out .: is the working folder")
    Path("mine").mkdir()
    Path("mine/sweep.yaml").write_text("# my comments\n" + yaml.safe_dump(SWEEP))
    _refused(
        ["sweep", "mine/sweep.yaml", "--out", "mine"],
        capsys,
        "--out mine: holds the input mine/sweep.yaml",
    )
    assert Path("mine/sweep.yaml").read_text().startswith("# my comments\n")
    assert _tree(tmp_path) == before | _tree(tmp_path)  # nothing changed or removed
    capsys.readouterr()
    assert main(["sweep", "sweep.yaml", "--out", "runs/tiny", "--jobs", "1"]) == 0
    assert main(["sweep", "sweep.yaml", "--out", "runs/tiny", "--jobs", "1"]) == 0  # resumed
    assert "1 rows already finished" in capsys.readouterr().err
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "notes.txt").write_text("mine")
    _refused(
        ["sweep", "sweep.yaml", "--out", str(sim)],
        capsys,
        f"--out {sim}: holds files hwsim did not write",
    )


def test_run_refuses_a_folder_it_did_not_write_before_any_work(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "paper.pdf").write_text("x")
    _refused(
        ["run", "--quick", "--out", str(mine)],
        capsys,
        f"--out {mine}: holds files hwsim did not write",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    inside = PACKAGE / "report"
    _refused(
        ["run", "--quick", "--out", str(inside)],
        capsys,
        f"--out {inside}: is inside hwsim's own files",
    )


def test_an_output_file_is_never_an_input_nor_inside_hwsim(tmp_path, capsys):
    network = tmp_path / "net.jsonl"  # a network file that happens to end as a trace does
    network.write_text("kind: network\n")
    _refused(
        ["trace", "--network", str(network), "--algorithm", "bp", "--out", str(network)],
        capsys,
        f"--out {network}: is the input {network}; give another path",
    )
    assert network.read_text() == "kind: network\n"
    inside = PACKAGE / "x.jsonl"
    _refused(
        ["trace", "--network", "digits_fc", "--algorithm", "bp", "--out", str(inside)],
        capsys,
        f"--out {inside}: is inside hwsim's own files",
    )
    assert not inside.exists()


def _start_run(out: Path) -> subprocess.Popen:
    """`hwsim run --quick --out OUT` in a child, returned once its temporary folder exists."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hwsim",
            "run",
            "--quick",
            "--arch",
            "von_neumann",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(f".{out.name}.*.part")):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.02)
    return child


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signalled_run_leaves_no_temporary(tmp_path, signum):
    out = tmp_path / "run"
    child = _start_run(out)
    child.send_signal(signum)
    assert child.wait(timeout=60) == 128 + signum
    assert "hwsim: terminated" in child.stderr.read()
    assert [p.name for p in tmp_path.iterdir()] in ([], ["run"])


def test_a_temporary_left_by_sigkill_goes_with_the_next_write(tmp_path):
    out = tmp_path / "run"
    child = _start_run(out)
    child.kill()
    child.wait(timeout=60)
    assert list(tmp_path.glob(".run.*.part"))  # SIGKILL cannot be caught: it stays, marked
    with OutputFolder(out, command="test") as folder:
        (folder / "a.csv").write_text("1")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
