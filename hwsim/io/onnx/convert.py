"""ONNX nodes (after the patterns) to hwsim layers.

Tensors are read in hwsim's layout: an ONNX map [N, C, H, W] is hwsim's [height, width,
channels], a sequence [N, T, W] is [tokens, width], a flat [N, F] is [features]; the batch
dimension is dropped (a trace's batch comes from the command).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwsim.errors import SpecError
from hwsim.io.onnx.graph import Graph, Node
from hwsim.io.onnx.names import identifier, scoped_name
from hwsim.io.onnx.patterns import Index


@dataclass(frozen=True)
class Value:
    """An ONNX tensor as hwsim sees it: the layer that makes it and its per-example shape."""

    ref: str  # a layer's name, or "input"
    shape: tuple[int, ...]


@dataclass
class Layer:
    fields: dict[str, Any]
    sources: list[str]
    output: str  # the ONNX tensor it makes (where an activation may fold into it)
    notes: list[str] = field(default_factory=list)


@dataclass
class Converted:
    input_shape: tuple[int, ...]
    layers: list[Layer]
    dropped: list[str]  # ONNX nodes that became no layer, with why


SUPPORTED = (
    "Conv, Gemm, MatMul (with a weight; of two activations inside attention), Add, Sum, Concat, "
    "Relu, Clip (0..6 or 0..inf), Sigmoid, Tanh, Gelu (and its Erf form), Softmax (attention, or "
    "the graph's output), BatchNormalization, LayerNormalization (and its ReduceMean form), "
    "MaxPool, AveragePool, GlobalAveragePool, ReduceMean (over a map or the tokens), Gather "
    "(the class token), Flatten, Reshape/Transpose/Squeeze/Unsqueeze (re-views), Dropout, "
    "Identity, Mul/Div by a constant"
)


def hwsim_shape(onnx_shape: tuple[int, ...]) -> tuple[int, ...]:
    """[N, C, H, W] → (H, W, C); [N, T, W] → (T, W); [N, F] → (F,)."""
    rest = tuple(onnx_shape[1:])
    if len(rest) == 3:
        return (rest[1], rest[2], rest[0])
    return rest


class Converter:
    def __init__(self, graph: Graph, handlers: dict[str, Any]) -> None:
        self.graph = graph
        self.handlers = handlers
        self.index = Index(graph)
        self.values: dict[str, Value] = {
            graph.input: Value("input", hwsim_shape(graph.shape(graph.input, _INPUT)))
        }
        self.layers: list[Layer] = []
        self.dropped: list[str] = []
        self.names: set[str] = {"input"}

    # --- helpers --------------------------------------------------------------------------

    def fail(self, node: Node, problem: str) -> SpecError:
        return SpecError(f"{self.graph.path}: node {node.label}: {problem}")

    def value(self, node: Node, position: int = 0) -> Value:
        live = self.index.activation_inputs(node)
        if position >= len(live):
            raise self.fail(node, "expected an activation input")
        try:
            return self.values[live[position]]
        except KeyError:
            raise self.fail(
                node, f"input '{live[position]}' is made by no node hwsim imported"
            ) from None

    def out_shape(self, node: Node) -> tuple[int, ...]:
        return hwsim_shape(self.graph.shape(node.outputs[0], node))

    def add(self, node: Node, fields: dict[str, Any], inputs: list[Value], shape=None) -> None:
        name = self.layer_name(node)
        wiring: dict[str, Any] = {"type": fields.pop("type"), "name": name}
        previous = self.layers[-1].fields["name"] if self.layers else "input"
        refs = [value.ref for value in inputs]
        if fields.pop("_needs_inputs", False) or refs != [previous]:
            wiring["inputs"] = refs
        self.layers.append(Layer({**wiring, **fields}, list(node.sources), node.outputs[0]))
        self.values[node.outputs[0]] = Value(name, shape or self.out_shape(node))

    def alias(self, node: Node, value: Value, why: str) -> None:
        self.values[node.outputs[0]] = value
        self.dropped.append(f"{node.op} '{node.name}' ({why})")

    def layer_name(self, node: Node) -> str:
        name = identifier(
            scoped_name(node.name, node.op.split(".")[-1]), node.op.split(".")[-1].lower()
        )
        name = name[:60]
        unique, count = name, 1
        while unique.lower() in self.names:
            count += 1
            unique = f"{name}_{count}"
        self.names.add(unique.lower())
        return unique

    # --- the walk -------------------------------------------------------------------------

    def run(self) -> Converted:
        for node in self.graph.nodes:
            handler = self.handlers.get(node.op)
            if handler is None:
                raise self.fail(node, f"op {node.op} is not supported (supported: {SUPPORTED})")
            handler(self, node)
        output = self.values.get(self.graph.output)
        if output is None or not self.layers or output.ref != self.layers[-1].fields["name"]:
            raise SpecError(
                f"{self.graph.path}: the graph's output '{self.graph.output}' is not made by its "
                "last layer; hwsim needs a network ending in its classifier (a dense layer)"
            )
        shape = self.values[self.graph.input].shape
        return Converted(shape, self.layers, self.dropped)


_INPUT = Node("Input", "input", [], [])
