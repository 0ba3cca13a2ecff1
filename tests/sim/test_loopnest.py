"""The mapping search against first principles, over random shapes, buffers and precisions."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hwsim.sim.loopnest import ConvGeometry, Gemm, Operand, hong_kung_bound_bytes, search
from hwsim.specs.trace import ConvPass

dims = st.integers(1, 3000)
budgets = st.integers(256, 1 << 20)
bits = st.sampled_from([8, 16, 32])


def gemm(
    m: int,
    k: int,
    n: int,
    bits_a: int = 16,
    bits_b: int = 16,
    bits_c: int = 16,
    accumulator_bits: int = 32,
    **flags,
) -> Gemm:
    return Gemm(
        m,
        k,
        n,
        Operand(m * k, bits_a, **flags.get("a", {})),
        Operand(k * n, bits_b, **flags.get("b", {})),
        Operand(m * n, bits_c, **flags.get("c", {})),
        accumulator_bits,
    )


def nbytes(elements: int, element_bits: int) -> int:
    return (elements * element_bits + 7) // 8


@settings(max_examples=200, deadline=None)
@given(dims, dims, dims, budgets, bits, bits, bits)
def test_every_operand_moves_at_least_its_size(m, k, n, budget, ba, bb, bc):
    mapping = search(gemm(m, k, n, ba, bb, bc), budget)
    assume(mapping is not None)
    assert mapping.read_bytes[0] >= nbytes(m * k, ba)
    assert mapping.read_bytes[1] >= nbytes(k * n, bb)
    assert mapping.output_write_bytes == nbytes(m * n, bc)
    assert mapping.footprint_bytes <= budget


@settings(max_examples=200, deadline=None)
@given(dims, dims, dims, bits, st.booleans())
def test_an_operand_is_read_once_when_the_others_fit(m, k, n, element_bits, stream_a):
    """B whole and one row of A and C double-buffered fit: A (and everything) moves once."""
    problem = gemm(m, k, n, element_bits, element_bits, element_bits)
    if stream_a:  # A streams row by row beside a resident B
        budget = (
            nbytes(k * n, element_bits)
            + 2 * nbytes(k, element_bits)
            + nbytes(n, 32)
            + nbytes(n, element_bits)
        )
    else:  # B streams column by column beside a resident A
        budget = (
            nbytes(m * k, element_bits)
            + 2 * nbytes(k, element_bits)
            + nbytes(m, 32)
            + nbytes(m, element_bits)
        )
    mapping = search(problem, budget)
    assert mapping is not None
    assert mapping.read_bytes == (nbytes(m * k, element_bits), nbytes(k * n, element_bits))
    assert mapping.partial_bytes == 0


@settings(max_examples=150, deadline=None)
@given(dims, dims, dims, budgets, st.integers(1, 64), bits)
def test_traffic_never_grows_when_the_buffer_grows(m, k, n, budget, more, element_bits):
    problem = gemm(m, k, n, element_bits, element_bits, element_bits)
    small, large = search(problem, budget), search(problem, budget * more)
    assume(small is not None)
    assert large.dram_bytes <= small.dram_bytes


@settings(max_examples=150, deadline=None)
@given(dims, dims, dims, budgets, st.sampled_from([8, 16]), st.sampled_from([2, 4]))
def test_traffic_scales_linearly_with_every_precision(m, k, n, budget, element_bits, factor):
    """Every role's bits × f on a buffer × f: the same mapping, f × the bytes."""
    base = search(gemm(m, k, n, element_bits, element_bits, element_bits, element_bits * 2), budget)
    scaled_bits = element_bits * factor
    scaled = search(
        gemm(m, k, n, scaled_bits, scaled_bits, scaled_bits, scaled_bits * 2), budget * factor
    )
    assume(base is not None)
    assert scaled.dram_bytes == factor * base.dram_bytes


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 256),
    st.integers(1, 4096),
    st.integers(1, 4096),
    budgets,
    st.sampled_from(["forward", "error", "gradient"]),
)
def test_per_example_traffic_of_a_dense_layer_never_grows_with_batch(
    batch, inputs, outputs, budget, phase
):
    """Doubling the batch at most doubles a dense layer's traffic, in every phase.

    Proof sketch the test checks: run the smaller batch's nest twice (forward, error: its
    batch loop outermost) or with twice the batch per tile (gradient, when its batch loop is
    whole), which needs at most twice its buffer space.  Without that room, a doubled batch
    can push a tile out of a tiny buffer and cost more per example — a real effect."""

    def shape(b: int) -> tuple[int, int, int]:
        return {
            "forward": (b, inputs, outputs),
            "error": (b, outputs, inputs),
            "gradient": (inputs, b, outputs),
        }[phase]

    one = search(gemm(*shape(batch)), budget)
    assume(one is not None and 2 * one.footprint_bytes <= budget)
    assume(phase != "gradient" or one.trips[1] == 1)
    two = search(gemm(*shape(2 * batch)), budget)
    assert two.dram_bytes / (2 * batch) <= one.dram_bytes / batch


@settings(max_examples=200, deadline=None)
@given(dims, dims, dims, budgets, bits)
def test_gemm_traffic_never_beats_the_hong_kung_bound(m, k, n, budget, element_bits):
    mapping = search(gemm(m, k, n, element_bits, element_bits, element_bits, element_bits), budget)
    assume(mapping is not None)
    bound = hong_kung_bound_bytes(m, k, n, budget, element_bits)
    assert mapping.dram_bytes >= bound * (1 - 1e-9)


def test_a_small_batch_dense_layer_streams_its_weights_once():
    """fc6 (9216 → 4096), batch 8, 64 KiB: weights once; the small input re-read per tile."""
    mapping = search(gemm(8, 9216, 4096), 64 * 1024)
    compulsory = (8 * 9216 + 9216 * 4096 + 8 * 4096) * 2
    assert mapping.read_bytes[1] == 9216 * 4096 * 2
    assert mapping.dram_bytes <= 1.02 * compulsory


def test_a_weight_gradient_is_written_once_and_its_inputs_are_not_reread_per_block():
    """dW = aᵀ·δ, the output the large operand: written once, inputs ≪ the output."""
    mapping = search(gemm(9216, 8, 4096), 256 * 1024)
    assert mapping.output_write_bytes == 9216 * 4096 * 2 and mapping.partial_bytes == 0
    assert sum(mapping.read_bytes) < 0.05 * mapping.output_write_bytes


def test_resident_operands_move_nothing_and_a_consumed_output_is_not_written():
    mapping = search(gemm(64, 64, 64, a={"resident": True}, c={"written": False}), 4096)
    assert mapping.read_bytes[0] == 0
    assert mapping.output_write_bytes == 0


# Convolutions ------------------------------------------------------------------------------


def conv_gemm(
    conv_pass: str,
    batch: int,
    size: int,
    channels: int,
    filters: int,
    kernel: int,
    stride: int | tuple[int, int],
    dilation: int = 1,
) -> tuple[Gemm, int, int, int]:
    """A VALID conv of a size × size map; `stride`: one number or (height, width); a
    `dilation` makes the window span (kernel − 1) · dilation + 1 inputs."""
    stride_h, stride_w = (stride, stride) if isinstance(stride, int) else stride
    reach = (kernel - 1) * dilation + 1
    out_h, out_w = (size - reach) // stride_h + 1, (size - reach) // stride_w + 1
    image_in = batch * size * size * channels
    image_out = batch * out_h * out_w * filters
    weights = kernel * kernel * channels * filters
    positions, window = batch * out_h * out_w, kernel * kernel * channels
    geometry = ConvGeometry(
        ConvPass(conv_pass),
        batch,
        size,
        size,
        channels,
        out_h,
        out_w,
        filters,
        kernel,
        kernel,
        stride_h,
        stride_w,
        dilation,
        dilation,
    )
    m, k, n, sizes = {
        "forward": (positions, window, filters, (image_in, weights, image_out)),
        "backward_data": (positions, filters, window, (image_out, weights, image_in)),
        "backward_weight": (window, positions, filters, (image_in, image_out, weights)),
    }[conv_pass]
    problem = Gemm(
        m, k, n, Operand(sizes[0], 16), Operand(sizes[1], 16), Operand(sizes[2], 16), 32, geometry
    )
    return problem, image_in, weights, image_out


convs = st.tuples(
    st.sampled_from(["forward", "backward_data", "backward_weight"]),
    st.integers(1, 8),
    st.integers(3, 40),
    st.integers(1, 64),
    st.integers(1, 64),
    st.sampled_from([1, 3, 5]),
    st.sampled_from([1, 2, (1, 2), (2, 1), (3, 1)]),
    st.sampled_from([1, 1, 2, 3]),
)


def conv_bound_bytes(problem: Gemm, budget: int, compulsory_elements: int) -> float:
    """Hong–Kung for a convolution: each input value feeds up to R·S/stride² windows (stride²:
    the height's times the width's), so the
    fast memory acts as if it were that much larger (Demmel & Dinh 2018, up to constants)."""
    conv = problem.conv
    strides = conv.stride_height * conv.stride_width
    reuse = max(1.0, conv.kernel_height * conv.kernel_width / strides)
    words = budget * 8 / 16
    macs = problem.m * problem.k * problem.n
    return max(2 * macs / math.sqrt(words * reuse), compulsory_elements) * 2


@settings(max_examples=150, deadline=None)
@given(convs, st.integers(2048, 1 << 20))
def test_conv_traffic_covers_every_operand_and_never_beats_the_bound(shape, budget):
    size, kernel, dilation = shape[2], shape[5], shape[7]
    assume(size >= (kernel - 1) * dilation + 1)
    problem, image_in, weights, image_out = conv_gemm(*shape)
    mapping = search(problem, budget)
    assume(mapping is not None)
    assert mapping.read_bytes[0] >= problem.a.elements * 2
    assert mapping.read_bytes[1] >= problem.b.elements * 2
    assert mapping.dram_bytes >= conv_bound_bytes(
        problem, budget, image_in + weights + image_out
    ) * (1 - 1e-9)
    assert mapping.footprint_bytes <= budget


def test_a_conv_that_fits_moves_every_operand_once_and_halos_cost_little():
    problem, image_in, weights, image_out = conv_gemm("forward", 1, 32, 16, 16, 3, 1)
    roomy = search(problem, 1 << 22)
    assert roomy.dram_bytes == (image_in + weights + image_out) * 2
    # A buffer that holds a few input rows: bands of output rows re-read 2 halo rows each.
    cramped = search(problem, 16 * 1024)
    assert cramped.read_bytes[0] < 2 * image_in * 2
    assert cramped.dram_bytes >= roomy.dram_bytes


def test_a_dilated_conv_reads_the_rows_its_windows_span_and_no_more_macs():
    """3x3 on 32x32, 16 channels: dilated by 2 its windows span 5 rows.  With room for all,
    every operand moves once either way; in a buffer that holds a few input rows, a band's
    halo is 4 rows instead of 2, so the input map is re-read more, while the MACs (and the
    filters) stay those of the 3x3 kernel."""
    plain, image_in, weights, _ = conv_gemm("forward", 1, 32, 16, 16, 3, 1)
    dilated, image_in_d, weights_d, image_out_d = conv_gemm("forward", 1, 32, 16, 16, 3, 1, 2)
    assert (image_in_d, weights_d) == (image_in, weights)
    assert dilated.m * dilated.k * dilated.n == 28 * 28 * 9 * 16 * 16
    assert search(dilated, 1 << 22).dram_bytes == (image_in + weights + image_out_d) * 2
    budget = 16 * 1024
    assert search(dilated, budget).read_bytes[0] > search(plain, budget).read_bytes[0]
