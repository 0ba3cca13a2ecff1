"""Every bad input to the Python API raises a documented subclass of HwsimError with one line
naming the argument (issue 14, item 7); every form the docs show for a spec, a network or a
trace is accepted where one is taken."""

from __future__ import annotations

import pandas as pd
import pytest

import hwsim.api as hw
from hwsim.errors import ArgumentError, HwsimError, SpecError, TraceError


@pytest.fixture(scope="module")
def step():
    return hw.trace("digits_fc", "bp", shape_only=True, batch_size=2)


@pytest.fixture(scope="module")
def result(step):
    return hw.simulate("von_neumann", step)


BAD = {
    "an unknown rule": (lambda s, r: hw.trace("digits_fc", "xyz"), ArgumentError, "algorithm:"),
    "batch 0": (lambda s, r: hw.trace("digits_fc", "bp", batch_size=0), SpecError, "batch_size:"),
    "a batch past the network bounds": (
        lambda s, r: hw.trace("digits_fc", "bp", batch_size=10**11, shape_only=True),
        SpecError,
        "batch_size: must be less than or equal to 1048576",
    ),
    "a network of the wrong type": (lambda s, r: hw.network(3), ArgumentError, "network:"),
    "a spec of the wrong type": (lambda s, r: hw.spec(None), ArgumentError, "spec:"),
    "an unknown field in set": (
        lambda s, r: hw.spec("von_neumann", set={"dram.chanels": 2}),
        SpecError,
        "did you mean 'dram.channels'",
    ),
    "a bad value in set": (
        lambda s, r: hw.spec("von_neumann", set={"dram.channels": 0}),
        SpecError,
        "dram.channels",
    ),
    "set on a loaded spec": (
        lambda s, r: hw.spec(hw.spec("von_neumann"), set={"dram.channels": 2}),
        ArgumentError,
        "set:",
    ),
    "a trace of the wrong type": (
        lambda s, r: hw.simulate("von_neumann", {"records": []}),
        ArgumentError,
        "trace:",
    ),
    "a missing trace file": (
        lambda s, r: hw.simulate("von_neumann", "/nonexistent.jsonl"),
        TraceError,
        "file not found",
    ),
    "an unknown table": (lambda s, r: r.to_frame("bogus"), ArgumentError, "kind:"),
    "an unknown stacking": (lambda s, r: hw.energy_figure([r], by="x"), ArgumentError, "by:"),
    "a network not in the results": (
        lambda s, r: hw.traffic_figure([r], "alexnet"),
        ArgumentError,
        "network_name: 'alexnet' is not in these results (digits_fc)",
    ),
    "a spec not in the results": (
        lambda s, r: hw.timeline_figure([r], "digits_fc", "distributed"),
        ArgumentError,
        "spec_name:",
    ),
    "results of the wrong type": (lambda s, r: hw.bounds_figure([s]), ArgumentError, "results:"),
    "nothing to report": (lambda s, r: hw.report([], "unused"), ArgumentError, "results:"),
    "a table without its columns": (
        lambda s, r: hw.fig8(pd.DataFrame({"x": [1]})),
        ArgumentError,
        "no column network, algorithm, arch, substrate",
    ),
    "a history without its columns": (
        lambda s, r: hw.training_figure(pd.DataFrame({"x": [1]})),
        ArgumentError,
        "history: no column",
    ),
    "a trace file name": (
        lambda s, r: hw.save_trace("t.txt", s),
        ArgumentError,
        "expected a file ending in .jsonl",
    ),
    "jobs below 1": (lambda s, r: hw.run_sweep("x.yaml", "out", jobs=0), SpecError, "jobs:"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_is_a_documented_hwsim_error(step, result, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    call, kind, fragment = BAD[case]
    with pytest.raises(HwsimError) as caught:
        call(step, result)
    assert type(caught.value) is kind
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_every_form_of_a_spec_network_and_trace_is_taken(step, result, tmp_path):
    from hwsim.io.shipped import shipped_dir

    path = shipped_dir("arch") / "von_neumann.yaml"
    saved = hw.save_trace(tmp_path / "t.jsonl", step)
    for spec in ("von_neumann", path, str(path), hw.spec("von_neumann")):
        for trace in (step, saved, str(saved)):
            assert hw.simulate(spec, trace).summary == result.summary
    network_path = shipped_dir("network") / "digits_fc.yaml"
    one = hw.compare("digits_fc", "bp", "von_neumann", batch_size=2)
    for network in (network_path, hw.network("digits_fc")):
        for spec in (path, hw.spec("von_neumann")):
            table = hw.compare([network], ["bp"], [spec], batch_size=2)
            assert table["energy_pj"].tolist() == one["energy_pj"].tolist()
    assert hw.network(hw.network("digits_fc")) == hw.network("digits_fc")


def test_set_is_the_same_as_simulate_set():
    from hwsim.io.overrides import load_arch_with_overrides

    arch = hw.spec("von_neumann", set={"global_buffer.capacity_bytes": "1 MiB"})
    same, _ = load_arch_with_overrides("von_neumann", ["global_buffer.capacity_bytes=1 MiB"])
    assert arch == same and arch.global_buffer.capacity_bytes == 2**20
