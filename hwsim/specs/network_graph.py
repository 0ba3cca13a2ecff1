"""The wiring of a network's graph: each layer's inputs, checked when the file loads (names,
order, counts, unused branches) with its DFA blocks (network-format.md, *Graphs* and *Blocks*).
Apart from hwsim.specs.network, which holds the layer kinds and their shapes."""

from __future__ import annotations

import difflib

from hwsim.specs.network import (
    NETWORK_INPUT,
    AddLayer,
    ConcatLayer,
    LayerSpec,
    NetworkSpec,
)


def layer_inputs(network: NetworkSpec) -> list[tuple[str, ...]]:
    """Each layer's inputs by name: its `inputs`, or the layer before (the first layer: the
    network's input).  ValueError names the layer and field of an input that is not a layer
    before it (an unknown name, itself, or a later layer: a cycle)."""
    names = [layer.name for layer in network.layers]
    index_of = {name: i for i, name in enumerate(names)}
    wired: list[tuple[str, ...]] = []
    for index, layer in enumerate(network.layers):
        where = f"layers.{index} ({layer.type} '{layer.name}')"
        if layer.inputs is None:
            if isinstance(layer, AddLayer | ConcatLayer):
                raise ValueError(f"{where}.inputs: {layer.type} needs the names of its inputs")
            wired.append((names[index - 1] if index else NETWORK_INPUT,))
            continue
        for name in layer.inputs:
            if name == NETWORK_INPUT:
                continue
            if name not in index_of:
                near = difflib.get_close_matches(name, [NETWORK_INPUT, *names[:index]], n=1)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                raise ValueError(f"{where}.inputs: no layer '{name}'{hint}")
            if index_of[name] >= index:
                raise ValueError(
                    f"{where}.inputs: '{name}' is not a layer before this one (a layer takes "
                    "only earlier layers' outputs, so the graph has no cycle)"
                )
        _check_input_count(layer, where)
        wired.append(tuple(layer.inputs))
    _check_every_output_used(network, wired)
    _check_blocks(network, wired)
    return wired


def _check_blocks(network: NetworkSpec, wired: list[tuple[str, ...]]) -> None:
    """A named block's layers are listed together, only its last layer's output leaves it,
    and the output layer is in none."""
    layers = network.layers
    block_of = {layer.name: layer.block for layer in layers}
    last_of: dict[str, int] = {}
    for index, layer in enumerate(layers):
        if layer.block is not None:
            if layer.block in last_of and last_of[layer.block] != index - 1:
                raise ValueError(
                    f"layers.{index} ({layer.type} '{layer.name}').block: block "
                    f"'{layer.block}' ended at layers.{last_of[layer.block]}; list a block's "
                    "layers together"
                )
            last_of[layer.block] = index
    if layers[-1].block is not None:
        raise ValueError(
            f"layers.{len(layers) - 1} ({layers[-1].type} '{layers[-1].name}').block: the output "
            "layer learns from the output error itself; it belongs to no block"
        )
    position = {layer.name: index for index, layer in enumerate(layers)}
    for layer, inputs in zip(layers, wired, strict=True):
        for name in inputs:
            block = block_of.get(name)
            maker = position.get(name, -1)
            if block is None or block == layer.block or last_of[block] == maker:
                continue
            raise ValueError(
                f"layers.{maker} ({layers[maker].type} '{name}').block: its output is read by "
                f"'{layer.name}' outside block '{block}'; only a block's last layer (where DFA "
                "delivers the error) feeds other layers"
            )


def _check_input_count(layer: LayerSpec, where: str) -> None:
    count = len(layer.inputs or ())
    merge = isinstance(layer, AddLayer | ConcatLayer)
    if merge and count < 2:
        raise ValueError(f"{where}.inputs: {layer.type} needs two or more inputs (got {count})")
    if not merge and count != 1:
        raise ValueError(f"{where}.inputs: a {layer.type} layer takes one input (got {count})")
    if len(set(layer.inputs or ())) != count:
        raise ValueError(f"{where}.inputs: names an input twice")


def _check_every_output_used(network: NetworkSpec, wired: list[tuple[str, ...]]) -> None:
    used = {name for names in wired for name in names}
    for index, layer in enumerate(network.layers[:-1]):
        if layer.name not in used:
            raise ValueError(
                f"layers.{index} ({layer.type} '{layer.name}'): its output is an unused "
                "branch (no layer takes it; only the last layer's output reaches the loss)"
            )
    if NETWORK_INPUT not in used:
        raise ValueError("layers: no layer takes the network's input")
