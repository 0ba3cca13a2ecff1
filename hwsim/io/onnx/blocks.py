"""`hwsim import --blocks residual`: DFA blocks from an imported graph's structure.

A network file's `block: NAME` says where DFA and SSDFA deliver the error (network-format.md,
*Blocks*). An import writes none by default, so every trained layer is a tap. With `residual`:

- each residual block is one block: the layers between two cuts (a layer whose output is the
  only tensor alive there, every path from the input passing through it) when a merge (`add`,
  `concat`) lies between them, with the activations and dropout that alone follow it;
- an attention's residual block and the MLP's residual block after it are one block (a
  transformer layer, as Launay et al. delivered the error to each);
- an inverted residual block without a skip (MobileNetV2's where the stride is 2 or the
  channels change; Sandler et al. 2018) is one block: a linear bottleneck (a conv and its batch
  norm that no activation reads) closes it, and it reaches back over the conv + batch norm +
  activation groups right before it, each alone feeding the next, whose conv is pointwise
  (1x1) or grouped (depthwise): the expansion and the depthwise conv. A full conv (the stem)
  stops it, as does the end of a block before it; with a skip the residual rule above holds;
- any other weight layer followed by its batch norm is one block with it and the activations,
  pools, dropout and flatten that alone follow (conv, batch norm, ReLU: one module, one tap).

Named after the layers' common name prefix (`layer1_0_conv1` … `layer1_0_relu`: `layer1_0`).
"""

from __future__ import annotations

from hwsim.io.onnx.convert import Converted, Layer

MERGES = ("add", "concat")
WEIGHTS = ("conv2d", "dense", "patch_embed", "attention")
FOLLOWERS = ("activation", "dropout", "max_pool", "avg_pool", "flatten")


def _inputs(layers: list[Layer]) -> list[list[str]]:
    wired, previous = [], "input"
    for layer in layers:
        wired.append(list(layer.fields.get("inputs", [previous])))
        previous = layer.fields["name"]
    return wired


def _readers(layers: list[Layer]) -> dict[str, list[int]]:
    readers: dict[str, list[int]] = {}
    for index, inputs in enumerate(_inputs(layers)):
        for name in inputs:
            readers.setdefault(name, []).append(index)
    return readers


def _cuts(layers: list[Layer], readers: dict[str, list[int]]) -> list[int]:
    """Positions whose output is the only tensor alive after them."""
    last_read = {
        layer.fields["name"]: max(readers.get(layer.fields["name"], [0])) for layer in layers
    }
    alive: set[str] = set()
    cuts = []
    for index, layer in enumerate(layers):
        name = layer.fields["name"]
        alive = {n for n in alive if last_read[n] > index} | {name}
        if alive == {name}:
            cuts.append(index)
    return cuts


def _followed(layers: list[Layer], readers: dict, end: int, kinds: tuple[str, ...]) -> int:
    """`end` extended over the layers of `kinds` that alone read the one before."""
    while end + 1 < len(layers) - 1:
        follower = layers[end + 1]
        if follower.fields["type"] not in kinds:
            break
        if readers.get(layers[end].fields["name"], []) != [end + 1]:
            break
        end += 1
    return end


def _name(layers: list[Layer], taken: set[str]) -> str:
    split = [layer.fields["name"].split("_") for layer in layers]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    name = "_".join(common) or layers[0].fields["name"]
    unique, count = name, 1
    while unique in taken:
        count += 1
        unique = f"{name}_{count}"
    taken.add(unique)
    return unique


def _trains(group: list[Layer]) -> bool:
    return any(
        layer.fields["type"] in (*WEIGHTS, "batch_norm", "layer_norm")
        and layer.fields.get("trainable", True)
        for layer in group
    )


def _transformer_layers(layers: list[Layer], groups: list[tuple[int, int]]) -> list:
    """An attention's residual block and the MLP's right after it: one transformer layer."""
    merged: list[tuple[int, int]] = []
    for first, last in groups:
        if merged and merged[-1][1] + 1 == first:
            before = range(merged[-1][0], merged[-1][1] + 1)
            attends = any(layers[i].fields["type"] == "attention" for i in before)
            if attends and not any(
                layers[i].fields["type"] == "attention" for i in range(first, last + 1)
            ):
                merged[-1] = (merged[-1][0], last)
                continue
        merged.append((first, last))
    return merged


def _residual_groups(layers: list[Layer], readers: dict[str, list[int]]) -> list:
    """The residual blocks (between two cuts, a merge between) and transformer layers."""
    cuts = _cuts(layers, readers)
    groups: list[tuple[int, int]] = []
    for start, end in zip([-1, *cuts], cuts, strict=False):
        if any(layers[i].fields["type"] in MERGES for i in range(start + 1, end + 1)):
            groups.append((start + 1, _followed(layers, readers, end, ("activation", "dropout"))))
    return _transformer_layers(layers, groups)


def _conv_groups(layers: list[Layer], readers: dict[str, list[int]], inside: set[int]) -> list:
    """Each weight layer outside `inside` that alone feeds a batch norm, with the norm and the
    layers of FOLLOWERS that alone follow it."""
    groups: list[tuple[int, int]] = []
    for index, layer in enumerate(layers[:-2]):
        if index in inside or layer.fields["type"] not in WEIGHTS:
            continue
        after = layers[index + 1]
        if after.fields["type"] == "batch_norm" and readers.get(layer.fields["name"]) == [
            index + 1
        ]:
            last = _followed(layers, readers, index + 1, FOLLOWERS)
            if not inside & set(range(index, last + 1)):
                groups.append((index, last))
                inside |= set(range(index, last + 1))
    return groups


def _separable(layers: list[Layer], readers: dict, group: tuple[int, int], first: int) -> bool:
    """Whether `group` is a pointwise (1x1) or grouped (depthwise) conv + batch norm +
    activation whose output only the layer at `first` reads."""
    conv, last = layers[group[0]], layers[group[1]]
    return (
        group[1] + 1 == first
        and conv.fields["type"] == "conv2d"
        and (conv.fields.get("kernel_size") == 1 or conv.fields.get("groups", 1) > 1)
        and last.fields["type"] == "activation"
        and readers.get(last.fields["name"]) == [first]
    )


def _inverted_blocks(layers: list[Layer], readers: dict, groups: list) -> list:
    """A linear bottleneck (a conv + batch norm that no activation reads) with the pointwise
    and depthwise conv groups that alone feed it: one inverted residual block."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(groups):
        norm = layers[last]
        linear = norm.fields["type"] == "batch_norm" and not any(
            layers[i].fields["type"] == "activation" for i in readers.get(norm.fields["name"], [])
        )
        while linear and merged and _separable(layers, readers, merged[-1], first):
            first = merged.pop()[0]
        merged.append((first, last))
    return merged


def residual_blocks(converted: Converted) -> None:
    """Write `block:` on the residual blocks, inverted residual blocks and conv/batch-norm
    groups of `converted`."""
    layers = converted.layers
    readers = _readers(layers)
    groups = _residual_groups(layers, readers)
    inside = {i for first, last in groups for i in range(first, last + 1)}
    groups += _inverted_blocks(layers, readers, _conv_groups(layers, readers, inside))
    taken: set[str] = set()
    for first, last in sorted(groups):
        group = layers[first : last + 1]
        if not _trains(group):
            continue
        name = _name(group, taken)
        for layer in group:
            layer.fields["block"] = name
