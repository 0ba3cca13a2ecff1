"""Token patterns: multi-head self-attention and a patch embedding, as PyTorch and timm export
them (the shape arithmetic between the nodes already folded to constants)."""

from __future__ import annotations

from hwsim.errors import SpecError
from hwsim.io.onnx.graph import Node
from hwsim.io.onnx.patterns import Index, Match, hwsim_node, match_dense

# Nodes that only re-view, split or scale the query, key and value on their way to the
# attention matmuls.
_VIEWS = frozenset(
    {
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Split",
        "Gather",
        "Slice",
        "Identity",
        "Mul",
        "Div",
    }
)


def _views_back(index: Index, tensor: str) -> tuple[str, list[Node]]:
    """Walk back from `tensor` over re-viewing nodes to the tensor a projection made."""
    visited: list[Node] = []
    while True:
        node = index.producer.get(tensor)
        if node is None or node.op not in _VIEWS:
            return tensor, visited
        live = index.activation_inputs(node)
        if len(live) != 1 or (node.op in ("Mul", "Div") and index.scalar(node.inputs[1]) is None):
            return tensor, visited
        visited.append(node)
        tensor = live[0]


def _projection(index: Index, tensor: str) -> tuple[str, Node, Node | None] | None:
    """(input, MatMul, bias Add) of the projection that made `tensor`, or None."""
    add = index.made_by(tensor, "Add")
    matmul = index.made_by(tensor, "MatMul")
    if add is not None:
        made = [index.made_by(name, "MatMul") for name in add.inputs]
        matmul = next((node for node in made if node is not None), None)
        if matmul is None:
            return None
    if matmul is None or index.const(matmul.inputs[1]) is None:
        return None
    return matmul.inputs[0], matmul, add


def _softmax_ends(index: Index, softmax: Node) -> tuple[Node, Node, list[Node]] | None:
    """The Q·Kᵀ and A·V matmuls around a softmax, with the scaling and dropout between."""
    between: list[Node] = []
    node = index.producer.get(softmax.inputs[0])
    while node is not None and node.op in ("Mul", "Div") and index.scalar(node.inputs[1]):
        between.append(node)
        node = index.producer.get(node.inputs[0])
    if node is None or node.op != "MatMul" or len(index.activation_inputs(node)) != 2:
        return None
    scores = node
    tensor = softmax.outputs[0]
    after = index.sole(tensor)
    while after is not None and after.op in ("Dropout", "Identity"):
        between.append(after)
        tensor = after.outputs[0]
        after = index.sole(tensor)
    if after is None or after.op != "MatMul" or after.inputs[0] != tensor:
        return None
    if len(index.activation_inputs(after)) != 2:
        return None
    return scores, after, between


def _out_projection(index: Index, tensor: str) -> tuple[list[Node], str, bool] | None:
    """The output projection after A·V (a dense layer: a MatMul and its bias Add, or a Gemm
    on the tokens flattened, as nn.MultiheadAttention exports it), with the re-views around
    it."""
    visited: list[Node] = []
    node = index.sole(tensor)
    while node is not None and node.op in ("Transpose", "Reshape"):
        visited.append(node)
        node = index.sole(node.outputs[0])
    dense = match_dense(index, node) if node is not None else None
    if dense is None:
        return None
    visited += dense.consumed
    output = dense.node.outputs[0]
    after = index.sole(output)  # back to [batch, tokens, width]
    while after is not None and after.op in ("Transpose", "Reshape"):
        visited.append(after)
        output = after.outputs[0]
        after = index.sole(output)
    return visited, output, bool(dense.node.attrs["use_bias"])


def _batch_first(index: Index, tensor: str) -> tuple[str, list[Node]]:
    """The projections' input before a Transpose that puts the tokens first (nn.MultiheadAttention
    works on [tokens, batch, width])."""
    node = index.made_by(tensor, "Transpose")
    if node is not None and list(node.attrs.get("perm", [])) == [1, 0, 2]:
        return node.inputs[0], [node]
    return tensor, []


def match_attention(index: Index, node: Node) -> Match | None:
    """softmax(Q·Kᵀ·scale)·V with its Q, K, V projections (fused or three) from one input and
    the output projection after it: hwsim's `attention`."""
    if node.op != "Softmax":
        return None
    ends = _softmax_ends(index, node)
    if ends is None:
        return None
    scores, mixed, between = ends
    consumed = [scores, node, mixed, *between]
    sources: dict[str, tuple[str, Node, Node | None]] = {}
    for tensor in (scores.inputs[0], scores.inputs[1], mixed.inputs[1]):
        made, views = _views_back(index, tensor)
        projection = _projection(index, made)
        if projection is None:
            return None
        sources[made] = projection
        consumed += views
    inputs = {source[0] for source in sources.values()}
    out = _out_projection(index, mixed.outputs[0])
    if len(inputs) != 1 or len(sources) not in (1, 3) or out is None:
        return None
    after, output, out_bias = out
    for _, matmul, add in sources.values():
        consumed += [matmul, add] if add else [matmul]
    consumed += after
    x, swapped = _batch_first(index, next(iter(inputs)))
    consumed += swapped
    if index.graph.shapes.get(output) != index.graph.shapes.get(x):
        return None
    return _attention_node(index, consumed, x, output, scores, sources, out_bias)


def _attention_node(index, consumed, x, output, scores, sources, out_bias) -> Match:
    path = index.graph.path
    width = index.graph.shape(x, scores)[-1]
    head_width = index.graph.shape(scores.inputs[0], scores)[-1]
    label = f"{path}: node {scores.label}"
    if len(index.graph.shape(x, scores)) != 3:
        raise SpecError(f"{label}: attention needs a [batch, tokens, width] input")
    if width % head_width:
        raise SpecError(f"{label}: query width {head_width} does not divide the model's {width}")
    missing = [] if out_bias else ["output"]
    if any(add is None for _, _, add in sources.values()):
        missing.insert(0, "query/key/value")
    extra = (0 if out_bias else width) + (3 * width if "query/key/value" in missing else 0)
    note = (
        f"the file's {' and '.join(missing)} projection has no bias (an exporter drops a zero "
        f"one); hwsim's attention has them: {extra} more parameters than the file"
        if missing
        else ""
    )
    projected = sum(int(index.const(m.inputs[1]).shape[1]) for _, m, _ in sources.values())
    if projected != 3 * width:
        raise SpecError(
            f"{label}: the query/key/value projections give {projected} features; hwsim's "
            f"self-attention projects the {width}-wide input to 3 × {width}"
        )
    return hwsim_node("attention", consumed, [x], output, heads=width // head_width, note=note)


# --- patch embedding ----------------------------------------------------------------------------


def match_patch_embed(index: Index, node: Node) -> Match | None:
    """Conv(kernel = stride, no padding) → flatten the map → tokens, then optionally a class
    token concatenated in front and a position embedding added."""
    if node.op != "Conv" or node.attrs.get("group", 1) != 1:
        return None
    kernel = list(node.attrs.get("kernel_shape", []))
    if not kernel or list(node.attrs.get("strides", [1, 1])) != kernel:
        return None
    if any(node.attrs.get("pads", [0])):
        return None
    reshape = index.sole(node.outputs[0])
    if reshape is None or reshape.op not in ("Reshape", "Flatten"):
        return None
    transpose = index.sole(reshape.outputs[0])
    if (
        transpose is None
        or transpose.op != "Transpose"
        or list(transpose.attrs["perm"]) != [0, 2, 1]
    ):
        return None
    dilations = list(node.attrs.get("dilations", [1]))
    if any(d != 1 for d in dilations):
        raise SpecError(
            f"{index.graph.path}: node {node.label}: dilations {dilations}: a patch embedding "
            "(Conv → Reshape → Transpose) cuts the map into whole patches; hwsim's patch_embed "
            "is not dilated"
        )
    consumed, tensor = [node, reshape, transpose], transpose.outputs[0]
    class_token = position = False
    after = index.sole(tensor)
    if after is not None and after.op == "Concat" and after.attrs.get("axis") == 1:
        if after.inputs[1:] != [tensor] or index.const(after.inputs[0]) is None:
            return None
        consumed, tensor, class_token = [*consumed, after], after.outputs[0], True
        after = index.sole(tensor)
    if after is not None and after.op == "Add":
        other = index.const(after.inputs[1] if after.inputs[0] == tensor else after.inputs[0])
        if other is not None and other.shape[-2:] == index.graph.shapes.get(tensor, ())[-2:]:
            consumed, tensor, position = [*consumed, after], after.outputs[0], True
    width = int(index.graph.shape(tensor, node)[-1])
    if len(node.inputs) < 3 or not node.inputs[2]:
        raise SpecError(
            f"{index.graph.path}: node {node.label}: a patch embedding without a bias; hwsim's "
            "patch_embed projects with a weight and a bias"
        )
    size = kernel[0] if kernel[0] == kernel[1] else kernel
    return hwsim_node(
        "patch_embed",
        consumed,
        [node.inputs[0]],
        tensor,
        width=width,
        patch_size=size,
        class_token=class_token,
        position_embedding=position,
    )
