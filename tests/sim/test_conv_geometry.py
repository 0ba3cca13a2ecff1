"""Window geometry on the substrates: the input window a distributed tile receives in closed
form for [height, width] strides and dilations, and random chains of convs and pools with
rectangular windows and strides and dilated convs simulating within the physics invariants on
both shipped substrates."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.sim.dist_conv import ConvPartition, halo_elements, input_window_elements
from hwsim.specs.trace import Algorithm, Conv2DOp
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.sim.invariants import simulate_within_invariants
from tests.train.test_ops import chain_networks


def conv_op(size: int, out: tuple[int, int], stride, padding: str, **geometry) -> Conv2DOp:
    """A forward 3x3 conv of a batch of 2 size × size maps of 3 channels into 4 filters."""
    rows, columns = out
    return Conv2DOp(
        kind="conv2d",
        conv_pass="forward",
        batch=2,
        input_height=size,
        input_width=size,
        input_channels=3,
        output_height=rows,
        output_width=columns,
        output_channels=4,
        kernel_height=3,
        kernel_width=3,
        stride=stride,
        padding=padding,
        m=2 * rows * columns,
        k=27,
        n=4,
        **geometry,
    )


@pytest.mark.parametrize(
    ("stride", "padding", "out", "rows", "columns", "dilation"),
    [
        # 12x12 SAME at [2, 1]: 6x12 outputs, padding 0 above and 1 below (total 1), 1 and 1
        # at the sides.  Row blocks of 3 outputs read rows 0…6 and 6…11 (7 + 6); column
        # blocks of 6 read columns 0…6 and 5…11 (7 + 7).
        ((2, 1), "same", (6, 12), 7 + 6, 7 + 7, 1),
        # 12x12 VALID at [1, 3]: 10x4 outputs; row blocks of 5 read 0…6 and 5…11 (7 + 7),
        # column blocks of 2 read 0…5 and 6…11 (6 + 6: the windows do not overlap).
        ((1, 3), "valid", (10, 4), 7 + 7, 6 + 6, 1),
        # 12x12 SAME dilated by [2, 1] (spans 5x3): padding 2 above and below, 1 at the
        # sides; row blocks of 6 read rows 0…7 and 4…11 (8 + 8), columns as undilated.
        (1, "same", (12, 12), 8 + 8, 7 + 7, (2, 1)),
        # 12x12 VALID dilated by 3 (spans 7x7): 6x6 outputs; blocks of 3 read 0…8 and 3…11
        # (9 + 9) along each axis.
        (1, "valid", (6, 6), 9 + 9, 9 + 9, 3),
    ],
)
def test_the_window_of_a_2x2_cut_in_closed_form(stride, padding, out, rows, columns, dilation):
    op = conv_op(12, out, stride, padding, dilation=dilation)
    partition = ConvPartition(channel_groups=1, row_blocks=2, column_blocks=2)
    assert input_window_elements(op, partition) == rows * columns * 3 * 2
    assert halo_elements(op, partition) == max(0, (rows * columns - 144) * 3 * 2)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(network=chain_networks(), rule=st.sampled_from(list(Algorithm)))
def test_random_chains_simulate_within_the_invariants(network, rule):
    """Rectangular windows, strides and dilations among them: every MAC counted, no resource
    busier than the step, DRAM reads at least the compulsory ones, bytes doubling with the
    precision."""
    config = TrainConfig.from_network(network, rule, epochs=1, batch_size=2)
    trace = shape_only_trace(network, config)
    for spec in ("von_neumann", "distributed"):
        simulate_within_invariants(spec, trace)
