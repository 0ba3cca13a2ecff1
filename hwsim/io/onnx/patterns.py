"""Patterns of ONNX nodes that are one hwsim layer: a MatMul with its bias Add (a dense layer),
multi-head self-attention, GELU written with Erf, layer norm written out in reductions, and a
patch embedding.

Each matcher looks at one anchor node and returns the hwsim node it stands for with the ONNX
nodes it replaces, or None.  A match is applied only if it is closed: no tensor made inside it
is read outside it (else the nodes stay, and the converter names the one it cannot take).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hwsim.errors import SpecError
from hwsim.io.onnx.graph import Graph, Node
from hwsim.io.onnx.names import scoped_name


@dataclass
class Match:
    node: Node  # the hwsim node: op "hwsim.<kind>", inputs its activations, one output
    consumed: list[Node]


class Index:
    """Who makes and who reads each tensor of a graph."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.producer = {output: node for node in graph.nodes for output in node.outputs}
        self.readers: dict[str, list[Node]] = defaultdict(list)
        for node in graph.nodes:
            for name in node.inputs:
                self.readers[name].append(node)

    def const(self, tensor: str) -> np.ndarray | None:
        return self.graph.constants.get(tensor)

    def scalar(self, tensor: str) -> float | None:
        value = self.const(tensor)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def sole(self, tensor: str) -> Node | None:
        """The one node that reads `tensor` (None if several, none, or it is the output)."""
        readers = self.readers.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor != self.graph.output else None

    def made_by(self, tensor: str, *ops: str) -> Node | None:
        node = self.producer.get(tensor)
        return node if node is not None and node.op in ops else None

    def activation_inputs(self, node: Node) -> list[str]:
        return [name for name in node.inputs if name and name not in self.graph.constants]

    def other_input(self, node: Node, tensor: str) -> str | None:
        others = [name for name in node.inputs if name != tensor]
        return others[0] if len(others) == 1 else None


def hwsim_node(kind: str, consumed: list[Node], inputs: list[str], output: str, **attrs) -> Match:
    consumed = list({id(node): node for node in consumed}.values())
    names = [node.name for node in consumed]
    split = [name.strip("/").split("/") for name in names]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    if len(consumed) == 1 or not common:  # `/head/Gemm` is `head`
        name = scoped_name(consumed[0].name, consumed[0].op)
    else:
        name = "/".join(common)
    sources = [source for node in consumed for source in node.sources]
    node = Node(f"hwsim.{kind}", name, inputs, [output], attrs, sources)
    return Match(node, consumed)


def _near(value: float | None, target: float, tolerance: float = 1e-3) -> bool:
    return value is not None and abs(value - target) <= tolerance * abs(target)


# --- dense ------------------------------------------------------------------------------------


def _bias_after(index: Index, tensor: str, units: int) -> Node | None:
    add = index.sole(tensor)
    if add is None or add.op != "Add":
        return None
    bias = index.const(index.other_input(add, tensor) or "")
    if bias is None or bias.size != units or bias.shape[-1:] != (units,):
        return None
    return add


def match_dense(index: Index, node: Node) -> Match | None:
    """MatMul(x, W) [+ b] and Gemm(x, W[, b]): a dense layer (applied per token on a sequence)."""
    if node.op == "Gemm":
        return _gemm(index, node)
    if node.op != "MatMul" or len(index.activation_inputs(node)) != 1:
        return None
    weight = index.const(node.inputs[1])
    if weight is None or weight.ndim != 2 or index.const(node.inputs[0]) is not None:
        return None
    units = int(weight.shape[1])
    add = _bias_after(index, node.outputs[0], units)
    consumed = [node, add] if add else [node]
    output = (add or node).outputs[0]
    return hwsim_node(
        "dense", consumed, [node.inputs[0]], output, units=units, use_bias=add is not None
    )


def _gemm(index: Index, node: Node) -> Match | None:
    weight = index.const(node.inputs[1]) if len(node.inputs) > 1 else None
    if weight is None or weight.ndim != 2 or index.const(node.inputs[0]) is not None:
        return None
    attrs = node.attrs
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise SpecError(
            f"{index.graph.path}: node {node.label}: a Gemm with transA, alpha or beta other "
            "than 0, 1, 1 is not a dense layer hwsim can import"
        )
    units = int(weight.shape[0] if attrs.get("transB", 0) else weight.shape[1])
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    return hwsim_node(
        "dense", [node], [node.inputs[0]], node.outputs[0], units=units, use_bias=has_bias
    )


# --- GELU as Erf --------------------------------------------------------------------------------


def match_gelu_erf(index: Index, node: Node) -> Match | None:
    """0.5·x·(1 + erf(x/√2)), in either order of its multiplications."""
    if node.op != "Erf":
        return None
    scaled = index.producer.get(node.inputs[0])
    if scaled is None or scaled.op not in ("Div", "Mul") or len(scaled.inputs) != 2:
        return None
    factor = index.scalar(scaled.inputs[1])
    if not (_near(factor, 2**0.5) if scaled.op == "Div" else _near(factor, 2**-0.5)):
        return None
    x = scaled.inputs[0]
    one = index.sole(node.outputs[0])
    if one is None or one.op != "Add" or not _near(index.scalar(_other(one, node)), 1.0):
        return None
    product = index.sole(one.outputs[0])
    if product is None or product.op != "Mul":
        return None
    other = _other(product, one)
    if other == x:  # (x · (1 + erf)) · 0.5
        half = index.sole(product.outputs[0])
        if half is None or half.op != "Mul" or not _near(index.scalar(_other(half, product)), 0.5):
            return None
        return hwsim_node("gelu", [scaled, node, one, product, half], [x], half.outputs[0])
    if _near(index.scalar(other), 0.5):  # x · (0.5 · (1 + erf))
        outer = index.sole(product.outputs[0])
        if outer is None or outer.op != "Mul" or _other(outer, product) != x:
            return None
        return hwsim_node("gelu", [scaled, node, one, product, outer], [x], outer.outputs[0])
    half = index.made_by(other, "Mul")  # (0.5 · x) · (1 + erf)
    if half is None or x not in half.inputs or not _near(index.scalar(_other(half, None, x)), 0.5):
        return None
    return hwsim_node("gelu", [half, scaled, node, one, product], [x], product.outputs[0])


def _other(node: Node, made_by: Node | None, tensor: str | None = None) -> str:
    """The input of a two-input `node` that is not `made_by`'s output (or `tensor`)."""
    skip = made_by.outputs[0] if made_by is not None else tensor
    others = [name for name in node.inputs if name != skip]
    return others[0] if others else ""


# --- layer norm in reductions -------------------------------------------------------------------


def _last_axis_mean(index: Index, node: Node | None, rank: int) -> bool:
    if node is None or node.op != "ReduceMean":
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1:
        given = index.const(node.inputs[1])
        axes = None if given is None else [int(axis) for axis in given.reshape(-1)]
    return axes is not None and [axis % rank for axis in axes] == [rank - 1]


def match_layer_norm(index: Index, node: Node) -> Match | None:
    """(x − mean) / sqrt(var + ε) · γ + β, with mean and var over the last axis."""
    if node.op != "ReduceMean":
        return None
    x = node.inputs[0]
    rank = len(index.graph.shapes.get(x, ()))
    centred = [
        r for r in index.readers.get(x, []) if r.op == "Sub" and r.inputs == [x, node.outputs[0]]
    ]
    if not rank or not _last_axis_mean(index, node, rank) or len(centred) != 1:
        return None
    sub = centred[0]
    readers = index.readers.get(sub.outputs[0], [])
    square = next(
        (r for r in readers if r.op == "Pow" and _near(index.scalar(r.inputs[1]), 2)), None
    )
    divide = next((r for r in readers if r.op == "Div" and r.inputs[0] == sub.outputs[0]), None)
    if square is None or divide is None or len(readers) != 2:
        return None
    variance = index.sole(square.outputs[0])
    if not _last_axis_mean(index, variance, rank):
        return None
    assert variance is not None
    plus = index.sole(variance.outputs[0])
    epsilon = (
        index.scalar(_other(plus, variance)) if plus is not None and plus.op == "Add" else None
    )
    root = index.sole(plus.outputs[0]) if plus is not None else None
    if epsilon is None or root is None or root.op != "Sqrt" or divide.inputs[1] != root.outputs[0]:
        return None
    assert plus is not None
    scale = index.sole(divide.outputs[0])
    shift = index.sole(scale.outputs[0]) if scale is not None and scale.op == "Mul" else None
    if scale is None or shift is None or shift.op != "Add":
        return None
    width = index.graph.shape(x, node)[-1]
    gamma, beta = _other(scale, divide), _other(shift, scale)
    if not all(_per_feature(index, tensor, width) for tensor in (gamma, beta)):
        return None
    consumed = [node, sub, square, variance, plus, root, divide, scale, shift]
    return hwsim_node(
        "layer_norm", consumed, [x], shift.outputs[0], epsilon=epsilon, scale=gamma, shift=beta
    )


def _per_feature(index: Index, tensor: str, width: int) -> bool:
    value = index.const(tensor)
    return value is not None and value.size == width


MATCHERS: tuple[Callable[[Index, Node], Match | None], ...] = (
    match_gelu_erf,
    match_layer_norm,
)


def rewrite(graph: Graph, matchers: tuple[Callable[[Index, Node], Match | None], ...]) -> None:
    """Replace every closed match of `matchers` in `graph.nodes`, in place, each hwsim node
    where the last of the nodes it replaces stood."""
    index = Index(graph)
    position = {id(node): number for number, node in enumerate(graph.nodes)}
    taken: set[int] = set()
    anchors: dict[int, Node] = {}
    for node in graph.nodes:
        if id(node) in taken:
            continue
        for matcher in matchers:
            match = matcher(index, node)
            if match is None or not _closed(index, match):
                continue
            ids = {id(consumed) for consumed in match.consumed}
            if taken & ids:
                continue
            taken |= ids
            ordered = sorted(match.consumed, key=lambda consumed: position[id(consumed)])
            match.node.sources = [source for consumed in ordered for source in consumed.sources]
            anchors[id(ordered[-1])] = match.node
            break
    graph.nodes = [
        anchors.get(id(node), node)
        for node in graph.nodes
        if id(node) not in taken or id(node) in anchors
    ]


def _closed(index: Index, match: Match) -> bool:
    inside = {id(node) for node in match.consumed}
    kept = set(match.node.outputs)
    for node in match.consumed:
        for output in node.outputs:
            if output in kept or not output:
                continue
            if output == index.graph.output:
                return False
            if any(id(reader) not in inside for reader in index.readers.get(output, [])):
                return False
    return True
