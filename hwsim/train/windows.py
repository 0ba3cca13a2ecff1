"""Sliding windows over an NHWC batch, shared by conv2d and pooling: the padding, a strided
view of the windows, its adjoint that adds window errors back onto the input, and how many
of each window's values lie inside the input (what an average pool divides by)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hwsim.specs.vocab import Padding, same_padding


def window_padding(size: int, kernel: int, stride: int, padding: Padding) -> tuple[int, int]:
    if padding == Padding.SAME:
        return same_padding(size, kernel, stride)
    return 0, 0


def in_bounds(size: int, kernel: int, stride: int, out: int, pad_before: int) -> list[int]:
    """Per output position along one axis, how many of its window's `kernel` values lie
    inside the input (not in the padding).  Plain Python: shape-only traces use it too."""
    counts = []
    for position in range(out):
        start = position * stride - pad_before
        counts.append(max(0, min(start + kernel, size) - max(start, 0)))
    return counts


def _hw(kernel: int | tuple[int, int]) -> tuple[int, int]:
    """A window's (height, width): an int is a square one."""
    return (kernel, kernel) if isinstance(kernel, int) else kernel


def windows(
    x: np.ndarray,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int],
    out_h: int,
    out_w: int,
    pads: tuple[tuple[int, int], tuple[int, int]],
    fill: float = 0.0,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """Strided view [B, out_h, out_w, C, kernel height, kernel width] of the padded input
    (`kernel`, `stride` and `dilation`, the step between a window's taps: an int, the same
    along both axes, or (height, width))."""
    if any(pads[0]) or any(pads[1]):
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill)
    (kernel_h, kernel_w), (stride_h, stride_w) = _hw(kernel), _hw(stride)
    dilation_h, dilation_w = _hw(dilation)
    reach = ((kernel_h - 1) * dilation_h + 1, (kernel_w - 1) * dilation_w + 1)
    view = sliding_window_view(x, reach, axis=(1, 2))[..., ::dilation_h, ::dilation_w]
    return view[:, ::stride_h, ::stride_w][:, :out_h, :out_w]


def scatter_windows(
    dwin: np.ndarray,
    input_shape: tuple[int, ...],
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int],
    pads: tuple[tuple[int, int], tuple[int, int]],
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """Adjoint of `windows`: add [B, oh, ow, kernel height, kernel width, C] window errors back
    to the input."""
    batch, height, width, channels = input_shape
    (kernel_h, kernel_w), (stride_h, stride_w) = _hw(kernel), _hw(stride)
    dilation_h, dilation_w = _hw(dilation)
    out_h, out_w = dwin.shape[1], dwin.shape[2]
    padded_h = max(height + sum(pads[0]), (out_h - 1) * stride_h + (kernel_h - 1) * dilation_h + 1)
    padded_w = max(width + sum(pads[1]), (out_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1)
    dx = np.zeros((batch, padded_h, padded_w, channels), dtype=dwin.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            top, left = i * dilation_h, j * dilation_w
            rows = slice(top, top + stride_h * out_h, stride_h)
            columns = slice(left, left + stride_w * out_w, stride_w)
            dx[:, rows, columns, :] += dwin[:, :, :, i, j]
    top, left = pads[0][0], pads[1][0]
    return dx[:, top : top + height, left : left + width, :]
