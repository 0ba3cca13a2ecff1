"""How a convolution is cut over tiles on the distributed substrate (pure functions).

A layer's output map (rows × columns × channels) is cut into `row_blocks` × `column_blocks`
spatial blocks and `channel_groups` groups of output channels, and its reduction into
`input_groups` groups of input channels: one tile per (block, output group, input group).
A tile keeps W ÷ (channel_groups · input_groups) weights and needs the input window of its
block — the block's rows and columns widened by the kernel's reach (the halo; a dilated
kernel reaches (kernel − 1) · dilation + 1) — over its input channels.  So per pass the
tiles of a layer together receive

  weights : spatial_blocks × W           (every spatial block needs all the weights)
  inputs  : channel_groups × Σ windows    (every output group needs every input channel)

with Σ windows = Σ_row-blocks rows × Σ_column-blocks columns × input channels × batch, which
exceeds the input map by the halo; and they exchange partial sums: of the output over the
input groups (forward), of the input error over the output groups (BP's backward_data), of
the weight gradient over the spatial blocks (backward_weight).  Spatial blocks replicate
weights, input groups add partial sums of activations: which is cheaper depends on the layer
(big maps and few weights early, the reverse late), so the cut is chosen per layer: the fewest
bytes delivered (forward, plus the weight-gradient pass when the layer is trained) among the
cuts whose estimated cycles — compute ÷ tiles used vs. what one tile must receive over its
link — are within CYCLE_TOLERANCE of the fastest.

A grouped convolution (`groups` independent convolutions, group g mapping input channels
[g·C/G, (g+1)·C/G) to output channels [g·F/G, (g+1)·F/G)) needs less: an output-channel
group — a contiguous cut of the output channels — needs the input channels of the conv
groups it holds channels of only, so the input map is delivered Σ_cuts spans ÷ G times
(`map_copies`: channel_groups when ungrouped, 1 when the cuts are the groups), and the input
groups cut each group's own C/G channels (a depthwise conv's reduction is not cut at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.sim.components import ceil_div
from hwsim.specs.trace import Conv2DOp
from hwsim.specs.vocab import Padding, same_padding

CYCLE_TOLERANCE = 1.25  # a cut may be this much slower than the fastest if it moves less


@dataclass(frozen=True)
class ConvPartition:
    channel_groups: int  # of output channels
    row_blocks: int
    column_blocks: int
    input_groups: int = 1  # of input channels (the reduction)

    @property
    def spatial_blocks(self) -> int:
        return self.row_blocks * self.column_blocks

    @property
    def tiles(self) -> int:
        return self.channel_groups * self.input_groups * self.spatial_blocks


def _candidates(channels: int, tiles: int) -> list[int]:
    """Group counts to try: powers of two, and every channel on its own tile."""
    limit = max(1, min(channels, tiles))
    groups = {1 << i for i in range(limit.bit_length())}
    if channels <= tiles:
        groups.add(channels)
    return sorted(groups)


@dataclass(frozen=True)
class ConvShape:
    """What the cut of one layer depends on, per training step."""

    output_height: int
    output_width: int
    output_channels: int
    input_channels: int
    macs: int  # forward
    weight_bytes: int
    input_bytes: int  # the input map
    output_bytes: int  # the output map
    accumulator_ratio: float  # accumulator bits ÷ activation bits
    trained: bool
    groups: int = 1  # a grouped conv's groups


def map_copies(amount: int, output_channels: int, channel_groups: int, groups: int) -> int:
    """What `channel_groups` contiguous cuts of the output channels receive of `amount` (of
    the input map, or of its windows): all of it each when ungrouped; of a grouped conv, a
    1/groups share for every conv group a cut holds channels of (rounded up)."""
    if groups == 1:
        return channel_groups * amount
    per_group = output_channels // groups
    spans = start = 0
    for size in split_evenly(output_channels, channel_groups):
        if size:
            spans += (start + size - 1) // per_group - start // per_group + 1
        start += size
    return ceil_div(spans * amount, groups)


def _map_bytes(shape: ConvShape, partition: ConvPartition) -> int:
    return map_copies(
        shape.input_bytes, shape.output_channels, partition.channel_groups, shape.groups
    )


def delivered_bytes(shape: ConvShape, partition: ConvPartition) -> int:
    """Bytes the cut makes the NoC deliver per step (halo left out): the forward pass, and
    the weight-gradient pass when the layer is trained."""
    spatial, inputs = partition.spatial_blocks, partition.input_groups
    inputs_delivered = _map_bytes(shape, partition)
    total = spatial * shape.weight_bytes + inputs_delivered
    if inputs > 1:
        total += int(inputs * shape.output_bytes * shape.accumulator_ratio)
    if shape.trained:
        total += inputs_delivered + inputs * shape.output_bytes
        if spatial > 1:
            total += int(spatial * shape.weight_bytes * shape.accumulator_ratio)
    return total


def estimated_cycles(
    shape: ConvShape,
    partition: ConvPartition,
    macs_per_tile_per_cycle: int,
    link_bytes_per_cycle: float,
) -> int:
    """Compute over the tiles used, or what one tile receives over its link if slower."""
    cut = partition.channel_groups * partition.input_groups
    if shape.groups == 1:
        inputs = ceil_div(shape.input_bytes, partition.spatial_blocks * partition.input_groups)
    else:  # a cut's share of the map: the input channels of its conv groups
        inputs = ceil_div(_map_bytes(shape, partition), cut * partition.spatial_blocks)
    per_tile = ceil_div(shape.weight_bytes, cut) + inputs
    return max(
        ceil_div(shape.macs, partition.tiles * macs_per_tile_per_cycle),
        ceil_div(per_tile, link_bytes_per_cycle),
    )


def choose_partition(
    shape: ConvShape, *, tiles: int, macs_per_tile_per_cycle: int, link_bytes_per_cycle: float
) -> ConvPartition:
    """The cut over at most `tiles` tiles that moves the fewest bytes among the near-fastest."""
    scored: list[tuple[int, int, int, ConvPartition]] = []
    for groups in _candidates(shape.output_channels, tiles):
        # The reduction's channels: a group's own (all of them when ungrouped).
        for inputs in _candidates(shape.input_channels // shape.groups, tiles // groups):
            spatial = max(1, tiles // (groups * inputs))
            rows = min(shape.output_height, max(1, math.isqrt(spatial)))
            columns = min(shape.output_width, max(1, spatial // rows))
            rows = min(shape.output_height, max(rows, spatial // columns))
            partition = ConvPartition(groups, rows, columns, inputs)
            cycles = estimated_cycles(
                shape, partition, macs_per_tile_per_cycle, link_bytes_per_cycle
            )
            scored.append((cycles, delivered_bytes(shape, partition), partition.tiles, partition))
    fastest = min(cycles for cycles, *_ in scored)
    near = [entry for entry in scored if entry[0] <= fastest * CYCLE_TOLERANCE]
    return min(near, key=lambda entry: (entry[1], entry[0], -entry[2], entry[3].channel_groups))[3]


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` cut into `parts` shares that differ by at most one, the larger first."""
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def window_lengths(
    output_size: int, blocks: int, kernel: int, stride: int, pad_before: int, input_size: int
) -> list[int]:
    """Input rows (or columns) each block of output rows reads, padding excluded."""
    lengths = []
    start = 0
    for size in split_evenly(output_size, blocks):
        if size == 0:
            continue
        first = start * stride - pad_before
        last = (start + size - 1) * stride - pad_before + kernel  # exclusive
        lengths.append(max(0, min(last, input_size) - max(first, 0)))
        start += size
    return lengths


def input_window_elements(op: Conv2DOp, partition: ConvPartition) -> int:
    """Σ over spatial blocks of the input window (rows × columns × input channels × batch);
    a dilated kernel's window spans (kernel − 1) · dilation + 1 rows and columns."""
    rows, columns = (
        sum(
            window_lengths(
                output,
                min(blocks, output),
                kernel,
                stride,
                same_padding(size, kernel, stride)[0] if op.padding == Padding.SAME else 0,
                size,
            )
        )
        for output, blocks, kernel, stride, size in (
            (
                op.output_height,
                partition.row_blocks,
                op.reach_height,
                op.stride_height,
                op.input_height,
            ),
            (
                op.output_width,
                partition.column_blocks,
                op.reach_width,
                op.stride_width,
                op.input_width,
            ),
        )
    )
    return rows * columns * op.input_channels * op.batch


def halo_elements(op: Conv2DOp, partition: ConvPartition) -> int:
    """Input elements received beyond one copy of the input map: the overlap of windows."""
    whole = op.input_height * op.input_width * op.input_channels * op.batch
    return max(0, input_window_elements(op, partition) - whole)
