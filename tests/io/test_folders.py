"""Output folders (hwsim.io.folders): hwsim writes only folders it made or empty ones, replaces
its own whole, never deletes or overwrites a file it did not write, and leaves no temporary."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hwsim
from hwsim.errors import OutputError
from hwsim.io import folders
from hwsim.io.folders import MARK, OutputFolder, claim, claim_for_layout, read_mark, safe_name


def _write(out: Path, files: dict[str, str], **options) -> None:
    with OutputFolder(out, command="test", **options) as folder:
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)


def _contents(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARK
    }


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_new_folder_is_written_marked_and_nothing_else_is_left(tmp_path):
    out = tmp_path / "deeper" / "out"
    _write(out, {"a.csv": "1", "steps/x/b.csv": "2"})
    assert _contents(out) == {"a.csv": "1", "steps/x/b.csv": "2"}
    assert read_mark(out)["entries"] == ["a.csv", "steps/", "steps/x/", "steps/x/b.csv"]
    assert [p.name for p in (tmp_path / "deeper").iterdir()] == ["out"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()


def test_a_folder_hwsim_wrote_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    _write(out, {"a.csv": "first", "b.csv": "first", "steps/s/c.csv": "first"})
    _write(out, {"a.csv": "second"})
    assert _contents(out) == {"a.csv": "second"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no .part, no .old


def test_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _write(out, {"a.csv": "1"})
    assert _contents(out) == {"a.csv": "1"}


def test_a_folder_hwsim_did_not_write_is_refused_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError) as caught:
        _write(out, {"a.csv": "1"}, flag="--out")
    assert str(caught.value) == (
        f"--out {out}: holds files hwsim did not write; give a new or empty folder "
        "(hwsim writes only folders it made)"
    )
    assert _contents(out) == {"thesis.tex": "years of work"}


def test_a_file_put_into_a_folder_hwsim_wrote_is_never_removed(tmp_path):
    out = tmp_path / "out"
    _write(out, {"a.csv": "1"})
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    with pytest.raises(OutputError, match=r"holds notes.txt, sub/, which hwsim did not write"):
        _write(out, {"a.csv": "2"})
    assert _contents(out) == {"a.csv": "1", "notes.txt": "mine"}


def test_a_damaged_or_foreign_mark_is_not_a_mark(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("1")
    for text in ("{", "[]", json.dumps({"written_by": "someone"}), '{"written_by": "hwsim"}'):
        (out / MARK).write_text(text)
        assert read_mark(out) is None
        with pytest.raises(OutputError, match=r"holds files hwsim did not write \(its mark is"):
            claim(out)


@pytest.mark.parametrize("given_as", [".", "..", "cwd", "ancestor", "/"])
def test_the_working_folder_and_its_ancestors_are_refused(tmp_path, monkeypatch, given_as):
    work = tmp_path / "a" / "work"
    work.mkdir(parents=True)
    (work / "trace.jsonl").write_text("input")
    monkeypatch.chdir(work)
    path = {"cwd": str(work), "ancestor": str(tmp_path)}.get(given_as, given_as)
    what = "is the working folder" if given_as in (".", "cwd") else "holds the working folder"
    with pytest.raises(OutputError, match=rf"^--out {path}: {what}; give a folder of its own"):
        _write(Path(path), {"a.csv": "1"}, flag="--out")
    assert (work / "trace.jsonl").read_text() == "input"


def test_a_deleted_working_folder_is_one_message(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (
        "import os, sys\n"
        f"os.chdir({str(gone)!r}); os.rmdir({str(gone)!r})\n"
        "from hwsim.io.folders import claim\n"
        "from hwsim.errors import OutputError\n"
        "try:\n    claim('out', flag='--out')\n"
        "except OutputError as exc:\n    print(exc)\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert printed == (
        "--out out: the working folder no longer exists; cd to a folder and run again\n"
    )


def test_hwsims_own_files_are_refused(tmp_path):
    package = Path(hwsim.__file__).parent
    with pytest.raises(OutputError, match=r"is inside hwsim's own files"):
        claim(package / "reports")
    from hwsim.io.shipped import shipped_dir

    with pytest.raises(OutputError, match=r"is inside hwsim's own files"):
        claim(shipped_dir("arch") / "out")


def test_a_folder_that_holds_an_input_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    trace = data / "t.jsonl"
    trace.write_text("input")
    for out in (data, tmp_path):
        with pytest.raises(OutputError, match=rf"holds the input {trace}, which writing it"):
            claim(out, inputs=[trace, "von_neumann"])
    claim(data / "out", inputs=[trace, "von_neumann"])  # beside the input is fine
    claim(tmp_path / "von_neumann", inputs=["von_neumann"])  # a shipped name is not a path
    assert trace.read_text() == "input"


def test_a_symlink_keeps_pointing_at_its_folder(tmp_path):
    real = tmp_path / "disk" / "real"
    _write(real, {"a.csv": "1"})
    link = tmp_path / "link"
    link.symlink_to(real)
    _write(link, {"a.csv": "2"})
    assert link.is_symlink() and link.resolve() == real
    assert _contents(real) == {"a.csv": "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "link"]
    assert [p.name for p in real.parent.iterdir()] == ["real"]


def test_a_failed_block_keeps_the_last_set_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    _write(out, {"a.csv": "first"})
    for error in (KeyboardInterrupt, RuntimeError, OutputError("x")):
        expected = type(error) if isinstance(error, Exception) else error
        with pytest.raises(expected), OutputFolder(out, command="test") as folder:
            (folder / "a.csv").write_text("half")
            raise error
        assert _contents(out) == {"a.csv": "first"}
        assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_keep_partial_puts_what_finished_in_place(tmp_path):
    out = tmp_path / "out"
    _write(out, {"old.csv": "earlier run"})
    partial = OutputFolder(out, command="test", keep_partial=True)
    with pytest.raises(KeyboardInterrupt), partial as folder:
        (folder / "done.csv").write_text("finished")
        raise KeyboardInterrupt
    assert _contents(out) == {"done.csv": "finished"}
    assert read_mark(out)["entries"] == ["done.csv"]
    partial = OutputFolder(out, command="test", keep_partial=True)
    with pytest.raises(KeyboardInterrupt), partial:  # nothing finished: the earlier set stays
        raise KeyboardInterrupt
    assert _contents(out) == {"done.csv": "finished"}


def test_messages_name_the_final_path_not_the_temporary(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError) as caught, OutputFolder(out, command="test") as folder:
        raise OutputError(f"{folder / 'a.csv'}: cannot write: No space left on device")
    assert str(caught.value) == f"{out / 'a.csv'}: cannot write: No space left on device"


def test_a_full_disk_at_the_swap_keeps_the_last_set(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _write(out, {"a.csv": "first"})
    real = os.replace

    def full(source, destination):
        if Path(destination) == out and str(source).endswith(".part"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(source, destination)

    monkeypatch.setattr(folders.os, "replace", full)
    with pytest.raises(OutputError, match=rf"^{out}: cannot write: No space left on device$"):
        _write(out, {"a.csv": "second"})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the last set put back
    assert _contents(out) == {"a.csv": "first"}


def test_a_temporary_folder_left_by_sigkill_is_removed_next_time(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f".out.{dead}.abc123.part"
    stale.mkdir()
    (stale / MARK).write_text("{}")
    (stale / "a.csv").write_text("half")
    alive = tmp_path / f".out.{os.getpid()}.def456.part"  # a run still going: kept
    alive.mkdir()
    (alive / MARK).write_text("{}")
    lookalike = tmp_path / f".out.{dead}.old"  # not marked: not ours, kept
    lookalike.mkdir()
    _write(out, {"a.csv": "1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, lookalike.name, "out"])


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"^--out .*file: exists and is not a folder$"):
        claim(tmp_path / "file", flag="--out")
    with pytest.raises(OutputError, match=r"^--out .*file/run: .*file is a file, not a folder$"):
        claim(tmp_path / "file" / "run", flag="--out")
    assert (tmp_path / "file").read_text() == "x"


def test_a_sweep_folder_is_resumed_in_place_and_only_its_own(tmp_path):
    out = tmp_path / "sweep"
    assert claim_for_layout(out, "sweep", "sweep") == out.resolve()
    assert read_mark(out)["layout"] == "sweep"
    (out / "points").mkdir()
    (out / "points" / "0123abcd.json").write_text("{}")
    claim_for_layout(out, "sweep", "sweep")  # resumed
    assert (out / "points" / "0123abcd.json").exists()
    other = tmp_path / "simulated"
    _write(other, {"summary.json": "{}"})
    with pytest.raises(OutputError, match=r"was written by `hwsim test`, not a sweep"):
        claim_for_layout(other, "sweep", "sweep", flag="--out")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds notes.txt, which hwsim did not write"):
        _write(out, {"a.csv": "1"})
    (out / "notes.txt").unlink()
    _write(out, {"a.csv": "1"})  # a sweep folder is hwsim's: replaced whole
    assert _contents(out) == {"a.csv": "1"}


@given(st.text(max_size=120))
def test_safe_names_are_plain_names_under_the_folder(text):
    name = safe_name(text)
    assert name and name not in (".", "..") and not name.startswith((".", "-"))
    assert "/" not in name and "\0" not in name and len(name.encode()) <= 100
    assert Path("out", name).parent == Path("out")
    if text and text == name:
        assert text.isascii()


def test_safe_names_keep_plain_names_and_keep_labels_apart():
    assert safe_name("alexnet") == "alexnet"
    assert safe_name("von_neumann") == "von_neumann"
    assert safe_name("../../x").startswith("x-") or safe_name("../../x").startswith("_")
    labels = ["a/b", "a_b", "a b", "../a_b", "/a_b", "a\\b", ".a_b"]
    assert len({safe_name(label) for label in labels}) == len(labels)
