"""Handlers of the ONNX ops that join, re-view, pool or drop tensors: Add and Concat (graph
edges), Flatten and the re-viewing reshapes, token pooling, and the nodes that become no layer."""

from __future__ import annotations

import math
from typing import Any

from hwsim.io.onnx.convert import Converter, hwsim_shape
from hwsim.io.onnx.graph import Node


def add(converter: Converter, node: Node) -> None:
    live = converter.index.activation_inputs(node)
    if len(live) != len([name for name in node.inputs if name]):
        raise converter.fail(
            node,
            "an Add of a constant is imported only as a dense layer's bias or a patch "
            "embedding's position embedding",
        )
    values = [converter.value(node, position) for position in range(len(live))]
    if len({value.shape for value in values}) != 1:
        shapes = ", ".join(str(list(value.shape)) for value in values)
        raise converter.fail(node, f"adds tensors of shapes {shapes}; hwsim adds equal shapes")
    fields: dict[str, Any] = {"type": "add", "_needs_inputs": True}
    converter.add(node, fields, values, shape=values[0].shape)


def concat(converter: Converter, node: Node) -> None:
    live = [name for name in node.inputs if name]
    if any(name in converter.graph.constants for name in live):
        raise converter.fail(node, "a Concat with a constant is imported only as a class token")
    rank = len(converter.graph.shape(node.outputs[0], node))
    if node.attrs.get("axis", 0) % rank != (1 if rank in (2, 4) else rank - 1):
        raise converter.fail(
            node,
            f"axis {node.attrs.get('axis')}: hwsim concatenates along the channels (a map's "
            "axis 1) or the features (the last axis of a sequence)",
        )
    values = [converter.value(node, position) for position in range(len(live))]
    converter.add(node, {"type": "concat", "_needs_inputs": True}, values)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dim for dim in shape if dim != 1)


def view(converter: Converter, node: Node) -> None:
    """Flatten, Reshape, Squeeze, Unsqueeze, Transpose: a re-view (no layer) or a flatten."""
    value = converter.value(node)
    target = hwsim_shape(converter.graph.shape(node.outputs[0], node))
    if math.prod(target) != math.prod(value.shape):
        raise converter.fail(node, "moves the batch dimension; hwsim keeps it first")
    perm = list(node.attrs.get("perm", []))
    moves = node.op == "Transpose" and perm != sorted(perm) and len(_squeezed(target)) > 1
    if len(value.shape) == 3 and len(target) == 1 and not moves:
        converter.add(node, {"type": "flatten"}, [value], shape=target)
        converter.layers[-1].notes.append(
            "hwsim flattens [height, width, channels] where ONNX flattens [C, H, W]: the same "
            "counts, another order"
        )
        return
    if not moves and (value.shape == target or _squeezed(value.shape) == _squeezed(target)):
        converter.alias(node, value, "re-views the tensor")
        return
    raise converter.fail(
        node,
        f"re-shapes {list(value.shape)} to {list(target)} (per example, in hwsim's layout); "
        "hwsim imports reshapes and transposes that only re-view a tensor or flatten a map "
        "(others only inside attention or a patch embedding)",
    )


def reduce_mean(converter: Converter, node: Node) -> None:
    value = converter.value(node)
    rank = len(converter.graph.shape(node.inputs[0], node))
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1:
        given = converter.index.const(node.inputs[1])
        axes = None if given is None else list(given.reshape(-1))
    axes = sorted(int(axis) % rank for axis in axes or [])
    if rank == 4 and axes == [2, 3]:
        converter.add(node, {"type": "global_avg_pool"}, [value], shape=(value.shape[2],))
    elif rank == 3 and axes == [1]:
        converter.add(
            node, {"type": "token_pool", "mode": "mean"}, [value], shape=(value.shape[1],)
        )
    else:
        raise converter.fail(
            node,
            f"a mean over axes {axes} of a rank-{rank} tensor; hwsim "
            "imports a mean over a map (axes 2, 3) or the tokens (axis 1)",
        )


def gather(converter: Converter, node: Node) -> None:
    """x[:, 0] of a token sequence: the class token."""
    value = converter.value(node)
    index = converter.index.const(node.inputs[1])
    rank = len(converter.graph.shape(node.inputs[0], node))
    if rank != 3 or node.attrs.get("axis", 0) % 3 != 1 or index is None or index.size != 1:
        raise converter.fail(node, "a Gather is imported only as the class token, x[:, 0]")
    if int(index.reshape(-1)[0]) != 0:
        raise converter.fail(node, "takes a token other than the first; hwsim's class token is 0")
    converter.add(node, {"type": "token_pool", "mode": "class"}, [value], shape=(value.shape[1],))


def drop(converter: Converter, node: Node) -> None:
    """Dropout and Identity: no layer (dropout is the trainer's, `dropout` in a network)."""
    converter.alias(node, converter.value(node), "dropped")


def scale(converter: Converter, node: Node) -> None:
    """Mul or Div by a constant scalar: folded into the weight layer or norm it feeds (no
    layer, no cost), else a `scale` layer (its vector op per element priced, each way)."""
    live = converter.index.activation_inputs(node)
    others = [name for name in node.inputs if name in converter.graph.constants]
    constant = converter.index.const(others[0]) if len(others) == 1 else None
    if len(live) != 1 or constant is None or constant.size != 1:
        raise converter.fail(
            node,
            f"a {node.op} of two activations, or by a tensor, is not "
            "supported (by a constant scalar it is a scale layer)",
        )
    if node.op == "Div" and node.inputs[0] != live[0]:
        raise converter.fail(node, "a constant divided by an activation is not a scale")
    value = float(constant.reshape(-1)[0])
    factor = value if node.op == "Mul" else (1 / value if value else math.inf)
    if not (math.isfinite(factor) and factor != 0 and 1e-30 <= abs(factor) <= 1e30):
        raise converter.fail(
            node, f"scales by {factor}: a scale layer needs a finite, non-0 factor"
        )
    target = _fold_target(converter, node)
    if target is not None:
        norm = "Norm" in target.op or "norm" in target.op
        how = "normalised away by" if norm else "folded into the weights of"
        kind = target.op.split(".")[-1]
        converter.alias(node, converter.value(node), f"× {factor:g} {how} {kind} '{target.name}'")
        return
    converter.add(node, {"type": "scale", "factor": factor}, [converter.value(node)])


# The ops a scale by a constant folds into when it feeds one: linear in that input (a weight
# layer: W(c·x) = (cW)x, biases and zero padding alike) or normalising it away (a norm's
# statistics scale with x: (c·x − c·μ) / (c·σ) = x̂, up to epsilon).
FOLDS_INTO = (
    "Conv",
    "hwsim.dense",
    "hwsim.attention",
    "hwsim.patch_embed",
    "BatchNormalization",
    "LayerNormalization",
    "hwsim.layer_norm",
)
# What a scale may reach its target through: nodes that re-view or drop a tensor.
_THROUGH = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Dropout", "Identity")


def _fold_target(converter: Converter, node: Node) -> Node | None:
    """The weight layer or norm the scale's output alone feeds (as its activation input,
    through re-views only), or None: then the scale is a layer of its own."""
    tensor = node.outputs[0]
    while True:
        readers = converter.graph.consumers(tensor)
        if len(readers) != 1 or tensor == converter.graph.output:
            return None
        reader = readers[0]
        if not reader.inputs or reader.inputs[0] != tensor:
            return None
        if reader.op in FOLDS_INTO:
            return reader
        if reader.op not in _THROUGH or len(reader.outputs) != 1:
            return None
        tensor = reader.outputs[0]


def softmax(converter: Converter, node: Node) -> None:
    if node.outputs[0] != converter.graph.output:
        raise converter.fail(
            node,
            "a Softmax is imported only inside attention or at the "
            "graph's output (where hwsim's loss applies it)",
        )
    converter.alias(node, converter.value(node), "the loss applies softmax")


def attention(converter: Converter, node: Node) -> None:
    value = converter.value(node)
    converter.add(
        node, {"type": "attention", "heads": node.attrs["heads"]}, [value], shape=value.shape
    )
    if node.attrs.get("note"):
        converter.layers[-1].notes.append(node.attrs["note"])


def patch_embed(converter: Converter, node: Node) -> None:
    value = converter.value(node)
    if len(value.shape) != 3:
        raise converter.fail(node, "a patch embedding needs a map input [N, C, H, W]")
    fields: dict[str, Any] = {
        "type": "patch_embed",
        "width": node.attrs["width"],
        "patch_size": node.attrs["patch_size"],
    }
    for key in ("class_token", "position_embedding"):
        if node.attrs[key]:
            fields[key] = True
    converter.add(node, fields, [value])
