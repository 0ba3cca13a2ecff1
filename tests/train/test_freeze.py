"""`--freeze LAYER...` on `hwsim train` and `hwsim trace` (and `hw.trace(freeze=...)`): the
paper's transfer setting, pre-trained layers kept fixed. A frozen layer keeps its forward
records, learns nothing (no gradient, no update) and, first in the chain, needs no error."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim.api as hw
from hwsim.cli import main
from hwsim.errors import ArgumentError
from hwsim.io.networks import load_network
from hwsim.specs.network import frozen
from hwsim.specs.trace import Algorithm
from hwsim.train.loop import TrainConfig, Trainer


def _keys(trace, skip_layer=None):
    return [(r.phase.value, r.layer, r.op) for r in trace.records if r.layer != skip_layer]


# Per example on digits_fc (64 -> 256 -> 256 -> 10), batch 32: the error into fc1's output that
# nothing needs once fc1 learns nothing — BP's through fc2's weights (256 x 256), DFA's
# projection of the 10 output errors, SSDFA's one error per neuron (s = 1).
FC1_ERROR_MACS = {"bp": 256 * 256, "dfa": 10 * 256, "ssdfa": 256}


@pytest.mark.parametrize("algorithm", ["bp", "dfa", "ssdfa"])
def test_a_frozen_layer_keeps_its_forward_records_and_learns_nothing(algorithm):
    plain = hw.trace("digits_fc", algorithm, shape_only=True)
    fixed = hw.trace("digits_fc", algorithm, shape_only=True, freeze=["fc1"])
    batch = plain.header.batch_size
    assert {r.phase.value for r in fixed.records if r.layer == "fc1"} == {"forward"}
    assert [k for k in _keys(fixed) if k[0] == "forward"] == [
        k for k in _keys(plain) if k[0] == "forward"
    ]
    before, after = plain.macs_by_phase(), fixed.macs_by_phase()
    phase = {p.value: p for p in before}
    assert after[phase["forward"]] == before[phase["forward"]]
    assert before[phase["gradient"]] - after[phase["gradient"]] == 64 * 256 * batch
    assert before[phase["error"]] - after[phase["error"]] == FC1_ERROR_MACS[algorithm] * batch
    assert (
        fixed.header.trained_weights == plain.header.trained_weights - 64 * 256
    )  # weights, biases aside
    # fc2 and fc3 do all they did (under BP but for the one error matmul into fc1's output).
    kept = _keys(plain, "fc1")
    if algorithm == "bp":
        kept.remove(next(k for k in kept if k[:2] == ("error", "fc2") and k[2].kind == "matmul"))
    assert _keys(fixed, "fc1") == kept


def test_frozen_layers_keep_their_weights_in_a_live_step():
    network = frozen(load_network("digits_fc"), ["fc1"], "--freeze")
    trainer = Trainer(network, TrainConfig.from_network(network, Algorithm.DFA))
    layers = {layer.name: layer for layer in trainer.model.trainable_layers()}
    assert "fc1" not in layers
    fc1 = next(layer for layer in trainer.model.layers if layer.name == "fc1")
    before = {k: v.copy() for k, v in fc1.params.items()}
    after_fc2 = layers["fc2"].params["weight"].copy()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    trainer.step(x, y)
    for key, value in before.items():
        np.testing.assert_array_equal(fc1.params[key], value)
    assert not np.array_equal(layers["fc2"].params["weight"], after_fc2)


def test_trace_cli_freeze_writes_what_the_api_traces(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    argv = ["trace", "--network", "digits_fc", "--algorithm", "dfa", "--shape-only"]
    assert main([*argv, "--freeze", "fc1", "fc2", "--out", str(out)]) == 0
    expected = tmp_path / "e.jsonl"
    hw.save_trace(expected, hw.trace("digits_fc", "dfa", shape_only=True, freeze=["fc1", "fc2"]))
    assert out.read_bytes() == expected.read_bytes()


@pytest.mark.parametrize(
    ("network", "names", "message"),
    [
        ("digits_fc", ["fc"], "digits_fc: --freeze fc: no such layer; did you mean 'fc3'?"),
        ("digits_fc", ["fc3"], "--freeze fc3: the output layer must be trainable"),
        ("digits_resnet", ["block1_add"], "--freeze block1_add: a add layer learns nothing"),
    ],
)
@pytest.mark.parametrize("command", ["trace", "train"])
def test_a_bad_freeze_is_one_message_and_writes_nothing(
    tmp_path, capsys, network, names, message, command
):
    out = tmp_path / "t.jsonl"
    flag = "--out" if command == "trace" else "--trace-out"
    argv = [command, "--network", network, "--algorithm", "bp", "--freeze", *names, flag, str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_the_api_names_its_argument():
    with pytest.raises(ArgumentError, match=r"trace\(freeze=...\): fc9: no such layer"):
        hw.trace("digits_fc", "bp", shape_only=True, freeze="fc9")
