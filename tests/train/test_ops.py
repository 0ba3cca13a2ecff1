"""One description of each op, two traces from it: over random chain networks of every layer
kind, the live step records exactly what the descriptions state (`step_ops`), and a layer whose
numpy drifts from its description fails the live step instead of writing a wrong trace."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hwsim.specs.trace import Algorithm, ElementwiseOp, Phase, Role
from hwsim.train.layers import Dense
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.model import Model
from hwsim.train.ops import OperandDesc, elementwise
from hwsim.train.shapes import shape_only_trace, step_ops
from hwsim.train.tracer import Tracer
from tests.train.builders import make_network

ACTIVATIONS = st.sampled_from(["linear", "relu", "relu6", "tanh", "sigmoid"])


@st.composite
def chain_networks(draw: st.DrawFn) -> Any:
    """A small chain of every layer kind: conv blocks (grouped or not, depthwise included;
    square or [height, width] windows, strides and dilations; with batch norms, max or average
    pools, dropout, standalone activations), a flatten or a global average pool, dense blocks
    and the output layer; frozen layers and no-bias layers included."""
    layers: list[dict[str, Any]] = []

    def name(kind: str) -> str:
        return f"{kind}{len(layers)}"

    def extras() -> None:
        if draw(st.booleans()):
            trains = draw(st.booleans())
            layers.append({"type": "batch_norm", "name": name("bn"), "trainable": trains})
        if draw(st.booleans()):
            layers.append({"type": "activation", "name": name("a"), "function": draw(ACTIVATIONS)})
        if draw(st.booleans()):
            rate = draw(st.sampled_from([0.0, 0.25, 0.5]))
            layers.append({"type": "dropout", "name": name("d"), "rate": rate})
        if draw(st.booleans()):
            factor = draw(st.sampled_from([0.5, -2.0, 1 / 255]))
            layers.append({"type": "scale", "name": name("s"), "factor": factor})

    common = {"activation": ACTIVATIONS, "use_bias": st.booleans(), "trainable": st.booleans()}

    def windows(low: int, high: int) -> st.SearchStrategy:
        """One number (square) or [height, width]."""
        return st.integers(low, high) | st.lists(st.integers(low, high), min_size=2, max_size=2)

    conv = st.fixed_dictionaries(
        {
            "filters": st.integers(1, 4),
            "kernel_size": windows(1, 3),
            "stride": windows(1, 2),
            "dilation": windows(1, 2),
            "padding": st.sampled_from(["same", "valid"]),
            **common,
        }
    )
    images = draw(st.booleans())
    if images:
        input_shape = [draw(st.integers(4, 8)), draw(st.integers(4, 8)), draw(st.integers(1, 3))]
        channels = input_shape[2]
        for _ in range(draw(st.integers(1, 2))):
            drawn = draw(conv)
            if draw(st.booleans()):  # grouped (depthwise when groups == channels)
                drawn["filters"] = channels * draw(st.integers(1, 2))
                divisors = [g for g in range(1, channels + 1) if channels % g == 0]
                drawn["groups"] = draw(st.sampled_from(divisors))
            channels = drawn["filters"]
            layers.append({"type": "conv2d", "name": name("c"), **drawn})
            if draw(st.booleans()):
                pool = {"pool_size": draw(windows(1, 2)), "stride": draw(windows(1, 2))}
                padding = draw(st.sampled_from(["same", "valid"]))
                kind = draw(st.sampled_from(["max_pool", "avg_pool"]))
                layers.append({"type": kind, "name": name("p"), **pool, "padding": padding})
            extras()
        layers.append(
            {"type": draw(st.sampled_from(["flatten", "global_avg_pool"])), "name": name("f")}
        )
    else:
        input_shape = [draw(st.integers(2, 9))]
    dense = st.fixed_dictionaries({"units": st.integers(2, 6), **common})
    for _ in range(draw(st.integers(0, 2))):
        layers.append({"type": "dense", "name": name("h"), **draw(dense)})
        extras()
    classes = draw(st.integers(2, 4))
    layers.append({"type": "dense", "name": "out", "units": classes})
    try:
        return make_network(input_shape, classes, layers)
    except ValueError:  # a window larger than what reaches it
        assume(False)


def _records(trace) -> list[dict]:
    """Every record as data, densities dropped."""
    rows = trace.model_dump(mode="json")["records"]
    for data in rows:
        for operand in data["reads"] + data["writes"]:
            operand.pop("density")
    return rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    network=chain_networks(),
    rule=st.sampled_from(list(Algorithm)),
    batch=st.integers(1, 3),
    optimizer=st.sampled_from([("adam", 0.9), ("sgd", 0.9), ("sgd", 0.0)]),
)
def test_the_live_step_records_what_its_ops_describe(network, rule, batch, optimizer):
    name, momentum = optimizer
    classes = network.classes
    config = TrainConfig.from_network(
        network,
        rule,
        epochs=1,
        batch_size=batch,
        optimizer=name,
        momentum=momentum,
        nonzeros_per_neuron=classes if rule == Algorithm.SSDFA and batch == 3 else 1,
    )
    live = trace_synthetic_step(network, config)
    shaped = shape_only_trace(network, config)
    assert _records(live) == _records(shaped)
    # The records are the descriptions, in order: op, layer, phase, operands and vector ops.
    descs = list(step_ops(Model(network, np.dtype(config.dtype)), config))
    assert [(d.layer, d.phase, d.op, d.other_ops) for d in descs] == [
        (r.layer, r.phase, r.op, r.other_ops) for r in live.records
    ]
    for desc, record in zip(descs, live.records, strict=True):
        for described, measured in zip(
            (*desc.reads, *desc.writes), (*record.reads, *record.writes), strict=True
        ):
            assert (described.tensor, described.role, described.elements, described.slot) == (
                measured.tensor,
                measured.role,
                measured.elements,
                measured.slot,
            )
            assert 0.0 <= measured.density <= 1.0


def _one_op() -> Any:
    reads = [OperandDesc("x", Role.ACTIVATION, 6)]
    writes = [OperandDesc("y", Role.ACTIVATION, 6)]
    return elementwise("layer1", Phase.FORWARD, "relu", reads, writes, 6)


def test_an_array_of_another_size_than_described_is_refused():
    tracer = Tracer()
    with pytest.raises(RuntimeError, match=r"layer 'layer1': y is described with 6 elements"):
        tracer.record_run(_one_op(), [np.ones(6)], [np.ones(5)])
    with pytest.raises(RuntimeError, match="described with 1 operands ran with 2"):
        tracer.record_run(_one_op(), [np.ones(6), np.ones(6)], [np.ones(6)])
    with pytest.raises(RuntimeError, match="layer 'layer1': 1 ops described, 0 ran"):
        tracer.record_pass("layer1", [_one_op()], [])
    assert tracer.records == []


def test_a_measured_trace_carries_what_it_measured():
    tracer = Tracer()
    tracer.record_run(_one_op(), [np.array([0, 1, 0, 2, 0, 3.0])], [0.25])
    (record,) = tracer.records
    assert [o.density for o in (*record.reads, *record.writes)] == [0.5, 0.25]
    assert isinstance(record.op, ElementwiseOp) and record.other_ops == 6


def test_a_layer_whose_numpy_drifts_from_its_description_fails_the_live_step(monkeypatch):
    network = make_network(
        [5],
        3,
        [{"type": "dense", "name": "h", "units": 4}, {"type": "dense", "name": "out", "units": 3}],
    )
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=2)
    described = Dense.forward_ops

    def wider(self: Dense, batch: int):  # a description that says the batch is one larger
        return described(self, batch + 1)

    monkeypatch.setattr(Dense, "forward_ops", wider)
    with pytest.raises(RuntimeError, match=r"layer 'h': input is described with 15 elements"):
        trace_synthetic_step(network, config)
