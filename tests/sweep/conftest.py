"""Small sweep files for the sweep tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "workloads" / "traces"


def write_sweep(folder: Path, **fields) -> Path:
    """A sweep file in `folder`: a small von Neumann grid on digits_fc unless told otherwise."""
    sweep = {
        "schema_version": 1,
        "kind": "sweep",
        "name": "small",
        "base": ["von_neumann"],
        "workloads": {
            "networks": [
                {"network": "digits_fc", "algorithms": ["bp", "ssdfa"], "batch_sizes": [4]}
            ]
        },
        "axes": [
            {"path": "global_buffer.capacity_bytes", "values": ["64 KiB", "256 KiB"]},
            {"path": "dram.channels", "values": [1, 2, 4]},
        ],
        "metrics": ["cycles", "energy_pj", "dram_read_bytes"],
    } | fields
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


@pytest.fixture
def small_sweep(tmp_path) -> Path:
    return write_sweep(tmp_path)
