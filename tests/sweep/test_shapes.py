"""Shape-only traces equal measured traces in everything but the densities."""

from __future__ import annotations

import math

import pytest

from hwsim.cli import main
from hwsim.io.networks import load_network, shipped_networks
from hwsim.io.traces import read_trace
from hwsim.specs.network import Conv2DLayer, DenseLayer, NetworkSpec, PatchEmbedLayer
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.shapes import shape_only_trace
from tests.sweep.conftest import TRACES

RULES = list(Algorithm)
SHIPPED_TRACES = ("alexnet", "vgg16")  # batch 8, seed 0: workloads/traces/README.md
SMALL = ("digits_fc", "mnist_fc", "digits_resnet", "digits_transformer")  # traced at full size
MAX_UNITS, MAX_FILTERS = 64, 8  # the CIFAR networks, narrowed so a real step is quick
TOKEN_WIDTH = 48  # a transformer's width, narrowed (3 heads still divide it)
# The graphs of today's networks, narrowed and on a smaller map (the same strides and blocks).
SMALLER_MAPS = {
    "resnet18": [32, 32, 3],
    "alexnet_grouped": [67, 67, 3],
    "mobilenet_v2": [32, 32, 3],
    "vit_tiny": [32, 32, 3],  # 4 patches and a class token
}


def _without_densities(trace: Trace) -> dict:
    data = trace.model_dump(mode="json")
    data["header"].pop("densities_measured", None)
    for record in data["records"]:
        for operand in record["reads"] + record["writes"]:
            assert 0.0 <= operand.pop("density") <= 1.0
    return data


def _config(network: NetworkSpec, rule: Algorithm, batch: int, **extra) -> TrainConfig:
    return TrainConfig.from_network(network, rule, epochs=1, batch_size=batch, **extra)


def _narrowed(network: NetworkSpec) -> NetworkSpec:
    """The same layers, kinds, activations, pools, groups, blocks and trainability with fewer
    units/filters (and a smaller input map, for the ImageNet graphs)."""
    layers = []
    widths = {}  # a transformer's token width, and what it narrows to
    for layer in network.layers[:-1]:
        if isinstance(layer, PatchEmbedLayer) and layer.width > MAX_UNITS:
            widths[layer.width] = TOKEN_WIDTH
            layer = layer.model_copy(update={"width": TOKEN_WIDTH})
        elif isinstance(layer, DenseLayer):  # a projection back to the width stays the width
            units = widths.get(layer.units, min(layer.units, MAX_UNITS))
            layer = layer.model_copy(update={"units": units})
        elif isinstance(layer, Conv2DLayer):  # a depthwise conv stays depthwise
            groups = math.gcd(layer.groups, MAX_FILTERS)
            filters = min(layer.filters, MAX_FILTERS)
            layer = layer.model_copy(update={"filters": filters, "groups": groups})
        layers.append(layer)
    data = network.model_dump() | {"layers": [*layers, network.layers[-1]]}
    data["input_shape"] = SMALLER_MAPS.get(network.name, data["input_shape"])
    return NetworkSpec.model_validate(data)


def test_every_shipped_network_is_covered():
    narrowed = {name for name in shipped_networks() if name.startswith("cifar")}
    assert set(shipped_networks()) == {*SHIPPED_TRACES, *SMALL, *narrowed, *SMALLER_MAPS}


@pytest.mark.parametrize("rule", RULES, ids=str)
@pytest.mark.parametrize("name", SHIPPED_TRACES)
def test_equals_the_shipped_measured_trace(name, rule):
    measured = read_trace(TRACES / f"{name}_{rule.value}_b8.jsonl.gz")
    network = load_network(name)
    shaped = shape_only_trace(network, _config(network, rule, 8))
    assert _without_densities(shaped) == _without_densities(measured)
    assert {o.density for r in shaped.records for o in (*r.reads, *r.writes)} == {1.0}
    assert not shaped.header.densities_measured and measured.header.densities_measured


@pytest.mark.parametrize("rule", RULES, ids=str)
@pytest.mark.parametrize(
    "name", [*SMALL, "cifar10_fc", "cifar100_fc", "cifar10_conv", "cifar100_conv", *SMALLER_MAPS]
)
def test_equals_a_real_traced_step(name, rule):
    network = load_network(name)
    if name not in SMALL:
        network = _narrowed(network)
    config = _config(network, rule, 2)
    assert _without_densities(shape_only_trace(network, config)) == _without_densities(
        trace_synthetic_step(network, config)
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"optimizer": "sgd"},
        {"optimizer": "sgd", "momentum": 0.0},
        {"nonzeros_per_neuron": 3, "rank": 5},
    ],
    ids=str,
)
def test_optimizers_and_feedback_settings(extra):
    network = load_network("digits_fc")
    rule = Algorithm.SSDFA if "rank" in extra else Algorithm.BP
    config = _config(network, rule, 3, **extra)
    assert _without_densities(shape_only_trace(network, config)) == _without_densities(
        trace_synthetic_step(network, config)
    )


def test_bad_feedback_settings_are_refused_as_the_trainer_does(tmp_path, capsys):
    out = tmp_path / "x.jsonl"
    assert (
        main(
            [
                "trace",
                "--network",
                "digits_fc",
                "--algorithm",
                "ssdfa",
                "--shape-only",
                "--nonzeros-per-neuron",
                "2",
                "--rank",
                "2",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert not out.exists()
    assert (
        "--nonzeros-per-neuron × --rank must be ≥ the 10 classes (got 2 × 2 = 4)"
        in capsys.readouterr().err
    )


def test_trace_shape_only_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "vgg16.jsonl.gz"
    assert (
        main(
            [
                "trace",
                "--network",
                "vgg16",
                "--algorithm",
                "bp",
                "--batch-size",
                "8",
                "--shape-only",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(f"{out}: 58 records, vgg16 bp, batch 8")
    shipped = read_trace(TRACES / "vgg16_bp_b8.jsonl.gz")
    assert _without_densities(read_trace(out)) == _without_densities(shipped)
