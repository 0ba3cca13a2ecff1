"""How much memory a real training step needs, estimated from the shapes before anything is
allocated, so that a network or batch too large for the machine is refused with a message
rather than a MemoryError (or the machine swapping) half-way through.

The estimate is deliberately low (it counts the arrays every step holds, not numpy's
temporaries), so a refusal is certain to be right.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource

from hwsim.errors import SpecError
from hwsim.specs.network import Conv2DLayer, NetworkSpec, infer_shapes
from hwsim.units import format_bytes

_STATE_TENSORS = {"sgd": 1, "adam": 2}  # momentum; Adam's two moments
_INIT_BYTES = 8  # rng.uniform draws float64 before the cast to the training dtype


def step_bytes(
    network: NetworkSpec,
    batch_size: int,
    optimizer: str,
    itemsize: int = 4,
    dataset_examples: int = 0,
) -> int:
    """Bytes of the arrays one training step of `network` on `batch_size` examples holds:
    weights, gradients, optimizer state, the largest initialisation draw, activations and
    errors of every layer, a convolution's im2col windows, and `dataset_examples` inputs."""
    shapes = infer_shapes(network)
    parameters = sum(shape.parameters for shape in shapes)
    trained = sum(shape.parameters for shape in shapes if shape.trainable)
    largest = max((shape.weights for shape in shapes), default=0)
    per_example = sum(2 * shape.output_elements for shape in shapes)  # activation and error
    windows = 0
    for spec, shape in zip(network.layers, shapes, strict=True):
        if isinstance(spec, Conv2DLayer):
            positions = shape.output_shape[0] * shape.output_shape[1]
            area = spec.kernel[0] * spec.kernel[1]
            windows = max(windows, positions * area * shape.input_shape[2])
    inputs = math.prod(network.input_shape)
    return (
        itemsize * (parameters + trained * (1 + _STATE_TENSORS.get(optimizer, 0)))
        + _INIT_BYTES * largest
        + itemsize * batch_size * (per_example + windows + inputs)
        + itemsize * dataset_examples * inputs
    )


def memory_limit_bytes() -> int | None:
    """The physical memory, or the process's address-space limit if lower; None if unknown."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for name in ("RLIMIT_AS", "RLIMIT_DATA"):
        soft = resource.getrlimit(getattr(resource, name))[0] if hasattr(resource, name) else -1
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(soft)
    return min(limits) if limits else None


def check_step_fits(
    network: NetworkSpec,
    batch_size: int,
    optimizer: str,
    itemsize: int = 4,
    dataset_examples: int = 0,
    limit_bytes: int | None = None,
) -> None:
    """SpecError, before any allocation, if one step cannot fit in memory."""
    limit = memory_limit_bytes() if limit_bytes is None else limit_bytes
    if limit is None:
        return
    needed = step_bytes(network, batch_size, optimizer, itemsize, dataset_examples)
    if needed > limit:
        raise SpecError(
            f"network {network.name}, batch size {batch_size}: one training step "
            f"needs at least {format_bytes(needed)} of memory (weights, gradients, "
            f"optimizer state, activations and errors) but this machine allows "
            f"{format_bytes(limit)}; use a smaller batch size or network"
        )
