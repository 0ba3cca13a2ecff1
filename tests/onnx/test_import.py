"""`hwsim import` and `--network MODEL.onnx` (issue 16): models built with onnx.helper import,
validate, trace under every rule (shape-only and live alike) and simulate within the physics
invariants; their counts equal closed forms from their construction; the ONNX form of every
shipped network gives the same trace records as its YAML."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hwsim.io.networks import load_network, shipped_networks
from hwsim.io.onnx import import_onnx
from hwsim.specs.network import DropoutLayer, NetworkSpec, infer_shapes
from hwsim.specs.trace import Algorithm
from hwsim.study import trace_summary
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.shapes import shape_only_trace
from tests.onnx.builder import encoder_block, inverted_chain, residual_cnn, separable_cnn
from tests.onnx.export import network_to_onnx
from tests.sim.invariants import simulate_within_invariants
from tests.sweep.test_shapes import _narrowed, _without_densities

MODELS = {
    "residual_cnn": residual_cnn,
    "separable_cnn": separable_cnn,
    "encoder_block": encoder_block,
}
RULES = (Algorithm.BP, Algorithm.DFA, Algorithm.SSDFA)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Each acceptance model: (its file, its builder with the closed-form counts, imported)."""
    folder = tmp_path_factory.mktemp("onnx_models")
    made = {}
    for name, build in MODELS.items():
        path = folder / f"{name}.onnx"
        builder = build(path)
        made[name] = (path, builder, import_onnx(path))
    return made


def _config(network: NetworkSpec, rule: Algorithm, batch: int = 2) -> TrainConfig:
    return TrainConfig.from_network(network, rule, epochs=1, batch_size=batch)


@pytest.mark.parametrize("name", MODELS)
def test_counts_equal_the_construction(built, name):
    _, builder, imported = built[name]
    parameters = sum(shape.parameters for shape in infer_shapes(imported.network))
    assert parameters == builder.parameters == imported.file_parameters == imported.parameters
    trace = shape_only_trace(imported.network, _config(imported.network, Algorithm.BP))
    assert trace_summary(trace)["forward_macs_per_example"] == builder.macs


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.value)
@pytest.mark.parametrize("name", MODELS)
def test_traces_live_and_shape_only_alike_and_simulate(built, name, rule):
    network = built[name][2].network
    shaped = shape_only_trace(network, _config(network, rule))
    live = trace_synthetic_step(network, _config(network, rule))
    assert _without_densities(live) == _without_densities(shaped)
    for spec in ("von_neumann", "distributed"):
        simulate_within_invariants(spec, live, precision=spec == "von_neumann")


def test_the_imported_layers(built):
    kinds = {
        name: [layer.type for layer in imported.network.layers]
        for name, (_, _, imported) in built.items()
    }
    assert kinds["residual_cnn"].count("add") == 2
    assert kinds["residual_cnn"].count("batch_norm") == 6
    separable = built["separable_cnn"][2].network
    depthwise = [layer for layer in separable.layers if getattr(layer, "groups", 1) > 1]
    assert [(layer.groups, layer.filters) for layer in depthwise] == [(16, 16), (32, 32)]
    assert kinds["encoder_block"] == [
        "layer_norm",
        "attention",
        "add",
        "layer_norm",
        "dense",
        "dense",
        "add",
        "token_pool",
        "dense",
    ]
    encoder = built["encoder_block"][2].network
    assert encoder.layers[1].heads == 4 and encoder.layers[4].activation.value == "gelu"
    text = built["encoder_block"][2].text
    assert "attn/qkv/MatMul (MatMul)" in text and "gelu/Erf (Erf)" in text


def _without_dropout(network: NetworkSpec) -> NetworkSpec:
    layers = [layer for layer in network.layers if not isinstance(layer, DropoutLayer)]
    data = network.model_dump() | {"layers": [layer.model_dump() for layer in layers]}
    return NetworkSpec.model_validate(data)


# Where `--blocks residual` finds the blocks the YAML names: residual blocks, transformer
# layers, inverted residual blocks (with a skip or without) and conv + batch-norm groups.
RESIDUAL_BLOCKS = ("digits_resnet", "resnet18", "vit_tiny", "digits_transformer", "mobilenet_v2")


@pytest.mark.parametrize("name", shipped_networks())
def test_the_onnx_form_of_a_shipped_network_traces_as_its_yaml(tmp_path, name):
    """Built in the test from the YAML's shapes (dropout aside: an import drops it); frozen
    layers frozen with the import's `freeze`. BP's records are equal; DFA's and SSDFA's too
    where the YAML names no blocks (an import writes none: every trained layer is a tap), and
    with `blocks="residual"` where the YAML's blocks are its residual blocks."""
    network = _without_dropout(_narrowed(load_network(name)))
    frozen = tuple(layer.name for layer in network.layers if not getattr(layer, "trainable", True))
    path = network_to_onnx(network, tmp_path / f"{name}.onnx")
    blocks = any(layer.block for layer in network.layers)
    how = "residual" if name in RESIDUAL_BLOCKS else "layer"
    imported = import_onnx(path, name=name, freeze=frozen, blocks=how).network
    imported = imported.model_copy(update={"training": network.training})
    for rule in (Algorithm.BP,) if blocks and how == "layer" else RULES:
        ours = shape_only_trace(imported, _config(imported, rule))
        theirs = shape_only_trace(network, _config(network, rule))
        assert ours.records == theirs.records
        assert ours.header.layers == theirs.header.layers
        assert ours.header.feedback == theirs.header.feedback


@pytest.mark.parametrize("name", ["cifar100_conv", "resnet18"])
def test_a_full_size_network_round_trips_through_onnx(tmp_path, name):
    """As above at full size (the test above narrows the networks to keep it quick): the
    paper's largest chain with its initializers (56 MB) and ResNet-18 at 224 x 224 (47 MB), BP
    and, for ResNet-18, DFA and SSDFA per residual block."""
    network = _without_dropout(load_network(name))
    path = network_to_onnx(network, tmp_path / f"{name}.onnx")
    how = "residual" if name in RESIDUAL_BLOCKS else "layer"
    imported = import_onnx(path, name=name, blocks=how).network
    imported = imported.model_copy(update={"training": network.training})
    for rule in RULES if how == "residual" else (Algorithm.BP,):
        ours = shape_only_trace(imported, _config(imported, rule))
        theirs = shape_only_trace(network, _config(network, rule))
        assert ours.records == theirs.records
        assert ours.header.layers == theirs.header.layers
        assert ours.header.feedback == theirs.header.feedback
    path.unlink()


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.sampled_from([4, 6, 8]), st.integers(1, 2)),
        min_size=1,
        max_size=4,
    )
)
def test_inverted_blocks_without_a_skip_are_one_block_each(tmp_path_factory, blocks):
    """A chain of inverted residual blocks without skips (stride 2 or a channel change):
    `blocks="residual"` makes the stem, each inverted block (expansion, depthwise, linear
    projection) and the last conv a block each; the pool and the classifier none."""
    path = tmp_path_factory.mktemp("inverted") / "chain.onnx"
    inverted_chain(path, blocks)
    imported = import_onnx(path, blocks="residual").network
    expected = ["stem"] * 3
    for i, (expansion, _, _) in enumerate(blocks):
        expected += [f"ib{i}"] * (8 if expansion > 1 else 5)
    expected += ["last"] * 3 + [None] * 2  # the pool and the classifier (the flatten: none)
    assert [layer.block for layer in imported.layers] == expected


# --- any network of the supported kinds survives the round trip ----------------------------


_ACTIVATIONS = ("linear", "relu", "relu6", "tanh", "sigmoid")


def _window(low: int, high: int) -> st.SearchStrategy:
    """One number (square) or [height, width]."""
    return st.integers(low, high) | st.lists(st.integers(low, high), min_size=2, max_size=2)


@st.composite
def _map_layer(draw, index: int, channels: int) -> list[dict]:
    name = f"l{index}"
    kind = draw(st.sampled_from(["conv", "conv", "bn", "act", "pool", "residual", "concat"]))
    if kind == "conv":
        groups = draw(st.sampled_from([g for g in (1, 2, channels) if channels % g == 0]))
        return [
            {
                "type": "conv2d",
                "name": name,
                "filters": groups * draw(st.integers(1, 3)),
                "kernel_size": draw(_window(1, 3)),
                "stride": draw(_window(1, 2)),
                "dilation": draw(_window(1, 2)),
                "padding": draw(st.sampled_from(["same", "valid"])),
                "groups": groups,
                "activation": draw(st.sampled_from(_ACTIVATIONS)),
                "use_bias": draw(st.booleans()),
            }
        ]
    if kind == "bn":
        return [{"type": "batch_norm", "name": name}]
    if kind == "act":
        return [
            {
                "type": "activation",
                "name": name,
                "function": draw(st.sampled_from(_ACTIVATIONS[1:])),
            }
        ]
    if kind == "pool":
        return [
            {
                "type": draw(st.sampled_from(["max_pool", "avg_pool"])),
                "name": name,
                "pool_size": draw(_window(1, 2)),
                "stride": draw(_window(1, 2)),
                "padding": draw(st.sampled_from(["same", "valid"])),
            }
        ]
    branch = {"type": "conv2d", "name": f"{name}_a", "filters": channels, "kernel_size": 3}
    merge = "add" if kind == "residual" else "concat"
    return [branch, {"type": merge, "name": name, "inputs": [f"{name}_a", f"{name}_in"]}]


@st.composite
def _networks(draw) -> NetworkSpec:
    size, channels = draw(st.integers(4, 8)), draw(st.integers(1, 4))
    layers: list[dict] = []
    shape = (size, size, channels)
    for index in range(draw(st.integers(1, 5))):
        previous = layers[-1]["name"] if layers else "input"
        drawn = draw(_map_layer(index, shape[2]))
        # An activation layer after a linear conv is the conv's activation in ONNX (one form).
        folds = layers and layers[-1]["type"] == "conv2d" and layers[-1]["activation"] == "linear"
        assume(not (folds and drawn[0]["type"] == "activation"))
        if len(drawn) == 2:  # a branch and a merge with the tensor before them
            drawn[0]["inputs"] = [previous]
            drawn[1]["inputs"] = [f"l{index}_a", previous]
        spec = _valid([*layers, *drawn], size, channels, [{"type": "flatten", "name": "f_"}])
        assume(spec is not None)
        layers += drawn
        shape = infer_shapes(spec)[len(layers) - 1].output_shape
    tail = [{"type": "global_avg_pool" if draw(st.booleans()) else "flatten", "name": "tail"}]
    if draw(st.booleans()):
        tail.append(
            {
                "type": "dense",
                "name": "hidden",
                "units": draw(st.integers(2, 9)),
                "activation": draw(st.sampled_from(_ACTIVATIONS)),
            }
        )
    network = _valid(layers, size, channels, tail)
    assume(network is not None)
    return network


def _valid(layers: list[dict], size: int, channels: int, tail: list[dict]):
    """The network of `layers`, `tail` and a 3-way classifier, or None if it does not fit."""
    data = {
        "schema_version": 1,
        "kind": "network",
        "name": "random",
        "dataset": "synthetic",
        "input_shape": [size, size, channels],
        "classes": 3,
        "layers": [*layers, *tail, {"type": "dense", "name": "out", "units": 3}],
    }
    try:
        return NetworkSpec.model_validate(data)
    except ValueError:
        return None


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(network=_networks())
def test_any_network_of_the_imported_kinds_round_trips(tmp_path_factory, network):
    """A random graph of convs (groups, square or [height, width] windows, strides and
    dilations, padding, activations, biases), batch norms, activations, pools (square or
    rectangular), residual adds and concats: its ONNX form imports to its trace."""
    path = network_to_onnx(network, tmp_path_factory.mktemp("random") / "random.onnx")
    imported = import_onnx(path, name="random").network
    imported = imported.model_copy(update={"training": network.training})
    for rule in RULES:
        ours = shape_only_trace(imported, _config(imported, rule))
        assert ours.records == shape_only_trace(network, _config(network, rule)).records
