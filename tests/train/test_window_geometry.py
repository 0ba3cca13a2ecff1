"""Window geometry of convolutions and pools: rectangular strides and pool windows ([height,
width] where one number was square) and dilated convolutions, checked against loop-based
references written from the definitions (TensorFlow's SAME: the extra padding after, a
dilated window padded as the inputs it spans) and against finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwsim.specs.trace import RECORD, Algorithm, Conv2DOp, ConvPass, record_json
from hwsim.train.layers import StepContext
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.train.builders import make_model, make_network
from tests.train.test_layers import check_network_gradients


def _hw(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _geometry(size: int, kernel: int, stride: int, padding: str, dilation: int = 1):
    """(outputs, padding before) along one axis, from the definitions."""
    reach = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - reach) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + reach - size, 0) // 2


def direct_conv(x, weight, bias, stride, padding: str, groups: int = 1, dilation=1):
    """Loops over output positions, window taps and groups: out[i, j] = Σ_taps
    x[i·sh + a·dh − top, j·sw + b·dw − left] · w[a, b] (zero outside the input)."""
    batch, height, width, _ = x.shape
    kernel_h, kernel_w, per_group, filters = weight.shape
    (stride_h, stride_w), (dilation_h, dilation_w) = _hw(stride), _hw(dilation)
    out_h, top = _geometry(height, kernel_h, stride_h, padding, dilation_h)
    out_w, left = _geometry(width, kernel_w, stride_w, padding, dilation_w)
    outputs = filters // groups
    result = np.zeros((batch, out_h, out_w, filters))
    for i in range(out_h):
        for j in range(out_w):
            for a in range(kernel_h):
                for b in range(kernel_w):
                    row = i * stride_h + a * dilation_h - top
                    column = j * stride_w + b * dilation_w - left
                    if not (0 <= row < height and 0 <= column < width):
                        continue
                    for g in range(groups):
                        ins = x[:, row, column, g * per_group : (g + 1) * per_group]
                        outs = slice(g * outputs, (g + 1) * outputs)
                        result[:, i, j, outs] += ins @ weight[a, b, :, outs]
    return result + bias


def direct_pool(x, window, stride, padding: str, kind: str):
    """Each window's max, or its mean over the values inside the input."""
    _, height, width, _ = x.shape
    (pool_h, pool_w), (stride_h, stride_w) = _hw(window), _hw(stride)
    out_h, top = _geometry(height, pool_h, stride_h, padding)
    out_w, left = _geometry(width, pool_w, stride_w, padding)
    result = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * stride_h - top, j * stride_w - left
            patch = x[:, max(r0, 0) : r0 + pool_h, max(c0, 0) : c0 + pool_w, :]
            result[:, i, j, :] = (
                patch.max(axis=(1, 2)) if kind == "max_pool" else patch.mean((1, 2))
            )
    return result


def _conv_net(shape, **conv):
    return make_network(
        shape,
        3,
        [
            {"type": "conv2d", "name": "c", "filters": 4, **conv},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )


@pytest.mark.parametrize(
    "conv",
    [
        {"kernel_size": 3, "stride": [1, 2]},
        {"kernel_size": [2, 5], "stride": [3, 1], "padding": "valid"},
        {"kernel_size": [3, 2], "stride": [2, 3], "groups": 2},
        {"kernel_size": 1, "stride": [2, 1], "padding": "valid"},
        {"kernel_size": 3, "stride": 1, "dilation": 2},
        {"kernel_size": [2, 3], "stride": [1, 2], "dilation": [3, 1], "padding": "valid"},
        {"kernel_size": 3, "stride": 2, "dilation": [1, 2], "groups": 2},
        {"kernel_size": [3, 2], "stride": 1, "dilation": [2, 4], "padding": "valid"},
    ],
)
def test_conv_forward_matches_the_loops(conv, rng: np.random.Generator) -> None:
    network = _conv_net([7, 9, 2], **conv)
    layer = make_model(network, rng).layers[0]
    x = rng.standard_normal((2, 7, 9, 2))
    got = layer.forward(x, StepContext(training=False))
    params = layer.params
    expected = direct_conv(
        x,
        params["weight"],
        params["bias"],
        conv["stride"],
        conv.get("padding", "same"),
        conv.get("groups", 1),
        conv.get("dilation", 1),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # The record: the stride one number when square, [height, width] when not; MACs those
    # of the undilated kernel.
    op = layer.gemm(2, ConvPass.FORWARD)
    assert isinstance(op, Conv2DOp) and (op.stride_height, op.stride_width) == _hw(conv["stride"])
    assert (op.dilation_height, op.dilation_width) == _hw(conv.get("dilation", 1))
    kernel_h, kernel_w = _hw(conv["kernel_size"])
    assert op.macs == got.size * kernel_h * kernel_w * 2 // conv.get("groups", 1)


@pytest.mark.parametrize(
    ("kind", "window", "stride", "padding"),
    [
        ("max_pool", [2, 3], None, "valid"),
        ("max_pool", [3, 1], [1, 2], "same"),
        ("avg_pool", [2, 3], [2, 1], "same"),
        ("avg_pool", 2, [1, 3], "valid"),
        ("avg_pool", [1, 4], [3, 2], "same"),
    ],
)
def test_pool_forward_matches_the_loops(kind, window, stride, padding, rng) -> None:
    pool = {"pool_size": window, "padding": padding, **({"stride": stride} if stride else {})}
    network = make_network(
        [7, 9, 2],
        3,
        [
            {"type": kind, "name": "p", **pool},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )
    layer = make_model(network, rng).layers[0]
    x = rng.permutation(2 * 7 * 9 * 2).reshape(2, 7, 9, 2).astype(np.float64)  # no ties
    got = layer.forward(x, StepContext(training=False))
    expected = direct_pool(x, window, stride or window, padding, kind)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


NETWORKS = {
    # conv 3x3 stride [1, 2] SAME, max pool 2x3 stride [1, 2] SAME, grouped conv 2x3 stride
    # [2, 1] VALID, avg pool 3x2 (its own stride) VALID.
    "conv_s1x2-max2x3s1x2-conv2x3s2x1g2-avg3x2": (
        [11, 13, 2],
        [
            {
                "type": "conv2d",
                "name": "c1",
                "filters": 4,
                "kernel_size": 3,
                "stride": [1, 2],
                "activation": "tanh",
            },
            {
                "type": "max_pool",
                "name": "p1",
                "pool_size": [2, 3],
                "stride": [1, 2],
                "padding": "same",
            },
            {
                "type": "conv2d",
                "name": "c2",
                "filters": 4,
                "kernel_size": [2, 3],
                "stride": [2, 1],
                "padding": "valid",
                "groups": 2,
                "activation": "sigmoid",
            },
            {"type": "avg_pool", "name": "p2", "pool_size": [3, 2]},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # Dilated convs: 3x3 dilated by 2 SAME (padding 2 a side), a grouped 2x3 dilated by
    # [1, 3] at stride [2, 1] VALID (taps skip inputs), then a 3x1 dilated by [3, 1] SAME.
    "dil2same-dil1x3s2x1valid_g2-dil3x1same": (
        [11, 12, 2],
        [
            {
                "type": "conv2d",
                "name": "c1",
                "filters": 4,
                "kernel_size": 3,
                "dilation": 2,
                "activation": "tanh",
            },
            {
                "type": "conv2d",
                "name": "c2",
                "filters": 4,
                "kernel_size": [2, 3],
                "stride": [2, 1],
                "dilation": [1, 3],
                "padding": "valid",
                "groups": 2,
                "activation": "sigmoid",
            },
            {
                "type": "conv2d",
                "name": "c3",
                "filters": 2,
                "kernel_size": [3, 1],
                "dilation": [3, 1],
                "activation": "tanh",
            },
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
    # A stride beyond the window along one axis only (inputs no window covers get no
    # error), an avg pool 1x3 stride [2, 1] SAME.
    "conv1x2s3x1valid-avg1x3s2x1same": (
        [9, 8, 3],
        [
            {
                "type": "conv2d",
                "name": "c1",
                "filters": 2,
                "kernel_size": [1, 2],
                "stride": [3, 1],
                "padding": "valid",
                "activation": "tanh",
            },
            {
                "type": "avg_pool",
                "name": "p1",
                "pool_size": [1, 3],
                "stride": [2, 1],
                "padding": "same",
            },
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 4},
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(NETWORKS))
def test_gradients_match_finite_differences(case: str, rng: np.random.Generator) -> None:
    check_network_gradients(NETWORKS, case, rng)


def test_a_record_names_its_dilation_only_when_dilated() -> None:
    """An undilated conv's record reads as before (no `dilation` key, a square stride one
    number); a dilated one's carries it, and every record reads back equal."""
    for conv, stride, dilation in (
        ({"kernel_size": 3, "stride": 2}, 2, None),
        ({"kernel_size": 3, "stride": [1, 2], "dilation": [2, 1]}, [1, 2], [2, 1]),
        ({"kernel_size": 2, "dilation": 3}, 1, 3),
    ):
        network = _conv_net([9, 9, 2], **conv)
        trace = shape_only_trace(network, TrainConfig.from_network(network, Algorithm.BP))
        convs = [r for r in trace.records if isinstance(r.op, Conv2DOp)]
        assert {r.op.conv_pass for r in convs} == {ConvPass.FORWARD, ConvPass.BACKWARD_WEIGHT}
        for record in convs:
            text = record_json(record)
            assert json.loads(text)["op"]["stride"] == stride
            assert json.loads(text)["op"].get("dilation") == dilation
            assert ("dilation" in text) == (dilation is not None)
            assert RECORD.validate_json(text) == record
