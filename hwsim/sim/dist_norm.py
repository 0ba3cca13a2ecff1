"""Batch-norm statistics on the distributed substrate (pure functions): the tiles that hold
parts of one channel combine their partial sums over the NoC.

Where a channel lives.  A record computes on its region's tiles, each on the slice of the map
it holds.  On a convolution's execution group (hwsim.sim.dist_conv) the output channels are
cut into K contiguous groups and the map into S = R·S' spatial blocks, and the G input-group
tiles of one (block, output group), once they have summed their partial outputs, each keep a
share of the group's c_k channels: one tile a channel when c_k ≥ G, else the G tiles split
into c_k sets of ⌊G/c_k⌋ or ⌈G/c_k⌉ tiles, a channel's positions shared by its set.  Channel c
is then held by t_c = S · (its set's tiles) tiles.  Any other region of T tiles (a storage
region, a dense layer's) holds a map by channel the same way: K = 1, G = T, S = 1.

The exchange.  A training step's batch norm records two per-channel reductions: forward its
statistics (Σx and Σx², giving μ and σ²), backward the sums its gradient and input error need
(Σdy and Σdy·x̂).  Each holding tile reduces its part; one of a channel's holders gathers the
other t_c − 1 parts of v values a channel and sends the v results back to each of them:

  E = Σ_c (t_c − 1)  (holdings beyond one a channel)
  gather: E·v values injected and delivered
  return: E·v values delivered; injected E·v, or once a shared channel with multicast
          (C_s·v, C_s the channels with t_c > 1)

at the bits of what the record writes.  A channel on one tile (t_c = 1) moves nothing.

Layer norm.  A [rows, D] map (a token a row) is held by feature, the same way: feature d by
t_d tiles of the region, each with a share of the rows.  Its backward Σdy and Σdy·x̂ over the
rows are per feature and combine as above (E = Σ_d (t_d − 1)).  Its statistics forward, and
the row sums Σg and Σg·x̂ its input error needs (g = scale·dy), are per row, over the row's
features, which min(T, D) tiles share: each row's 2 values are combined the same way with
t_r = min(T, D), E = R·(min(T, D) − 1), at the bits of the statistics forward and of the
input error backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hwsim.sim.components import ceil_div
from hwsim.sim.dist_conv import split_evenly
from hwsim.units import bits_to_bytes


def channel_holders(
    channels: int, channel_groups: int, tiles_per_group: int, spatial_blocks: int
) -> list[int]:
    """Tiles holding each channel (t_c above) of a map of `channels` cut into `channel_groups`
    contiguous groups × `spatial_blocks` blocks, each (block, group) on `tiles_per_group`
    tiles that split its channels."""
    holders: list[int] = []
    for share in split_evenly(channels, min(channels, channel_groups)):
        sets = split_evenly(tiles_per_group, share)  # share ≥ tiles: 1s and 0s, a tile a channel
        holders += [spatial_blocks * max(1, tiles) for tiles in sets]
    return holders


def row_holders(rows: int, features: int, tiles: int) -> list[int]:
    """Tiles holding parts of each row (t_r above) of a [rows, features] map whose features
    `tiles` tiles split (a feature's rows shared by its set when features < tiles)."""
    return [min(tiles, features)] * rows


@dataclass(frozen=True)
class StatisticsExchange:
    """What combining one record's per-channel parts moves: two steps, one after the other."""

    gathered_bytes: int  # the parts sent to their channels' reducers (injected = delivered)
    returned_bytes: int  # the results delivered back to the holders
    returned_injected_bytes: int

    @property
    def steps(self) -> tuple[tuple[int, int], ...]:
        """(delivered, injected) bytes of the gather, then of the return."""
        return (
            (self.gathered_bytes, self.gathered_bytes),
            (self.returned_bytes, self.returned_injected_bytes),
        )


def statistics_exchange(
    holders: Sequence[int], written_bits: int, multicast: bool
) -> StatisticsExchange:
    """The exchange of a record that writes `written_bits` of per-channel values (v values a
    channel, each at its role's bits) whose channels are held by `holders` tiles each."""
    channels = len(holders)
    extra = sum(tiles - 1 for tiles in holders)
    shared = sum(1 for tiles in holders if tiles > 1)
    moved = bits_to_bytes(ceil_div(extra * written_bits, channels))
    injected = bits_to_bytes(ceil_div(shared * written_bits, channels)) if multicast else moved
    return StatisticsExchange(moved, moved, injected)
