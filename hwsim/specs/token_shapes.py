"""Shapes and parameter counts of the token layers (patch_embed, layer_norm, attention,
token_pool): what they take and give per example, and a ValueError naming the layer and field
when the input does not fit.  A token sequence is [tokens, width]."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwsim.specs.network import (
        AttentionLayer,
        LayerNormLayer,
        PatchEmbedLayer,
        TokenPoolLayer,
    )

Shape = tuple[int, ...]


def patch_dimensions(patch_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a patch: one number is a square."""
    if isinstance(patch_size, int):
        return patch_size, patch_size
    return patch_size[0], patch_size[1]


def _tokens_input(shape: Shape, where: str, what: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(
            f"{where}: {what} needs a [tokens, width] input but gets shape {list(shape)}"
            "; make one with a patch_embed layer"
        )
    return shape[0], shape[1]


def _patch_embed(layer: PatchEmbedLayer, shape: Shape, where: str) -> tuple:
    if len(shape) != 3:
        raise ValueError(
            f"{where}: needs a [height, width, channels] input but gets shape {list(shape)}"
        )
    height, width, channels = shape
    patch_height, patch_width = patch_dimensions(layer.patch_size)
    if height % patch_height or width % patch_width:
        raise ValueError(
            f"{where}.patch_size: must divide the {height}x{width} map (got "
            f"{patch_height}x{patch_width})"
        )
    patches = (height // patch_height) * (width // patch_width)
    tokens = patches + (1 if layer.class_token else 0)
    weights = patch_height * patch_width * channels * layer.width
    parameters = weights + layer.width  # the bias
    parameters += layer.width if layer.class_token else 0
    parameters += tokens * layer.width if layer.position_embedding else 0
    return (tokens, layer.width), weights, parameters


def _attention(layer: AttentionLayer, shape: Shape, where: str) -> tuple:
    _, width = _tokens_input(shape, where, "attention")
    if width % layer.heads:
        raise ValueError(f"{where}.heads: must divide the width ({width}) (got {layer.heads})")
    weights = 4 * width * width  # query, key, value [width, 3·width] and output [width, width]
    return shape, weights, weights + 4 * width


def token_layer_shape(
    layer: PatchEmbedLayer | LayerNormLayer | AttentionLayer | TokenPoolLayer,
    shape: Shape,
    where: str,
) -> tuple[Shape, int, int]:
    """(output shape, weights, parameters) of a token layer on an input of `shape`."""
    if layer.type == "patch_embed":
        return _patch_embed(layer, shape, where)
    if layer.type == "attention":
        return _attention(layer, shape, where)
    if layer.type == "token_pool":
        _, width = _tokens_input(shape, where, "token_pool")
        return (width,), 0, 0
    return shape, 0, 2 * shape[-1]  # layer_norm: a scale and a shift per feature


def layer_example_sizes(
    layer_type: str, input_shape: Shape, output_shape: Shape, heads: int | None
) -> set[int]:
    """The per-example sizes of the activations and errors a layer's records read and write:
    its input and output, and inside a token layer its own tensors (a patch_embed's patches
    before the class token; a layer_norm's two statistics a token; an attention's queries,
    keys and values together and its heads' [tokens, tokens] scores)."""
    sizes = {math.prod(input_shape), math.prod(output_shape)}
    if layer_type == "patch_embed":
        sizes.add(math.prod(output_shape) - output_shape[-1])
    elif layer_type == "layer_norm":
        sizes.add(2 * math.prod(output_shape[:-1]))
    elif layer_type == "attention" and heads is not None:
        tokens, width = output_shape
        sizes.update((3 * tokens * width, heads * tokens * tokens))
    return sizes
