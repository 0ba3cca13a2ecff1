"""docs/sweep-format.md: its example expands as it says, its messages are the real ones."""

from __future__ import annotations

import re

import pytest

from hwsim.errors import SpecError
from hwsim.specs.sweep import Axis, NetworkWorkload, Sampling, SweepSpec, Workloads
from hwsim.sweep import expand
from tests.sweep.conftest import ROOT, write_sweep

TEXT = (ROOT / "docs" / "sweep-format.md").read_text()


def test_the_example_expands_as_documented(tmp_path):
    (example,) = re.findall(r"```yaml\n(.*?)```", TEXT, re.S)
    path = tmp_path / "example.yaml"
    path.write_text(example)
    expansion = expand(path)
    assert [w.label for w in expansion.workloads] == [
        "digits_fc_bp_b8",
        "digits_fc_dfa_b8",
        "digits_fc_ssdfa_b8_s1",
        "digits_fc_ssdfa_b8_s2",
    ]
    assert len(expansion.points) == 4 and len(expansion.rows) == 16
    assert "2 × 2 = 4 points, each priced on 4 workloads" in TEXT


def test_the_documented_point_error_is_real(tmp_path):
    path = write_sweep(
        tmp_path,
        axes=[
            {"path": "global_buffer.capacity_bytes", "values": ["64 KiB", "1 kB"]},
            {"path": "dram.channels", "values": [1, 2, 3]},
        ],
    )
    with pytest.raises(SpecError) as caught:
        expand(path)
    (line,) = str(caught.value).splitlines()
    documented = next(text for text in TEXT.splitlines() if "ambiguous unit" in text)
    assert line.replace(str(tmp_path / "sweep.yaml"), "sweep.yaml") == documented.removeprefix(
        "hwsim: error: "
    )


def test_every_field_is_documented():
    for model in (SweepSpec, Workloads, NetworkWorkload, Axis, Sampling):
        for name in model.model_fields:
            assert f"`{name}`" in TEXT, f"{model.__name__}.{name} is not in sweep-format.md"
