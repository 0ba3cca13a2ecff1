"""One training loop for every rule; metrics per epoch; one traced step.

Random streams (weights, feedback matrices, shuffling, dropout) are children of one seed, so a
run is reproduced exactly by its seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from hwsim import __version__
from hwsim.errors import DataError, SpecError
from hwsim.specs.common import format_validation_error
from hwsim.specs.network import (
    FeedbackSharing,
    LayerShape,
    NetworkSpec,
    OptimizerName,
    TrainingDefaults,
)
from hwsim.specs.trace import (
    TRACE_SCHEMA_VERSION,
    Algorithm,
    FeedbackInfo,
    LayerInfo,
    OptimizerInfo,
    Trace,
    TraceHeader,
)
from hwsim.train.datasets import Dataset, check_seed, load_dataset
from hwsim.train.layers import StepContext
from hwsim.train.memory import check_step_fits
from hwsim.train.model import Model, WeightInit
from hwsim.train.optim import Optimizer, optimizer_info
from hwsim.train.rules import Backprop, FeedbackAlignment, Rule, make_rule
from hwsim.train.threads import blas_threads_for
from hwsim.train.tracer import Tracer

ANGLE_PROBE_EXAMPLES = 256


@dataclass(frozen=True)
class TrainConfig:
    algorithm: Algorithm
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: OptimizerName
    seed: int = 0
    nonzeros_per_neuron: int = 1
    rank: int | None = None
    momentum: float = 0.9
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_init: WeightInit = WeightInit.AUTO
    feedback: FeedbackSharing = FeedbackSharing.TAP  # DFA/SSDFA's B: per tap or per stream
    dtype: str = "float32"
    inference: bool = False  # trace the forward pass only (batch norm by running statistics)

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if self.inference and self.algorithm != Algorithm.BP:
            raise SpecError(
                f"an inference pass has no learning rule (got {self.algorithm.value}): the "
                "forward pass is every rule's"
            )

    @classmethod
    def from_network(
        cls, network: NetworkSpec, algorithm: Algorithm, **overrides: object
    ) -> TrainConfig:
        """The network's training defaults; `overrides` that are not None win, each within
        the bounds a network file's `training` has (SpecError `field: problem (got X)`)."""
        defaults = network.training
        bounded = {
            key: value.value if isinstance(value, OptimizerName) else value
            for key, value in overrides.items()
            if value is not None and key in TrainingDefaults.model_fields
        }
        if bounded:
            try:
                checked = TrainingDefaults.model_validate(
                    defaults.model_dump(mode="json") | bounded
                )
            except ValidationError as exc:
                raise SpecError("; ".join(format_validation_error(exc, TrainingDefaults))) from None
            overrides = overrides | {key: getattr(checked, key) for key in bounded}
        values: dict[str, Any] = {  # TrainConfig's fields, of mixed types
            "algorithm": algorithm,
            "epochs": defaults.epochs,
            "batch_size": defaults.batch_size,
            "learning_rate": defaults.learning_rate,
            "optimizer": OptimizerName(defaults.optimizer),
            "nonzeros_per_neuron": defaults.nonzeros_per_neuron,
            "momentum": defaults.momentum,
            "adam_beta1": defaults.adam_beta1,
            "adam_beta2": defaults.adam_beta2,
            "adam_epsilon": defaults.adam_epsilon,
            "feedback": defaults.feedback,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        values["optimizer"] = OptimizerName(values["optimizer"])
        values["feedback"] = FeedbackSharing(values["feedback"])
        return cls(**values)

    def optimizer_info(self) -> OptimizerInfo:
        return optimizer_info(
            self.optimizer,
            self.learning_rate,
            momentum=self.momentum,
            beta1=self.adam_beta1,
            beta2=self.adam_beta2,
            epsilon=self.adam_epsilon,
        )


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    angles_deg: dict[str, float]
    feedback_output_angle_deg: float | None


@dataclass
class Trainer:
    """A model, its rule and optimizer, and the random streams, ready to step."""

    network: NetworkSpec
    config: TrainConfig
    model: Model = field(init=False)
    rule: Rule = field(init=False)
    optimizer: Optimizer = field(init=False)

    def __post_init__(self) -> None:
        streams = np.random.SeedSequence(self.config.seed).spawn(4)
        init_rng, feedback_rng, self.shuffle_rng, self.dropout_rng = (
            np.random.default_rng(stream) for stream in streams
        )
        self.model = Model(self.network, np.dtype(self.config.dtype), self.config.inference)
        init = self.config.weight_init
        local = self.config.algorithm != Algorithm.BP
        if init == WeightInit.AUTO and not local:
            init = WeightInit.GLOROT
        stream = self.config.feedback == FeedbackSharing.STREAM
        # A stream's one B: the output layer starts at zero so that it grows along the
        # features' DFA-driven changes and aligns with that B (its Glorot draw is still made).
        output_at_zero = local and stream and init == WeightInit.AUTO
        self.model.initialize(init_rng, init, output_at_zero=output_at_zero)
        self.rule = make_rule(
            self.config.algorithm,
            self.model,
            feedback_rng,
            self.config.nonzeros_per_neuron,
            self.config.rank,
            stream=stream,
        )
        self.optimizer = Optimizer(self.config.optimizer_info())

    def step(self, x: np.ndarray, y: np.ndarray, tracer: Tracer | None = None) -> float:
        """One training step on a batch; returns its loss."""
        ctx = StepContext(training=True, rng=self.dropout_rng, tracer=tracer)
        logits = self.model.forward(x.astype(self.model.dtype, copy=False), ctx)
        loss, error, _ = self.model.loss_and_error(logits, y, ctx)
        self.rule.backward(self.model, error, ctx)
        self.optimizer.step(self.model.trainable_layers(), ctx)
        return loss

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean loss, accuracy) in evaluation mode."""
        logits = self.model.predict(x).astype(np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = float(-log_probs[np.arange(len(y)), y].mean())
        return loss, float((logits.argmax(axis=1) == y).mean())

    def gradients(self, rule: Rule, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Weight gradients that `rule` prescribes on a batch (dropout off, weights untouched)."""
        ctx = StepContext(training=True, dropout=False)
        trainable = self.model.trainable_layers()
        saved = {layer.name: dict(layer.grads) for layer in trainable}
        logits = self.model.forward(x.astype(self.model.dtype, copy=False), ctx)
        _, error, _ = self.model.loss_and_error(logits, y, ctx)
        rule.backward(self.model, error, ctx)
        grads = {
            layer.name: layer.grads[layer.main_weight].copy()
            for layer in trainable
            if layer.has_weights
        }
        for layer in trainable:
            layer.grads = saved[layer.name]
        return grads

    def angles(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Per trained hidden layer: angle (degrees) between this rule's gradient and BP's."""
        if isinstance(self.rule, Backprop):
            rule_grads = true_grads = self.gradients(self.rule, x, y)
        else:
            rule_grads = self.gradients(self.rule, x, y)
            true_grads = self.gradients(Backprop(), x, y)
        hidden = [layer.name for layer in self.model.trainable_layers()[:-1] if layer.has_weights]
        return {name: angle_deg(rule_grads[name], true_grads[name]) for name in hidden}

    def feedback_output_angle(self) -> float | None:
        """The paper's angle: last hidden layer's Bᵀ against the output weights."""
        if not isinstance(self.rule, FeedbackAlignment) or not self.rule.targets:
            return None
        last = self.model.layers[self.rule.targets[-1].layer_index].name
        feedback = self.rule.feedback[last].to_dense()
        output_weight = self.model.output_layer.params["weight"]
        if feedback.T.shape != output_weight.shape:
            return None
        return angle_deg(feedback.T, output_weight)

    def trace_header(self, batch_size: int, dataset: str, record_count: int) -> TraceHeader:
        feedback = []
        if isinstance(self.rule, FeedbackAlignment):
            feedback = [
                FeedbackInfo(
                    layer=name,
                    classes=matrix.classes,
                    neurons=matrix.neurons,
                    nonzeros=matrix.nonzeros,
                    nonzeros_per_neuron=matrix.nonzeros_per_neuron,
                    rank=matrix.rank,
                )
                for name, matrix in self.rule.feedback.items()
            ]
        return trace_header(
            self.network,
            self.config,
            self.model.shapes,
            feedback,
            batch_size=batch_size,
            dataset=dataset,
            record_count=record_count,
            densities_measured=True,
        )

    def traced_step(self, x: np.ndarray, y: np.ndarray, dataset: str) -> Trace:
        """Run one real training step (or, with `config.inference`, one inference pass) with
        the tracer on, and return what it did."""
        tracer = Tracer()
        if self.config.inference:
            ctx = StepContext(training=False, tracer=tracer)
            self.model.softmax(self.model.forward(x.astype(self.model.dtype, copy=False), ctx), ctx)
        else:
            self.step(x, y, tracer)
        header = self.trace_header(len(x), dataset, len(tracer.records))
        return Trace(header=header, records=tracer.records)


def trace_header(
    network: NetworkSpec,
    config: TrainConfig,
    shapes: Sequence[LayerShape],
    feedback: list[FeedbackInfo],
    *,
    batch_size: int,
    dataset: str,
    record_count: int,
    densities_measured: bool,
) -> TraceHeader:
    """The header of a trace of one step of `network` under `config` (the trainer's traced
    steps and the shape-only traces share it)."""
    layers = [
        LayerInfo(
            name=shape.name,
            type=shape.type,
            input_shape=list(shape.input_shape),
            output_shape=list(shape.output_shape),
            trainable=shape.trainable,
            weights=shape.weights,
            parameters=shape.parameters,
            heads=shape.heads,
        )
        for shape in shapes
    ]
    return TraceHeader(
        schema_version=TRACE_SCHEMA_VERSION,
        kind="trace",
        hwsim_version=__version__,
        network=network.name,
        classes=network.classes,
        layers=layers,
        algorithm=config.algorithm,
        feedback=feedback,
        optimizer=config.optimizer_info(),
        batch_size=batch_size,
        dataset=dataset,
        seed=config.seed,
        dtype=config.dtype,
        densities_measured=densities_measured,
        record_count=record_count,
        inference=config.inference,
    )


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two tensors seen as vectors; 90° when either is zero."""
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0 or norm_b == 0:
        return 90.0
    a, b = a / norm_a, b / norm_b
    # 2·atan2(|a − b|, |a + b|) is exact near 0° and 180°, where acos of a cosine is not.
    return math.degrees(2 * math.atan2(float(np.linalg.norm(a - b)), float(np.linalg.norm(a + b))))


@dataclass(frozen=True)
class TrainResult:
    network: str
    config: TrainConfig
    dataset: str
    history: list[EpochMetrics]
    trace: Trace | None

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]

    @property
    def recorded_trace(self) -> Trace:
        """The trace of the step recorded (`train(..., record_trace=True)`)."""
        if self.trace is None:
            raise ValueError("this run recorded no trace: train with record_trace=True")
        return self.trace

    def summary(self) -> dict:
        """Final metrics as plain JSON-ready values (`hwsim train --json`)."""
        final = self.final
        return {
            "network": self.network,
            "algorithm": self.config.algorithm.value,
            "dataset": self.dataset,
            "epochs": len(self.history),
            "seed": self.config.seed,
            "test_accuracy": final.test_accuracy,
            "train_accuracy": final.train_accuracy,
            "test_loss": final.test_loss,
            "train_loss": final.train_loss,
            "best_test_accuracy": max(epoch.test_accuracy for epoch in self.history),
            "angles_deg": final.angles_deg,
            "feedback_output_angle_deg": final.feedback_output_angle_deg,
        }


def train(
    network: NetworkSpec,
    dataset: Dataset,
    config: TrainConfig,
    *,
    record_trace: bool = False,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> TrainResult:
    """Train `network` on `dataset` with `config`; optionally trace the last epoch's first step."""
    check_step_fits(
        network, config.batch_size, config.optimizer.value, np.dtype(config.dtype).itemsize
    )
    with blas_threads_for(network, config.batch_size):
        return _train(network, dataset, config, record_trace, on_batch, on_epoch)


def _train(
    network: NetworkSpec,
    dataset: Dataset,
    config: TrainConfig,
    record_trace: bool,
    on_batch: Callable[[], None] | None,
    on_epoch: Callable[[EpochMetrics], None] | None,
) -> TrainResult:
    trainer = Trainer(network, config)
    x_train = reshape_inputs(dataset.x_train, network)
    x_test = reshape_inputs(dataset.x_test, network)
    probe = slice(0, min(ANGLE_PROBE_EXAMPLES, len(x_train)))
    history: list[EpochMetrics] = []
    trace = None
    for epoch in range(1, config.epochs + 1):
        order = trainer.shuffle_rng.permutation(len(x_train))
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            if record_trace and epoch == config.epochs and start == 0:
                trace = trainer.traced_step(x_train[batch], dataset.y_train[batch], dataset.name)
            else:
                trainer.step(x_train[batch], dataset.y_train[batch])
            if on_batch is not None:
                on_batch()
        train_loss, train_accuracy = trainer.evaluate(x_train, dataset.y_train)
        test_loss, test_accuracy = trainer.evaluate(x_test, dataset.y_test)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            angles_deg=trainer.angles(x_train[probe], dataset.y_train[probe]),
            feedback_output_angle_deg=trainer.feedback_output_angle(),
        )
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return TrainResult(network.name, config, dataset.name, history, trace)


def trace_synthetic_step(network: NetworkSpec, config: TrainConfig) -> Trace:
    """One real training step on seeded synthetic data of the network's shape, traced.

    Every rule starts from Glorot weights here, so weight densities look like a network in
    training (DFA's zero start would record all-zero weights).
    """
    config = replace(config, weight_init=WeightInit.GLOROT)
    check_step_fits(
        network,
        config.batch_size,
        config.optimizer.value,
        np.dtype(config.dtype).itemsize,
        dataset_examples=config.batch_size + 1,
    )
    dataset = load_dataset(
        "synthetic",
        sample_shape=tuple(network.input_shape),
        classes=network.classes,
        seed=config.seed,
        synthetic_train=config.batch_size,
        synthetic_test=1,
    )
    with blas_threads_for(network, config.batch_size):
        trainer = Trainer(network, config)
        x = reshape_inputs(dataset.x_train, network)
        return trainer.traced_step(x, dataset.y_train, dataset.name)


def reshape_inputs(x: np.ndarray, network: NetworkSpec) -> np.ndarray:
    """Give the dataset's samples the network's input shape (same number of values)."""
    expected = tuple(network.input_shape)
    if x.shape[1:] == expected:
        return x
    if math.prod(x.shape[1:]) != math.prod(expected):
        raise DataError(
            f"the dataset's samples have shape {list(x.shape[1:])} "
            f"({math.prod(x.shape[1:])} values) but network '{network.name}' "
            f"expects input_shape {list(expected)} ({math.prod(expected)} values)"
        )
    return x.reshape(len(x), *expected)
