"""Output files checked before long work: check_output_file."""

from __future__ import annotations

import os

import pytest

from hwsim.errors import OutputError
from hwsim.io.outputs import check_output_file


def test_check_output_file(tmp_path):
    check_output_file(tmp_path / "new" / "deeper" / "t.jsonl")
    assert (tmp_path / "new" / "deeper").is_dir()
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(OutputError, match=r"--out .*folder.jsonl: is a folder, expected a file"):
        check_output_file(tmp_path / "folder.jsonl", "--out")
    (tmp_path / "file").write_text("")
    with pytest.raises(
        OutputError,
        match=r"--trace-out .*t.jsonl: .*file is a file, not a "
        r"folder",
    ):
        check_output_file(tmp_path / "file" / "sub" / "t.jsonl", "--trace-out")


def test_write_text_atomic_writes_the_text_with_open_s_permissions(tmp_path):
    from hwsim.io.outputs import umask, write_text_atomic

    path = tmp_path / "row.json"
    path.write_text("old\n")
    write_text_atomic(path, '{"é": 1}\n')
    assert path.read_text(encoding="utf-8") == '{"é": 1}\n'
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["row.json"]  # no .part left


def test_write_text_atomic_into_a_missing_folder_is_one_output_error(tmp_path):
    from hwsim.io.outputs import write_text_atomic

    path = tmp_path / "gone" / "row.json"
    with pytest.raises(OutputError, match="gone/row.json: cannot write"):
        write_text_atomic(path, "x")
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomic_leaves_a_file_in_its_way_alone(tmp_path):
    from hwsim.io.outputs import write_text_atomic

    path = tmp_path / "row.json"
    theirs = tmp_path / f".row.json.{os.getpid()}.part"
    theirs.write_text("not hwsim's\n")
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert theirs.read_text() == "not hwsim's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name, "row.json"]
