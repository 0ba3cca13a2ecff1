"""What a traced step records: per-op MACs in closed form, data-flow deps per rule, optimizer
state operands, measured densities, per-phase MAC totals of every shipped network under every
rule, and the paper's weight counts."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwsim.io.networks import load_network, shipped_networks
from hwsim.io.traces import read_trace
from hwsim.specs.network import NetworkSpec, OptimizerName, infer_shapes
from hwsim.specs.trace import (
    Algorithm,
    Conv2DOp,
    ConvPass,
    GatherOp,
    MatmulOp,
    OpRecord,
    Phase,
    Role,
    Trace,
)
from hwsim.train.datasets import load_dataset
from hwsim.train.loop import TrainConfig, Trainer
from tests.train.builders import make_network

WEIGHT_TYPES = ("dense", "conv2d")
MAC_KINDS = ("matmul", "conv2d", "gather")


# --------------------------------------------------------------------------- helpers


def make_trainer(
    network: NetworkSpec,
    algorithm: Algorithm,
    *,
    batch_size: int = 1,
    optimizer: OptimizerName = OptimizerName.ADAM,
    momentum: float = 0.9,
    nonzeros_per_neuron: int = 1,
) -> Trainer:
    return Trainer(
        network,
        TrainConfig(
            algorithm=algorithm,
            epochs=1,
            batch_size=batch_size,
            learning_rate=1e-3,
            optimizer=optimizer,
            momentum=momentum,
            nonzeros_per_neuron=nonzeros_per_neuron,
        ),
    )


def traced(
    network: NetworkSpec,
    algorithm: Algorithm,
    rng: np.random.Generator,
    batch: int = 3,
    **kwargs: Any,
) -> Trace:
    trainer = make_trainer(network, algorithm, batch_size=batch, **kwargs)
    x = rng.standard_normal((batch, *network.input_shape)).astype(np.float32)
    y = rng.integers(0, network.classes, batch)
    return trainer.traced_step(x, y, "synthetic")


def mac_records(trace: Trace, layer: str, phase: Phase) -> list[OpRecord]:
    return [
        r for r in trace.records if r.layer == layer and r.phase == phase and r.op.kind in MAC_KINDS
    ]


def only(records: list[OpRecord]) -> OpRecord:
    assert len(records) == 1, records
    return records[0]


def ancestors(trace: Trace, record_id: int) -> set[int]:
    by_id = {r.id: r for r in trace.records}
    seen: set[int] = set()
    stack = list(by_id[record_id].deps)
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(by_id[dep].deps)
    return seen


def output_error_record(trace: Trace) -> OpRecord:
    return only(
        [
            r
            for r in trace.records
            if r.op.kind == "elementwise" and r.op.function == "softmax_cross_entropy_error"
        ]
    )


# --------------------------------------------------------------------------- per-op MACs


DENSE_NET = make_network(
    [7],
    3,
    [
        {"type": "dense", "name": "h1", "units": 5, "activation": "tanh"},
        {"type": "dense", "name": "h2", "units": 6, "activation": "relu"},
        {"type": "dense", "name": "out", "units": 3},
    ],
)


def test_dense_macs_per_op(rng: np.random.Generator) -> None:
    batch = 4
    trace = traced(DENSE_NET, Algorithm.BP, rng, batch=batch)
    for name, fan_in, fan_out in (("h1", 7, 5), ("h2", 5, 6), ("out", 6, 3)):
        forward = only(mac_records(trace, name, Phase.FORWARD))
        assert forward.op == MatmulOp(kind="matmul", m=batch, k=fan_in, n=fan_out)
        assert forward.macs == batch * fan_in * fan_out
        gradient = only(mac_records(trace, name, Phase.GRADIENT))
        assert gradient.op == MatmulOp(kind="matmul", m=fan_in, k=batch, n=fan_out)
        assert gradient.macs == fan_in * batch * fan_out
        errors = mac_records(trace, name, Phase.ERROR)
        if name == "h1":  # the lowest trainable layer passes no error to the input
            assert errors == []
        else:
            error = only(errors)
            assert error.op == MatmulOp(kind="matmul", m=batch, k=fan_out, n=fan_in)
            assert error.macs == batch * fan_out * fan_in
    assert trace.macs_by_phase()[Phase.ERROR] == batch * (6 * 5 + 3 * 6)


def textbook_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    return math.floor((size - kernel) / stride) + 1


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "out_h", "out_w"),
    [(3, 1, "same", 13, 10), (5, 2, "same", 7, 5), (3, 4, "valid", 3, 2)],
    ids=["s1-same-k3", "s2-same-k5", "s4-valid-k3"],
)
def test_conv_macs_per_op(
    kernel: int, stride: int, padding: str, out_h: int, out_w: int, rng: np.random.Generator
) -> None:
    height, width, channels, filters, batch = 13, 10, 3, 4, 2
    assert (
        textbook_size(height, kernel, stride, padding),
        textbook_size(width, kernel, stride, padding),
    ) == (out_h, out_w)
    network = make_network(
        [height, width, 2],
        3,
        [
            {
                "type": "conv2d",
                "name": "c0",
                "filters": channels,
                "kernel_size": 3,
                "activation": "tanh",
            },
            {
                "type": "conv2d",
                "name": "c",
                "filters": filters,
                "kernel_size": kernel,
                "stride": stride,
                "padding": padding,
                "activation": "relu",
            },
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    trace = traced(network, Algorithm.BP, rng, batch=batch)
    expected = batch * out_h * out_w * (kernel * kernel * channels) * filters
    for phase, conv_pass in (
        (Phase.FORWARD, ConvPass.FORWARD),
        (Phase.GRADIENT, ConvPass.BACKWARD_WEIGHT),
        (Phase.ERROR, ConvPass.BACKWARD_DATA),
    ):
        record = only(mac_records(trace, "c", phase))
        assert isinstance(record.op, Conv2DOp) and record.op.conv_pass == conv_pass
        assert (record.op.output_height, record.op.output_width) == (out_h, out_w)
        assert (record.op.input_height, record.op.input_width) == (height, width)
        assert record.macs == expected
    forward = only(mac_records(trace, "c", Phase.FORWARD))
    (written,) = forward.writes
    assert written.elements == batch * out_h * out_w * filters  # the array really had that size
    dense = only(mac_records(trace, "out", Phase.FORWARD))
    assert dense.op.k == out_h * out_w * filters


FEEDBACK_NET = make_network(
    [8, 8, 2],
    5,
    [
        {"type": "conv2d", "name": "c1", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "max_pool", "name": "p1", "pool_size": 2},
        {"type": "flatten", "name": "flat"},
        {"type": "dense", "name": "h", "units": 12, "activation": "tanh"},
        {"type": "dropout", "name": "drop", "rate": 0.5},
        {"type": "dense", "name": "out", "units": 5},
    ],
)
FEEDBACK_NEURONS = {"c1": 4 * 4 * 4, "h": 12}  # block outputs: after p1, after drop


def test_dfa_error_macs_are_b_c_n_per_hidden_layer(rng: np.random.Generator) -> None:
    batch, classes = 3, 5
    trace = traced(FEEDBACK_NET, Algorithm.DFA, rng, batch=batch)
    for name, neurons in FEEDBACK_NEURONS.items():
        record = only(mac_records(trace, name, Phase.ERROR))
        assert record.op == MatmulOp(kind="matmul", m=batch, k=classes, n=neurons)
        assert record.macs == batch * classes * neurons
        feedback = [r for r in record.reads if r.role == Role.FEEDBACK]
        assert [r.elements for r in feedback] == [classes * neurons]
    assert trace.macs_by_phase()[Phase.ERROR] == batch * classes * sum(FEEDBACK_NEURONS.values())


@pytest.mark.parametrize("s", [1, 3])
def test_ssdfa_error_macs_are_b_s_n_gathers(s: int, rng: np.random.Generator) -> None:
    batch, classes = 3, 5
    trace = traced(FEEDBACK_NET, Algorithm.SSDFA, rng, batch=batch, nonzeros_per_neuron=s)
    for name, neurons in FEEDBACK_NEURONS.items():
        record = only(mac_records(trace, name, Phase.ERROR))
        assert record.op == GatherOp(
            kind="gather", rows=batch, classes=classes, neurons=neurons, nonzeros_per_neuron=s
        )
        assert record.macs == batch * s * neurons
        feedback = [r for r in record.reads if r.role == Role.FEEDBACK]
        assert [r.elements for r in feedback] == [s * neurons]  # only the non-zeros are stored
    assert trace.macs_by_phase()[Phase.ERROR] == batch * s * sum(FEEDBACK_NEURONS.values())


# --------------------------------------------------------------------------- deps


DEEP_NET = make_network(
    [6],
    4,
    [
        {"type": "dense", "name": "h1", "units": 8, "activation": "tanh"},
        {"type": "dense", "name": "h2", "units": 8, "activation": "relu"},
        {"type": "dense", "name": "h3", "units": 8, "activation": "sigmoid"},
        {"type": "dense", "name": "out", "units": 4},
    ],
)
HIDDEN = ["h1", "h2", "h3"]


def error_records(trace: Trace, layer: str) -> list[OpRecord]:
    return [r for r in trace.records if r.layer == layer and r.phase == Phase.ERROR]


def test_bp_error_of_each_layer_waits_for_the_layer_above(rng: np.random.Generator) -> None:
    trace = traced(DEEP_NET, Algorithm.BP, rng)
    names = [*HIDDEN, "out"]
    for lower, upper in itertools.pairwise(names):
        upper_errors = {r.id for r in error_records(trace, upper)}
        assert upper_errors
        for record in error_records(trace, lower):
            assert ancestors(trace, record.id) & upper_errors, (lower, upper)
    # The whole chain hangs off the output error.
    loss = output_error_record(trace).id
    for name in HIDDEN:
        assert all(loss in ancestors(trace, r.id) for r in error_records(trace, name))


@pytest.mark.parametrize("algorithm", [Algorithm.DFA, Algorithm.SSDFA])
def test_feedback_errors_depend_only_on_the_output_error(
    algorithm: Algorithm, rng: np.random.Generator
) -> None:
    trace = traced(DEEP_NET, algorithm, rng)
    loss = output_error_record(trace).id
    error_ids = {r.id for r in trace.records if r.phase == Phase.ERROR}
    for name in HIDDEN:
        feedback = only(
            [r for r in error_records(trace, name) if any(o.role == Role.FEEDBACK for o in r.reads)]
        )
        assert set(feedback.deps) & error_ids == {loss}
        assert ancestors(trace, feedback.id) & error_ids == {loss}
        others = {r.id for other in HIDDEN if other != name for r in error_records(trace, other)}
        for record in error_records(trace, name):
            assert not ancestors(trace, record.id) & others, f"{name} waits for another layer"
    # The output layer computes no error for its input under DFA.
    assert mac_records(trace, "out", Phase.ERROR) == []


def assert_no_dangling_reads(trace: Trace) -> None:
    """Every activation, error or gradient an op reads was written by an earlier op."""
    written: set[str] = set()
    for record in trace.records:
        for operand in record.reads:
            if operand.role in (Role.ACTIVATION, Role.ERROR, Role.GRADIENT):
                assert operand.tensor in written, (record.id, record.layer, operand.tensor)
        written.update(o.tensor for o in record.writes)


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("network", [DEEP_NET, FEEDBACK_NET], ids=["dense", "conv-dropout"])
def test_every_read_activation_or_error_has_a_writer(
    network: NetworkSpec, algorithm: Algorithm, rng: np.random.Generator
) -> None:
    assert_no_dangling_reads(traced(network, algorithm, rng))


ZERO_DROPOUT_NET = make_network(
    [6],
    3,
    [
        {"type": "dense", "name": "h1", "units": 5, "activation": "tanh"},
        {"type": "dropout", "name": "drop", "rate": 0.0},
        {"type": "dense", "name": "h2", "units": 4, "activation": "tanh"},
        {"type": "dense", "name": "out", "units": 3},
    ],
)


@pytest.mark.parametrize("algorithm", [Algorithm.BP, Algorithm.DFA])
def test_rate_zero_dropout_keeps_the_data_flow(
    algorithm: Algorithm, rng: np.random.Generator
) -> None:
    # Regression: a rate-0 dropout recorded nothing yet had its own tensor names, so h2 read a
    # tensor nobody wrote and the trace lost the h1 -> h2 (and h2 -> h1 error) data flow.
    trace = traced(ZERO_DROPOUT_NET, algorithm, rng)
    h1_out = only(
        [
            r
            for r in trace.records
            if r.layer == "h1" and r.phase == Phase.FORWARD and r.op.kind == "elementwise"
        ]
    )
    h2_forward = only(mac_records(trace, "h2", Phase.FORWARD))
    assert h1_out.id in ancestors(trace, h2_forward.id), "h2 runs before h1's output exists"
    upstream = (
        {r.id for r in error_records(trace, "h2")}
        if algorithm == Algorithm.BP
        else {r.id for r in mac_records(trace, "h1", Phase.ERROR)}
    )
    derivative = only([r for r in error_records(trace, "h1") if r.op.kind == "elementwise"])
    assert ancestors(trace, derivative.id) & upstream, "h1's error does not wait for its input"
    assert_no_dangling_reads(trace)


# --------------------------------------------------------------------------- update


@pytest.mark.parametrize(
    ("optimizer", "momentum", "states"),
    [(OptimizerName.ADAM, 0.9, 2), (OptimizerName.SGD, 0.9, 1), (OptimizerName.SGD, 0.0, 0)],
    ids=["adam", "sgd-momentum", "sgd"],
)
def test_update_records_read_weight_gradient_and_optimizer_state(
    optimizer: OptimizerName, momentum: float, states: int, rng: np.random.Generator
) -> None:
    network = make_network(
        [6],
        3,
        [
            {
                "type": "dense",
                "name": "frozen",
                "units": 5,
                "activation": "tanh",
                "trainable": False,
            },
            {"type": "dense", "name": "h", "units": 4, "activation": "tanh"},
            {"type": "dense", "name": "out", "units": 3, "use_bias": False},
        ],
    )
    trace = traced(network, Algorithm.BP, rng, optimizer=optimizer, momentum=momentum)
    assert trace.header.optimizer.state_tensors_per_weight == states
    updates = [r for r in trace.records if r.phase == Phase.UPDATE]
    sizes = {"h.weight": 20, "h.bias": 4, "out.weight": 12}
    assert sorted(
        o.tensor for r in updates for o in r.reads if o.role in (Role.WEIGHT, Role.BIAS)
    ) == sorted(sizes)
    gradient_writers = {
        o.tensor: r.id for r in trace.records if r.phase == Phase.GRADIENT for o in r.writes
    }
    for record in updates:
        (param,) = [o for o in record.reads if o.role in (Role.WEIGHT, Role.BIAS)]
        (grad,) = [o for o in record.reads if o.role == Role.GRADIENT]
        read_states = [o for o in record.reads if o.role == Role.OPTIMIZER_STATE]
        written_states = [o for o in record.writes if o.role == Role.OPTIMIZER_STATE]
        assert len(read_states) == len(written_states) == states
        assert len(record.reads) == 2 + states
        assert grad.tensor == f"{param.tensor}.grad"
        assert {o.elements for o in [param, grad, *read_states]} == {sizes[param.tensor]}
        assert param.tensor in {o.tensor for o in record.writes}
        assert gradient_writers[grad.tensor] in record.deps
        # Write-after-read: the old weight must have been used by every op that reads it
        # (forward, and the BP error of the layer) before it is overwritten.
        readers = {
            r.id
            for r in trace.records
            if r.id < record.id and any(o.tensor == param.tensor for o in r.reads)
        }
        assert len(readers) >= 1 and readers <= set(record.deps)
        assert record.macs == 0


def test_update_read_operands_are_measured_before_the_update(rng: np.random.Generator) -> None:
    # Regression: the update was recorded after it was applied, so its read operands were
    # measured on the updated values.
    # Under DFA the tanh layer starts at zero: the step's forward reads an all-zero weight, and
    # Adam's moments are all zero before the first update.
    network = make_network(
        [6],
        3,
        [
            {"type": "dense", "name": "h", "units": 5, "activation": "tanh"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    trace = traced(network, Algorithm.DFA, rng)
    forward = only(mac_records(trace, "h", Phase.FORWARD))
    (forward_weight,) = [o for o in forward.reads if o.tensor == "h.weight"]
    assert forward_weight.density == 0.0
    update = only(
        [
            r
            for r in trace.records
            if r.phase == Phase.UPDATE and any(o.tensor == "h.weight" for o in r.writes)
        ]
    )
    reads = {o.tensor: o.density for o in update.reads}
    assert reads["h.weight"] == forward_weight.density  # nothing wrote it in between
    assert reads["h.weight.adam_m"] == reads["h.weight.adam_v"] == 0.0
    writes = {o.tensor: o.density for o in update.writes}
    assert writes["h.weight"] > 0.0  # the written value is the updated one


# --------------------------------------------------------------------------- density


def test_relu_output_density_is_the_measured_fraction_of_non_zeros(
    rng: np.random.Generator,
) -> None:
    network = make_network(
        [20],
        4,
        [
            {"type": "dense", "name": "h", "units": 30, "activation": "relu"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    )
    trainer = make_trainer(network, Algorithm.BP, batch_size=8)
    x = rng.standard_normal((8, 20)).astype(np.float32)
    layer = trainer.model.layers[0]
    pre = x @ layer.params["weight"] + layer.params["bias"]  # before the step updates them
    expected = np.count_nonzero(np.maximum(pre, 0)) / pre.size
    trace = trainer.traced_step(x, rng.integers(0, 4, 8), "synthetic")

    relu = only(
        [r for r in trace.records if r.op.kind == "elementwise" and r.op.function == "relu"]
    )
    (pre_read,) = relu.reads
    (out,) = relu.writes
    assert out.tensor == "h.out" and out.elements == 8 * 30
    assert out.density == pytest.approx(expected, abs=1e-12)
    assert 0.2 < out.density < 0.8  # half-ish of the units fire on random inputs
    assert pre_read.density == 1.0
    consumer = only(mac_records(trace, "out", Phase.FORWARD))
    (read_h,) = [o for o in consumer.reads if o.tensor == "h.out"]
    assert read_h.density == out.density


# --------------------------------------------------------------------------- shipped networks


def positions(shape: Any) -> int:
    """Output positions a weight is applied at, per example: OH·OW for conv, 1 for dense."""
    return shape.output_shape[0] * shape.output_shape[1] if shape.type == "conv2d" else 1


def closed_form_macs(
    network: NetworkSpec, algorithm: Algorithm, nonzeros_per_neuron: int = 1
) -> dict[Phase, int]:
    """Per-phase MACs of one step at batch size 1, from the layer shapes alone."""
    shapes = infer_shapes(network)
    weights = [i for i, s in enumerate(shapes) if s.type in WEIGHT_TYPES]
    trainable = [i for i in weights if shapes[i].trainable]

    def cost(i: int) -> int:
        return positions(shapes[i]) * shapes[i].weights

    if algorithm == Algorithm.BP:
        error = sum(cost(i) for i in weights if i > min(trainable))
    else:
        # A hidden layer's block ends where the next weight layer's input starts.
        neurons = sum(
            math.prod(shapes[after].input_shape)
            for i, after in itertools.pairwise(weights)
            if shapes[i].trainable
        )
        per_neuron = network.classes if algorithm == Algorithm.DFA else nonzeros_per_neuron
        error = per_neuron * neurons
    return {
        Phase.FORWARD: sum(cost(i) for i in weights),
        Phase.ERROR: error,
        Phase.GRADIENT: sum(cost(i) for i in trainable),
        Phase.UPDATE: 0,
    }


BIG_NETWORKS = {"vgg16", "alexnet"}
# Today's ImageNet graphs: their sizes and rules are checked shape-only against the published
# closed forms (tests/sim/test_graph_networks.py); a real numpy step of each would take seconds.
# The transformers' closed forms (attention's products, per-token layers) are checked in
# tests/train/test_tokens.py.
GRAPH_NETWORKS = {
    "resnet18",
    "alexnet_grouped",
    "mobilenet_v2",
    "vit_tiny",
    "digits_resnet",
    "digits_transformer",
}
NETWORK_CASES = [
    pytest.param(
        name,
        algorithm,
        id=f"{name}-{algorithm.value}",
        marks=[pytest.mark.slow] if name in BIG_NETWORKS else [],
    )
    for name in shipped_networks()
    if name not in GRAPH_NETWORKS
    for algorithm in Algorithm
]


@pytest.mark.parametrize(("name", "algorithm"), NETWORK_CASES)
def test_shipped_network_phase_macs_match_closed_form(name: str, algorithm: Algorithm) -> None:
    network = load_network(name)
    if name in BIG_NETWORKS:
        # Their real numpy steps ship in workloads/traces/ (batch 8): tracing VGG16 here would
        # take ~7 s and 3 GB per rule.
        trace = read_trace(
            Path(__file__).parents[2]
            / "workloads"
            / "traces"
            / f"{name}_{algorithm.value}_b8.jsonl.gz"
        )
    else:
        data = load_dataset(
            "synthetic",
            sample_shape=tuple(network.input_shape),
            classes=network.classes,
            synthetic_train=1,
            synthetic_test=1,
        )
        trainer = Trainer(
            network,
            TrainConfig(
                algorithm=algorithm,
                epochs=1,
                batch_size=1,
                learning_rate=1e-3,
                optimizer=OptimizerName.ADAM,
            ),
        )
        trace = trainer.traced_step(data.x_train, data.y_train, "synthetic")
    batch = trace.header.batch_size
    assert trace.header.algorithm == algorithm
    assert trace.macs_by_phase() == {
        phase: batch * macs for phase, macs in closed_form_macs(network, algorithm).items()
    }
    shapes = infer_shapes(network)
    assert trace.header.weights == sum(s.weights for s in shapes)
    assert trace.header.trained_weights == sum(s.weights for s in shapes if s.trainable)


def test_closed_form_on_a_hand_counted_network() -> None:
    """The closed form itself, against numbers counted by hand for cifar10_conv."""
    network = load_network("cifar10_conv")
    convs = [32 * 32 * 5 * 5 * 3 * 96, 16 * 16 * 5 * 5 * 96 * 128, 8 * 8 * 5 * 5 * 128 * 256]
    dense = [4096 * 2048, 2048 * 2048, 2048 * 10]
    neurons = 16 * 16 * 96 + 8 * 8 * 128 + 4 * 4 * 256 + 2048 + 2048
    assert closed_form_macs(network, Algorithm.BP) == {
        Phase.FORWARD: sum(convs + dense),
        Phase.GRADIENT: sum(convs + dense),
        Phase.ERROR: sum(convs[1:] + dense),
        Phase.UPDATE: 0,
    }
    assert closed_form_macs(network, Algorithm.DFA)[Phase.ERROR] == 10 * neurons
    assert closed_form_macs(network, Algorithm.SSDFA)[Phase.ERROR] == neurons


@pytest.mark.parametrize(
    ("name", "weights", "millions"),
    [
        ("mnist_fc", 317_600, 0.3),
        ("cifar100_fc", 5_172_000, 5.2),
        ("cifar100_conv", 13_921_312, 13.9),
        ("alexnet", 62_367_776, 62.4),
        ("vgg16", 138_344_128, 138.3),
    ],
)
def test_paper_weight_counts(name: str, weights: int, millions: float) -> None:
    shapes = infer_shapes(load_network(name))
    total = sum(s.weights for s in shapes)  # weights only: the paper's table has no biases
    assert total == weights
    assert round(total / 1e6, 1) == millions
    assert sum(s.parameters for s in shapes) > total  # biases are counted separately
