"""Inference traces (issue 15, item 7): `hwsim trace --inference` and
`hw.trace(..., inference=True)` record the forward pass only — batch norm by its running
statistics, dropout off — so a training step can be priced beside inference on one spec."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import numpy as np
import pytest

import hwsim.api as hw
from hwsim.cli import main
from hwsim.errors import HwsimError, TraceError
from hwsim.io.networks import load_network
from hwsim.io.traces import read_trace
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Phase, Role, Trace
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.shapes import shape_only_trace
from tests.sim.invariants import SHIPPED_SPECS, simulate_within_invariants
from tests.train.test_batch_norm import conv_bn_network
from tests.train.test_ops import _records
from tests.train.test_trace_counts import FEEDBACK_NET


def _config(network: NetworkSpec, inference: bool = True, batch: int = 3) -> TrainConfig:
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=batch)
    return replace(config, inference=inference)


@cache
def inference_trace(name: str) -> Trace:
    network = {"conv_bn": conv_bn_network, "feedback_net": lambda: FEEDBACK_NET}[name]()
    return trace_synthetic_step(network, _config(network))


@pytest.mark.parametrize("name", ["conv_bn", "feedback_net"])
def test_an_inference_trace_is_the_forward_pass_and_shape_only_agrees(name):
    network = conv_bn_network() if name == "conv_bn" else FEEDBACK_NET
    live = inference_trace(name)
    assert live.header.inference and live.header.feedback == []
    assert {record.phase for record in live.records} == {Phase.FORWARD}
    assert live.records[-1].op.function == "softmax"
    assert _records(live) == _records(shape_only_trace(network, _config(network)))
    # Every activation read was written before (dropout off: the next layer reads its input).
    written = {"input"}
    for record in live.records:
        for operand in record.reads:
            if operand.role in (Role.ACTIVATION, Role.INPUT):
                assert operand.tensor in written, (record.layer, operand.tensor)
        written |= {operand.tensor for operand in record.writes}


def test_without_batch_norm_or_dropout_inference_is_the_training_forward_pass():
    layers = [layer for layer in FEEDBACK_NET.model_dump()["layers"] if layer["type"] != "dropout"]
    network = NetworkSpec.model_validate(FEEDBACK_NET.model_dump() | {"layers": layers})
    training = shape_only_trace(network, _config(network, inference=False))
    inference = shape_only_trace(network, _config(network))
    forward = [r for r in _records(training) if r["phase"] == "forward"]
    assert _records(inference) == forward


def test_batch_norm_reads_its_running_statistics_and_dropout_records_nothing():
    records = inference_trace("conv_bn").records
    norms = [r for r in records if r.layer in ("bn1", "bn2", "bn3")]
    assert [r.op.function for r in norms] == ["batch_norm_inference"] * 3
    for record in norms:
        running = record.reads[1]
        assert running.tensor.endswith(".running_statistics") and running.role == Role.BIAS
        assert record.other_ops == 2 * record.op.elements
    assert not [r for r in inference_trace("feedback_net").records if r.layer == "drop"]


def test_a_live_inference_trace_measures_its_densities():
    """A real pass: relu outputs have zeros, so their measured density is below 1."""
    trace = inference_trace("feedback_net")
    assert trace.header.densities_measured
    (relu,) = [r for r in trace.records if r.layer == "c1" and r.op.kind == "elementwise"]
    assert relu.op.function == "relu" and 0 < relu.writes[0].density < 1
    softmax = trace.records[-1]
    assert softmax.writes[0].elements == 3 * FEEDBACK_NET.classes


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
def test_inference_costs_less_than_a_training_step_on_every_spec(spec):
    network = load_network("digits_resnet")
    inference = shape_only_trace(network, _config(network, batch=2))
    training = shape_only_trace(network, _config(network, inference=False, batch=2))
    alone = simulate_within_invariants(spec, inference)
    trained = simulate_within_invariants(spec, training, precision=False)
    assert alone.totals()["macs"] * 3 == trained.totals()["macs"] + _first_conv(training)
    for component in ("dram", "tile_sram", "global_buffer"):
        assert alone.total(component, "read") <= trained.total(component, "read")
    assert alone.cycles <= trained.cycles


def _first_conv(trace: Trace) -> int:
    """The first conv's forward MACs: BP runs no backward-data GEMM for it."""
    return trace.records[0].macs


def test_the_cli_traces_inference_and_refuses_a_rule_with_it(tmp_path, capsys):
    out = tmp_path / "inference.jsonl"
    args = ["trace", "--network", "digits_resnet", "--inference", "--batch-size", "2"]
    assert main([*args, "--shape-only", "--out", str(out)]) == 0
    assert "digits_resnet inference, batch 2" in capsys.readouterr().out
    header = json.loads(out.read_text().splitlines()[0])
    assert header["inference"] is True and header["algorithm"] == "bp"
    assert read_trace(out).header.inference
    training = tmp_path / "training.jsonl"
    assert main(["trace", "--algorithm", "bp", "--shape-only", "--out", str(training)]) == 0
    assert "inference" not in json.loads(training.read_text().splitlines()[0])
    refused = tmp_path / "refused.jsonl"
    assert main([*args, "--algorithm", "dfa", "--out", str(refused)]) == 2
    assert "--inference traces the forward pass, which is every rule's: leave out --algorithm" in (
        capsys.readouterr().err
    )
    assert main(["trace", "--out", str(refused)]) == 2
    assert "required: --algorithm (or --inference)" in capsys.readouterr().err
    assert not refused.exists()


def test_an_inference_trace_with_a_backward_record_is_refused(tmp_path):
    training = tmp_path / "training.jsonl"
    assert main(["trace", "--algorithm", "bp", "--shape-only", "--out", str(training)]) == 0
    lines = training.read_text().splitlines()
    header = json.loads(lines[0]) | {"inference": True}
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(TraceError, match=r"damaged.jsonl: line \d+: phase: 'error' in an "):
        read_trace(damaged)


def test_the_python_api_traces_and_compares_inference():
    trace = hw.trace("digits_resnet", inference=True, shape_only=True, batch_size=1)
    assert trace.header.inference
    with pytest.raises(HwsimError, match="the forward pass is every rule's"):
        hw.trace("digits_resnet", "dfa", inference=True)
    table = hw.compare("digits_resnet", ["bp", "inference"], "von_neumann", batch_size=1)
    energy = dict(zip(table["algorithm"], table["energy_pj"], strict=True))
    assert energy["inference"] < energy["bp"]
    assert np.isfinite(energy["inference"])
