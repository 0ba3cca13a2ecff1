"""Shape-only traces: the trace of one training step built from the network's shapes, without
running the numpy step — geometry, MACs, operand sizes and `deps` in milliseconds and a few MB,
for any network size.

The records are the ops the layers, the loss, the rule's backward schedule and the optimizer
describe (`hwsim.train.ops`) — the same descriptions the live trainer records as it runs — in
the same order, with the same `deps` (derived by the same `Tracer`), from the same `Model`
layer objects (whose weights are never allocated).  Only densities differ: nothing is measured,
so every operand carries density 1.0.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from pydantic import ValidationError

from hwsim.errors import SpecError
from hwsim.specs.common import short_repr
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, FeedbackInfo, Trace
from hwsim.train.feedback import validate_feedback
from hwsim.train.loop import TrainConfig, trace_header
from hwsim.train.model import Model
from hwsim.train.ops import OpDesc
from hwsim.train.optim import update_op
from hwsim.train.rules import Inject, SumErrors, backward_schedule, feedback_op
from hwsim.train.tracer import Tracer

SYNTHETIC_DATASET = "synthetic"


def step_ops(model: Model, config: TrainConfig) -> Iterator[OpDesc]:
    """Every op of one training step of `model` under `config`, in the order the trainer runs
    them: forward, loss, the rule's backward schedule, the optimizer's updates."""
    batch = config.batch_size
    for layer in model.layers:
        yield from layer.forward_ops(batch)
    if config.inference:  # the forward pass only, to the class probabilities
        yield model.softmax_op(batch)
        return
    yield from model.loss_ops(batch)
    sparse = config.algorithm == Algorithm.SSDFA
    for step in backward_schedule(model, config.algorithm):
        if isinstance(step, Inject):
            s = config.nonzeros_per_neuron if sparse else None
            yield feedback_op(model, step.target, batch, s)
        elif isinstance(step, SumErrors):
            yield model.error_sum_op(step.error_sum, batch)
        else:
            yield from model.layers[step.layer_index].backward_ops(batch, step.input_error)
    info = config.optimizer_info()
    for layer in model.trainable_layers():
        for _, param in layer.parameters():
            yield update_op(info, layer.name, param)


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
    model = Model(network, np.dtype(config.dtype), config.inference)
    feedback = _feedback_infos(model, config)
    tracer = Tracer()
    try:
        for desc in step_ops(model, config):
            tracer.record(desc)
    except ValidationError as exc:  # an op's counts past what a trace record holds
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SpecError(
            f"{network.name}: batch {config.batch_size:,}: the step is too large to trace "
            f"({exc.title} {where}: {first['msg']}, got {short_repr(first.get('input'))}); "
            "trace a smaller batch"
        ) from None
    records = tracer.records
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
