"""An imported network as the text of a network file: one flow mapping per layer, each after
a comment naming the ONNX nodes it stands for, so a person can read and edit it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hwsim import __version__
from hwsim.errors import SpecError
from hwsim.io.onnx.convert import Converted
from hwsim.io.onnx.graph import Graph
from hwsim.io.onnx.names import identifier, yaml_float, yaml_string


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return yaml_float(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    return yaml_string(str(value))


def _flow(fields: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {_scalar(value)}" for key, value in fields.items()) + "}"


def _comment(text: str, width: int = 96) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [f"# {line}" for line in [*lines, line] if line]


def _classes(converted: Converted, classes: int | None, path: str) -> int:
    last = converted.layers[-1].fields
    if last["type"] != "dense" or last.get("activation", "linear") != "linear":
        raise SpecError(
            f"{path}: the model ends in a {last['type']} layer ('{last['name']}'); hwsim needs a "
            "network ending in a linear dense layer, its classifier"
        )
    if classes is not None and classes != last["units"]:
        converted.layers[-1].notes.append(f"resized from {last['units']} to {classes} classes")
        last["units"] = classes
    return int(last["units"])


def network_text(
    graph: Graph, converted: Converted, name: str | None, classes: int | None, dataset: str
) -> str:
    """The network file for `converted`, named `name` (default: after the file; exporters
    give every graph one name, PyTorch's `main_graph`)."""
    count = _classes(converted, classes, graph.path)
    title = identifier(name or Path(graph.path).stem)
    lines = _comment(
        f"Imported by hwsim {__version__} from {Path(graph.path).name} (ONNX opset "
        f"{graph.opset}, {len(converted.layers)} layers). Each layer follows a comment naming "
        "the ONNX nodes it stands for; tensors are read in hwsim's layout ([height, width, "
        "channels] for an ONNX [N, C, H, W] map) and the batch dimension is the command's."
    )
    if converted.dropped:
        lines += _comment("No layer for: " + ", ".join(converted.dropped) + ".")
    lines += [
        "schema_version: 1",
        "kind: network",
        f"name: {_scalar(title)}",
        f"description: {json.dumps(f'imported from {Path(graph.path).name}')}",
        f"dataset: {_scalar(dataset)}",
        f"input_shape: {_scalar(list(converted.input_shape))}",
        f"classes: {count}",
        "layers:",
    ]
    for layer in converted.layers:
        sources = ", ".join(layer.sources)
        lines += [
            "  " + line
            for line in _comment(f"ONNX: {sources}{''.join('; ' + n for n in layer.notes)}")
        ]
        lines.append(f"  - {_flow(layer.fields)}")
    return "\n".join(lines) + "\n"
