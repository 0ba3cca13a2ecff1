"""A sweep's tasks: points that share what the mapping search caches run on one worker."""

from __future__ import annotations

import pytest

from hwsim.io.arch import load_arch_with_energies
from hwsim.sim.von_neumann import search_key
from hwsim.specs.arch import MappingObjective
from hwsim.sweep.expand import expand
from hwsim.sweep.runner import MAX_POINTS_PER_TASK, _bundles
from tests.sweep.conftest import write_sweep

BUFFERS = [f"{k} KiB" for k in (128, 256, 512, 1024, 2048, 4096)]
AXES = [
    {"path": "dram.bandwidth_bytes_per_cycle", "values": [8, 17]},
    {"path": "global_buffer.capacity_bytes", "values": BUFFERS},  # inner: points interleave
    {"path": "pe_array.rows", "values": [8, 16, 32]},
]


def _points_of(bundle):
    return [rows[0].point for rows in bundle]


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_a_task_holds_points_that_differ_in_buffer_size_only(tmp_path, workers):
    rows = expand(write_sweep(tmp_path, axes=AXES)).rows
    bundles = _bundles(rows, workers)
    seen = [row.key for bundle in bundles for rows_ in bundle for row in rows_]
    assert sorted(seen) == sorted(row.key for row in rows)  # every row once
    for bundle in bundles:
        points = _points_of(bundle)
        assert len(points) <= MAX_POINTS_PER_TASK
        others = {
            (p.values["dram.bandwidth_bytes_per_cycle"], p.values["pe_array.rows"]) for p in points
        }
        assert len(others) == 1, others
        for rows_ in bundle:  # a point's workloads together
            assert {row.point.key for row in rows_} == {rows_[0].point.key}
            assert len(rows_) == 2
    points = len({row.point.key for row in rows})  # 36
    assert len(bundles) >= min(points, 4 * workers)
    if workers == 1:  # 36 points // 4 = 9 a task at most: each key's 6 points in one task
        assert len(bundles) == 6


def test_the_search_key_ignores_capacity_only():
    arch, energies = load_arch_with_energies("von_neumann")

    def key(**updates):
        changed = arch
        for section, fields in updates.items():
            part = getattr(arch, section).model_copy(update=fields)
            changed = changed.model_copy(update={section: part})
        return search_key(changed, energies)

    base = key()
    assert key(global_buffer={"capacity_bytes": 2**22}) == base
    assert key(global_buffer={"reuse_fraction": 0.25}) == base
    assert key(dram={"latency_cycles": 7}) == base
    for changed in (
        {"pe_array": {"rows": 8}},
        {"pe_array": {"columns": 8}},
        {"dram": {"bandwidth_bytes_per_cycle": 8}},
        {"dram": {"channels": 4}},
        {"global_buffer": {"bandwidth_bytes_per_cycle": 16}},
        {"precision": {"weight_bits": 8}},
        {"schedule": {"mapping_objective": MappingObjective.LATENCY}},
    ):
        assert key(**changed) != base, changed


def test_the_tasks_of_one_array_run_one_after_another(tmp_path):
    """The GEMMs' candidate tilings depend on the array, not the bandwidths
    (hwsim.sim.loopnest._candidates_on keeps a few): tasks of one array are adjacent, so a
    worker's next task finds them cached.  The grid's bandwidths vary slowest here."""
    rows = expand(write_sweep(tmp_path, axes=AXES)).rows
    arrays = [_points_of(bundle)[0].values["pe_array.rows"] for bundle in _bundles(rows, 2)]
    runs = [array for i, array in enumerate(arrays) if i == 0 or arrays[i - 1] != array]
    assert sorted(runs) == sorted(set(arrays)) == [8, 16, 32]  # each array in one run


def test_a_worker_process_imports_the_simulator_not_the_runner():
    """Sweep workers start faster without pandas and plotly (hwsim.sweep's names are
    imported when first used)."""
    import subprocess
    import sys

    code = "import sys, hwsim.sweep.worker; print(sorted({'pandas', 'plotly'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    import hwsim.sweep as sweep

    assert all(callable(getattr(sweep, name)) for name in sweep.__all__)
