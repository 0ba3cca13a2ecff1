"""Hand-written layers: BP gradients against central finite differences, the loss, dropout,
frozen layers and max-pool routing.

Everything here runs in float64 so that a central difference with eps = 1e-6 is accurate to
about 1e-9 relative; the BP gradients must agree to 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Phase
from hwsim.train.layers import Layer, StepContext
from hwsim.train.model import Model
from hwsim.train.rules import Backprop
from hwsim.train.tracer import Tracer
from tests.train.builders import make_model, make_network

EPS = 1e-6
RTOL = 1e-5


# --------------------------------------------------------------------------- helpers


def batch(
    network: NetworkSpec, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((size, *network.input_shape))
    y = rng.integers(0, network.classes, size)
    return x, y


def loss_of(
    model: Model, x: np.ndarray, y: np.ndarray, ctx_factory: Callable[[], StepContext] | None = None
) -> float:
    ctx = ctx_factory() if ctx_factory else StepContext(training=True, dropout=False)
    logits = model.forward(x, ctx)
    loss, _, _ = model.loss_and_error(logits, y, ctx)
    return loss


def bp_grads(
    model: Model, x: np.ndarray, y: np.ndarray, ctx_factory: Callable[[], StepContext] | None = None
) -> dict[tuple[str, str], np.ndarray]:
    ctx = ctx_factory() if ctx_factory else StepContext(training=True, dropout=False)
    logits = model.forward(x, ctx)
    _, error, _ = model.loss_and_error(logits, y, ctx)
    Backprop().backward(model, error, ctx)
    return {
        (layer.name, param): grad.copy()
        for layer in model.trainable_layers()
        for param, grad in layer.grads.items()
    }


def numeric_grad(
    model: Model,
    param: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    ctx_factory: Callable[[], StepContext] | None = None,
) -> np.ndarray:
    """Central differences of the loss with respect to every entry of `param` (in place)."""
    grad = np.zeros_like(param)
    for i in range(param.size):
        original = param.flat[i]
        param.flat[i] = original + EPS
        plus = loss_of(model, x, y, ctx_factory)
        param.flat[i] = original - EPS
        minus = loss_of(model, x, y, ctx_factory)
        param.flat[i] = original
        grad.flat[i] = (plus - minus) / (2 * EPS)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / scale)


def check_all_gradients(
    model: Model, x: np.ndarray, y: np.ndarray, ctx_factory: Callable[[], StepContext] | None = None
) -> None:
    analytic = bp_grads(model, x, y, ctx_factory)
    expected_keys = {
        (layer.name, param) for layer in model.trainable_layers() for param in layer.params
    }
    assert set(analytic) == expected_keys, "every trainable weight and bias needs a gradient"
    for layer in model.trainable_layers():
        for param, value in layer.params.items():
            got = analytic[(layer.name, param)]
            assert got.shape == value.shape
            assert np.linalg.norm(got) > 1e-8, f"{layer.name}.{param}: gradient is trivially 0"
            numeric = numeric_grad(model, value, x, y, ctx_factory)
            error = relative_error(got, numeric)
            assert error < RTOL, f"{layer.name}.{param}: relative error {error:.2e}"


# --------------------------------------------------------------------------- the loss


def test_loss_is_mean_softmax_cross_entropy_and_error_is_its_gradient(
    rng: np.random.Generator,
) -> None:
    network = make_network([4], 5, [{"type": "dense", "name": "out", "units": 5}])
    model = make_model(network, rng)
    logits = 3 * rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, 6)
    ctx = StepContext(training=True, dropout=False)
    loss, error, probabilities = model.loss_and_error(logits, labels, ctx)

    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-log_softmax[np.arange(6), labels].mean(), rel=1e-12)
    np.testing.assert_allclose(probabilities, np.exp(log_softmax), rtol=1e-12)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(error, (np.exp(log_softmax) - onehot) / 6, rtol=1e-10, atol=1e-15)

    # The error is d(mean loss)/d(logits): check it by central differences.
    numeric = np.zeros_like(logits)
    for i in range(logits.size):
        shifted = logits.copy()
        shifted.flat[i] += EPS
        plus = model.loss_and_error(shifted, labels, ctx)[0]
        shifted.flat[i] -= 2 * EPS
        minus = model.loss_and_error(shifted, labels, ctx)[0]
        numeric.flat[i] = (plus - minus) / (2 * EPS)
    assert relative_error(error, numeric) < RTOL

    # A mean, not a sum: repeating the batch leaves the loss unchanged and halves the error.
    loss2, error2, _ = model.loss_and_error(
        np.concatenate([logits, logits]), np.concatenate([labels, labels]), ctx
    )
    assert loss2 == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(error2[:6], error / 2, rtol=1e-12)


def test_loss_of_a_confidently_wrong_prediction_is_not_clipped(rng: np.random.Generator) -> None:
    # Regression: loss_and_error used to clip the true-class probability at 1e-12, so the loss
    # saturated at -log(1e-12) = 27.63.
    network = make_network([4], 2, [{"type": "dense", "name": "out", "units": 2}])
    model = make_model(network, rng)
    logits = np.array([[0.0, 50.0]])
    loss, error, _ = model.loss_and_error(logits, np.array([0]), StepContext(training=True))
    np.testing.assert_allclose(error, [[-1.0, 1.0]], atol=1e-15)  # the error is right ...
    assert loss == pytest.approx(50.0, rel=1e-9)  # ... the loss is -log softmax = 50


def test_loss_is_stable_for_huge_logits(rng: np.random.Generator) -> None:
    network = make_network([4], 3, [{"type": "dense", "name": "out", "units": 3}])
    model = make_model(network, rng)
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
    loss, error, _ = model.loss_and_error(logits, np.array([0, 1]), StepContext(training=True))
    assert np.isfinite(loss) and loss == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isfinite(error))


# ------------------------------------------------------------- BP vs finite differences


def test_dense_gradients_match_finite_differences(rng: np.random.Generator) -> None:
    network = make_network(
        [6],
        3,
        [
            {"type": "dense", "name": "h1", "units": 5, "activation": "tanh"},
            {"type": "dense", "name": "h2", "units": 5, "activation": "sigmoid"},
            {"type": "dense", "name": "h3", "units": 4, "activation": "relu"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    x, y = batch(network, 4, rng)
    check_all_gradients(model, x, y)


def test_standalone_activation_layer_gradients(rng: np.random.Generator) -> None:
    network = make_network(
        [5],
        3,
        [
            {"type": "dense", "name": "h1", "units": 6},
            {"type": "activation", "name": "act1", "function": "sigmoid"},
            {"type": "dense", "name": "h2", "units": 4, "use_bias": False},
            {"type": "activation", "name": "act2", "function": "tanh"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    assert "bias" not in model.layers[2].params
    x, y = batch(network, 3, rng)
    check_all_gradients(model, x, y)


def test_a_scale_layer_multiplies_both_ways_and_its_gradients_match(
    rng: np.random.Generator,
) -> None:
    network = make_network(
        [5],
        3,
        [
            {"type": "scale", "name": "in_scale", "factor": 1 / 255},
            {"type": "dense", "name": "h1", "units": 6, "activation": "tanh"},
            {"type": "scale", "name": "s1", "factor": -2.5},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    x, y = batch(network, 3, rng)
    check_all_gradients(model, x, y)
    ctx = StepContext(training=True)
    layer = model.layers[2]
    h = rng.standard_normal((3, 6)).astype(np.float32)
    assert np.array_equal(layer.forward(h, ctx), h * np.float32(-2.5))
    assert np.array_equal(layer.backward(h, ctx, True), h * np.float32(-2.5))


def test_relu6_clips_at_0_and_6_and_its_gradients_match(rng: np.random.Generator) -> None:
    layers = [
        {"type": "dense", "name": "h1", "units": 8, "activation": "relu6"},
        {"type": "activation", "name": "act", "function": "relu6"},
        {"type": "dense", "name": "out", "units": 3},
    ]
    network = make_network([5], 3, layers)
    model = make_model(network, rng)
    model.layers[0].params["weight"] *= 8  # pre-activations on both sides of 0 and of 6
    x, y = batch(network, 4, rng)
    ctx = StepContext(training=True, dropout=False)
    hidden = model.layers[0].forward(x, ctx)
    assert hidden.min() == 0 and hidden.max() == 6
    check_all_gradients(model, x, y)


CONV_NETWORKS = {
    # conv 3x3 stride 1 SAME, pool 3/2 SAME (odd input: asymmetric padding), conv 5x5 stride 2
    # SAME, flatten, dense.
    "s1same_k3-pool3s2same-s2same_k5": (
        [9, 9, 2],
        [
            {"type": "conv2d", "name": "c1", "filters": 3, "kernel_size": 3, "activation": "tanh"},
            {"type": "max_pool", "name": "p1", "pool_size": 3, "stride": 2, "padding": "same"},
            {
                "type": "conv2d",
                "name": "c2",
                "filters": 4,
                "kernel_size": 5,
                "stride": 2,
                "activation": "sigmoid",
            },
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # conv 5x5 stride 2 VALID (relu), pool 2/2 VALID, conv 3x3 stride 2 VALID, flatten,
    # hidden dense, dense.
    "s2valid_k5-pool2s2valid-s2valid_k3": (
        [23, 21, 2],
        [
            {
                "type": "conv2d",
                "name": "c1",
                "filters": 3,
                "kernel_size": 5,
                "stride": 2,
                "padding": "valid",
                "activation": "relu",
            },
            {"type": "max_pool", "name": "p1", "pool_size": 2, "stride": 2},
            {
                "type": "conv2d",
                "name": "c2",
                "filters": 3,
                "kernel_size": 3,
                "stride": 2,
                "padding": "valid",
                "activation": "tanh",
            },
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "h", "units": 5, "activation": "tanh"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # conv 3x3 stride 2 SAME on an even input, pool 3/2 VALID, conv 5x5 stride 1 SAME,
    # pool 2/2 SAME on an odd size, flatten, dense.
    "s2same_k3-pool3s2valid-s1same_k5-pool2s2same": (
        [14, 14, 1],
        [
            {
                "type": "conv2d",
                "name": "c1",
                "filters": 3,
                "kernel_size": 3,
                "stride": 2,
                "activation": "tanh",
            },
            {"type": "max_pool", "name": "p1", "pool_size": 3, "stride": 2, "padding": "valid"},
            {"type": "conv2d", "name": "c2", "filters": 3, "kernel_size": 5, "activation": "tanh"},
            {"type": "max_pool", "name": "p2", "pool_size": 2, "stride": 2, "padding": "same"},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # Strides larger than the window: conv 3x3 stride 4 VALID, pool 2 stride 3 VALID (inputs
    # that no window covers get no error).
    "s4valid_k3-pool2s3valid": (
        [18, 15, 2],
        [
            {
                "type": "conv2d",
                "name": "c1",
                "filters": 3,
                "kernel_size": 3,
                "stride": 4,
                "padding": "valid",
                "activation": "tanh",
            },
            {"type": "max_pool", "name": "p1", "pool_size": 2, "stride": 3},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # Rectangular windows (an Inception-style 1x3 then 3x1, a grouped 2x5 VALID at stride 2).
    "rect_k1x3same-k3x1same-g2_k2x5s2valid": (
        [9, 11, 2],
        [
            {"type": "conv2d", "name": "c1", "filters": 4, "kernel_size": [1, 3]},
            {
                "type": "conv2d",
                "name": "c2",
                "filters": 4,
                "kernel_size": [3, 1],
                "activation": "tanh",
            },
            {
                "type": "conv2d",
                "name": "c3",
                "filters": 2,
                "kernel_size": [2, 5],
                "stride": 2,
                "padding": "valid",
                "groups": 2,
                "activation": "tanh",
            },
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
}


def check_network_gradients(networks: dict, case: str, rng: np.random.Generator) -> None:
    """A 4-class network of `networks` on a batch of 2: its logits' shape and every gradient."""
    input_shape, layers = networks[case]
    network = make_network(input_shape, 4, layers)
    model = make_model(network, rng)
    x, y = batch(network, 2, rng)
    logits = model.forward(x, StepContext(training=False))
    assert logits.shape == (2, 4)
    check_all_gradients(model, x, y)


@pytest.mark.parametrize("case", sorted(CONV_NETWORKS))
def test_conv_gradients_match_finite_differences(case: str, rng: np.random.Generator) -> None:
    check_network_gradients(CONV_NETWORKS, case, rng)


@pytest.mark.parametrize("kernel", [4, [2, 5], [5, 1]])
def test_conv_forward_matches_direct_convolution(kernel, rng: np.random.Generator) -> None:
    """An independent loop-based convolution (TensorFlow SAME padding: extra on the after side),
    square and rectangular windows."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    network = make_network(
        [6, 7, 2],
        3,
        [
            {"type": "conv2d", "name": "c", "filters": 3, "kernel_size": kernel, "stride": 2},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    conv = model.layers[0]
    x = rng.standard_normal((2, 6, 7, 2))
    got = conv.forward(x, StepContext(training=False))
    weight, bias = conv.params["weight"], conv.params["bias"]
    assert weight.shape == (kh, kw, 2, 3)
    out_h, out_w = -(-6 // 2), -(-7 // 2)
    pad_h = max((out_h - 1) * 2 + kh - 6, 0)
    pad_w = max((out_w - 1) * 2 + kw - 7, 0)
    padded = np.pad(
        x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    )
    expected = np.zeros((2, out_h, out_w, 3))
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[:, 2 * i : 2 * i + kh, 2 * j : 2 * j + kw, :]
            expected[:, i, j, :] = np.einsum("bhwc,hwcf->bf", patch, weight) + bias
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- dropout


def dropout_network(rate: float) -> NetworkSpec:
    return make_network(
        [30],
        3,
        [
            {"type": "dense", "name": "h", "units": 40, "activation": "tanh"},
            {"type": "dropout", "name": "drop", "rate": rate},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )


def test_dropout_masks_forward_and_backward_with_inverted_scaling(rng: np.random.Generator) -> None:
    rate = 0.25
    model = make_model(dropout_network(rate), rng)
    drop = model.layers[1]
    x = rng.uniform(0.5, 1.5, (50, 40))  # never zero, so zeros in y come from the mask
    ctx = StepContext(training=True, rng=np.random.default_rng(3))
    y = drop.forward(x, ctx)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-14)
    assert abs((~kept).mean() - rate) < 0.03  # 2000 Bernoulli draws
    dy = rng.uniform(0.5, 1.5, x.shape)
    dx = drop.backward(dy, ctx, input_error=True)
    np.testing.assert_array_equal(dx != 0, kept)  # the same mask both ways
    np.testing.assert_allclose(dx[kept], dy[kept] / (1 - rate), rtol=1e-14)
    # The expectation is preserved: E[y] = x.
    big = np.ones((400, 500))
    assert drop.forward(big, ctx).mean() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    "ctx",
    [StepContext(training=False), StepContext(training=True, dropout=False)],
    ids=["eval", "dropout-off"],
)
def test_dropout_is_identity_when_off(ctx: StepContext, rng: np.random.Generator) -> None:
    model = make_model(dropout_network(0.5), rng)
    drop = model.layers[1]
    x = rng.standard_normal((4, 40))
    np.testing.assert_array_equal(drop.forward(x, ctx), x)
    dy = rng.standard_normal((4, 40))
    np.testing.assert_array_equal(drop.backward(dy, ctx, input_error=True), dy)
    # And the whole model's predictions are deterministic in eval mode.
    inputs = rng.standard_normal((4, 30))
    np.testing.assert_array_equal(model.predict(inputs), model.predict(inputs))


def test_gradients_through_dropout_match_finite_differences_with_a_fixed_mask(
    rng: np.random.Generator,
) -> None:
    """Reseeding the dropout RNG for every forward pass fixes the mask, so the loss is a smooth
    function of the weights and BP through the mask must match finite differences."""
    model = make_model(dropout_network(0.5), rng)
    x, y = batch(model.network, 3, rng)

    def ctx_factory() -> StepContext:
        return StepContext(training=True, rng=np.random.default_rng(11))

    check_all_gradients(model, x, y, ctx_factory)
    # The mask is really applied: the loss differs from the loss with dropout off.
    assert loss_of(model, x, y, ctx_factory) != pytest.approx(loss_of(model, x, y), rel=1e-6)


# --------------------------------------------------------------------------- frozen layers


def spy_backward(layer: Any, calls: list[tuple[str, bool]]) -> None:
    original = layer.backward

    def backward(dy: np.ndarray, ctx: StepContext, input_error: bool) -> np.ndarray | None:
        calls.append((layer.name, input_error))
        return original(dy, ctx, input_error)

    layer.backward = backward


def test_frozen_layers_below_get_no_gradients_and_bp_stops_at_lowest_trainable(
    rng: np.random.Generator,
) -> None:
    network = make_network(
        [8, 8, 1],
        3,
        [
            {
                "type": "conv2d",
                "name": "c1",
                "filters": 2,
                "kernel_size": 3,
                "activation": "relu",
                "trainable": False,
            },
            {"type": "max_pool", "name": "p1", "pool_size": 2},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "h1", "units": 6, "activation": "tanh", "trainable": False},
            {"type": "dense", "name": "h2", "units": 5, "activation": "tanh"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    assert [layer.name for layer in model.trainable_layers()] == ["h2", "out"]
    calls: list[tuple[str, bool]] = []
    for layer in model.layers:
        spy_backward(layer, calls)
    x, y = batch(network, 3, rng)
    tracer = Tracer()
    ctx = StepContext(training=True, dropout=False, tracer=tracer)
    _, error, _ = model.loss_and_error(model.forward(x, ctx), y, ctx)
    Backprop().backward(model, error, ctx)

    assert calls == [("out", True), ("h2", False)]  # h2 computes no error for its input
    for name in ("c1", "h1"):
        layer = next(layer for layer in model.layers if layer.name == name)
        assert layer.grads == {}
    below = {"c1", "p1", "flat", "h1"}
    backward_records = [r for r in tracer.records if r.phase != Phase.FORWARD]
    assert not [r for r in backward_records if r.layer in below]
    error_matmuls = [
        r.layer for r in backward_records if r.phase == Phase.ERROR and r.op.kind == "matmul"
    ]
    assert error_matmuls == ["out"]
    # The trainable layers' gradients are still exact.
    check_all_gradients(model, x, y)


def test_bp_propagates_through_a_frozen_layer_above_a_trainable_one(
    rng: np.random.Generator,
) -> None:
    network = make_network(
        [5],
        3,
        [
            {"type": "dense", "name": "h1", "units": 6, "activation": "tanh"},
            {"type": "dense", "name": "h2", "units": 4, "activation": "tanh", "trainable": False},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    x, y = batch(network, 3, rng)
    frozen = model.layers[1]
    before = frozen.params["weight"].copy()
    check_all_gradients(model, x, y)  # h1's gradient flows through the frozen h2
    assert frozen.grads == {}
    np.testing.assert_array_equal(frozen.params["weight"], before)


def test_bp_propagates_through_a_frozen_conv_above_a_trainable_one(
    rng: np.random.Generator,
) -> None:
    network = make_network(
        [7, 7, 2],
        3,
        [
            {"type": "conv2d", "name": "c1", "filters": 3, "kernel_size": 3, "activation": "tanh"},
            {
                "type": "conv2d",
                "name": "c2",
                "filters": 3,
                "kernel_size": 3,
                "stride": 2,
                "activation": "tanh",
                "trainable": False,
            },
            {"type": "max_pool", "name": "p", "pool_size": 2, "padding": "same"},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    model = make_model(network, rng)
    x, y = batch(network, 2, rng)
    check_all_gradients(model, x, y)
    assert model.layers[1].grads == {}


# --------------------------------------------------------------------------- max pool


def pool_layer(
    input_shape: list[int], pool: int, stride: int, padding: str, rng: np.random.Generator
) -> Layer:
    network = make_network(
        input_shape,
        2,
        [
            {
                "type": "max_pool",
                "name": "p",
                "pool_size": pool,
                "stride": stride,
                "padding": padding,
            },
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 2},
        ],
    )
    return make_model(network, rng).layers[0]


def test_max_pool_routes_the_error_to_the_argmax_only(rng: np.random.Generator) -> None:
    pool = pool_layer([4, 4, 2], 2, 2, "valid", rng)
    x = rng.permutation(2 * 4 * 4 * 2).reshape(2, 4, 4, 2).astype(np.float64)  # no ties
    ctx = StepContext(training=True)
    y = pool.forward(x, ctx)
    assert y.shape == (2, 2, 2, 2)
    dy = rng.uniform(1, 2, y.shape)
    dx = pool.backward(dy, ctx, input_error=True)
    for b in range(2):
        for i in range(2):
            for j in range(2):
                for c in range(2):
                    window = x[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
                    assert y[b, i, j, c] == window.max()
                    r, s = np.unravel_index(window.argmax(), window.shape)
                    routed = dx[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
                    expected = np.zeros((2, 2))
                    expected[r, s] = dy[b, i, j, c]
                    np.testing.assert_array_equal(routed, expected)


def test_overlapping_max_pool_adds_errors_of_shared_maxima() -> None:
    # One 5x5 channel, pool 3 stride 2 VALID: 2x2 windows that all contain the centre.
    pool = pool_layer([5, 5, 1], 3, 2, "valid", np.random.default_rng(0))
    x = np.zeros((1, 5, 5, 1))
    x[0, 2, 2, 0] = 10.0  # the maximum of all four windows
    ctx = StepContext(training=True)
    y = pool.forward(x, ctx)
    np.testing.assert_array_equal(y, np.full((1, 2, 2, 1), 10.0))
    dy = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    dx = pool.backward(dy, ctx, input_error=True)
    expected = np.zeros_like(x)
    expected[0, 2, 2, 0] = 10.0
    np.testing.assert_array_equal(dx, expected)


def test_same_max_pool_never_picks_the_padding() -> None:
    # All inputs negative: a zero-padded pool would return 0 at the border.
    pool = pool_layer([5, 5, 1], 2, 2, "same", np.random.default_rng(0))
    x = -1.0 - np.arange(25, dtype=np.float64).reshape(1, 5, 5, 1)
    ctx = StepContext(training=True)
    y = pool.forward(x, ctx)
    assert y.shape == (1, 3, 3, 1)
    # TensorFlow SAME: 1 padding row/column after (bottom/right); windows start at 0, 2, 4.
    expected = np.array([[x[0, r, c, 0] for c in (0, 2, 4)] for r in (0, 2, 4)])
    np.testing.assert_array_equal(y[0, :, :, 0], expected)
    dy = np.ones_like(y)
    dx = pool.backward(dy, ctx, input_error=True)
    assert dx.shape == x.shape
    assert dx.sum() == dy.sum()  # nothing was routed into the padding
    assert np.count_nonzero(dx) == 9


# --------------------------------------------------------------------- average pooling

POOL_NETWORKS = {
    # avg pool 3/2 SAME on an odd map (asymmetric padding: border windows average fewer
    # values), then a global average pool into the dense head.
    "avg3s2same-global": (
        [9, 7, 2],
        [
            {"type": "conv2d", "name": "c1", "filters": 3, "kernel_size": 3, "activation": "tanh"},
            {"type": "avg_pool", "name": "p1", "pool_size": 3, "stride": 2, "padding": "same"},
            {"type": "conv2d", "name": "c2", "filters": 4, "kernel_size": 3},
            {"type": "global_avg_pool", "name": "gap"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # avg pool 2/2 VALID (non-overlapping), avg pool 3/1 VALID (overlapping), flatten.
    "avg2s2valid-avg3s1valid": (
        [10, 12, 1],
        [
            {"type": "conv2d", "name": "c1", "filters": 2, "kernel_size": 3, "activation": "relu"},
            {"type": "avg_pool", "name": "p1", "pool_size": 2},
            {"type": "avg_pool", "name": "p2", "pool_size": 3, "stride": 1},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # A stride larger than the window (inputs no window covers get no error), and an even
    # pool with SAME padding (the extra padding on the after side).
    "avg2s3valid-avg2s1same": (
        [11, 8, 2],
        [
            {"type": "conv2d", "name": "c1", "filters": 2, "kernel_size": 2, "activation": "tanh"},
            {"type": "avg_pool", "name": "p1", "pool_size": 2, "stride": 3},
            {"type": "avg_pool", "name": "p2", "pool_size": 2, "stride": 1, "padding": "same"},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(POOL_NETWORKS))
def test_avg_pool_gradients_match_finite_differences(case: str, rng: np.random.Generator) -> None:
    check_network_gradients(POOL_NETWORKS, case, rng)


def _direct_avg_pool(x: np.ndarray, k: int, stride: int, same: bool) -> tuple[np.ndarray, int]:
    """Loops: each window's mean over the values inside the input (TensorFlow's SAME), and
    how many values the windows read."""
    _, height, width, _ = x.shape
    if same:
        out_h, out_w = -(-height // stride), -(-width // stride)
        top = max((out_h - 1) * stride + k - height, 0) // 2
        left = max((out_w - 1) * stride + k - width, 0) // 2
    else:
        out_h, out_w = (height - k) // stride + 1, (width - k) // stride + 1
        top = left = 0
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    read = 0
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * stride - top, j * stride - left
            patch = x[:, max(r0, 0) : r0 + k, max(c0, 0) : c0 + k, :]
            out[:, i, j, :] = patch.mean(axis=(1, 2))
            read += patch.size
    return out, read


@pytest.mark.parametrize(
    ("k", "stride", "padding"),
    [(2, 2, "valid"), (3, 2, "same"), (3, 1, "same"), (2, 3, "valid"), (4, 3, "same")],
)
def test_avg_pool_forward_matches_direct_loops(k, stride, padding, rng) -> None:
    network = make_network(
        [7, 9, 2],
        3,
        [
            {"type": "avg_pool", "name": "p", "pool_size": k, "stride": stride, "padding": padding},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    pool = make_model(network, rng).layers[0]
    x = rng.standard_normal((2, 7, 9, 2))
    got = pool.forward(x, StepContext(training=False))
    expected, read = _direct_avg_pool(x, k, stride, padding == "same")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # The forward reduce reads each in-bounds value once per window that holds it, and the
    # backward spread adds one share per value read.
    forward, backward = pool.forward_ops(2)[0], pool.backward_ops(2, True)[0]
    assert (forward.op.inputs, forward.other_ops, backward.other_ops) == (read, read, read)


def test_global_avg_pool_is_the_mean_of_each_channel(rng: np.random.Generator) -> None:
    network = make_network(
        [5, 4, 3],
        2,
        [{"type": "global_avg_pool", "name": "gap"}, {"type": "dense", "name": "out", "units": 2}],
    )
    model = make_model(network, rng)
    gap = model.layers[0]
    assert model.shapes[0].output_shape == (3,)
    x = rng.standard_normal((2, 5, 4, 3))
    ctx = StepContext(training=True)
    np.testing.assert_allclose(gap.forward(x, ctx), x.mean(axis=(1, 2)), rtol=1e-12)
    dy = rng.standard_normal((2, 3))
    dx = gap.backward(dy, ctx, input_error=True)
    np.testing.assert_allclose(dx, np.broadcast_to(dy[:, None, None, :] / 20, x.shape))
    check_all_gradients(model, *batch(network, 2, rng))
