"""A network file written as ONNX, node by node from its layers' shapes, the way PyTorch would
export it (NCHW, Gemm classifiers, MatMul + Add on tokens, attention and GELU written out):
the test's independent route to the same network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwsim.specs.network import NETWORK_INPUT, NetworkSpec, infer_shapes
from hwsim.specs.network_graph import layer_inputs
from tests.onnx.builder import Builder


def _activation(b: Builder, x: str, function: str, name: str) -> str:
    if function == "linear":
        return x
    if function == "relu6":
        return b.relu6(x, name)
    if function == "gelu":
        return b.gelu_erf(x, name)
    return b.one({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[function], [x], name)


def _dense(b: Builder, layer, x: str, shape: tuple[int, ...]) -> str:
    if len(shape) == 2:  # per token: MatMul + Add
        w = b.weight([shape[1], layer.units], f"{layer.name}.weight")
        y = b.one("MatMul", [x, w], f"{layer.name}/MatMul")
        if layer.use_bias:
            y = b.one(
                "Add", [y, b.weight([layer.units], f"{layer.name}.bias")], f"{layer.name}/Add"
            )
    else:
        inputs = [x, b.weight([layer.units, shape[0]], f"{layer.name}.weight")]
        if layer.use_bias:
            inputs.append(b.weight([layer.units], f"{layer.name}.bias"))
        y = b.one("Gemm", inputs, layer.name, transB=1)
    return _activation(b, y, layer.activation.value, f"{layer.name}_act")


def _conv(b: Builder, layer, x: str, shape: tuple[int, ...]) -> str:
    kernel, channels = list(layer.kernel), shape[2]
    weight = [layer.filters, channels // layer.groups, *kernel]
    inputs = [x, b.weight(weight, f"{layer.name}.weight")]
    if layer.use_bias:
        inputs.append(b.weight([layer.filters], f"{layer.name}.bias"))
    pad = "SAME_UPPER" if layer.padding.value == "same" else "VALID"
    y = b.one(
        "Conv",
        inputs,
        layer.name,
        kernel_shape=kernel,
        strides=list(layer.strides),
        dilations=list(layer.dilations),
        group=layer.groups,
        auto_pad=pad,
    )
    return _activation(b, y, layer.activation.value, f"{layer.name}_act")


def _pool(b: Builder, layer, x: str) -> str:
    op = "MaxPool" if layer.type == "max_pool" else "AveragePool"
    pad = "SAME_UPPER" if layer.padding.value == "same" else "VALID"
    return b.one(
        op,
        [x],
        layer.name,
        kernel_shape=list(layer.window),
        strides=list(layer.strides),
        auto_pad=pad,
    )


def _patch_embed(b: Builder, layer, x: str, shape, out) -> str:
    size = (
        layer.patch_size if isinstance(layer.patch_size, tuple | list) else [layer.patch_size] * 2
    )
    name, width = layer.name, layer.width
    w = b.weight([width, shape[2], *size], f"{name}.weight")
    y = b.one(
        "Conv",
        [x, w, b.weight([width], f"{name}.bias")],
        f"{name}/Conv",
        kernel_shape=list(size),
        strides=list(size),
    )
    patches = (shape[0] // size[0]) * (shape[1] // size[1])
    y = b.one("Reshape", [y, b.const(np.array([1, width, patches], np.int64))], f"{name}/Reshape")
    y = b.one("Transpose", [y], f"{name}/Transpose", perm=[0, 2, 1])
    if layer.class_token:
        token = b.weight([1, 1, width], f"{name}.cls_token")
        y = b.one("Concat", [token, y], f"{name}/Concat", axis=1)
    if layer.position_embedding:
        y = b.one("Add", [y, b.weight([1, out[0], width], f"{name}.pos_embed")], f"{name}/Add")
    return y


def _layer(b: Builder, layer, xs: list[str], shape, out) -> str:
    kind, name, x = layer.type, layer.name, xs[0]
    if kind == "dense":
        return _dense(b, layer, x, shape)
    if kind == "conv2d":
        return _conv(b, layer, x, shape)
    if kind in ("max_pool", "avg_pool"):
        return _pool(b, layer, x)
    if kind == "global_avg_pool":
        return b.flatten(b.gap(x, name), f"{name}_flatten")
    if kind == "batch_norm":
        return b.bn(x, shape[-1], name)
    if kind == "flatten":
        return b.flatten(x, name)
    if kind == "activation":
        return _activation(b, x, layer.function.value, name)
    if kind == "add":
        y = xs[0]
        for i, other in enumerate(xs[1:]):
            y = b.one("Add", [y, other], name if i == len(xs) - 2 else f"{name}_{i}")
        return y
    if kind == "concat":
        return b.one("Concat", xs, name, axis=1 if len(shape) in (1, 3) else 2)
    if kind == "layer_norm":
        return b.layer_norm(x, shape[-1], name)
    if kind == "attention":
        return b.attention(x, shape[0], shape[1], layer.heads, name)
    if kind == "patch_embed":
        return _patch_embed(b, layer, x, shape, out)
    if kind == "token_pool":
        if layer.mode.value == "class":
            return b.one("Gather", [x, b.const(np.array(0, np.int64))], name, axis=1)
        return b.one("ReduceMean", [x], name, axes=[1], keepdims=0)
    raise AssertionError(f"no ONNX form for {kind}")


def network_to_onnx(network: NetworkSpec, path: Path) -> Path:
    shape = tuple(network.input_shape)
    onnx_shape = [1, shape[2], shape[0], shape[1]] if len(shape) == 3 else [1, *shape]
    b = Builder(onnx_shape)
    b.classes = network.classes
    made = {NETWORK_INPUT: "x"}
    shapes = infer_shapes(network)
    for layer, inputs, layer_shape in zip(
        network.layers, layer_inputs(network), shapes, strict=True
    ):
        xs = [made[name] for name in inputs]
        made[layer.name] = _layer(b, layer, xs, layer_shape.input_shape, layer_shape.output_shape)
    return b.save(made[network.layers[-1].name], path, network.name)
