"""Output paths checked before long work: check_output_file and check_output_dir."""

from __future__ import annotations

import pytest

from hwsim.errors import OutputError
from hwsim.io.outputs import check_output_dir, check_output_file


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


def test_check_output_dir(tmp_path):
    check_output_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"--out .*file: exists and is not a folder"):
        check_output_dir(tmp_path / "file", "--out")
    with pytest.raises(OutputError, match=r"--out .*file/run: .*file is a file, not a folder"):
        check_output_dir(tmp_path / "file" / "run", "--out")
