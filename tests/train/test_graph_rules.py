"""DFA and SSDFA on graphs (issue 15, item 4): the output error, projected by each block's B,
is delivered to the block's last layer (its tap) and carried inside the block by BP over the
block's own layers only — no weight transport across blocks (Launay et al., NeurIPS 2020).

The closed form: for a block whose tap computes y (from inputs made outside the block, which
do not depend on the block's weights), the weight gradients DFA prescribes are exactly the
gradients of the scalar Σ δ ⊙ y with δ = E·B held fixed; checked by finite differences here on
named blocks and, over random graphs, on the default blocks (each trained weight layer with
the layers only it feeds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.errors import SpecError
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm
from hwsim.train.layers import StepContext
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.model import Model
from hwsim.train.rules import FeedbackAlignment, make_rule
from hwsim.train.shapes import shape_only_trace
from tests.train.builders import make_model, make_network
from tests.train.test_graphs import (
    CONCAT,
    RESIDUAL,
    _check_live_is_described,
    graph_networks,
)
from tests.train.test_layers import EPS, RTOL, batch, relative_error
from tests.train.test_trace_counts import FEEDBACK_NET

BLOCKS = {"stem": "s", "a1": "A", "a2": "A", "res1": "A", "r1": "A", "b1": "B", "res2": "B"}


def blocked(layers: list[dict[str, Any]], blocks: dict[str, str], name: str) -> NetworkSpec:
    named = [{**layer, "block": blocks[layer["name"]]} if layer["name"] in blocks else layer
             for layer in layers]  # fmt: skip
    return make_network([5, 5, 2], 3, named, name=name)


def residual_blocks() -> NetworkSpec:
    return blocked(RESIDUAL, BLOCKS, "residual_blocks")


def concat_blocks() -> NetworkSpec:
    # One inception-like block (stem to the concat), the dense pair as another.
    blocks = {"stem": "inc", "b1": "inc", "b2": "inc", "b3": "inc", "cat": "inc"}
    return blocked(CONCAT, {**blocks, "h": "fc", "h2": "fc", "cat2": "fc"}, "concat_blocks")


def _tap_outputs(model: Model, x: np.ndarray) -> dict[int, np.ndarray]:
    """Each layer's output on a forward pass (by layer index)."""
    values = {"input": x}
    ctx = StepContext(training=True, dropout=False)
    outputs = {}
    for index, layer in enumerate(model.layers):
        values[layer.output_tensor] = layer.forward_many(
            [values[t] for t in layer.input_tensors], ctx
        )
        outputs[index] = values[layer.output_tensor]
    return outputs


def check_dfa_closed_form(network: NetworkSpec, algorithm: Algorithm, seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = make_model(network, rng)
    x, y = batch(network, 2, rng)
    rule = make_rule(algorithm, model, rng, nonzeros_per_neuron=2)
    assert isinstance(rule, FeedbackAlignment)
    ctx = StepContext(training=True, dropout=False)
    _, error, _ = model.loss_and_error(model.forward(x, ctx), y, ctx)
    rule.backward(model, error, ctx)
    got = {
        (layer.name, p): g.copy()
        for layer in model.trainable_layers()
        for p, g in layer.grads.items()
    }
    checked = set()
    for target in model.feedback_targets():
        name = model.layers[target.layer_index].name
        delta = rule.feedback[name].project(error)
        for index in target.members:
            layer = model.layers[index]
            if not (layer.has_weights and layer.trainable):
                continue
            for param, value in layer.params.items():
                numeric = np.zeros_like(value)
                for i in range(value.size):
                    original = value.flat[i]
                    sides = []
                    for step in (EPS, -EPS):
                        value.flat[i] = original + step
                        tap = _tap_outputs(model, x)[target.block_end]
                        sides.append(float((delta * tap.reshape(len(x), -1)).sum()))
                    value.flat[i] = original
                    numeric.flat[i] = (sides[0] - sides[1]) / (2 * EPS)
                analytic = got[(layer.name, param)]
                if np.linalg.norm(numeric) < 1e-9:  # a dead path (relu off, zero B column)
                    assert np.linalg.norm(analytic) < 1e-9
                else:
                    error_ = relative_error(analytic, numeric)
                    assert error_ < RTOL, f"{layer.name}.{param}: {error_:.2e}"
                checked.add(layer.name)
    # Every trained hidden layer is in a block; the output layer learns from E itself.
    hidden = {layer.name for layer in model.trainable_layers()[:-1]}
    assert checked == hidden


@pytest.mark.parametrize("network", [residual_blocks, concat_blocks], ids=["residual", "concat"])
@pytest.mark.parametrize("algorithm", [Algorithm.DFA, Algorithm.SSDFA])
def test_dfa_on_named_blocks_follows_its_closed_form(network, algorithm):
    check_dfa_closed_form(network(), algorithm, seed=3)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=graph_networks(), seed=st.integers(0, 2**16))
def test_dfa_on_random_graphs_follows_its_closed_form(network, seed):
    check_dfa_closed_form(network, Algorithm.DFA, seed)


def _config(network: NetworkSpec, algorithm: Algorithm, batch_size: int = 2) -> TrainConfig:
    s = network.classes if algorithm == Algorithm.SSDFA else 1
    return TrainConfig.from_network(
        network, algorithm, epochs=1, batch_size=batch_size, nonzeros_per_neuron=s
    )


@pytest.mark.parametrize("network", [residual_blocks, concat_blocks], ids=["residual", "concat"])
@pytest.mark.parametrize("algorithm", [Algorithm.DFA, Algorithm.SSDFA])
def test_dfa_graph_traces_record_what_the_ops_describe(network, algorithm):
    spec = network()
    trace = _check_live_is_described(spec, _config(spec, algorithm, 3))
    # One feedback entry per block, named after the block's last trained weight layer and
    # as wide as the block's output; its error is written where the block's tap reads it.
    model = Model(spec, np.float32)
    targets = model.feedback_targets()
    assert [(f.layer, f.neurons) for f in trace.header.feedback] == [
        (model.layers[t.layer_index].name, model.shapes[t.block_end].output_elements)
        for t in targets
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    network=graph_networks(),
    algorithm=st.sampled_from([Algorithm.DFA, Algorithm.SSDFA]),
    batch_size=st.integers(1, 3),
)
def test_random_dfa_graph_traces_record_what_the_ops_describe(network, algorithm, batch_size):
    if not Model(network, np.float32).feedback_targets():
        return
    _check_live_is_described(network, _config(network, algorithm, batch_size))


def test_no_weight_crosses_a_block():
    trace = trace_synthetic_step(residual_blocks(), _config(residual_blocks(), Algorithm.DFA))
    # Block A (a1, a2, res1, r1) reads a2's and a1's weights backward; nothing in the error
    # phase reads a weight of another block, and the skip from the stem carries no error.
    for record in trace.records:
        if record.phase.value == "error":
            weights = {o.tensor for o in record.reads if o.role.value == "weight"}
            assert weights <= {"a2.weight"}, (record.layer, weights)
    written = {o.tensor for r in trace.records for o in r.writes}
    assert not {t for t in written if t.startswith("stem.out.error.")}
    assert "r1.out.error.b1" not in written  # block B does not send an error to block A


def test_naming_the_chain_blocks_changes_nothing():
    chain = FEEDBACK_NET  # conv, pool, flatten; dense, dropout; the output layer
    blocks = {"c1": "one", "p1": "one", "flat": "one", "h": "two", "drop": "two"}
    layers = [
        {**layer, "block": blocks.get(layer["name"])}
        for layer in chain.model_dump(mode="json")["layers"]
    ]
    named = make_network(list(chain.input_shape), chain.classes, layers, name=chain.name)
    assert [layer.block for layer in named.layers] == [*blocks.values(), None]
    for algorithm in (Algorithm.DFA, Algorithm.SSDFA):
        plain = trace_synthetic_step(chain, _config(chain, algorithm))
        again = trace_synthetic_step(named, _config(named, algorithm))
        assert plain.model_dump() == again.model_dump()


# ------------------------------------------------------------------- bad blocks


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (
            {"stem": "A", "a1": "B", "a2": "A"},
            "layers.2 (conv2d 'a2').block: block 'A' ended at layers.0; list a block's layers "
            "together",
        ),
        (
            {"stem": "A", "a1": "A"},
            "layers.0 (conv2d 'stem').block: its output is read by 'res1' outside block 'A'; "
            "only a block's last layer (where DFA delivers the error) feeds other layers",
        ),
        (
            {"out": "A"},
            "layers.8 (dense 'out').block: the output layer learns from the output error "
            "itself; it belongs to no block",
        ),
    ],
)
def test_a_bad_block_is_one_message_naming_the_layer(blocks, message):
    with pytest.raises(ValueError) as info:
        blocked(RESIDUAL, blocks, "bad")
    assert message in str(info.value)


def test_a_block_that_trains_nothing_is_refused_under_dfa_only():
    network = blocked(RESIDUAL, {"res1": "idle", "r1": "idle"}, "idle")
    model = Model(network, np.float32)
    with pytest.raises(SpecError, match=r"layers.3 \(add 'res1'\).block: block 'idle' trains"):
        model.feedback_targets()
    bp = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=2)
    assert shape_only_trace(network, bp).records
