"""Networks as graphs (issue 15, item 2): layers that name their inputs, `add` and `concat`.

BP on a graph sums the errors where a tensor fans out; every check here holds over random
graphs (Hypothesis) as well as the hand-made residual and concat nets: the gradients match
finite differences, the live step records what the descriptions state (so shape-only traces of
graphs are the live ones), every error a layer reads was written before it, and the counts on
every shipped spec keep the physics invariants of the chain networks.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Role, Trace
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.model import Model
from hwsim.train.shapes import shape_only_trace, step_ops
from tests.sim.invariants import SHIPPED_SPECS, simulate_within_invariants
from tests.train.builders import make_model, make_network
from tests.train.test_layers import batch, check_all_gradients
from tests.train.test_ops import _records

# A residual net: a skip over two convs, then a block whose add takes three inputs (one of
# them from two blocks back), a fan-out of three readers.
RESIDUAL = [
    {"type": "conv2d", "name": "stem", "filters": 3, "kernel_size": 3, "padding": "same",
     "activation": "tanh"},
    {"type": "conv2d", "name": "a1", "filters": 3, "kernel_size": 3, "padding": "same",
     "activation": "sigmoid"},
    {"type": "conv2d", "name": "a2", "filters": 3, "kernel_size": 1},
    {"type": "add", "name": "res1", "inputs": ["a2", "stem"]},
    {"type": "activation", "name": "r1", "function": "tanh"},
    {"type": "conv2d", "name": "b1", "filters": 3, "kernel_size": 3, "padding": "same",
     "inputs": ["r1"]},
    {"type": "add", "name": "res2", "inputs": ["b1", "r1", "stem"]},
    {"type": "flatten", "name": "flat"},
    {"type": "dense", "name": "out", "units": 3},
]  # fmt: skip
# An inception-like concat of three branches, the stem and the raw input (which needs no
# error), then a dense concat of a layer with its own output transformed.
CONCAT = [
    {"type": "conv2d", "name": "stem", "filters": 2, "kernel_size": 3, "padding": "same",
     "activation": "tanh"},
    {"type": "conv2d", "name": "b1", "filters": 2, "kernel_size": 1, "activation": "sigmoid"},
    {"type": "conv2d", "name": "b2", "filters": 3, "kernel_size": 3, "padding": "same",
     "inputs": ["stem"]},
    {"type": "max_pool", "name": "b3", "pool_size": 3, "stride": 1, "padding": "same",
     "inputs": ["stem"]},
    {"type": "concat", "name": "cat", "inputs": ["b1", "b2", "b3", "stem", "input"]},
    {"type": "flatten", "name": "flat"},
    {"type": "dense", "name": "h", "units": 5, "activation": "tanh"},
    {"type": "dense", "name": "h2", "units": 4, "inputs": ["h"]},
    {"type": "concat", "name": "cat2", "inputs": ["h", "h2"]},
    {"type": "dense", "name": "out", "units": 3},
]  # fmt: skip


def residual() -> NetworkSpec:
    return make_network([5, 5, 2], 3, RESIDUAL, name="residual")


def concat() -> NetworkSpec:
    return make_network([5, 5, 2], 3, CONCAT, name="concat")


ACTIVATIONS = st.sampled_from(["linear", "tanh", "sigmoid"])  # smooth: finite differences


@st.composite
def graph_networks(draw: st.DrawFn) -> Any:
    """A random graph: feature maps of one height and width (convs with SAME padding at
    stride 1, pools, activations) or feature vectors (dense layers), each layer taking any
    earlier output; adds of outputs of one shape and concats of any, frozen layers included;
    outputs no layer took are concatenated before the classifier."""
    images = draw(st.booleans())
    input_shape = [draw(st.integers(2, 4)), draw(st.integers(2, 4)), draw(st.integers(1, 2))]
    if not images:
        input_shape = [draw(st.integers(2, 5))]
    layers: list[dict[str, Any]] = []
    width = {"input": input_shape[-1]}  # an output's last axis
    unused: list[str] = ["input"]

    def take() -> str:
        name = draw(st.sampled_from(sorted(width)))
        if name in unused:
            unused.remove(name)
        return name

    for index in range(draw(st.integers(1, 6))):
        name, kind = f"l{index}", draw(st.sampled_from(["weights", "weights", "add", "concat"]))
        source = take()
        same = [n for n in sorted(width) if width[n] == width[source]]
        if kind == "add" and len(same) > 1:
            others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=2, unique=True))
            inputs = [source, *(n for n in others if n != source)]
            if len(inputs) > 1:
                layers.append({"type": "add", "name": name, "inputs": inputs})
                width[name] = width[source]
                unused[:] = [n for n in unused if n not in inputs] + [name]
                continue
        if kind == "concat" and len(width) > 1:
            second = draw(st.sampled_from([n for n in sorted(width) if n != source]))
            layers.append({"type": "concat", "name": name, "inputs": [source, second]})
            width[name] = width[source] + width[second]
            unused[:] = [n for n in unused if n not in (source, second)] + [name]
            continue
        common = {
            "activation": draw(ACTIVATIONS),
            "use_bias": draw(st.booleans()),
            "trainable": draw(st.booleans()),
            "inputs": [source],
        }
        size = draw(st.integers(1, 3))
        if images:
            kernel = draw(st.sampled_from([1, 3]))
            layer = {"type": "conv2d", "name": name, "filters": size, "kernel_size": kernel}
            layers.append({**layer, "padding": "same", **common})
        else:
            layers.append({"type": "dense", "name": name, "units": size, **common})
        width[name] = size
        unused.append(name)
    tops = [n for n in unused if n != "input"] or ["input"]
    if len(tops) > 1:
        layers.append({"type": "concat", "name": "top", "inputs": tops})
        tops = ["top"]
    if images:
        layers.append({"type": "flatten", "name": "flat", "inputs": tops})
        tops = ["flat"]
    classes = draw(st.integers(2, 3))
    layers.append({"type": "dense", "name": "out", "units": classes, "inputs": tops})
    return make_network(input_shape, classes, layers, name="graph")


def _config(network: NetworkSpec, batch_size: int = 2, optimizer: str = "sgd") -> TrainConfig:
    return TrainConfig.from_network(
        network, Algorithm.BP, epochs=1, batch_size=batch_size, optimizer=optimizer
    )


def _check_every_read_was_written(trace: Trace) -> None:
    """Every activation and error an op reads was written by an earlier op it depends on."""
    writer: dict[str, int] = {}
    for record in trace.records:
        for operand in record.reads:
            if operand.role in (Role.ACTIVATION, Role.ERROR):
                assert operand.tensor in writer, f"record {record.id} reads {operand.tensor}"
                assert writer[operand.tensor] in record.deps, (record.id, operand.tensor)
        for operand in record.writes:
            writer[operand.tensor] = record.id


def _check_live_is_described(network: NetworkSpec, config: TrainConfig) -> Trace:
    live = trace_synthetic_step(network, config)
    assert _records(live) == _records(shape_only_trace(network, config))
    descs = list(step_ops(Model(network, np.dtype(config.dtype)), config))
    assert [(d.layer, d.phase, d.op) for d in descs] == [
        (r.layer, r.phase, r.op) for r in live.records
    ]
    _check_every_read_was_written(live)
    return live


# ------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("network", [residual, concat], ids=["residual", "concat"])
def test_bp_gradients_on_graphs_match_finite_differences(network, rng):
    spec = network()
    model = make_model(spec, rng)
    x, y = batch(spec, 3, rng)
    check_all_gradients(model, x, y)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=graph_networks(), seed=st.integers(0, 2**16))
def test_bp_gradients_on_random_graphs_match_finite_differences(network, seed):
    rng = np.random.default_rng(seed)
    model = make_model(network, rng)
    if not any(layer.trainable for layer in model.trainable_layers()):
        return
    x, y = batch(network, 2, rng)
    check_all_gradients(model, x, y)


# ------------------------------------------------------------------- the trace


@pytest.mark.parametrize("network", [residual, concat], ids=["residual", "concat"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_graph_traces_record_what_the_ops_describe(network, optimizer):
    _check_live_is_described(network(), _config(network(), 3, optimizer))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=graph_networks(), batch_size=st.integers(1, 3))
def test_random_graph_traces_record_what_the_ops_describe(network, batch_size):
    _check_live_is_described(network, _config(network, batch_size))


def test_a_fanned_out_error_is_summed_once_where_it_was_made():
    trace = trace_synthetic_step(residual(), _config(residual()))
    sums = [r for r in trace.records if r.op.kind == "elementwise" and r.op.function == "error_sum"]
    # stem.out is read by a1, res1 and res2; r1.out by b1 and res2.
    assert [(r.layer, len(r.reads), r.other_ops) for r in sums] == [
        ("r1", 2, 1 * 2 * 5 * 5 * 3),
        ("stem", 3, 2 * 2 * 5 * 5 * 3),
    ]
    # An add runs no backward op: each of its inputs reads the add's output error.
    assert not [r for r in trace.records if r.layer.startswith("res") and r.phase != "forward"]


def test_a_concat_sends_its_error_slices_only_where_a_trained_layer_waits():
    trace = trace_synthetic_step(concat(), _config(concat()))
    (split,) = [r for r in trace.records if r.layer == "cat" and r.phase == "error"]
    assert [o.tensor for o in split.writes] == [
        "b1.out.error",
        "b2.out.error",
        "b3.out.error",
        "stem.out.error.cat",
    ]  # not the network input's
    assert sum(o.elements for o in split.writes) == 2 * 5 * 5 * (2 + 3 + 2 + 2)
    assert split.reads[0].elements == 2 * 5 * 5 * (2 + 3 + 2 + 2 + 2)


def test_a_frozen_branch_gets_no_error():
    layers = [
        {"type": "dense", "name": "frozen", "units": 4, "trainable": False},
        {"type": "dense", "name": "side", "units": 4, "inputs": ["input"]},
        {"type": "add", "name": "sum", "inputs": ["frozen", "side"]},
        {"type": "dense", "name": "out", "units": 2},
    ]
    network = make_network([3], 2, layers)
    trace = _check_live_is_described(network, _config(network))
    backward = {r.layer for r in trace.records if r.phase in ("error", "gradient")}
    assert backward == {"out", "side"}  # the frozen layer neither trains nor passes an error
    assert not [r for r in trace.records if r.phase == "error" and r.layer == "side"]


# ------------------------------------------------------------------- the specs


@cache
def graph_trace(name: str) -> Trace:
    network = {"residual": residual, "concat": concat}[name]()
    return trace_synthetic_step(network, _config(network, 2))


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
@pytest.mark.parametrize("name", ["residual", "concat"])
def test_graphs_simulate_on_every_shipped_spec_within_the_invariants(spec, name):
    simulate_within_invariants(spec, graph_trace(name))


# ------------------------------------------------------------------- bad input


def _graph(layers: list[dict[str, Any]], input_shape: list[int] | None = None) -> None:
    make_network(input_shape or [4, 4, 2], 3, layers)


CONV = {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same"}
HEAD = [{"type": "flatten", "name": "flat"}, {"type": "dense", "name": "out", "units": 3}]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [{**CONV, "name": "a"}, {"type": "add", "name": "s", "inputs": ["a", "inptu"]}, *HEAD],
            "layers.1 (add 's').inputs: no layer 'inptu'; did you mean 'input'?",
        ),
        (
            [{**CONV, "name": "a", "inputs": ["b"]}, {**CONV, "name": "b"}, *HEAD],
            "layers.0 (conv2d 'a').inputs: 'b' is not a layer before this one (a layer takes "
            "only earlier layers' outputs, so the graph has no cycle)",
        ),
        (
            [{**CONV, "name": "a"}, {"type": "add", "name": "s", "inputs": ["s", "a"]}, *HEAD],
            "layers.1 (add 's').inputs: 's' is not a layer before this one",
        ),
        (
            [{**CONV, "name": "a"}, {"type": "add", "name": "s", "inputs": ["a"]}, *HEAD],
            "layers.1 (add 's').inputs: add needs two or more inputs (got 1)",
        ),
        (
            [{**CONV, "name": "a"}, {"type": "concat", "name": "s"}, *HEAD],
            "layers.1 (concat 's').inputs: concat needs the names of its inputs",
        ),
        (
            [{**CONV, "name": "a"}, {**CONV, "name": "b", "inputs": ["a", "input"]}, *HEAD],
            "layers.1 (conv2d 'b').inputs: a conv2d layer takes one input (got 2)",
        ),
        (
            [{**CONV, "name": "a"}, {"type": "add", "name": "s", "inputs": ["a", "a"]}, *HEAD],
            "layers.1 (add 's').inputs: names an input twice",
        ),
        (
            [{**CONV, "name": "a"}, {**CONV, "name": "b", "inputs": ["input"]}, *HEAD],
            "layers.0 (conv2d 'a'): its output is an unused branch (no layer takes it; only "
            "the last layer's output reaches the loss)",
        ),
        (
            [{**CONV, "name": "a"}, {"type": "add", "name": "s", "inputs": ["a", "input"]}, *HEAD],
            "layers.1 (add 's').inputs: an add needs inputs of one shape (got 'a' [4, 4, 2], "
            "'input' [4, 4, 1])",
        ),
        (
            [
                {**CONV, "name": "a", "padding": "valid"},
                {"type": "concat", "name": "s", "inputs": ["a", "input"]},
                *HEAD,
            ],
            "layers.1 (concat 's').inputs: a concat joins inputs along their last axis, so the "
            "others must agree (got 'a' [2, 2, 2], 'input' [4, 4, 1])",
        ),
        (
            [{**CONV, "name": "input"}, *HEAD],
            "layers.0.name: 'input' names the network's input (in `inputs`); call the layer "
            "something else",
        ),
    ],
)
def test_a_bad_graph_is_one_message_naming_the_layer_and_field(layers, message):
    shape = [4, 4, 1] if "'input' [4, 4, 1]" in message else None
    with pytest.raises(ValueError) as info:
        _graph(layers, shape)
    assert message in str(info.value)


def test_the_cli_refuses_a_bad_graph_and_a_block_that_trains_nothing_writing_nothing(
    tmp_path, capsys
):
    import yaml

    from hwsim.cli import main

    data = residual().model_dump(mode="json", exclude_none=True)
    good = tmp_path / "graph.yaml"
    good.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "t.jsonl"
    for layer in data["layers"][3:5]:  # res1 and r1: a block without weights
        layer["block"] = "nothing"
    good.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["trace", "--network", str(good), "--algorithm", "dfa", "--out", str(out)]) == 2
    assert "layers.3 (add 'res1').block: block 'nothing' trains no layer" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    data["layers"][3]["inputs"] = ["a2", "stme"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["trace", "--network", str(bad), "--algorithm", "bp", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"hwsim: error: {bad}: layers.3 (add 'res1').inputs: no layer 'stme'; did you mean 'stem'?"
    ]
    assert not out.exists()
    assert main(["trace", "--network", str(good), "--algorithm", "bp", "--out", str(out)]) == 0
    assert out.exists()
