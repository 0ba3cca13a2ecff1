"""Network files: every shipped one loads; every bad one gets a message naming the field."""

from __future__ import annotations

import pytest
import yaml

from hwsim.errors import SpecError
from hwsim.io.networks import load_network, shipped_networks
from hwsim.specs.network import infer_shapes

# The paper's parameter counts (reference/paper.md) count weights only, no biases.
PAPER_WEIGHTS = {
    "mnist_fc": 317_600,
    "cifar100_fc": 5_172_000,
    "cifar100_conv": 13_921_312,
    "alexnet": 62_367_776,
    "vgg16": 138_344_128,
}
PAPER_ROUNDED = {
    "mnist_fc": "317.6k",
    "cifar100_fc": "5.17M",
    "cifar100_conv": "13.9M",
    "alexnet": "62.4M",
    "vgg16": "138.3M",
}


def _rounded(count: int, like: str) -> str:
    if like.endswith("k"):
        return f"{count / 1e3:.1f}k"
    decimals = len(like.split(".")[1]) - 1
    return f"{count / 1e6:.{decimals}f}M"


def test_all_shipped_networks_load():
    names = shipped_networks()
    assert {
        "digits_fc",
        "mnist_fc",
        "cifar10_fc",
        "cifar100_fc",
        "cifar10_conv",
        "cifar100_conv",
        "alexnet",
        "vgg16",
    } <= set(names)
    for name in names:
        assert load_network(name).name == name


@pytest.mark.parametrize("name", sorted(PAPER_WEIGHTS))
def test_weight_counts_match_the_paper(name):
    weights = sum(shape.weights for shape in infer_shapes(load_network(name)))
    assert weights == PAPER_WEIGHTS[name]
    assert _rounded(weights, PAPER_ROUNDED[name]) == PAPER_ROUNDED[name]


def test_transfer_networks_train_only_their_head():
    for name in ("alexnet", "vgg16"):
        shapes = infer_shapes(load_network(name))
        assert all(not s.trainable for s in shapes if s.type == "conv2d")
        assert all(s.trainable for s in shapes if s.type == "dense")


def test_shapes_of_the_conv_networks():
    alexnet = {s.name: s.output_shape for s in infer_shapes(load_network("alexnet"))}
    assert alexnet["conv1"] == (55, 55, 96)
    assert alexnet["pool5"] == (6, 6, 256)
    cifar = {s.name: s.output_shape for s in infer_shapes(load_network("cifar100_conv"))}
    assert cifar["pool1"] == (16, 16, 96)
    assert cifar["pool3"] == (4, 4, 256)
    vgg = {s.name: s.output_shape for s in infer_shapes(load_network("vgg16"))}
    assert vgg["pool5"] == (7, 7, 512)


GOOD = {
    "schema_version": 1,
    "kind": "network",
    "name": "tiny",
    "dataset": "synthetic",
    "input_shape": [4],
    "classes": 3,
    "layers": [
        {"type": "dense", "name": "fc1", "units": 5, "activation": "tanh"},
        {"type": "dense", "name": "fc2", "units": 3},
    ],
}


def _write(tmp_path, data) -> str:
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def _edit(**changes):
    data = {**GOOD, **changes}
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _edit(layers=[{"type": "dense", "name": "fc1", "untis": 5}, GOOD["layers"][1]]),
            "layers.0.untis: unknown key; did you mean 'units'?",
        ),
        (
            _edit(layers=[{"type": "dense", "name": "fc1", "units": 0}, GOOD["layers"][1]]),
            "layers.0.units: must be greater than or equal to 1 (got 0)",
        ),
        (
            _edit(
                layers=[
                    {"type": "dense", "name": "fc1", "units": 5, "activation": "swish"},
                    GOOD["layers"][1],
                ]
            ),
            "layers.0.activation: must be 'linear', 'relu', 'relu6', 'tanh', 'sigmoid' or "
            "'gelu' (got 'swish')",
        ),
        (
            _edit(layers=[{"type": "dens", "name": "fc1", "units": 5}, GOOD["layers"][1]]),
            "layers.0: Input tag 'dens' found using 'type' does not match any of the expected tags",
        ),
        (
            _edit(layers=[GOOD["layers"][0], {"type": "dense", "name": "fc1", "units": 3}]),
            "layer names must be unique; repeated: fc1",
        ),
        (_edit(classes=4), "the last layer has 3 units but classes is 4"),
        (_edit(layers=[GOOD["layers"][0]]), "the last layer must be a dense layer with linear"),
        (
            _edit(input_shape=[2, 2, 1]),
            "layers.0 (dense 'fc1'): needs a flat input but gets shape [2, 2, 1]; add a flatten "
            "layer",
        ),
        (
            _edit(
                input_shape=[4],
                layers=[
                    {"type": "conv2d", "name": "c", "filters": 2, "kernel_size": 3},
                    GOOD["layers"][1],
                ],
            ),
            "layers.0 (conv2d 'c'): needs a [height, width, channels] input but gets shape [4]",
        ),
        (
            _edit(
                input_shape=[2, 2, 1],
                layers=[
                    {
                        "type": "conv2d",
                        "name": "c",
                        "filters": 2,
                        "kernel_size": 3,
                        "padding": "valid",
                    },
                    {"type": "flatten", "name": "f"},
                    GOOD["layers"][1],
                ],
            ),
            "kernel 3 is larger than its 2x2 input with valid padding",
        ),
        (
            _edit(layers=[{**GOOD["layers"][0]}, {**GOOD["layers"][1], "trainable": False}]),
            "the output layer 'fc2' must be trainable",
        ),
        (_edit(schema_version=2), "schema_version: must be 1 (got 2)"),
        (
            _edit(input_shape=[2, 2, 2, 2]),
            "input_shape must be [features], [tokens, width] or [height, width, channels] "
            "(got [2, 2, 2, 2])",
        ),
        ({k: v for k, v in GOOD.items() if k != "classes"}, "classes: required key is missing"),
        (
            _edit(layers=[{"type": "dropout", "name": "d", "rate": 1.0}, *GOOD["layers"]]),
            "layers.0.rate: must be less than 1 (got 1.0)",
        ),
    ],
)
def test_bad_network_messages(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_network(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_every_problem_is_reported_at_once(tmp_path):
    data = _edit(
        classes=1,
        input_shape=[0],
        layers=[{"type": "dense", "name": "fc1", "units": 5, "colour": 1}, GOOD["layers"][1]],
    )
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_network(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert any("colour: unknown key" in line for line in lines)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "schema_version: 1\nkind: network\nlayers: [\n  {type: dense\n")
    with pytest.raises(SpecError, match=r"net.yaml: line \d+, column \d+: YAML syntax error"):
        load_network(path)


def test_wrong_kind_and_not_a_mapping(tmp_path):
    with pytest.raises(SpecError, match="kind: expected 'network' \\(got 'arch'\\)"):
        load_network(_write(tmp_path, _edit(kind="arch")))
    with pytest.raises(SpecError, match="expected a mapping with 'schema_version'"):
        load_network(_write(tmp_path, "- 1\n- 2\n"))


def test_unknown_network_name_suggests_the_nearest():
    with pytest.raises(SpecError, match="unknown network 'mnist_fcc'; did you mean 'mnist_fc'"):
        load_network("mnist_fcc")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match="missing.yaml: file not found"):
        load_network(str(tmp_path / "missing.yaml"))
    with pytest.raises(SpecError, match="is a directory"):
        load_network(str(tmp_path))


def test_a_network_beyond_the_layer_cap_is_refused():
    """The cap keeps a trace header within hwsim.io.traces.MAX_HEADER_LINE_BYTES."""
    from hwsim.specs.common import validate
    from hwsim.specs.network import MAX_LAYERS, NetworkSpec

    hidden = [{"type": "dense", "name": f"fc{i}", "units": 4} for i in range(MAX_LAYERS)]
    with pytest.raises(SpecError) as info:
        validate(NetworkSpec, _edit(layers=[*hidden, GOOD["layers"][-1]]), "deep.yaml")
    cap = f"deep.yaml: layers: List should have at most {MAX_LAYERS} items after validation"
    assert cap in str(info.value)


WINDOW_MESSAGE = "must be a whole number from 1 to 1024 or [height, width] of two"


def _map_net(**layer) -> dict:
    """An 8x8x2 map through one `layer` (a conv by default) into a dense head."""
    return _edit(
        input_shape=[8, 8, 2],
        layers=[
            {"type": "conv2d", "name": "c", "filters": 2, "kernel_size": 3, **layer},
            {"type": "flatten", "name": "f"},
            GOOD["layers"][1],
        ],
    )


@pytest.mark.parametrize(
    ("layer", "field", "got"),
    [
        ({"stride": [1, 2, 3]}, "stride", "[1, 2, 3]"),
        ({"stride": 0}, "stride", "0"),
        ({"kernel_size": [3]}, "kernel_size", "[3]"),
        ({"kernel_size": [3, 0]}, "kernel_size", "[3, 0]"),
        ({"stride": [1, True]}, "stride", "[1, True]"),
        ({"type": "max_pool", "pool_size": [2, 2, 2]}, "pool_size", "[2, 2, 2]"),
        ({"type": "max_pool", "pool_size": "2x2"}, "pool_size", "'2x2'"),
        ({"type": "avg_pool", "pool_size": 2, "stride": [0, 1]}, "stride", "[0, 1]"),
        ({"type": "avg_pool", "pool_size": 2, "stride": 2048}, "stride", "2048"),
        ({"dilation": 0}, "dilation", "0"),
        ({"dilation": [1, 2, 3]}, "dilation", "[1, 2, 3]"),
        ({"dilation": [2, -1]}, "dilation", "[2, -1]"),
        ({"dilation": 1.5}, "dilation", "1.5"),
    ],
)
def test_a_bad_window_or_stride_is_one_line_naming_the_file_and_field(
    tmp_path, capsys, layer, field, got
):
    """An int or [height, width]: anything else one line (not one per member of the union),
    exit 2 from `hwsim validate`."""
    from hwsim.cli import main

    if layer.get("type", "conv2d") != "conv2d":
        layer = {"name": "c", **layer}
        data = _map_net()
        data["layers"][0] = layer
    else:
        data = _map_net(**layer)
    path = _write(tmp_path, data)
    assert main(["validate", path]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"{path}: layers.0.{field}: {WINDOW_MESSAGE} (got {got})" in error


def test_rectangular_strides_and_pools_shape_each_axis(tmp_path):
    data = _map_net(stride=[2, 1], padding="valid")
    data["layers"].insert(1, {"type": "max_pool", "name": "p", "pool_size": [3, 2]})
    data["layers"].insert(2, {"type": "avg_pool", "name": "a", "pool_size": 1, "stride": [1, 2]})
    shapes = infer_shapes(load_network(_write(tmp_path, data)))
    # conv 3x3 stride [2, 1] VALID: 8 → 3 rows, 8 → 6 columns; pool 3x2 (its own stride):
    # 3 → 1, 6 → 3; pool 1 stride [1, 2]: 1 → 1, 3 → 2.
    assert [shape.output_shape for shape in shapes[:3]] == [(3, 6, 2), (1, 3, 2), (1, 2, 2)]


def test_a_dilated_window_beyond_its_valid_input_names_what_it_spans(tmp_path):
    path = _write(tmp_path, _map_net(kernel_size=3, dilation=[4, 1], padding="valid"))
    with pytest.raises(SpecError) as info:
        load_network(path)
    assert str(info.value) == (
        f"{path}: layers.0 (conv2d 'c'): kernel 3 dilated by 4x1 (spanning 9x3) is larger "
        "than its 8x8 input with valid padding"
    )


def test_a_dilated_conv_shapes_by_the_inputs_its_window_spans(tmp_path):
    """3x3 dilated by [2, 3] spans 5x7: VALID 8x8 → 4x2; SAME keeps 8x8 at stride 1; the
    weights are the undilated kernel's."""
    valid = _map_net(dilation=[2, 3], padding="valid")
    same = _map_net(dilation=[2, 3], stride=[1, 2])
    for data, out in ((valid, (4, 2, 2)), (same, (8, 4, 2))):
        shape = infer_shapes(load_network(_write(tmp_path, data)))[0]
        assert (shape.output_shape, shape.weights) == (out, 3 * 3 * 2 * 2)
