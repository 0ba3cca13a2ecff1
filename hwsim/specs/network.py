"""Network files (`kind: network`): layers, shapes and training defaults.  No numpy here."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from hwsim.specs.common import FrozenModel, Name, NotBool, finite_range
from hwsim.specs.token_shapes import patch_dimensions, token_layer_shape
from hwsim.specs.vocab import Padding as Padding
from hwsim.specs.vocab import conv_output_size as conv_output_size
from hwsim.specs.vocab import same_padding as same_padding

NETWORK_SCHEMA_VERSION = 1
MAX_LAYERS = 50_000  # a trace header carries up to ~500 bytes per layer: 25 MB at the cap


# Whole numbers 1…most (true/false are not numbers), in ranges wide enough for any network a
# numpy trainer or a shape-only trace handles: Units for the neurons of a dense layer and the
# elements of one input dimension, Window for kernel, pool and stride sizes.
Units = Annotated[int, Field(ge=1, le=2**24), NotBool]
Channels = Annotated[int, Field(ge=1, le=2**16), NotBool]
MAX_WINDOW = 2**10
Window = Annotated[int, Field(ge=1, le=MAX_WINDOW), NotBool]


def _window_pair(value: object) -> object:
    """A window, stride or dilation: one whole number 1…1024 (the same along both axes) or
    [height, width] of two; anything else one message, not one per member of the union."""
    numbers = list(value) if isinstance(value, list | tuple) else [value]
    if (isinstance(value, list | tuple) and len(numbers) != 2) or not all(
        isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= MAX_WINDOW
        for number in numbers
    ):
        raise ValueError(
            f"must be a whole number from 1 to {MAX_WINDOW} or [height, width] of two "
            f"(got {value!r})"
        )
    return value


WindowPair = Annotated[Window | tuple[Window, Window], BeforeValidator(_window_pair)]
"""An int (square) or [height, width]; `pair` reads either as (height, width)."""


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a window, stride or dilation: one number is the same along both."""
    return patch_dimensions(value)


Fraction = Annotated[float, finite_range(ge=0.0, lt=1.0), NotBool]


class Activation(StrEnum):
    LINEAR = "linear"
    RELU = "relu"
    RELU6 = "relu6"  # min(max(h, 0), 6): MobileNet's
    TANH = "tanh"
    SIGMOID = "sigmoid"
    GELU = "gelu"  # the tanh approximation (timm's ViT uses the exact erf form)


class OptimizerName(StrEnum):
    SGD = "sgd"
    ADAM = "adam"


class FeedbackSharing(StrEnum):
    """How DFA and SSDFA draw the feedback matrices of a network's taps (`training.feedback`).

    `tap`: each tap its own random [C, N] B (the paper's rule; every chain's).
    `stream`: one random [C, width] B per tap width, applied at every position of a tap
    (token or pixel) and shared by the taps of that width — the residual stream's — and the
    output layer starts at zero (under the default initialisation)."""

    TAP = "tap"
    STREAM = "stream"


NETWORK_INPUT = "input"  # what `inputs` calls the network's input
MAX_INPUTS = 64


class Wired(FrozenModel):
    """A layer's place in the graph: the outputs it takes (default: the layer before's)."""

    inputs: list[Name] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_INPUTS,
        description="names of the layers whose outputs this layer takes ('input': the "
        "network's input); default: the layer before",
    )
    block: Name | None = Field(
        default=None,
        description="the block this layer belongs to: DFA and SSDFA deliver the output error "
        "to each block's last layer, and BP carries it inside the block over the block's own "
        "weights; default: no named block",
    )


class DenseLayer(Wired):
    type: Literal["dense"]
    name: Name
    units: Units
    activation: Activation = Activation.LINEAR
    use_bias: bool = True
    trainable: bool = True


class Conv2DLayer(Wired):
    type: Literal["conv2d"]
    name: Name
    filters: Channels
    kernel_size: WindowPair = Field(
        description="the window: an int (square) or [height, width] (e.g. [1, 7])"
    )
    stride: WindowPair = Field(
        default=1, description="the step between windows: an int or [height, width]"
    )
    dilation: WindowPair = Field(
        default=1,
        description="the step between a window's taps: an int or [height, width]; the "
        "window then spans (kernel - 1) · dilation + 1 inputs, its MACs and weights unchanged",
    )
    padding: Padding = Padding.SAME
    activation: Activation = Activation.LINEAR
    use_bias: bool = True
    trainable: bool = True
    groups: Channels = Field(
        default=1,
        description="input and output channels split into this many independent "
        "convolutions (must divide both; the input channels: depthwise)",
    )

    @property
    def kernel(self) -> tuple[int, int]:
        """(height, width) of the window."""
        return pair(self.kernel_size)

    @property
    def strides(self) -> tuple[int, int]:
        """(height, width) of the step between windows."""
        return pair(self.stride)

    @property
    def dilations(self) -> tuple[int, int]:
        """(height, width) of the step between a window's taps."""
        return pair(self.dilation)

    @property
    def reach(self) -> tuple[int, int]:
        """(height, width) of the inputs a window spans: (kernel − 1) · dilation + 1."""
        return reach(self.kernel, self.dilations)


def reach(kernel: tuple[int, int], dilations: tuple[int, int]) -> tuple[int, int]:
    """The inputs a dilated window spans along each axis."""
    return (
        (kernel[0] - 1) * dilations[0] + 1,
        (kernel[1] - 1) * dilations[1] + 1,
    )


class PoolWindow(Wired):
    """A pool's window: `pool_size` (an int: square, or [height, width]), moved by `stride`
    (default: the window)."""

    pool_size: WindowPair = Field(description="the window: an int (square) or [height, width]")
    stride: WindowPair | None = Field(
        default=None,
        description="the step between windows: an int or [height, width]; default: the window",
    )
    padding: Padding = Padding.VALID

    @property
    def window(self) -> tuple[int, int]:
        """(height, width) of the window."""
        return pair(self.pool_size)

    @property
    def strides(self) -> tuple[int, int]:
        """(height, width) of the step between windows (the window's own by default)."""
        return pair(self.stride) if self.stride is not None else self.window


class MaxPoolLayer(PoolWindow):
    type: Literal["max_pool"]
    name: Name


class AvgPoolLayer(PoolWindow):
    """The mean of each window; SAME padding averages the in-bounds values only."""

    type: Literal["avg_pool"]
    name: Name


class GlobalAvgPoolLayer(Wired):
    """The mean of each channel over the whole map: [height, width, channels] → [channels]."""

    type: Literal["global_avg_pool"]
    name: Name


class BatchNormLayer(Wired):
    """Each channel (the last axis) normalized by its batch mean and variance in training
    (running statistics in inference), then scaled and shifted by two trained vectors."""

    type: Literal["batch_norm"]
    name: Name
    epsilon: Annotated[float, finite_range(gt=0, le=1), NotBool] = 1e-5
    momentum: Annotated[float, finite_range(gt=0, le=1), NotBool] = Field(
        default=0.1,
        description="running = (1 - momentum) · running + momentum · batch statistic "
        "(PyTorch's convention)",
    )
    trainable: bool = True


class FlattenLayer(Wired):
    type: Literal["flatten"]
    name: Name


class DropoutLayer(Wired):
    type: Literal["dropout"]
    name: Name
    rate: Fraction


class ActivationLayer(Wired):
    type: Literal["activation"]
    name: Name
    function: Activation


class ScaleLayer(Wired):
    """x · factor, element by element (an ONNX Mul or Div by a constant scalar): one vector op
    per element forward and one per element of the error, each an op of its own."""

    type: Literal["scale"]
    name: Name
    factor: Annotated[float, finite_range(ge=-1e30, le=1e30), NotBool]

    @field_validator("factor")
    @classmethod
    def _not_zero(cls, factor: float) -> float:
        if factor == 0:
            raise ValueError("a scale by 0 sends no error back (got 0)")
        return factor


class AddLayer(Wired):
    """The element-wise sum of two or more outputs of one shape (a residual connection)."""

    type: Literal["add"]
    name: Name


class ConcatLayer(Wired):
    """Two or more outputs joined along their last axis (channels or features); the other
    dimensions must agree."""

    type: Literal["concat"]
    name: Name


class PatchEmbedLayer(Wired):
    """A map cut into non-overlapping patches, each projected to `width` features (a
    convolution whose stride is its kernel): [height, width, channels] → [tokens, width]."""

    type: Literal["patch_embed"]
    name: Name
    width: Units
    patch_size: WindowPair = Field(
        description="the patch's height and width (one number: a square patch); must divide the map"
    )
    class_token: bool = Field(default=False, description="prepend a trained [width] token")
    position_embedding: bool = Field(
        default=False, description="add a trained [tokens, width] position embedding"
    )
    trainable: bool = True


class LayerNormLayer(Wired):
    """Each token (each example of a flat input) normalized over its last axis, then scaled
    and shifted by two trained vectors of that axis's length."""

    type: Literal["layer_norm"]
    name: Name
    epsilon: Annotated[float, finite_range(gt=0, le=1), NotBool] = 1e-6
    trainable: bool = True


class AttentionLayer(Wired):
    """Multi-head self-attention over a token sequence [tokens, width] (timm's layout: one
    fused query/key/value projection [width, 3·width] and an output projection, with biases)."""

    type: Literal["attention"]
    name: Name
    heads: Units
    trainable: bool = True


class TokenPoolMode(StrEnum):
    MEAN = "mean"
    CLASS = "class"


class TokenPoolLayer(Wired):
    """A token sequence [tokens, width] to one [width] vector: the tokens' mean, or the first
    (class) token."""

    type: Literal["token_pool"]
    name: Name
    mode: TokenPoolMode


LayerSpec = Annotated[
    DenseLayer
    | Conv2DLayer
    | MaxPoolLayer
    | AvgPoolLayer
    | GlobalAvgPoolLayer
    | BatchNormLayer
    | FlattenLayer
    | DropoutLayer
    | ActivationLayer
    | ScaleLayer
    | AddLayer
    | ConcatLayer
    | PatchEmbedLayer
    | LayerNormLayer
    | AttentionLayer
    | TokenPoolLayer,
    Field(discriminator="type"),
]
TOKEN_LAYERS = (PatchEmbedLayer, LayerNormLayer, AttentionLayer, TokenPoolLayer)
MERGE_LAYER_TYPES = ("add", "concat")  # the kinds that take several inputs
WEIGHT_LAYER_TYPES = ("dense", "conv2d", "patch_embed", "attention")


class TrainingDefaults(FrozenModel):
    """What `hwsim train` uses when a flag is not given (the authors' settings where known)."""

    optimizer: OptimizerName = OptimizerName.ADAM
    learning_rate: Annotated[float, finite_range(gt=0, le=1e3), NotBool] = 1e-3
    momentum: Fraction = 0.9
    adam_beta1: Fraction = 0.9
    adam_beta2: Fraction = 0.999
    adam_epsilon: Annotated[float, finite_range(gt=0, le=1), NotBool] = 1e-8
    batch_size: Annotated[int, Field(ge=1, le=2**20), NotBool] = 32
    epochs: Annotated[int, Field(ge=1, le=10**6), NotBool] = 10
    nonzeros_per_neuron: Annotated[int, Field(ge=1, le=2**20), NotBool] = 1
    feedback: FeedbackSharing = FeedbackSharing.TAP


class NetworkSpec(FrozenModel):
    schema_version: Literal[1]
    kind: Literal["network"]
    name: Name
    description: str = ""
    dataset: str
    input_shape: tuple[Units, ...]
    classes: Annotated[int, Field(ge=2, le=2**20), NotBool]
    layers: list[LayerSpec] = Field(min_length=1, max_length=MAX_LAYERS)
    training: TrainingDefaults = TrainingDefaults()

    @model_validator(mode="after")
    def _check(self) -> NetworkSpec:
        if not 1 <= len(self.input_shape) <= 3:
            raise ValueError(
                "input_shape must be [features], [tokens, width] or [height, width, channels] "
                f"(got {list(self.input_shape)})"
            )
        for index, layer in enumerate(self.layers):
            if layer.name == NETWORK_INPUT:
                raise ValueError(
                    f"layers.{index}.name: '{NETWORK_INPUT}' names the network's input "
                    "(in `inputs`); call the layer something else"
                )
        counts = Counter(layer.name for layer in self.layers)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"layer names must be unique; repeated: {', '.join(duplicates)}")
        last = self.layers[-1]
        if not isinstance(last, DenseLayer) or last.activation != Activation.LINEAR:
            raise ValueError(
                "the last layer must be a dense layer with linear activation "
                "(softmax cross-entropy is applied to its output)"
            )
        if last.units != self.classes:
            raise ValueError(f"the last layer has {last.units} units but classes is {self.classes}")
        if not last.trainable:
            raise ValueError(f"the output layer '{last.name}' must be trainable")
        infer_shapes(self)  # raises ValueError naming the layer whose input does not fit
        return self


@dataclass(frozen=True)
class LayerShape:
    """What a layer takes and gives, per example, and how many numbers it learns."""

    name: str
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    trainable: bool
    weights: int
    parameters: int
    inputs: tuple[str, ...] = ()  # the layers (or NETWORK_INPUT) whose outputs it takes
    input_shapes: tuple[tuple[int, ...], ...] = ()  # each input's shape (input_shape: the first's)
    heads: int | None = None  # an attention layer's

    @property
    def output_elements(self) -> int:
        return math.prod(self.output_shape)


def _map_input(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(
            f"{where}: needs a [height, width, channels] input but gets shape {list(shape)}"
        )
    return shape[0], shape[1], shape[2]


def _dense_shape(layer: DenseLayer, shape: tuple[int, ...], where: str) -> tuple:
    if len(shape) == 2:  # a token sequence: the same dense layer applied to every token
        weights = shape[1] * layer.units
        return (shape[0], layer.units), weights, weights + (layer.units if layer.use_bias else 0)
    if len(shape) != 1:
        raise ValueError(
            f"{where}: needs a flat input but gets shape {list(shape)}; "
            "add a flatten layer before it"
        )
    weights = shape[0] * layer.units
    return (layer.units,), weights, weights + (layer.units if layer.use_bias else 0)


def _hw_text(height: int, width: int) -> str:
    return f"{height}" if height == width else f"{height}x{width}"


def _conv_shape(layer: Conv2DLayer, shape: tuple[int, ...], where: str) -> tuple:
    height, width, channels = _map_input(shape, where)
    (kernel_h, kernel_w), groups = layer.kernel, layer.groups
    if channels % groups or layer.filters % groups:
        raise ValueError(
            f"{where}.groups: must divide the input channels ({channels}) and filters "
            f"({layer.filters}) (got {groups})"
        )
    reach_h, reach_w = layer.reach
    if layer.padding == Padding.VALID and (reach_h > height or reach_w > width):
        kernel = f"kernel {_hw_text(kernel_h, kernel_w)}"
        if layer.dilations != (1, 1):
            dilated = _hw_text(*layer.dilations)
            kernel = f"{kernel} dilated by {dilated} (spanning {_hw_text(reach_h, reach_w)})"
        raise ValueError(
            f"{where}: {kernel} is larger than its {height}x{width} input with valid padding"
        )
    stride_h, stride_w = layer.strides
    out = (
        conv_output_size(height, reach_h, stride_h, layer.padding),
        conv_output_size(width, reach_w, stride_w, layer.padding),
        layer.filters,
    )
    weights = kernel_h * kernel_w * (channels // groups) * layer.filters
    return out, weights, weights + (layer.filters if layer.use_bias else 0)


def _pool_shape(layer: MaxPoolLayer | AvgPoolLayer, shape: tuple[int, ...], where: str) -> tuple:
    height, width, channels = _map_input(shape, where)
    (pool_h, pool_w), (stride_h, stride_w) = layer.window, layer.strides
    if layer.padding == Padding.VALID and (pool_h > height or pool_w > width):
        raise ValueError(
            f"{where}: pool {_hw_text(pool_h, pool_w)} is larger than its "
            f"{height}x{width} input with valid padding"
        )
    out = (
        conv_output_size(height, pool_h, stride_h, layer.padding),
        conv_output_size(width, pool_w, stride_w, layer.padding),
        channels,
    )
    return out, 0, 0


def _add_shape(shapes: list[tuple[int, ...]], inputs: tuple[str, ...], where: str) -> tuple:
    if any(shape != shapes[0] for shape in shapes):
        got = ", ".join(f"'{n}' {list(shape)}" for n, shape in zip(inputs, shapes, strict=True))
        raise ValueError(f"{where}.inputs: an add needs inputs of one shape (got {got})")
    return shapes[0], 0, 0


def _concat_shape(shapes: list[tuple[int, ...]], inputs: tuple[str, ...], where: str) -> tuple:
    if any(shape[:-1] != shapes[0][:-1] for shape in shapes):
        got = ", ".join(f"'{n}' {list(shape)}" for n, shape in zip(inputs, shapes, strict=True))
        raise ValueError(
            f"{where}.inputs: a concat joins inputs along their last axis, so the others must "
            f"agree (got {got})"
        )
    return (*shapes[0][:-1], sum(shape[-1] for shape in shapes)), 0, 0


def infer_shapes(network: NetworkSpec) -> list[LayerShape]:
    """Per-layer shapes and parameter counts along every edge of the graph; ValueError names
    the first layer (and field) that does not fit."""
    from hwsim.specs.network_graph import layer_inputs  # it reads this module's layer kinds

    outputs = {NETWORK_INPUT: tuple(network.input_shape)}
    shapes: list[LayerShape] = []
    for index, (layer, inputs) in enumerate(
        zip(network.layers, layer_inputs(network), strict=True)
    ):
        where = f"layers.{index} ({layer.type} '{layer.name}')"
        taken = [outputs[name] for name in inputs]
        shape = taken[0]
        out: tuple[int, ...]
        trainable = False
        if isinstance(layer, DenseLayer):
            out, weights, parameters = _dense_shape(layer, shape, where)
            trainable = layer.trainable
        elif isinstance(layer, Conv2DLayer):
            out, weights, parameters = _conv_shape(layer, shape, where)
            trainable = layer.trainable
        elif isinstance(layer, MaxPoolLayer | AvgPoolLayer):
            out, weights, parameters = _pool_shape(layer, shape, where)
        elif isinstance(layer, GlobalAvgPoolLayer):
            out, weights, parameters = (_map_input(shape, where)[2],), 0, 0
        elif isinstance(layer, BatchNormLayer):  # a scale and a shift per channel
            out, weights, parameters = shape, 0, 2 * shape[-1]
            trainable = layer.trainable
        elif isinstance(layer, AddLayer):
            out, weights, parameters = _add_shape(taken, inputs, where)
        elif isinstance(layer, ConcatLayer):
            out, weights, parameters = _concat_shape(taken, inputs, where)
        elif isinstance(layer, TOKEN_LAYERS):
            out, weights, parameters = token_layer_shape(layer, shape, where)
            trainable = not isinstance(layer, TokenPoolLayer) and layer.trainable
        else:  # flatten makes one dimension; dropout, activation and scale keep the shape
            out = (math.prod(shape),) if isinstance(layer, FlattenLayer) else shape
            weights = parameters = 0
        shapes.append(
            LayerShape(
                layer.name,
                layer.type,
                shape,
                out,
                trainable,
                weights,
                parameters,
                inputs,
                tuple(taken),
                layer.heads if isinstance(layer, AttentionLayer) else None,
            )
        )
        outputs[layer.name] = out
    return shapes


# The layer kinds that learn (they have `trainable`): the ones `--freeze` can name.
FREEZABLE = ("dense", "conv2d", "batch_norm", "layer_norm", "attention", "patch_embed")


def freeze_problem(kinds: Mapping[str, str], name: str) -> str | None:
    """Why `--freeze NAME` cannot freeze a layer of a network whose layers' kinds are `kinds`
    (name -> type), or None: the one check `hwsim import`, `train` and `trace` share."""
    import difflib

    kind = kinds.get(name)
    if kind is None:
        near = difflib.get_close_matches(name, list(kinds), n=1)
        return "no such layer" + (f"; did you mean '{near[0]}'?" if near else "")
    if kind not in FREEZABLE:
        return f"a {kind} layer learns nothing"
    return None


def frozen(network: NetworkSpec, names: tuple[str, ...] | list[str], where: str) -> NetworkSpec:
    """The network with `trainable: false` on the layers named (the paper's transfer setting:
    pre-trained layers kept fixed); ValueError names `where` (the flag) and the layer."""
    kinds = {layer.name: layer.type for layer in network.layers}
    for name in names:
        problem = freeze_problem(kinds, name)
        if problem is not None:
            raise ValueError(f"{where} {name}: {problem}")
    if network.layers[-1].name in names:
        raise ValueError(
            f"{where} {network.layers[-1].name}: the output layer must be trainable (the "
            "error starts at it)"
        )
    chosen = set(names)
    layers = [
        layer.model_copy(update={"trainable": False}) if layer.name in chosen else layer
        for layer in network.layers
    ]
    return network.model_copy(update={"layers": layers})
