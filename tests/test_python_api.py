"""docs/python-api.md and docs/examples/notebook.py run as written."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_example_in_the_api_page_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "python-api.md").read_text(), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python-api.md", "exec"), namespace)
    assert (tmp_path / "reports" / "api-example" / "index.html").is_file()


def test_the_notebook_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["notebook.py", str(tmp_path / "report")])
    runpy.run_path(str(DOCS / "examples" / "notebook.py"), run_name="__main__")
    out = capsys.readouterr().out
    ratios = {
        rule: float(ratio.replace(",", ""))
        for rule, ratio in re.findall(r"(bp|dfa) moves ([\d,]+)x the learning-phase", out)
    }
    assert ratios["bp"] > ratios["dfa"] > 100
    assert (tmp_path / "report" / "index.html").is_file()
