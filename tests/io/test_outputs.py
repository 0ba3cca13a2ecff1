"""Output files checked before long work: check_output_file."""

from __future__ import annotations

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
