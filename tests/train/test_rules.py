"""Learning rules: DFA reduces to BP when B = W_{l+1}ᵀ, SSDFA's gather is DFA with the dense
equivalent matrix, where DFA injects the error in conv blocks, gradient angles, initialisation
per rule, and end-to-end training on the bundled digits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hwsim.io.networks import load_network
from hwsim.specs.network import OptimizerName
from hwsim.specs.trace import Algorithm
from hwsim.train import loop
from hwsim.train.datasets import Dataset, load_dataset
from hwsim.train.feedback import DenseFeedback, SparseFeedback
from hwsim.train.layers import StepContext
from hwsim.train.loop import TrainConfig, Trainer, TrainResult, angle_deg, train
from hwsim.train.model import Model, WeightInit
from hwsim.train.rules import (
    Backprop,
    DirectFeedbackAlignment,
    Rule,
    SparseDirectFeedbackAlignment,
)
from tests.train.builders import make_model, make_network

# --------------------------------------------------------------------------- helpers


def default_ctx() -> StepContext:
    return StepContext(training=True, dropout=False)


def rule_grads(
    model: Model,
    rule: Rule,
    x: np.ndarray,
    y: np.ndarray,
    ctx_factory: Callable[[], StepContext] = default_ctx,
) -> tuple[dict[tuple[str, str], np.ndarray], np.ndarray]:
    """All parameter gradients the rule prescribes, and the output error E."""
    for layer in model.layers:
        layer.grads = {}
    ctx = ctx_factory()
    logits = model.forward(x, ctx)
    _, error, _ = model.loss_and_error(logits, y, ctx)
    rule.backward(model, error, ctx)
    grads = {
        (layer.name, param): grad.copy()
        for layer in model.trainable_layers()
        for param, grad in layer.grads.items()
    }
    return grads, error


def assert_same_grads(
    got: dict[tuple[str, str], np.ndarray], expected: dict[tuple[str, str], np.ndarray]
) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert np.linalg.norm(value) > 0, f"{key}: trivially zero"
        np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-14, err_msg=str(key))


def spy_backward(layer: Any, seen: list[np.ndarray]) -> None:
    original = layer.backward

    def backward(dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        seen.append(dy.copy())
        return original(dy, ctx, input_error)

    layer.backward = backward


# --------------------------------------------------------------------------- DFA vs BP


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
def test_dfa_with_transposed_output_weights_is_bp(
    activation: str, dropout: bool, rng: np.random.Generator
) -> None:
    layers: list[dict[str, Any]] = [
        {"type": "dense", "name": "h", "units": 7, "activation": activation}
    ]
    if dropout:
        layers.append({"type": "dropout", "name": "drop", "rate": 0.3})
    layers.append({"type": "dense", "name": "out", "units": 4})
    network = make_network([5], 4, layers)
    model = make_model(network, rng)
    x = rng.standard_normal((6, 5))
    y = rng.integers(0, 4, 6)

    def ctx_factory() -> StepContext:  # the same dropout mask for both rules
        return StepContext(training=True, rng=np.random.default_rng(5), dropout=dropout)

    dfa = DirectFeedbackAlignment(model, rng)
    assert isinstance(dfa.feedback, dict) and set(dfa.feedback) == {"h"}
    random_grads, _ = rule_grads(model, dfa, x, y, ctx_factory)
    bp, _ = rule_grads(model, Backprop(), x, y, ctx_factory)
    # With its own random B, DFA's hidden gradient is not BP's ...
    assert not np.allclose(random_grads[("h", "weight")], bp[("h", "weight")])
    # ... but the output layer learns from E exactly as under BP.
    np.testing.assert_allclose(random_grads[("out", "weight")], bp[("out", "weight")])

    # Feedback matrices are immutable values; the rule's dict of them is what is swapped.
    with pytest.raises(dataclasses.FrozenInstanceError):
        dfa.feedback["h"].matrix = np.zeros(1)  # type: ignore[misc]
    dfa.feedback["h"] = DenseFeedback(model.output_layer.params["weight"].T.copy())
    aligned, _ = rule_grads(model, dfa, x, y, ctx_factory)
    assert_same_grads(aligned, bp)


def test_ssdfa_gather_equals_dfa_with_the_dense_equivalent(rng: np.random.Generator) -> None:
    network = make_network(
        [6, 6, 2],
        5,
        [
            {"type": "conv2d", "name": "c1", "filters": 3, "kernel_size": 3, "activation": "tanh"},
            {"type": "max_pool", "name": "p1", "pool_size": 2},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "h", "units": 8, "activation": "relu"},
            {"type": "dense", "name": "out", "units": 5},
        ],
    )
    model = make_model(network, rng)
    x = rng.standard_normal((4, 6, 6, 2))
    y = rng.integers(0, 5, 4)
    ssdfa = SparseDirectFeedbackAlignment(model, rng, nonzeros_per_neuron=2)
    dfa = DirectFeedbackAlignment(model, rng)
    assert set(ssdfa.feedback) == set(dfa.feedback) == {"c1", "h"}
    for name, sparse in ssdfa.feedback.items():
        assert isinstance(sparse, SparseFeedback) and sparse.nonzeros_per_neuron == 2
        dense = sparse.to_dense()
        assert np.all(np.count_nonzero(dense, axis=0) == 2)
        dfa.feedback[name] = DenseFeedback(dense)
    assert_same_grads(rule_grads(model, ssdfa, x, y)[0], rule_grads(model, dfa, x, y)[0])


def test_dfa_injects_e_times_b_at_the_end_of_each_conv_block(rng: np.random.Generator) -> None:
    network = make_network(
        [6, 6, 2],
        3,
        [
            {"type": "conv2d", "name": "c1", "filters": 3, "kernel_size": 3, "activation": "tanh"},
            {"type": "max_pool", "name": "p1", "pool_size": 2},
            {"type": "conv2d", "name": "c2", "filters": 4, "kernel_size": 3, "activation": "tanh"},
            {"type": "max_pool", "name": "p2", "pool_size": 3, "stride": 2, "padding": "same"},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    dfa = DirectFeedbackAlignment(model, rng)
    assert {dfa.feedback[name].neurons for name in ("c1", "c2")} == {3 * 3 * 3, 2 * 2 * 4}
    assert dfa.feedback["c1"].neurons == 27  # after p1: 3x3x3
    assert dfa.feedback["c2"].neurons == 16  # after p2: 2x2x4
    seen: dict[str, list[np.ndarray]] = {name: [] for name in ("p1", "p2", "flat", "c1", "c2")}
    layers = {layer.name: layer for layer in model.layers}
    for name, store in seen.items():
        spy_backward(layers[name], store)
    x = rng.standard_normal((2, 6, 6, 2))
    y = np.array([0, 2])
    grads, error = rule_grads(model, dfa, x, y)

    delta1 = error @ dfa.feedback["c1"].matrix
    delta2 = error @ dfa.feedback["c2"].matrix
    (p1_in,) = seen["p1"]
    np.testing.assert_allclose(p1_in, delta1.reshape(2, 3, 3, 3), rtol=1e-12)
    (flat_in,) = seen["flat"]
    np.testing.assert_allclose(flat_in, delta2, rtol=1e-12)
    (p2_in,) = seen["p2"]
    np.testing.assert_allclose(p2_in, delta2.reshape(2, 2, 2, 4), rtol=1e-12)
    assert len(seen["c1"]) == len(seen["c2"]) == 1  # no error crosses a weight layer

    # c1's DFA gradient is the exact gradient of the surrogate Σ p1(c1(x; W)) ⊙ D1, D1 fixed.
    c1 = layers["c1"]
    weight = c1.params["weight"]
    target = delta1.reshape(2, 3, 3, 3)

    def surrogate() -> float:
        ctx = StepContext(training=False)
        return float((layers["p1"].forward(c1.forward(x, ctx), ctx) * target).sum())

    numeric = np.zeros_like(weight)
    eps = 1e-6
    for i in range(weight.size):
        original = weight.flat[i]
        weight.flat[i] = original + eps
        plus = surrogate()
        weight.flat[i] = original - eps
        minus = surrogate()
        weight.flat[i] = original
        numeric.flat[i] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(grads[("c1", "weight")], numeric, rtol=1e-5, atol=1e-10)


# --------------------------------------------------------------------------- angles


def test_angle_deg_basics(rng: np.random.Generator) -> None:
    a = rng.standard_normal((4, 5))
    assert angle_deg(a, a) == pytest.approx(0.0, abs=1e-5)
    assert angle_deg(a, 3.5 * a) == pytest.approx(0.0, abs=1e-5)
    assert angle_deg(a, -a) == pytest.approx(180.0, abs=1e-5)
    assert angle_deg(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(90.0)
    assert angle_deg(np.array([1.0, 0.0]), np.array([1.0, np.sqrt(3.0)])) == pytest.approx(60.0)
    assert angle_deg(a, np.zeros_like(a)) == 90.0
    assert angle_deg(np.zeros(3), np.zeros(3)) == 90.0
    # Tensors are compared as flat vectors, in float64 even for float32 inputs.
    b = rng.standard_normal((4, 5))
    expected = np.degrees(np.arccos(a.ravel() @ b.ravel() / np.linalg.norm(a) / np.linalg.norm(b)))
    assert angle_deg(a, b) == pytest.approx(expected, rel=1e-9)
    assert angle_deg(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(
        expected, rel=1e-5
    )


# --------------------------------------------------------------------------- initialisation


INIT_NETWORK = make_network(
    [40],
    10,
    [
        {"type": "dense", "name": "frozen", "units": 30, "activation": "tanh", "trainable": False},
        {"type": "dense", "name": "tanh_h", "units": 30, "activation": "tanh"},
        {"type": "dense", "name": "relu_h", "units": 30, "activation": "relu"},
        {"type": "dense", "name": "out", "units": 10},
    ],
)


def weights_of(algorithm: Algorithm, init: WeightInit = WeightInit.AUTO) -> dict[str, np.ndarray]:
    trainer = Trainer(
        INIT_NETWORK,
        TrainConfig(
            algorithm=algorithm,
            epochs=1,
            batch_size=8,
            learning_rate=1e-3,
            optimizer=OptimizerName.ADAM,
            weight_init=init,
        ),
    )
    for layer in trainer.model.trainable_layers():
        np.testing.assert_array_equal(layer.params["bias"], 0)
    return {layer.name: layer.params["weight"] for layer in trainer.model.layers}


def assert_glorot(weight: np.ndarray) -> None:
    fan_in, fan_out = weight.shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.all(np.abs(weight) <= limit)
    assert np.abs(weight).max() > 0.9 * limit
    assert weight.std() == pytest.approx(limit / np.sqrt(3.0), rel=0.15)


@pytest.mark.parametrize("algorithm", [Algorithm.DFA, Algorithm.SSDFA])
def test_feedback_rules_start_tanh_layers_at_zero_and_relu_layers_at_glorot(
    algorithm: Algorithm,
) -> None:
    weights = weights_of(algorithm)
    np.testing.assert_array_equal(weights["tanh_h"], 0)
    assert_glorot(weights["relu_h"])  # relu'(0) = 0: a zero relu layer would never learn
    assert_glorot(weights["frozen"])  # frozen layers are never zeroed
    np.testing.assert_array_equal(weights["out"], 0)  # AUTO zeroes every non-relu layer


def test_bp_starts_every_layer_at_glorot() -> None:
    for weight in weights_of(Algorithm.BP).values():
        assert_glorot(weight)


def test_explicit_weight_init_overrides_auto() -> None:
    glorot = weights_of(Algorithm.DFA, WeightInit.GLOROT)
    for weight in glorot.values():
        assert_glorot(weight)
    zeros = weights_of(Algorithm.DFA, WeightInit.ZEROS)
    for name in ("tanh_h", "relu_h", "out"):
        np.testing.assert_array_equal(zeros[name], 0)
    assert_glorot(zeros["frozen"])


# --------------------------------------------------------------------------- training on digits


class CapturingTrainer(Trainer):
    """The trainer `train` builds, kept so that its final weights can be inspected."""

    built: list[Trainer] = []  # noqa: RUF012

    def __post_init__(self) -> None:
        super().__post_init__()
        CapturingTrainer.built.append(self)


def run_digits(
    dataset: Dataset, algorithm: Algorithm, seed: int = 0
) -> tuple[TrainResult, Trainer]:
    network = load_network("digits_fc")
    config = TrainConfig(
        algorithm=algorithm,
        epochs=3,
        batch_size=network.training.batch_size,
        learning_rate=network.training.learning_rate,
        optimizer=network.training.optimizer,
        seed=seed,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "Trainer", CapturingTrainer)
        CapturingTrainer.built.clear()
        result = train(network, dataset, config)
        (trainer,) = CapturingTrainer.built
    return result, trainer


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_runs(digits: Dataset) -> dict[Algorithm, tuple[TrainResult, Trainer]]:
    return {algorithm: run_digits(digits, algorithm) for algorithm in Algorithm}


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_three_epochs_on_digits_learn_well_above_chance(
    algorithm: Algorithm, digits_runs: dict[Algorithm, tuple[TrainResult, Trainer]]
) -> None:
    result, trainer = digits_runs[algorithm]
    assert [epoch.epoch for epoch in result.history] == [1, 2, 3]
    assert result.final.test_accuracy > 0.8  # chance is 0.1
    assert result.final.train_accuracy > 0.8
    assert result.final.test_loss < result.history[0].test_loss < np.log(10)
    assert trainer.rule.algorithm == algorithm
    assert set(result.final.angles_deg) == {"fc1", "fc2"}
    if algorithm == Algorithm.BP:
        assert all(angle < 1e-3 for angle in result.final.angles_deg.values())
        assert result.final.feedback_output_angle_deg is None
    else:
        assert all(0 < angle < 90 for angle in result.final.angles_deg.values())  # aligned
        assert 0 < result.final.feedback_output_angle_deg < 90


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_same_seed_gives_identical_weights_and_metrics(
    algorithm: Algorithm, digits: Dataset, digits_runs: dict[Algorithm, tuple[TrainResult, Trainer]]
) -> None:
    first, first_trainer = digits_runs[algorithm]
    second, second_trainer = run_digits(digits, algorithm, seed=0)
    assert second.history == first.history
    for a, b in zip(first_trainer.model.layers, second_trainer.model.layers, strict=True):
        for param in a.params:
            np.testing.assert_array_equal(a.params[param], b.params[param])
    if algorithm != Algorithm.BP:
        for name, matrix in first_trainer.rule.feedback.items():
            np.testing.assert_array_equal(
                matrix.to_dense(), second_trainer.rule.feedback[name].to_dense()
            )
    other, other_trainer = run_digits(digits, algorithm, seed=1)
    assert other.history != first.history
    assert not np.array_equal(
        other_trainer.model.layers[0].params["weight"],
        first_trainer.model.layers[0].params["weight"],
    )
