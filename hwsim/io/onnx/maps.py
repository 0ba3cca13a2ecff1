"""Handlers of the ONNX ops that make map and weight layers: convolutions, pools, dense
layers, activations and normalizations."""

from __future__ import annotations

import math
from typing import Any

from hwsim.io.onnx.convert import Converter, Value
from hwsim.io.onnx.graph import Node
from hwsim.specs.network import Padding, conv_output_size, reach

ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "hwsim.gelu": "gelu"}


def _map(converter: Converter, node: Node) -> Value:
    value = converter.value(node)
    if len(value.shape) != 3:
        raise converter.fail(node, f"needs a map input [N, C, H, W] (gets {list(value.shape)})")
    return value


def _pair(
    converter: Converter, node: Node, key: str, default: int | None = None
) -> tuple[int, int]:
    """A 2-D attribute (kernel_shape, strides) as (height, width)."""
    values = list(node.attrs.get(key, [default, default] if default is not None else []))
    if len(values) != 2:
        raise converter.fail(node, f"{key} {values}: hwsim's maps are 2-D ([height, width])")
    return int(values[0]), int(values[1])


def _field(values: tuple[int, int]) -> int | list[int]:
    """A network file's window or stride: one number when square, else [height, width]."""
    return values[0] if values[0] == values[1] else list(values)


def _padding(
    converter: Converter,
    node: Node,
    size: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
):
    """SAME or VALID, whichever gives the ONNX output size with these pads (`kernel`,
    `stride`: the window's and the step's height and width)."""
    out = converter.out_shape(node)[:2]
    auto = node.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
    if auto == "VALID" or (auto == "NOTSET" and not any(pads)):
        candidates = [Padding.VALID]
    else:
        candidates = [Padding.SAME]
    for padding in candidates:
        if all(
            conv_output_size(s, k, step, padding) == o
            for s, o, k, step in zip(size, out, kernel, stride, strict=True)
        ):
            return padding
    raise converter.fail(
        node,
        f"pads {pads} give a {out[0]}x{out[1]} output from {size[0]}x{size[1]}, which is neither "
        "SAME's nor VALID's (hwsim pads as TensorFlow does); re-export with padding that keeps "
        "the size or pads nothing",
    )


def conv(converter: Converter, node: Node) -> None:
    value = _map(converter, node)
    weight = converter.index.const(node.inputs[1])
    if weight is None or weight.ndim != 4:
        raise converter.fail(node, "a Conv needs a constant 4-D weight")
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    stride = _pair(converter, node, "strides", 1)
    dilation = _pair(converter, node, "dilations", 1)
    # A dilated window pads as the inputs it spans, (kernel − 1) · dilation + 1.
    padding = _padding(converter, node, value.shape[:2], reach(kernel, dilation), stride)
    fields: dict[str, Any] = {
        "type": "conv2d",
        "filters": int(weight.shape[0]),
        # [height, width] when the window is not square (a 1x7 or 7x1 conv)
        "kernel_size": _field(kernel),
    }
    if stride != (1, 1):
        fields["stride"] = _field(stride)
    if dilation != (1, 1):
        fields["dilation"] = _field(dilation)
    if padding != Padding.SAME:
        fields["padding"] = padding.value
    if len(node.inputs) < 3 or not node.inputs[2]:
        fields["use_bias"] = False
    groups = int(node.attrs.get("group", 1))
    if groups != 1:
        fields["groups"] = groups
    converter.add(node, fields, [value])


def pool(converter: Converter, node: Node) -> None:
    value = _map(converter, node)
    kernel = _pair(converter, node, "kernel_shape")
    stride = _pair(converter, node, "strides", 1)
    if any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
        raise converter.fail(
            node, f"dilations {list(node.attrs['dilations'])}: hwsim's pools are not dilated"
        )
    padding = _padding(converter, node, value.shape[:2], kernel, stride)
    kind = "max_pool" if node.op == "MaxPool" else "avg_pool"
    fields: dict[str, Any] = {"type": kind, "pool_size": _field(kernel)}
    if stride != kernel:
        fields["stride"] = _field(stride)
    if padding != Padding.VALID:
        fields["padding"] = padding.value
    converter.add(node, fields, [value])
    if kind == "avg_pool" and node.attrs.get("count_include_pad", 0) and padding == Padding.SAME:
        converter.layers[-1].notes.append(
            "count_include_pad=1: hwsim divides a border window by its values inside the map"
        )


def global_pool(converter: Converter, node: Node) -> None:
    value = _map(converter, node)
    converter.add(node, {"type": "global_avg_pool"}, [value], shape=(value.shape[2],))


def dense(converter: Converter, node: Node) -> None:
    value = converter.value(node)
    if len(value.shape) not in (1, 2):
        raise converter.fail(
            node,
            f"a dense layer needs a flat input or a token sequence "
            f"(gets {list(value.shape)}; flatten the map first)",
        )
    fields: dict[str, Any] = {"type": "dense", "units": node.attrs["units"]}
    if not node.attrs["use_bias"]:
        fields["use_bias"] = False
    converter.add(node, fields, [value], shape=(*value.shape[:-1], node.attrs["units"]))


def activation(converter: Converter, node: Node, function: str | None = None) -> None:
    function = function or ACTIVATIONS[node.op]
    value = converter.value(node)
    last = converter.layers[-1] if converter.layers else None
    folds = (
        last is not None
        and last.output == node.inputs[0]
        and last.fields["type"] in ("dense", "conv2d")
        and last.fields.get("activation", "linear") == "linear"
        and converter.index.sole(node.inputs[0]) is node
    )
    if folds:
        assert last is not None
        last.fields["activation"] = function
        last.sources += node.sources
        converter.values[node.outputs[0]] = value
        return
    converter.add(node, {"type": "activation", "function": function}, [value])


def clip(converter: Converter, node: Node) -> None:
    low = (
        converter.index.scalar(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    )
    high = (
        converter.index.scalar(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    )
    if low == 0 and high == 6:
        activation(converter, node, "relu6")
    elif low == 0 and (high is None or math.isinf(high)):
        activation(converter, node, "relu")
    else:
        raise converter.fail(
            node, f"Clip to [{low}, {high}]: hwsim has relu (0, inf) and relu6 (0, 6)"
        )


def gelu(converter: Converter, node: Node) -> None:
    activation(converter, node, "gelu")


def batch_norm(converter: Converter, node: Node) -> None:
    value = converter.value(node)
    fields: dict[str, Any] = {"type": "batch_norm"}
    epsilon = float(f"{node.attrs.get('epsilon', 1e-5):.6g}")
    if epsilon != 1e-5:
        fields["epsilon"] = epsilon
    momentum = float(f"{1 - node.attrs.get('momentum', 0.9):.6g}")  # ONNX keeps the running part
    if momentum != 0.1 and 0 < momentum <= 1:
        fields["momentum"] = momentum
    converter.add(node, fields, [value], shape=value.shape)


def layer_norm(converter: Converter, node: Node) -> None:
    value = converter.value(node)
    axis = node.attrs.get("axis", -1)
    rank = len(converter.graph.shape(node.inputs[0], node))
    if axis % rank != rank - 1:
        raise converter.fail(node, f"axis {axis}: hwsim normalizes over the last axis only")
    if node.op == "LayerNormalization" and (len(node.inputs) < 3 or not node.inputs[2]):
        raise converter.fail(
            node, "a layer norm without a bias (B); hwsim's layer_norm trains a scale and a shift"
        )
    epsilon = float(f"{node.attrs.get('epsilon', 1e-5):.6g}")
    converter.add(node, {"type": "layer_norm", "epsilon": epsilon}, [value], shape=value.shape)
