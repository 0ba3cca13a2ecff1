"""A model built from a network spec, a chain or a graph: layers, weights, forward pass, loss."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from hwsim.errors import SpecError
from hwsim.specs.network import NETWORK_INPUT, Activation, NetworkSpec, infer_shapes
from hwsim.specs.trace import Phase, Role
from hwsim.train.layers import LAYER_CLASSES, Add, Layer, StepContext, WeightLayer
from hwsim.train.norm_layers import BatchNorm
from hwsim.train.ops import OpDesc, OperandDesc, elementwise


class WeightInit(StrEnum):
    AUTO = "auto"
    GLOROT = "glorot"
    ZEROS = "zeros"


@dataclass(frozen=True)
class ErrorSum:
    """Where a tensor fans out, the errors its readers send back (`parts`) sum to its error,
    recorded on the layer that made the tensor (whose output has `shape` per example)."""

    tensor: str
    error: str
    parts: tuple[str, ...]
    layer: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Block:
    """Layers DFA trains together: it delivers the error to the last, BP carries it inside."""

    name: str
    members: tuple[int, ...]  # layer indices, in order


@dataclass(frozen=True)
class FeedbackTarget:
    """A block, the layer after which DFA injects its error (`block_end`, the tap) and the
    trained weight layer its feedback matrix is named after (`layer_index`)."""

    layer_index: int
    block_end: int
    neurons: int
    members: tuple[int, ...] = ()


class Model:
    """Layers in order; the last one is the linear output layer fed to softmax cross-entropy."""

    def __init__(self, network: NetworkSpec, dtype: np.dtype, inference: bool = False) -> None:
        """`inference`: the layers describe their inference passes (a batch norm by its running
        statistics, dropout a re-view of its input)."""
        self.network = network
        self.dtype = np.dtype(dtype)
        self.inference = inference
        self.shapes = infer_shapes(network)
        self.layers: list[Layer] = []
        tensor_of = {NETWORK_INPUT: NETWORK_INPUT}  # a layer's name → its output tensor
        for spec, shape in zip(network.layers, self.shapes, strict=True):
            tensors = [tensor_of[name] for name in shape.inputs]
            layer = LAYER_CLASSES[spec.type](spec, shape, *tensors)
            if inference:
                layer.for_inference()
            self.layers.append(layer)
            tensor_of[layer.name] = layer.output_tensor
        self.is_chain = all(
            shape.inputs == (self.shapes[i - 1].name if i else NETWORK_INPUT,)
            for i, shape in enumerate(self.shapes)
        )
        self.blocks = self._find_blocks()
        self._block_of = {i: b for b, block in enumerate(self.blocks) for i in block.members}
        self._position = {layer.name: i for i, layer in enumerate(self.layers)}
        self._makers = {
            layer.output_tensor: i for i, layer in enumerate(self.layers) if not layer.aliases_input
        }
        self.local_errors: bool | None = None
        self.wire_errors(local=False)
        # Each rule's backward schedule (hwsim.train.rules.backward_schedule), once planned.
        self.schedules: dict[str, list[Any]] = {}

    # ------------------------------------------------------------- the errors' wiring
    def wire_errors(self, local: bool) -> None:
        """Name every layer's error tensors and say which inputs it sends an error to: BP's
        (`local` false: every edge carries an error) or DFA's (`local`: only the edges inside
        a block, where BP carries the error delivered to the block's last layer)."""
        if self.local_errors == local:
            return
        self.local_errors = local
        self.error_sums = self._name_errors(local)
        # tensor → whether its error is needed: a trained layer made it or lies below it (on
        # edges that carry errors).
        self.needs_error = {NETWORK_INPUT: False}
        for layer in self.layers:
            trained = layer.trains
            layer.sends_error = [
                self._carries(layer, tensor, local) and self.needs_error[tensor]
                for tensor in layer.input_tensors
            ]
            if not layer.aliases_input:
                self.needs_error[layer.output_tensor] = trained or any(layer.sends_error)

    def _carries(self, reader: Layer, tensor: str, local: bool) -> bool:
        """Whether the edge from `tensor` to `reader` carries an error back."""
        if not local:
            return True
        maker = self._makers.get(tensor)
        if maker is None:  # the network's input
            return False
        block = self._block_of.get(maker)
        return block is not None and block == self._block_of.get(self._position[reader.name])

    def _name_errors(self, local: bool) -> dict[str, ErrorSum]:
        """Name each layer's error tensors.  A tensor one layer reads has its error `T.error`
        from that layer; a tensor several read (a fan-out) gets one error from each,
        `T.error.LAYER`, and their sum, `T.error`: the sums are returned by tensor.  An add
        hands its output's error to its inputs as it is (it names no error of its own), and a
        re-view (flatten) reads and writes its input's.  Only edges that carry an error count
        (`local`: those inside a block)."""
        readers: dict[str, list[Layer]] = {}
        for layer in self.layers:
            if not layer.aliases_input:
                for tensor in layer.input_tensors:
                    if self._carries(layer, tensor, local):
                        readers.setdefault(tensor, []).append(layer)

        @functools.cache
        def error_of(tensor: str) -> str:
            """The error tensor that the layers making `tensor` read."""
            if len(readers.get(tensor, ())) == 1:
                return contribution(readers[tensor][0], tensor)
            return f"{tensor}.error"

        def contribution(reader: Layer, tensor: str) -> str:
            if tensor not in readers or reader not in readers[tensor]:
                return f"{tensor}.error"  # an edge that carries no error: never written
            if isinstance(reader, Add):
                return error_of(reader.output_tensor)
            return (
                f"{tensor}.error.{reader.name}" if len(readers[tensor]) > 1 else f"{tensor}.error"
            )

        for layer in self.layers:
            layer.output_error_tensor = error_of(layer.output_tensor)
            layer.input_error_tensors = (
                [layer.output_error_tensor]
                if layer.aliases_input
                else [contribution(layer, tensor) for tensor in layer.input_tensors]
            )
        makers = {layer.output_tensor: layer for layer in self.layers if not layer.aliases_input}
        return {
            tensor: ErrorSum(
                tensor,
                error_of(tensor),
                tuple(contribution(r, tensor) for r in layers),
                makers[tensor].name,
                makers[tensor].shape.output_shape,
            )
            for tensor, layers in readers.items()
            if len(layers) > 1 and tensor in makers
        }

    def _find_blocks(self) -> list[Block]:
        """The blocks DFA delivers errors to, in order: those the network file names, and for
        each trained hidden weight layer in none, the layer with the layers that follow it
        alone (one-input layers without weights that it alone feeds, up to a merge, a fan-out,
        a named block or the next weight layer: in a chain, the paper's blocks)."""
        named: dict[str, list[int]] = {}
        for index, layer in enumerate(self.layers):
            if layer.spec.block is not None:
                named.setdefault(layer.spec.block, []).append(index)
        readers: dict[str, list[int]] = {}
        for index, shape in enumerate(self.shapes):
            for name in shape.inputs:
                readers.setdefault(name, []).append(index)
        blocks = [Block(name, tuple(members)) for name, members in named.items()]
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers[:-1]):
            if not layer.trains or layer.spec.block is not None:
                continue
            members = [index]
            while len(after := readers.get(self.layers[members[-1]].name, [])) == 1:
                follower = self.layers[after[0]]
                if (
                    after[0] == last
                    or follower.has_params
                    or len(follower.input_tensors) > 1
                    or follower.spec.block is not None
                ):
                    break
                members.append(after[0])
            blocks.append(Block(layer.name, tuple(members)))
        return sorted(blocks, key=lambda block: block.members[0])

    def error_sum_op(self, error_sum: ErrorSum, batch: int) -> OpDesc:
        """The sum of a fanned-out tensor's errors: one vector op a value per extra part."""
        elements = batch * math.prod(error_sum.shape)
        parts = [OperandDesc(part, Role.ERROR, elements) for part in error_sum.parts]
        total = OperandDesc(error_sum.error, Role.ERROR, elements)
        layer, extra = error_sum.layer, len(parts) - 1
        return elementwise(layer, Phase.ERROR, "error_sum", parts, [total], elements, extra)

    @property
    def output_layer(self) -> WeightLayer:
        """The last layer, a dense one (NetworkSpec checks)."""
        layer = self.layers[-1]
        if not isinstance(layer, WeightLayer):
            raise TypeError(f"the output layer '{layer.name}' is not a weight layer")
        return layer

    def weight_layer_indices(self) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if layer.has_weights]

    def trainable_layers(self) -> list[Layer]:
        """The layers the optimizer updates (weight layers and batch norms that train)."""
        return [layer for layer in self.layers if layer.trains]

    def feedback_targets(self) -> list[FeedbackTarget]:
        """Where DFA and SSDFA deliver the output error: each block's last layer (its tap),
        with the feedback matrix named after the block's last trained weight layer (in a
        chain: each trained hidden weight layer, up to the next weight layer)."""
        targets = []
        for block in self.blocks:
            trained = [i for i in block.members if self.layers[i].trains]
            weighted = [i for i in trained if self.layers[i].has_weights] or trained
            if not trained:
                first = block.members[0]
                raise SpecError(
                    f"network '{self.network.name}': layers.{first} ({self.layers[first].spec.type}"
                    f" '{self.layers[first].name}').block: block '{block.name}' trains no layer, "
                    "so the error DFA and SSDFA would deliver to it teaches nothing; train a "
                    "layer in it or leave its layers out of blocks"
                )
            tap = block.members[-1]
            targets.append(
                FeedbackTarget(weighted[-1], tap, self.shapes[tap].output_elements, block.members)
            )
        return targets

    def initialize(
        self, rng: np.random.Generator, trainable_init: WeightInit, output_at_zero: bool = False
    ) -> None:
        """Glorot-uniform weights (zeros for trainable layers when asked; `output_at_zero`: the
        output layer's, after its draw, so the other layers' draws do not move); biases zero."""
        # A chain without normalization may start its local-rule layers at zero (the paper's
        # DFA); a batch norm of a zero output is zero whatever it learns, and a separate relu
        # after it never wakes (relu'(0) = 0), so graphs and normalized nets keep Glorot.
        plain = self.is_chain and not any(isinstance(layer, BatchNorm) for layer in self.layers)
        for layer in self.layers:
            if not isinstance(layer, WeightLayer):  # its start is its own (norms, tokens)
                layer.initialize(rng, self.dtype)
                continue
            spec = layer.spec
            shape: tuple[int, ...]
            if spec.type == "dense":
                shape = (layer.shape.input_shape[-1], spec.units)
                fan_in, fan_out = shape
            else:
                channels = layer.shape.input_shape[2] // spec.groups
                kernel_h, kernel_w = spec.kernel
                shape = (kernel_h, kernel_w, channels, spec.filters)
                area = kernel_h * kernel_w
                fan_in, fan_out = area * channels, area * spec.filters
            zeros = layer.trainable and _starts_at_zero(trainable_init, spec.activation, plain)
            if zeros:
                weight = np.zeros(shape, dtype=self.dtype)
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                weight = rng.uniform(-limit, limit, size=shape).astype(self.dtype)
            if output_at_zero and layer is self.layers[-1]:
                weight[...] = 0
            layer.params = {"weight": weight}
            if spec.use_bias:
                layer.params["bias"] = np.zeros(shape[-1], dtype=self.dtype)

    def forward(self, x: np.ndarray, ctx: StepContext) -> np.ndarray:
        """The logits; each layer takes the outputs it names (a chain: the layer before's)."""
        if self.is_chain:
            for layer in self.layers:
                x = layer.forward(x, ctx)
            return x
        values = {NETWORK_INPUT: x}
        for layer in self.layers:
            taken = [values[tensor] for tensor in layer.input_tensors]
            values[layer.output_tensor] = layer.forward_many(taken, ctx)
        return values[self.output_layer.output_tensor]

    def softmax_op(self, batch: int) -> OpDesc:
        """Softmax of the logits: 3 vector ops a logit (exp, sum, divide)."""
        out = self.output_layer
        logits = out.output_operand(batch)
        probabilities = OperandDesc("softmax.out", Role.ACTIVATION, logits.elements)
        return elementwise(
            out.name, Phase.FORWARD, "softmax", [logits], [probabilities], logits.elements, 3
        )

    def softmax(self, logits: np.ndarray, ctx: StepContext) -> np.ndarray:
        """The class probabilities of an inference pass (recorded, with a tracer)."""
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = exp / exp.sum(axis=1, keepdims=True)
        if ctx.tracer is not None:
            ctx.tracer.record_run(self.softmax_op(len(logits)), [logits], [probabilities])
        return probabilities

    def loss_ops(self, batch: int) -> list[OpDesc]:
        """Softmax of the logits (3 vector ops a logit: exp, sum, divide) and the output error
        E = (softmax − Y) / batch (2 a logit: subtract, scale), recorded on the output layer."""
        out = self.output_layer
        logits = out.output_operand(batch)
        probabilities = OperandDesc("softmax.out", Role.ACTIVATION, logits.elements)
        labels = OperandDesc("label", Role.LABEL, batch)
        return [
            self.softmax_op(batch),
            elementwise(
                out.name,
                Phase.ERROR,
                "softmax_cross_entropy_error",
                [probabilities, labels],
                [out.output_error_operand(batch)],
                logits.elements,
                2,
            ),
        ]

    def loss_and_error(
        self, logits: np.ndarray, labels: np.ndarray, ctx: StepContext
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Mean softmax cross-entropy, the output error E = (softmax − Y) / batch, and softmax."""
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        probabilities = exp / total
        batch = logits.shape[0]
        rows = np.arange(batch)
        log_probabilities = shifted[rows, labels] - np.log(total[:, 0])
        loss = float(-log_probabilities.astype(np.float64).mean())
        error = probabilities.copy()
        error[rows, labels] -= 1
        error /= batch
        if ctx.tracer is not None:
            arrays = [([logits], [probabilities]), ([probabilities, labels], [error])]
            ctx.tracer.record_pass(self.output_layer.name, self.loss_ops(batch), arrays)
        return loss, error, probabilities

    def predict(self, x: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Logits in evaluation mode (no dropout), in chunks to bound memory."""
        ctx = StepContext(training=False)
        parts = [
            self.forward(x[i : i + chunk].astype(self.dtype, copy=False), ctx)
            for i in range(0, len(x), chunk)
        ]
        return np.concatenate(parts)


def _starts_at_zero(init: WeightInit, activation: Activation, plain: bool = True) -> bool:
    if init == WeightInit.ZEROS:
        return True
    if init == WeightInit.GLOROT or not plain:
        return False
    # AUTO, the caller having decided the rule starts at zero: a relu layer at zero never
    # wakes up (relu'(0) = 0), so it keeps Glorot.
    # A gelu layer at zero outputs zero, so in a block the weights above it learn nothing.
    return activation not in (Activation.RELU, Activation.GELU)
