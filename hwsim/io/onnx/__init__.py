"""ONNX models as hwsim networks: `hwsim import MODEL.onnx` and `--network MODEL.onnx`.

The file is read and checked by `onnx` (graph), patterns of nodes that are one hwsim layer are
replaced (patterns, tokens), every remaining node becomes a layer or folds away (convert, maps,
edges), and the result is written as a network file (emit) that validates as any other: the
in-memory import parses that same text, so `--network MODEL.onnx` and the written YAML cannot
differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwsim.errors import SpecError
from hwsim.io.onnx import edges, maps
from hwsim.io.onnx.blocks import residual_blocks
from hwsim.io.onnx.convert import Converted, Converter
from hwsim.io.onnx.emit import network_text
from hwsim.io.onnx.graph import Graph, read_graph
from hwsim.io.onnx.patterns import match_dense, match_gelu_erf, match_layer_norm, rewrite
from hwsim.io.onnx.tokens import match_attention, match_patch_embed
from hwsim.specs.network import NetworkSpec, freeze_problem, infer_shapes

HANDLERS = {
    "Conv": maps.conv,
    "MaxPool": maps.pool,
    "AveragePool": maps.pool,
    "GlobalAveragePool": maps.global_pool,
    "hwsim.dense": maps.dense,
    "Relu": maps.activation,
    "Sigmoid": maps.activation,
    "Tanh": maps.activation,
    "Clip": maps.clip,
    "Gelu": maps.gelu,
    "hwsim.gelu": maps.gelu,
    "BatchNormalization": maps.batch_norm,
    "LayerNormalization": maps.layer_norm,
    "hwsim.layer_norm": maps.layer_norm,
    "Add": edges.add,
    "Sum": edges.add,
    "Concat": edges.concat,
    "Flatten": edges.view,
    "Reshape": edges.view,
    "Squeeze": edges.view,
    "Unsqueeze": edges.view,
    "Transpose": edges.view,
    "ReduceMean": edges.reduce_mean,
    "Gather": edges.gather,
    "Dropout": edges.drop,
    "Identity": edges.drop,
    "Mul": edges.scale,
    "Div": edges.scale,
    "Softmax": edges.softmax,
    "LogSoftmax": edges.softmax,
    "hwsim.attention": edges.attention,
    "hwsim.patch_embed": edges.patch_embed,
}


@dataclass(frozen=True)
class Imported:
    """An ONNX model as a network: the file text `hwsim import` writes, and the network."""

    text: str
    network: NetworkSpec
    layer_count: int
    parameters: int  # the network's trainable values, as hwsim counts them
    file_parameters: int  # the initializers' values, batch-norm running statistics aside


def convert(graph: Graph) -> Converted:
    """The graph's layers, after its patterns are replaced."""
    rewrite(graph, (match_gelu_erf, match_layer_norm))
    rewrite(graph, (match_attention, match_patch_embed))
    rewrite(graph, (match_dense,))
    return Converter(graph, HANDLERS).run()


def import_onnx(
    path: str | Path,
    name: str | None = None,
    classes: int | None = None,
    dataset: str = "synthetic",
    freeze: tuple[str, ...] = (),
    blocks: str = "layer",
) -> Imported:
    """Read an ONNX model as a network; SpecError names the file and the node it cannot take."""
    from hwsim.io.yamlio import parse_yaml
    from hwsim.specs.common import validate

    graph = read_graph(path)
    try:
        converted = convert(graph)
    except SpecError:
        raise
    except Exception as exc:  # a model this importer's patterns did not foresee
        raise SpecError(
            f"{path}: cannot import this model ({type(exc).__name__}: {exc}); the supported "
            "ops and patterns are in docs/networks-onnx.md"
        ) from None
    _freeze(converted, freeze, str(path))
    if blocks == "residual":
        residual_blocks(converted)
    elif blocks != "layer":
        raise SpecError(f"blocks: expected 'layer' or 'residual' (got {blocks!r})")
    text = network_text(graph, converted, name=name, classes=classes, dataset=dataset)
    data = parse_yaml(text, str(path))
    network = validate(NetworkSpec, data, f"{path} (imported)")
    parameters = sum(shape.parameters for shape in infer_shapes(network))
    return Imported(text, network, len(converted.layers), parameters, graph.file_parameters)


def _freeze(converted: Converted, names: tuple[str, ...], path: str) -> None:
    """`trainable: false` on the layers named (the paper's transfer setting)."""
    layers = {layer.fields["name"]: layer for layer in converted.layers}
    kinds = {name: layer.fields["type"] for name, layer in layers.items()}
    for name in names:
        problem = freeze_problem(kinds, name)
        if problem is not None:
            raise SpecError(f"{path}: --freeze {name}: {problem}")
        layers[name].fields["trainable"] = False


def load_onnx_network(path: str | Path) -> NetworkSpec:
    return import_onnx(path).network


__all__ = ["Imported", "SpecError", "import_onnx", "load_onnx_network"]
