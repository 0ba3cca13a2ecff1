"""Fixtures shared by the trainer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread: these small matmuls only lose to thread start-up and, on a shared
    2-core machine, to spinning threads (several times slower under load)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
