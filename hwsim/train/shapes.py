"""Shape-only traces: the trace of one training step built from the network's shapes, without
running the numpy step — geometry, MACs, operand sizes and `deps` in milliseconds and a few MB,
for any network size.

The records are those `trace_synthetic_step` writes, in the same order, with the same tensor
names (taken from the same `Model` layer objects, whose weights are never allocated) and the
same `deps` (derived by the same `Tracer`).  Only densities differ: nothing is measured, so
every operand carries density 1.0 (the simulator does not read densities).  A test compares
the two for every shipped network and rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from pydantic import ValidationError

from hwsim.errors import SpecError
from hwsim.specs.common import short_repr
from hwsim.specs.network import Activation, NetworkSpec, OptimizerName
from hwsim.specs.trace import (
    Algorithm,
    Conv2DOp,
    ConvPass,
    ElementwiseOp,
    FeedbackInfo,
    GatherOp,
    MatmulOp,
    Operand,
    Phase,
    ReduceOp,
    Role,
    Slot,
    Trace,
)
from hwsim.train.feedback import validate_feedback
from hwsim.train.layers import (
    ActivationFunction,
    Conv2D,
    Dropout,
    Layer,
    MaxPool,
    WeightLayer,
)
from hwsim.train.loop import TrainConfig, trace_header
from hwsim.train.model import Model
from hwsim.train.optim import ADAM_OPS_PER_ELEMENT, MOMENTUM_OPS_PER_ELEMENT, SGD_OPS_PER_ELEMENT
from hwsim.train.tracer import Tracer

SHAPE_ONLY_DENSITY = 1.0
SYNTHETIC_DATASET = "synthetic"


def _operand(tensor: str, role: Role, elements: int, slot: Slot | None = None) -> Operand:
    return Operand(
        tensor=tensor, role=role, elements=elements, density=SHAPE_ONLY_DENSITY, slot=slot
    )


@dataclass
class _Step:
    """Records the ops of one step of `model` on a batch, layer by layer, as the trainer would."""

    model: Model
    batch: int
    tracer: Tracer

    def elements(self, shape: tuple[int, ...]) -> int:
        return self.batch * math.prod(shape)

    def record(self, layer: Layer, phase: Phase, op, reads, writes, other_ops: int = 0) -> None:
        self.tracer.record(
            layer=layer.name, phase=phase, op=op, reads=reads, writes=writes, other_ops=other_ops
        )

    def elementwise(
        self, layer: Layer, phase: Phase, function: str, reads, writes, elements: int
    ) -> None:
        self.record(
            layer,
            phase,
            ElementwiseOp(kind="elementwise", function=function, elements=elements),
            reads,
            writes,
            elements,
        )

    # ------------------------------------------------------------------ forward
    def forward(self, layer: Layer) -> None:
        x = self.elements(layer.shape.input_shape)
        y = self.elements(layer.shape.output_shape)
        source = _operand(layer.input_tensor, layer.input_role(), x)
        if isinstance(layer, WeightLayer):
            self._weight_forward(layer, x, y)
        elif isinstance(layer, MaxPool):
            window = layer.spec.pool_size**2
            self.record(
                layer,
                Phase.FORWARD,
                ReduceOp(kind="reduce", function="max", inputs=y * window, outputs=y),
                [source],
                [_operand(layer.output_tensor, Role.ACTIVATION, y)],
                y * window,
            )
        elif isinstance(layer, Dropout) and layer.spec.rate > 0:
            self.elementwise(
                layer,
                Phase.FORWARD,
                "dropout",
                [source],
                [
                    _operand(layer.output_tensor, Role.ACTIVATION, x),
                    _operand(f"{layer.name}.mask", Role.ACTIVATION, x),
                ],
                x,
            )
        elif isinstance(layer, ActivationFunction):
            self.elementwise(
                layer,
                Phase.FORWARD,
                layer.spec.function.value,
                [source],
                [_operand(layer.output_tensor, Role.ACTIVATION, y)],
                x,
            )
        # flatten and dropout at rate 0 move nothing and record nothing

    def _weight_forward(self, layer: WeightLayer, x: int, y: int) -> None:
        bias = layer.spec.use_bias
        reads = [
            _operand(layer.input_tensor, layer.input_role(), x, Slot.A),
            _operand(f"{layer.name}.weight", Role.WEIGHT, layer.shape.weights, Slot.B),
        ]
        if bias:
            reads.append(_operand(f"{layer.name}.bias", Role.BIAS, layer.shape.output_shape[-1]))
        self.record(
            layer,
            Phase.FORWARD,
            self._gemm(layer, x, ConvPass.FORWARD),
            reads,
            [_operand(layer.pre_tensor, Role.ACTIVATION, y, Slot.C)],
            y if bias else 0,
        )
        if layer.activation != Activation.LINEAR:
            self.elementwise(
                layer,
                Phase.FORWARD,
                layer.activation.value,
                [_operand(layer.pre_tensor, Role.ACTIVATION, y)],
                [_operand(layer.output_tensor, Role.ACTIVATION, y)],
                y,
            )

    def _gemm(self, layer: WeightLayer, x: int, conv_pass: ConvPass) -> MatmulOp | Conv2DOp:
        if isinstance(layer, Conv2D):
            return layer._op(self.batch, conv_pass)
        features, units = layer.shape.input_shape[0], layer.shape.output_shape[0]
        m, k, n = {
            ConvPass.FORWARD: (self.batch, features, units),
            ConvPass.BACKWARD_WEIGHT: (features, self.batch, units),
            ConvPass.BACKWARD_DATA: (self.batch, units, features),
        }[conv_pass]
        return MatmulOp(kind="matmul", m=m, k=k, n=n)

    def loss(self) -> None:
        out = self.model.output_layer
        logits = self.batch * self.model.network.classes
        self.record(
            out,
            Phase.FORWARD,
            ElementwiseOp(kind="elementwise", function="softmax", elements=logits),
            [_operand(out.output_tensor, Role.ACTIVATION, logits)],
            [_operand("softmax.out", Role.ACTIVATION, logits)],
            3 * logits,
        )
        self.record(
            out,
            Phase.ERROR,
            ElementwiseOp(
                kind="elementwise", function="softmax_cross_entropy_error", elements=logits
            ),
            [
                _operand("softmax.out", Role.ACTIVATION, logits),
                _operand("label", Role.LABEL, self.batch),
            ],
            [_operand(out.output_error_tensor, Role.ERROR, logits)],
            2 * logits,
        )

    # ----------------------------------------------------------------- backward
    def backward(self, layer: Layer, input_error: bool) -> None:
        x = self.elements(layer.shape.input_shape)
        y = self.elements(layer.shape.output_shape)
        dy = _operand(layer.output_error_tensor, Role.ERROR, y)
        dx = _operand(layer.input_error_tensor, Role.ERROR, x)
        if isinstance(layer, WeightLayer):
            self._weight_backward(layer, x, y, input_error)
        elif isinstance(layer, MaxPool):
            self.elementwise(layer, Phase.ERROR, "max_pool_route", [dy], [dx], x)
        elif isinstance(layer, Dropout) and layer.spec.rate > 0:
            self.elementwise(
                layer,
                Phase.ERROR,
                "dropout_mask",
                [dy, _operand(f"{layer.name}.mask", Role.ACTIVATION, x)],
                [dx],
                x,
            )
        elif isinstance(layer, ActivationFunction):
            self.elementwise(
                layer,
                Phase.ERROR,
                f"{layer.spec.function.value}_derivative",
                [dy, _operand(layer.output_tensor, Role.ACTIVATION, y)],
                [dx],
                x,
            )

    def _weight_backward(self, layer: WeightLayer, x: int, y: int, input_error: bool) -> None:
        error = f"{layer.pre_tensor}.error"
        if layer.activation != Activation.LINEAR:
            self.elementwise(
                layer,
                Phase.ERROR,
                f"{layer.activation.value}_derivative",
                [
                    _operand(layer.output_error_tensor, Role.ERROR, y),
                    _operand(layer.output_tensor, Role.ACTIVATION, y),
                ],
                [_operand(error, Role.ERROR, y)],
                y,
            )
        if layer.trainable:
            self.record(
                layer,
                Phase.GRADIENT,
                self._gemm(layer, x, ConvPass.BACKWARD_WEIGHT),
                [
                    _operand(layer.input_tensor, layer.input_role(), x, Slot.A),
                    _operand(error, Role.ERROR, y, Slot.B),
                ],
                [_operand(f"{layer.name}.weight.grad", Role.GRADIENT, layer.shape.weights, Slot.C)],
            )
            if layer.spec.use_bias:
                outputs = layer.shape.output_shape[-1]
                self.record(
                    layer,
                    Phase.GRADIENT,
                    ReduceOp(kind="reduce", function="sum", inputs=y, outputs=outputs),
                    [_operand(error, Role.ERROR, y)],
                    [_operand(f"{layer.name}.bias.grad", Role.GRADIENT, outputs)],
                    y,
                )
        if input_error:
            self.record(
                layer,
                Phase.ERROR,
                self._gemm(layer, x, ConvPass.BACKWARD_DATA),
                [
                    _operand(error, Role.ERROR, y, Slot.A),
                    _operand(f"{layer.name}.weight", Role.WEIGHT, layer.shape.weights, Slot.B),
                ],
                [_operand(layer.input_error_tensor, Role.ERROR, x, Slot.C)],
            )

    def backprop(self) -> None:
        layers = self.model.layers
        lowest = min(i for i, layer in enumerate(layers) if layer.has_weights and layer.trainable)
        for index in range(len(layers) - 1, lowest - 1, -1):
            self.backward(layers[index], input_error=index > lowest)

    def feedback_alignment(self, nonzeros_per_neuron: int | None) -> None:
        model = self.model
        out = model.output_layer
        classes = model.network.classes
        self.backward(out, input_error=False)
        error = _operand(out.output_error_tensor, Role.ERROR, self.batch * classes)
        for target in model.feedback_targets():
            layer = model.layers[target.layer_index]
            delta = _operand(
                model.layers[target.block_end].output_error_tensor,
                Role.ERROR,
                self.batch * target.neurons,
            )
            op: GatherOp | MatmulOp
            if nonzeros_per_neuron is not None:
                op = GatherOp(
                    kind="gather",
                    rows=self.batch,
                    classes=classes,
                    neurons=target.neurons,
                    nonzeros_per_neuron=nonzeros_per_neuron,
                )
                reads = [
                    error,
                    _operand(
                        f"{layer.name}.feedback",
                        Role.FEEDBACK,
                        target.neurons * nonzeros_per_neuron,
                    ),
                ]
                writes = [delta]
            else:
                op = MatmulOp(kind="matmul", m=self.batch, k=classes, n=target.neurons)
                reads = [
                    replace(error, slot=Slot.A),
                    _operand(
                        f"{layer.name}.feedback", Role.FEEDBACK, classes * target.neurons, Slot.B
                    ),
                ]
                writes = [replace(delta, slot=Slot.C)]
            self.record(layer, Phase.ERROR, op, reads, writes)
            for index in range(target.block_end, target.layer_index - 1, -1):
                self.backward(model.layers[index], input_error=index > target.layer_index)

    def update(self, config: TrainConfig) -> None:
        states: tuple[str, ...]
        if config.optimizer == OptimizerName.ADAM:
            states, per_element = ("adam_m", "adam_v"), ADAM_OPS_PER_ELEMENT
        elif config.momentum:
            states, per_element = ("momentum",), MOMENTUM_OPS_PER_ELEMENT
        else:
            states, per_element = (), SGD_OPS_PER_ELEMENT
        name = config.optimizer_info().name
        for layer in self.model.trainable_layers():
            params = [("weight", Role.WEIGHT, layer.shape.weights)]
            if layer.spec.use_bias:
                params.append(("bias", Role.BIAS, layer.shape.output_shape[-1]))
            for param, role, size in params:
                tensor = f"{layer.name}.{param}"
                kept = [
                    _operand(tensor, role, size),
                    *(
                        _operand(f"{tensor}.{state}", Role.OPTIMIZER_STATE, size)
                        for state in states
                    ),
                ]
                reads = [kept[0], _operand(f"{tensor}.grad", Role.GRADIENT, size), *kept[1:]]
                self.record(
                    layer,
                    Phase.UPDATE,
                    ElementwiseOp(kind="elementwise", function=f"{name}_update", elements=size),
                    reads,
                    kept,
                    per_element * size,
                )


def _feedback_infos(model: Model, config: TrainConfig) -> list[FeedbackInfo]:
    if config.algorithm == Algorithm.BP:
        return []
    classes = model.network.classes
    sparse = config.algorithm == Algorithm.SSDFA
    s = config.nonzeros_per_neuron if sparse else None
    infos = []
    for target in model.feedback_targets():
        validate_feedback(classes, target.neurons, s, config.rank)
        # A dense random matrix has no exact zeros (its values are drawn away from none).
        nonzeros = target.neurons * s if s is not None else classes * target.neurons
        infos.append(
            FeedbackInfo(
                layer=model.layers[target.layer_index].name,
                classes=classes,
                neurons=target.neurons,
                nonzeros=nonzeros,
                nonzeros_per_neuron=s,
                rank=config.rank,
            )
        )
    return infos


def shape_only_trace(network: NetworkSpec, config: TrainConfig) -> Trace:
    """The trace `trace_synthetic_step(network, config)` writes, with every density 1.0 (not
    measured), built without allocating a weight or running a MAC."""
    model = Model(network, np.dtype(config.dtype))
    feedback = _feedback_infos(model, config)
    step = _Step(model, config.batch_size, Tracer())
    try:
        for layer in model.layers:
            step.forward(layer)
        step.loss()
        if config.algorithm == Algorithm.BP:
            step.backprop()
        else:
            step.feedback_alignment(
                config.nonzeros_per_neuron if config.algorithm == Algorithm.SSDFA else None
            )
        step.update(config)
    except ValidationError as exc:  # an op's counts past what a trace record holds
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SpecError(
            f"{network.name}: batch {config.batch_size:,}: the step is too large to trace "
            f"({exc.title} {where}: {first['msg']}, got {short_repr(first.get('input'))}); "
            "trace a smaller batch"
        ) from None
    records = step.tracer.records
    header = trace_header(
        network,
        config,
        model.shapes,
        feedback,
        batch_size=config.batch_size,
        dataset=SYNTHETIC_DATASET,
        record_count=len(records),
        densities_measured=False,  # built from shapes: no operand was measured
    )
    return Trace(header=header, records=records)
