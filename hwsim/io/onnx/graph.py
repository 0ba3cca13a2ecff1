"""An ONNX file read for import: parsed, shapes inferred, shape arithmetic folded to constants.

Everything that can go wrong inside `onnx` (a truncated or non-ONNX file, a model its checker
refuses, shape inference failing) becomes one SpecError naming the file.  What remains is a
`Graph`: the nodes that compute on the network's activations, every tensor's shape, and the
constants (initializers, `Constant` nodes and whatever is computed from them alone, such as a
`Reshape`'s target built from `Shape`, `Gather` and `Concat`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import SpecError
from hwsim.io.inputs import read_bounded

MAX_ONNX_BYTES = 2**31  # protobuf's own limit for one message
MIN_OPSET = 13


@dataclass
class Node:
    """One ONNX node (or a pattern of nodes the importer recognised, `op` then hwsim's)."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # the ONNX nodes it stands for
    proto: Any = field(default=None, repr=False)  # the ONNX node, if it is one

    @property
    def label(self) -> str:
        return f"{self.op} '{self.name}'"


@dataclass
class Graph:
    """The activation nodes of a model in file order, with shapes and constants."""

    path: str
    name: str
    input: str  # the one graph input that is not a weight
    output: str
    nodes: list[Node]
    shapes: dict[str, tuple[int, ...]]
    constants: dict[str, np.ndarray]
    initializers: set[str]  # constants stored in the file (a model's parameters and buffers)
    opset: int
    file_parameters: int = 0  # the model's trainable values (_file_parameters)

    def shape(self, tensor: str, node: Node) -> tuple[int, ...]:
        try:
            return self.shapes[tensor]
        except KeyError:
            raise SpecError(
                f"{self.path}: node {node.label}: the shape of '{tensor}' is unknown after "
                "ONNX shape inference (a dynamic shape? export with fixed sizes)"
            ) from None

    def consumers(self, tensor: str) -> list[Node]:
        return [node for node in self.nodes if tensor in node.inputs]

    def producers(self) -> dict[str, Node]:
        return {output: node for node in self.nodes for output in node.outputs}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:  # a core dependency; a broken environment says how to mend it
        raise SpecError("importing ONNX needs the 'onnx' package: pip install onnx") from None
    return onnx


def _parse(path: Path) -> Any:
    onnx = _onnx()
    raw = read_bounded(path, MAX_ONNX_BYTES, SpecError, "an ONNX model")
    try:
        model = onnx.load_model_from_string(raw)
    except Exception as exc:  # protobuf's DecodeError and whatever else a bad file raises
        raise SpecError(f"{path}: not an ONNX model (cannot parse it: {exc})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise SpecError(f"{path}: not an ONNX model (no graph nodes; truncated?)")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise SpecError(f"{path}: the ONNX checker refuses the model: {_one_line(exc)}") from None
    return model


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """onnx's message on one line, whole (its context — the node's name and op type — is on
    later lines), cut at `limit` characters."""
    text = " ".join(str(exc).replace("==> Context:", "(context:").split())
    if "(context:" in text:
        text += ")"
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _opset(model: Any, path: Path) -> int:
    versions = [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")]
    if not versions or versions[0] < MIN_OPSET:
        found = versions[0] if versions else "none"
        raise SpecError(
            f"{path}: opset {found}: hwsim imports ONNX opset {MIN_OPSET} and up (re-export "
            f"with opset_version={MIN_OPSET} or newer)"
        )
    return versions[0]


def _graph_ends(model: Any, path: Path) -> tuple[Any, str]:
    graph = model.graph
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    if len(inputs) != 1:
        raise SpecError(
            f"{path}: the graph has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
            "hwsim imports a network with one input"
        )
    if len(graph.output) != 1:
        raise SpecError(
            f"{path}: the graph has {len(graph.output)} outputs "
            f"({', '.join(value.name for value in graph.output)}); hwsim imports a network "
            "with one output (the classifier's)"
        )
    return inputs[0], graph.output[0].name


def _fix_batch(value: Any, path: Path) -> None:
    """The input's first dimension is the batch: a symbolic one becomes 1; any other symbolic
    dimension is a dynamic shape hwsim cannot price."""
    dims = value.type.tensor_type.shape.dim
    if not dims:
        raise SpecError(f"{path}: input '{value.name}': no shape; export with a fixed input shape")
    for index, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            continue
        if index == 0:
            dim.dim_value = 1
            continue
        what = dim.dim_param or "unknown"
        raise SpecError(
            f"{path}: input '{value.name}' dimension {index} is '{what}': a dynamic shape; "
            "export with a fixed size (only the batch dimension may be symbolic)"
        )


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        kind = value.type.tensor_type
        if not kind.HasField("shape"):
            continue
        dims = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in kind.shape.dim]
        if all(dim >= 0 for dim in dims):
            shapes[value.name] = tuple(dims)
    return shapes


def _infer(model: Any, path: Path) -> Any:
    onnx = _onnx()
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise SpecError(f"{path}: ONNX shape inference fails: {_one_line(exc)}") from None


def read_graph(path: str | Path) -> Graph:
    """The model at `path`, checked, with shapes inferred and constants folded."""
    path = Path(path)
    model = _parse(path)
    opset = _opset(model, path)
    value, output = _graph_ends(model, path)
    _fix_batch(value, path)
    model = _infer(model, path)
    onnx = _onnx()
    constants = {
        tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in model.graph.initializer
    }
    shapes = _shapes(model)
    for name, array in constants.items():
        shapes[name] = tuple(array.shape)
    nodes = [_node(onnx, proto, index) for index, proto in enumerate(model.graph.node)]
    origins: dict[str, str] = {}
    live = fold_constants(nodes, constants, shapes, str(path), origins)
    for _ in range(3):  # shapes that needed the folded constants (an Expand to x.shape[0])
        if all(out in shapes for node in live for out in node.outputs if out):
            break
        shapes.update(_shapes(_infer(_refolded(model, live, constants), path)))
        live = fold_constants(live, constants, shapes, str(path))
    return Graph(
        path=str(path),
        name=model.graph.name,
        input=value.name,
        output=output,
        nodes=live,
        shapes=shapes,
        constants=constants,
        initializers={tensor.name for tensor in model.graph.initializer},
        opset=opset,
        file_parameters=_file_parameters(nodes, constants, origins, model),
    )


def _file_parameters(
    nodes: list[Node], constants: dict[str, np.ndarray], origins: dict[str, str], model: Any
) -> int:
    """The model's trainable values: each floating-point initializer that is not a scalar, once
    per node that reads it (an exporter stores equal tensors once: a fresh batch norm's scale
    and running variance are both ones), a batch norm's running mean and variance (buffers)
    and the reads of a folded Identity (its readers count) aside."""
    stored = {tensor.name for tensor in model.graph.initializer}
    total = 0
    for node in nodes:
        if node.op == "Identity":
            continue
        read = set()
        for position, name in enumerate(node.inputs):
            if node.op == "BatchNormalization" and position in (3, 4):
                continue
            origin = origins.get(name, name)
            value = constants.get(origin)
            if (
                origin in stored
                and value is not None
                and value.dtype.kind == "f"
                and value.size > 1
            ):
                read.add(origin)
        total += sum(int(constants[origin].size) for origin in read)
    return total


def _refolded(model: Any, live: list[Node], constants: dict[str, np.ndarray]) -> Any:
    """The model of the nodes left after folding, the folded values as initializers."""
    onnx = _onnx()
    read = {name for node in live for name in node.inputs}
    graph = onnx.helper.make_graph(
        [node.proto for node in live],
        model.graph.name,
        list(model.graph.input),
        list(model.graph.output),
        [
            onnx.numpy_helper.from_array(value, name)
            for name, value in constants.items()
            if name in read
        ],
    )
    return onnx.helper.make_model(graph, opset_imports=list(model.opset_import))


def _node(onnx: Any, proto: Any, index: int) -> Node:
    attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in proto.attribute}
    name = proto.name or f"{proto.op_type.lower()}_{index}"
    return Node(
        op=proto.op_type if proto.domain in ("", "ai.onnx") else f"{proto.domain}.{proto.op_type}",
        name=name,
        inputs=list(proto.input),
        outputs=list(proto.output),
        attrs=attrs,
        sources=[f"{name} ({proto.op_type})"],
        proto=proto,
    )


def fold_constants(
    nodes: list[Node],
    constants: dict[str, np.ndarray],
    shapes: dict,
    path: str,
    origins: dict[str, str] | None = None,
) -> list[Node]:
    """Evaluate every node whose inputs are all constants (and `Shape` of any tensor whose
    shape is known) into `constants`; the nodes left compute on activations.  `origins` learns
    the initializer behind each folded Identity (PyTorch reads a shared tensor through one)."""
    live: list[Node] = []
    for node in nodes:
        value = _folded(node, constants, shapes, path)
        if value is None:
            live.append(node)
            continue
        if origins is not None and node.op == "Identity":
            origins[node.outputs[0]] = origins.get(node.inputs[0], node.inputs[0])
        for output, array in zip(node.outputs, value, strict=False):
            constants[output] = array
            shapes[output] = tuple(array.shape)
    return live


def _folded(node: Node, constants: dict, shapes: dict, path: str) -> list[np.ndarray] | None:
    given = [name for name in node.inputs if name]
    if node.op == "Shape" and given and given[0] in shapes:
        dims = np.array(shapes[given[0]], dtype=np.int64)
        start, end = node.attrs.get("start", 0), node.attrs.get("end")
        return [dims[start:end]]
    if node.op in _NEVER_FOLDED or not all(name in constants for name in given):
        return None
    if node.op == "Constant":
        return [_constant_value(node, path)]
    return _evaluate(node, constants, path)


# Random or stateful ops are never evaluated at import time.
_NEVER_FOLDED = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "Multinomial"})


def _constant_value(node: Node, path: str) -> np.ndarray:
    onnx = _onnx()
    if "value" in node.attrs:
        return onnx.numpy_helper.to_array(node.attrs["value"])
    for key in ("value_float", "value_int"):
        if key in node.attrs:
            return np.array(node.attrs[key])
    for key in ("value_floats", "value_ints"):
        if key in node.attrs:
            return np.array(list(node.attrs[key]))
    raise SpecError(f"{path}: node {node.label}: a Constant without a numeric value")


def _evaluate(node: Node, constants: dict, path: str) -> list[np.ndarray]:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    proto = helper.make_node(
        node.op, node.inputs, node.outputs, name=node.name, **_plain(node.attrs)
    )
    feeds = {name: constants[name] for name in node.inputs if name}
    try:
        return [np.asarray(value) for value in ReferenceEvaluator(proto).run(None, feeds)]
    except Exception as exc:
        raise SpecError(
            f"{path}: node {node.label}: cannot evaluate it on its constant inputs: "
            f"{_one_line(exc)}"
        ) from None


def _plain(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as make_node takes them back (bytes to str)."""
    return {
        key: value.decode() if isinstance(value, bytes) else value for key, value in attrs.items()
    }
