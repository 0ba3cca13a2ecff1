"""batch_norm (issue 15, item 3): batch statistics in training, running statistics in
inference, a trained scale and shift per channel; gradients by finite differences, the trace's
ops in closed form, and both substrates price it within the invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwsim.specs.trace import Algorithm, Role
from hwsim.train.layers import StepContext
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.model import Model
from hwsim.train.norm_layers import BatchNorm
from tests.sim.invariants import SHIPPED_SPECS, simulate_within_invariants
from tests.train.builders import make_model, make_network
from tests.train.test_graphs import _check_live_is_described
from tests.train.test_layers import batch, check_all_gradients

CONV_BN = [  # no bias before a norm: the norm removes it, so its gradient is 0
    {"type": "conv2d", "name": "c1", "filters": 3, "kernel_size": 3, "use_bias": False},
    {"type": "batch_norm", "name": "bn1"},
    {"type": "activation", "name": "a1", "function": "tanh"},
    {
        "type": "conv2d",
        "name": "c2",
        "filters": 2,
        "kernel_size": 3,
        "stride": 2,
        "use_bias": False,
    },
    {"type": "batch_norm", "name": "bn2", "epsilon": 1e-3},
    {"type": "add", "name": "skip", "inputs": ["bn2", "bn2_side"]},
    {"type": "global_avg_pool", "name": "gap"},
    {"type": "dense", "name": "h", "units": 4, "use_bias": False, "activation": "tanh"},
    {"type": "batch_norm", "name": "bn3"},
    {"type": "dense", "name": "out", "units": 3},
]
SIDE = {"type": "conv2d", "name": "bn2_side", "filters": 2, "kernel_size": 1, "stride": 2,
        "inputs": ["a1"]}  # fmt: skip


def conv_bn_network(frozen: bool = False):
    layers = [dict(layer) for layer in CONV_BN]
    layers.insert(5, SIDE)
    if frozen:
        layers[1]["trainable"] = False
    return make_network([5, 5, 2], 3, layers, name="conv_bn")


def _randomize(model: Model, rng: np.random.Generator) -> None:
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            layer.params["scale"][:] = rng.uniform(0.5, 1.5, layer.channels)
            layer.params["shift"][:] = rng.uniform(-0.3, 0.3, layer.channels)


@pytest.mark.parametrize("frozen", [False, True])
def test_batch_norm_gradients_match_finite_differences(frozen, rng):
    network = conv_bn_network(frozen)
    model = make_model(network, rng)
    _randomize(model, rng)
    x, y = batch(network, 4, rng)
    check_all_gradients(model, x, y)
    trained = {layer.name for layer in model.trainable_layers()}
    assert ("bn1" in trained) is not frozen and {"bn2", "bn3"} <= trained


def test_training_normalizes_by_the_batch_and_inference_by_the_running_statistics(rng):
    network = make_network([6], 2, [{"type": "batch_norm", "name": "bn", "momentum": 0.25},
                                     {"type": "dense", "name": "out", "units": 2}])  # fmt: skip
    model = make_model(network, rng)
    bn = model.layers[0]
    assert isinstance(bn, BatchNorm)
    x = 3 + 2 * rng.standard_normal((8, 6))
    y = bn.forward(x, StepContext(training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-5), rtol=1e-9)
    # running ← 0.75 · running + 0.25 · batch (the variance unbiased), from mean 0, variance 1
    np.testing.assert_allclose(bn.running["mean"], 0.25 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        bn.running["variance"], 0.75 + 0.25 * x.var(axis=0, ddof=1), rtol=1e-12
    )
    inferred = bn.forward(x, StepContext(training=False))
    expected = (x - bn.running["mean"]) / np.sqrt(bn.running["variance"] + 1e-5)
    np.testing.assert_allclose(inferred, expected, rtol=1e-12)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_batch_norm_traces_record_what_the_ops_describe_in_closed_form(algorithm):
    network = conv_bn_network()
    s = network.classes if algorithm == Algorithm.SSDFA else 1
    config = TrainConfig.from_network(
        network, algorithm, epochs=1, batch_size=3, nonzeros_per_neuron=s
    )
    trace = _check_live_is_described(network, config)
    shapes = {layer.name: layer for layer in trace.header.layers}
    assert shapes["bn1"].parameters == 2 * 3 and shapes["bn1"].weights == 0
    for name in ("bn1", "bn2", "bn3"):
        values = 3 * math.prod(shapes[name].output_shape)  # E, the batch's values
        channels = shapes[name].output_shape[-1]
        ops = {
            r.op.function: r
            for r in trace.records
            if r.layer == name and r.op.kind in ("reduce", "elementwise")
        }
        stats = ops["mean_variance"]
        assert (stats.op.inputs, stats.op.outputs, stats.other_ops) == (
            values,
            2 * channels,
            2 * values,
        )
        assert ops["batch_norm"].other_ops == 2 * values
        assert ops["running_statistics"].other_ops == 2 * 2 * channels
        assert ops["running_statistics"].writes[0].role == Role.OPTIMIZER_STATE
        if "scale_shift_gradient" in ops:
            assert ops["scale_shift_gradient"].other_ops == 4 * values
        if "batch_norm_derivative" in ops:
            assert ops["batch_norm_derivative"].other_ops == 5 * values
        assert all(r.macs == 0 for r in ops.values())
    if algorithm == Algorithm.BP:  # every batch norm trains and passes the error on
        derivatives = {r.layer for r in trace.records if r.op.kind == "elementwise"
                       and r.op.function == "batch_norm_derivative"}  # fmt: skip
        assert derivatives == {"bn1", "bn2", "bn3"}
    updated = {r.writes[0].tensor for r in trace.records if r.phase.value == "update"}
    assert {"bn1.scale", "bn1.shift", "bn3.scale"} <= updated


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
def test_batch_norm_simulates_on_every_shipped_spec_within_the_invariants(spec):
    network = conv_bn_network()
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=2)
    simulate_within_invariants(spec, trace_synthetic_step(network, config))


def test_a_local_rule_starts_a_normalized_graph_from_glorot_not_zero(rng):
    """A zero conv under a batch norm outputs zero whatever the norm learns, and the relu
    after it passes no error (relu'(0) = 0): the local rules' zero start is for plain chains."""
    from hwsim.train.model import WeightInit

    model = Model(conv_bn_network(), np.float64)
    model.initialize(rng, WeightInit.AUTO)
    assert all(np.abs(layer.params["weight"]).max() > 0 for layer in model.trainable_layers()
               if layer.has_weights)  # fmt: skip
