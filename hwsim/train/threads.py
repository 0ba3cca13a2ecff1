"""How many BLAS threads a training step should use, chosen by the size of its largest matmul.

The trainer's matrices are mostly small: thread start-up costs more than it saves, and a
multi-threaded OpenBLAS spin-waits whenever another process holds a core — `hwsim run` took
~3 s on a quiet 2-core machine and 2 minutes beside a CPU-bound neighbour.  Steps whose largest
matmul is below `SINGLE_THREAD_MACS` run on one BLAS thread; larger ones keep the library's
default.  Without threadpoolctl nothing is changed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from hwsim.specs.network import Conv2DLayer, NetworkSpec, infer_shapes

SINGLE_THREAD_MACS = 2**26  # ~67 M MACs: a few ms on one core


def largest_matmul_macs(network: NetworkSpec, batch_size: int) -> int:
    """MACs of the largest forward matmul of one step (a convolution's im2col product)."""
    largest = 0
    for spec, shape in zip(network.layers, infer_shapes(network), strict=True):
        if isinstance(spec, Conv2DLayer):
            positions = math.prod(shape.output_shape[:2])
            largest = max(largest, batch_size * positions * shape.weights)
        elif shape.weights:
            largest = max(largest, batch_size * shape.weights)
    return largest


@contextmanager
def blas_threads_for(network: NetworkSpec, batch_size: int) -> Iterator[None]:
    """One BLAS thread for the block if the step's matmuls are small, else the default."""
    if largest_matmul_macs(network, batch_size) >= SINGLE_THREAD_MACS:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
