"""Token layers (issue 15, item 3) and the transformers of item 6: patch_embed, per-token dense,
layer_norm, gelu, attention and token_pool — gradients by finite differences, the records in
closed form, live == shape-only, bad files refused naming the layer and field, and vit_tiny's
and digits_transformer's steps simulated on every shipped spec within the invariants."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import yaml

from hwsim.cli import main
from hwsim.errors import SpecError
from hwsim.io.networks import load_network
from hwsim.io.traces import read_trace, write_trace
from hwsim.specs.network import Activation, infer_shapes
from hwsim.specs.trace import Algorithm, Phase, Role, Slot, Trace
from hwsim.train.layer_base import activate, activation_derivative
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.sim.invariants import SHIPPED_SPECS, simulate_within_invariants
from tests.train.builders import make_model, make_network
from tests.train.test_graphs import _check_live_is_described
from tests.train.test_layers import batch, check_all_gradients


def transformer(class_token: bool, position: bool, mode: str, heads: int = 2):
    """[3, 4, 1] as 3 row tokens of width 4, one pre-norm block, gelu twice, a pool."""
    embed = {"type": "patch_embed", "name": "embed", "width": 4, "patch_size": [1, 4],
             "class_token": class_token, "position_embedding": position}  # fmt: skip
    layers = [
        embed,
        {"type": "layer_norm", "name": "ln1", "block": "b"},
        {"type": "attention", "name": "attn", "heads": heads, "block": "b"},
        {"type": "add", "name": "res", "inputs": ["attn", "embed"], "block": "b"},
        {"type": "dense", "name": "fc1", "units": 5, "activation": "gelu", "block": "b"},
        {"type": "dense", "name": "fc2", "units": 4, "block": "b"},
        {"type": "activation", "name": "act", "function": "gelu", "block": "b"},
        {"type": "layer_norm", "name": "ln2", "epsilon": 1e-5},
        {"type": "token_pool", "name": "pool", "mode": mode},
        {"type": "dense", "name": "out", "units": 3},
    ]
    return make_network([3, 4, 1], 3, layers, name=f"tok_{mode}")


VARIANTS = [(False, False, "mean"), (True, True, "class"), (False, True, "class")]


@pytest.mark.parametrize(("class_token", "position", "mode"), VARIANTS)
def test_token_layer_gradients_match_finite_differences(class_token, position, mode, rng):
    network = transformer(class_token, position, mode)
    model = make_model(network, rng)
    for layer in model.layers:  # scale and shift away from 1 and 0
        if layer.name.startswith("ln"):
            layer.params["scale"][:] = rng.uniform(0.5, 1.5, layer.params["scale"].shape)
            layer.params["shift"][:] = rng.uniform(-0.3, 0.3, layer.params["shift"].shape)
    x, y = batch(network, 3, rng)
    check_all_gradients(model, x, y)  # every parameter, including the patch embedding's
    names = {(layer.name, param) for layer in model.trainable_layers() for param in layer.params}
    assert ("embed", "class_token") in names if class_token else True
    assert {("attn", "qkv_weight"), ("attn", "proj_bias"), ("ln1", "scale")} <= names


def test_gelu_is_the_tanh_approximation_and_its_derivative_reads_the_input():
    h = np.linspace(-4, 4, 81)
    exact = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    np.testing.assert_allclose(activate(Activation.GELU, h), exact, rtol=1e-12)
    assert activate(Activation.GELU, np.array(1.0)) == pytest.approx(0.841192, abs=1e-6)
    eps = 1e-6
    numeric = (activate(Activation.GELU, h + eps) - activate(Activation.GELU, h - eps)) / (2 * eps)
    np.testing.assert_allclose(activation_derivative(Activation.GELU, h), numeric, atol=1e-8)


@pytest.mark.parametrize("rule", list(Algorithm), ids=str)
@pytest.mark.parametrize(("class_token", "position", "mode"), VARIANTS[:2])
def test_live_traces_record_what_the_ops_describe(class_token, position, mode, rule):
    network = transformer(class_token, position, mode)
    s = network.classes if rule == Algorithm.SSDFA else 1
    config = TrainConfig.from_network(network, rule, epochs=1, batch_size=2, nonzeros_per_neuron=s)
    trace = _check_live_is_described(network, config)
    derivatives = {r.op.function: r for r in trace.records if r.op.kind == "elementwise"}
    # gelu's derivative reads the pre-activation (fused) or the layer's input (standalone)
    fused = [r for r in trace.records if getattr(r.op, "function", "") == "gelu_derivative"]
    assert {r.reads[1].tensor for r in fused} == {"fc1.pre", "fc2.out"}
    assert "softmax_derivative" in derivatives and "merge_heads" in derivatives


def _attention_records(batch: int, tokens: int, width: int, heads: int) -> list:
    layers = [
        {"type": "attention", "name": "attn", "heads": heads},
        {"type": "token_pool", "name": "pool", "mode": "mean"},
        {"type": "dense", "name": "out", "units": 2},
    ]
    network = make_network([tokens, width], 2, layers)
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=batch)
    return [r for r in shape_only_trace(network, config).records if r.layer == "attn"]


def test_attention_records_in_closed_form():
    b, t, w, h = 2, 5, 6, 3
    d, rows, scores = w // h, b * t, b * h * t * t
    records = _attention_records(b, t, w, h)
    gemms = [(r.phase.value, r.op.groups, r.op.m, r.op.k, r.op.n) for r in records if r.macs]
    assert gemms == [
        ("forward", 1, rows, w, 3 * w),  # qkv
        ("forward", b * h, t, d, t),  # Q·Kᵀ
        ("forward", b * h, t, t, d),  # A·V
        ("forward", 1, rows, w, w),  # output projection
        ("gradient", 1, w, rows, w),  # its weight gradient
        ("error", 1, rows, w, w),  # the context's error
        ("error", b * h, t, d, t),  # dA = dC·Vᵀ
        ("error", b * h, t, t, d),  # dV = Aᵀ·dC
        ("error", b * h, t, t, d),  # dQ = dS·K
        ("error", b * h, t, t, d),  # dK = dSᵀ·Q
        ("gradient", 1, w, rows, 3 * w),  # the qkv weight gradient
    ]  # the network's input needs no error: no dqkv·W_qkvᵀ
    forward = sum(r.macs for r in records if r.phase == Phase.FORWARD)
    assert forward == b * (4 * t * w * w + 2 * t * t * w)
    products = [r for r in records if r.macs and r.op.groups > 1]
    for record in products:  # two activations or errors, no weight
        slots = {o.slot: o.role for o in (*record.reads, *record.writes)}
        assert set(slots) == {Slot.A, Slot.B, Slot.C}
        assert Role.WEIGHT not in slots.values() and len(record.reads) == 2
    assert [o.role for o in products[0].reads] == [Role.ACTIVATION, Role.ACTIVATION]
    vector = {
        r.op.function: r.other_ops
        for r in records
        if r.op.kind == "elementwise" and r.phase != Phase.UPDATE
    }
    assert vector == {"split_heads": 0, "softmax": 3 * scores, "softmax_derivative": 5 * scores,
                      "merge_heads": 0}  # fmt: skip
    qk = products[0]
    assert qk.other_ops == scores  # the 1/√d scale
    assert records[0].other_ops == rows * 3 * w  # the qkv bias


def test_layer_norm_and_patch_embed_records_in_closed_form():
    network = transformer(True, True, "class")
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=2)
    records = shape_only_trace(network, config).records
    values, tokens = 2 * 4 * 4, 2 * 4  # [4 tokens (3 patches + class), 4 features] a batch of 2
    ln = {r.op.function: r for r in records if r.layer == "ln1" and r.op.kind != "matmul"}
    assert (ln["mean_variance"].op.inputs, ln["mean_variance"].op.outputs) == (values, 2 * tokens)
    assert ln["mean_variance"].writes[0].role == Role.ACTIVATION  # per-token statistics
    assert ln["layer_norm"].other_ops == 4 * values
    assert ln["scale_shift_gradient"].other_ops == 4 * values
    assert ln["layer_norm_derivative"].other_ops == 10 * values
    embed = [r for r in records if r.layer == "embed"]
    (gemm,) = [r for r in embed if r.phase == Phase.FORWARD and r.macs]
    assert (gemm.op.m, gemm.op.k, gemm.op.n) == (2 * 3, 4, 4)  # tokens·(ph·pw·C)·width
    assert {r.op.function for r in embed if r.op.kind != "matmul"} >= {"token_embed", "split"}


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [{"type": "patch_embed", "name": "p", "width": 6, "patch_size": 4},
             {"type": "attention", "name": "a", "heads": 4}],
            "layers.1 (attention 'a').heads: must divide the width (6) (got 4)",
        ),
        (
            [{"type": "patch_embed", "name": "p", "width": 6, "patch_size": [3, 4]}],
            "layers.0 (patch_embed 'p').patch_size: must divide the 8x8 map (got 3x4)",
        ),
        (
            [{"type": "attention", "name": "a", "heads": 1}],
            "layers.0 (attention 'a'): attention needs a [tokens, width] input but gets "
            "shape [8, 8, 1]",
        ),
        (
            [{"type": "token_pool", "name": "t", "mode": "mean"}],
            "layers.0 (token_pool 't'): token_pool needs a [tokens, width] input",
        ),
        (
            [{"type": "patch_embed", "name": "p", "width": 6, "patch_size": 4},
             {"type": "patch_embed", "name": "q", "width": 6, "patch_size": 1}],
            "layers.1 (patch_embed 'q'): needs a [height, width, channels] input but gets "
            "shape [4, 6]",
        ),
        (
            [{"type": "token_pool", "name": "t", "mode": "max"}],
            "layers.0.mode: must be 'mean' or 'class' (got 'max')",
        ),
    ],
)  # fmt: skip
def test_bad_token_layers_are_one_message_naming_file_layer_and_field(
    tmp_path, capsys, layers, message
):
    data = {"schema_version": 1, "kind": "network", "name": "bad", "dataset": "digits",
            "input_shape": [8, 8, 1], "classes": 10,
            "layers": [*layers, {"type": "flatten", "name": "f"},
                       {"type": "dense", "name": "out", "units": 10}]}  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="bad.yaml") as info:
        load_network(str(path))
    assert message in str(info.value)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_dense_on_tokens_is_per_token_and_flat_dense_unchanged():
    layers = [{"type": "dense", "name": "fc", "units": 7}, {"type": "token_pool", "name": "p",
              "mode": "mean"}, {"type": "dense", "name": "out", "units": 2}]  # fmt: skip
    network = make_network([5, 3], 2, layers)
    shapes = infer_shapes(network)
    assert (shapes[0].output_shape, shapes[0].weights, shapes[0].parameters) == ((5, 7), 21, 28)
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=4)
    (gemm, *_) = shape_only_trace(network, config).records
    assert (gemm.op.m, gemm.op.k, gemm.op.n) == (4 * 5, 3, 7)


# ----------------------------------------------------------------- the shipped transformers


@cache
def step(name: str, rule: Algorithm) -> Trace:
    network = load_network(name)
    return shape_only_trace(
        network, TrainConfig.from_network(network, rule, epochs=1, batch_size=1)
    )


def test_vit_tiny_has_timms_parameters_and_forward_macs():
    network = load_network("vit_tiny")
    assert sum(shape.parameters for shape in infer_shapes(network)) == 5_717_416
    records = step("vit_tiny", Algorithm.BP).records
    forward = sum(r.macs for r in records if r.phase == Phase.FORWARD)
    # 196 patches · 768 · 192 + 12 blocks · (4·197·192² + 2·197²·192 + 2·197·192·768) + 192·1000
    assert forward == 1_253_683_200
    header = step("vit_tiny", Algorithm.DFA).header
    assert len(header.feedback) == 14  # the patch embedding, 12 blocks, the final norm
    assert [info.neurons for info in header.feedback[1:13]] == [197 * 192] * 12


def test_token_traces_round_trip_through_the_loader(tmp_path):
    trace = step("digits_transformer", Algorithm.DFA)
    path = write_trace(tmp_path / "t.jsonl", trace)
    assert read_trace(path) == trace
    attention = next(layer for layer in trace.header.layers if layer.type == "attention")
    assert attention.heads == 2 and attention.input_shape == [8, 32]


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
@pytest.mark.parametrize("rule", list(Algorithm), ids=str)
@pytest.mark.parametrize("name", ["vit_tiny", "digits_transformer"])
def test_every_rule_simulates_on_every_shipped_spec_within_the_invariants(name, rule, spec):
    simulate_within_invariants(spec, step(name, rule))
