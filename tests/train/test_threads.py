"""BLAS threads follow the size of the step: one thread for small matmuls, the default else."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from hwsim.io.networks import load_network
from hwsim.train.threads import SINGLE_THREAD_MACS, blas_threads_for, largest_matmul_macs


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_largest_matmul_is_batch_times_weights_or_the_im2col_product():
    digits = load_network("digits_fc")
    assert largest_matmul_macs(digits, 32) == 32 * 256 * 256
    conv = load_network("cifar10_conv")
    assert largest_matmul_macs(conv, 1) >= SINGLE_THREAD_MACS // 64


def test_small_steps_run_on_one_blas_thread_large_ones_keep_the_default():
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with blas_threads_for(load_network("digits_fc"), 32):
            assert _blas_threads() <= {1}
        assert _blas_threads() == before
        with blas_threads_for(load_network("vgg16"), 8):
            assert _blas_threads() == before
