"""How a convolution is cut over tiles on the distributed substrate (pure functions).

A layer's output map (rows × columns × channels) is cut into `row_blocks` × `column_blocks`
spatial blocks and `channel_groups` groups of output channels: one tile per (block, group).
A tile keeps the weights of its channel group (all of W ÷ channel_groups) and needs the input
window of its block — the block's rows and columns widened by the kernel's reach (the halo),
over every input channel.  So the tiles of a layer together receive

  weights  : spatial_blocks × W          (each spatial block needs every channel group)
  inputs   : channel_groups × Σ windows   (each channel group needs every input channel)

and Σ windows = Σ_row-blocks rows × Σ_column-blocks columns × input channels × batch, which
exceeds the input map by the halo.  The partition is chosen to minimise the estimated cycles
(compute ÷ tiles used vs. what one tile must receive over its link), then the bytes delivered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.sim.components import ceil_div
from hwsim.specs.network import Padding, same_padding
from hwsim.specs.trace import Conv2DOp


@dataclass(frozen=True)
class ConvPartition:
    channel_groups: int
    row_blocks: int
    column_blocks: int

    @property
    def spatial_blocks(self) -> int:
        return self.row_blocks * self.column_blocks

    @property
    def tiles(self) -> int:
        return self.channel_groups * self.spatial_blocks


def _candidates(channels: int, tiles: int) -> list[int]:
    groups = {1 << i for i in range(max(1, min(channels, tiles)).bit_length())}
    if channels <= tiles:
        groups.add(channels)
    return sorted(group for group in groups if group <= min(channels, tiles))


def choose_partition(*, output_height: int, output_width: int, output_channels: int,
                     tiles: int, macs: int, macs_per_tile_per_cycle: int,
                     link_bytes_per_cycle: float, weight_bytes: int,
                     input_bytes: int) -> ConvPartition:
    """The cut over at most `tiles` tiles with the fewest estimated cycles, then bytes."""
    best: tuple[tuple[int, int, int], ConvPartition] | None = None
    for groups in _candidates(output_channels, max(1, tiles)):
        spatial = max(1, tiles // groups)
        rows = min(output_height, max(1, math.isqrt(spatial)))
        columns = min(output_width, max(1, spatial // rows))
        rows = min(output_height, max(rows, spatial // columns))
        partition = ConvPartition(groups, rows, columns)
        per_tile = ceil_div(weight_bytes, groups) + ceil_div(input_bytes, rows * columns)
        cycles = max(ceil_div(macs, partition.tiles * macs_per_tile_per_cycle),
                     ceil_div(per_tile, link_bytes_per_cycle))
        delivered = partition.spatial_blocks * weight_bytes + groups * input_bytes
        key = (cycles, delivered, groups)
        if best is None or key < best[0]:
            best = (key, partition)
    assert best is not None
    return best[1]


def _split(total: int, parts: int) -> list[int]:
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def window_lengths(output_size: int, blocks: int, kernel: int, stride: int, pad_before: int,
                   input_size: int) -> list[int]:
    """Input rows (or columns) each block of output rows reads, padding excluded."""
    lengths = []
    start = 0
    for size in _split(output_size, blocks):
        if size == 0:
            continue
        first = start * stride - pad_before
        last = (start + size - 1) * stride - pad_before + kernel  # exclusive
        lengths.append(max(0, min(last, input_size) - max(first, 0)))
        start += size
    return lengths


def input_window_elements(op: Conv2DOp, partition: ConvPartition) -> int:
    """Σ over spatial blocks of the input window (rows × columns × input channels × batch)."""
    pads = [same_padding(size, kernel, op.stride)[0] if op.padding == Padding.SAME else 0
            for size, kernel in ((op.input_height, op.kernel_height),
                                 (op.input_width, op.kernel_width))]
    rows = sum(window_lengths(op.output_height, min(partition.row_blocks, op.output_height),
                              op.kernel_height, op.stride, pads[0], op.input_height))
    columns = sum(window_lengths(op.output_width, min(partition.column_blocks, op.output_width),
                                 op.kernel_width, op.stride, pads[1], op.input_width))
    return rows * columns * op.input_channels * op.batch


def halo_elements(op: Conv2DOp, partition: ConvPartition) -> int:
    """Input elements received beyond one copy of the input map: the overlap of windows."""
    whole = op.input_height * op.input_width * op.input_channels * op.batch
    return max(0, input_window_elements(op, partition) - whole)
