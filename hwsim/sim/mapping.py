"""Where things live on the distributed substrate (pure functions, no simpy).

Storage.  Every weight layer gets a contiguous region of tiles big enough to keep its weights,
biases, optimizer state and feedback matrix resident (a share of each tile's SRAM is reserved
for activations and errors); tiles left over go to layers in proportion to their forward MACs,
never more than the layer's parallelism (output positions × channels for a convolution, units
for a dense layer).  What does not fit spills to DRAM — or is an error when the spec forbids
spilling.  Layers without weights (pooling, activations, dropout) belong to the weight layer
before them.

Execution.  A dense layer computes on its storage region.  A convolution is cut into
`channel_groups` × `input_groups` × `row_blocks` × `column_blocks` tiles (output channels ×
input channels × output rows × output columns, hwsim.sim.dist_conv); when that needs more
tiles than the layer stores its weights on, the layer time-shares the chip: it borrows tiles
(from tile 0 on) that hold other layers' weights, and its own weights are reloaded into them
every time it runs (`mapping.spread_convolutions: false` keeps every convolution on its
storage region, cut by output channel only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from hwsim.errors import CapacityError
from hwsim.sim.dist_conv import ConvPartition, ConvShape, choose_partition
from hwsim.specs.arch import DistributedSpec, FeedbackWeights, MappingPolicy
from hwsim.specs.trace import Conv2DOp, FeedbackInfo, LayerInfo, OpRecord, TraceHeader
from hwsim.units import bits_to_bytes

WEIGHT_TYPES = ("dense", "conv2d", "patch_embed", "attention")


@dataclass(frozen=True)
class Region:
    layer: str
    first_tile: int
    tiles: int
    resident_bytes: int
    spilled_bytes: int
    shared: bool = False  # a time-shared execution group: tiles borrowed from other layers

    @property
    def key(self) -> str:
        """Names the region's compute and NoC ingress; a time-shared group has its own."""
        return f"{self.layer}:shared" if self.shared else self.layer

    @property
    def spilled_fraction(self) -> float:
        return self.spilled_bytes / self.resident_bytes if self.resident_bytes else 0.0


@dataclass(frozen=True)
class ConvGroup:
    """The tiles one convolution layer computes on and how its output is cut over them."""

    region: Region
    partition: ConvPartition


@dataclass(frozen=True)
class Placement:
    regions: dict[str, Region]  # storage, by weight layer
    owner: dict[str, str]  # every layer → the weight layer whose tiles run it
    total_tiles: int
    groups: dict[str, ConvGroup]  # execution groups of convolution layers
    spilled_bytes: int  # resident bytes kept in DRAM, all layers

    def region_of(self, layer: str) -> Region:
        return self.regions[self.owner[layer]]

    def group_of(self, layer: str) -> ConvGroup | None:
        return self.groups.get(self.owner[layer])


def conv_groups(records: Iterable[OpRecord]) -> dict[str, int]:
    """Each grouped convolution layer's groups, as its records state them (the header's
    layer table has no conv geometry)."""
    return {
        record.layer: record.op.groups
        for record in records
        if isinstance(record.op, Conv2DOp) and record.op.groups > 1
    }


def forward_macs_per_example(layer: LayerInfo) -> int:
    """Weights × output positions (a conv's pixels, a token layer's tokens, 1 for a flat dense
    layer; a grouped conv's weights are already per group), plus an attention's Q·Kᵀ and A·V
    (2 · tokens² · width)."""
    positions = math.prod(layer.output_shape[:-1])
    if layer.type == "attention":
        tokens, width = layer.output_shape
        return layer.weights * tokens + 2 * tokens * tokens * width
    return layer.weights * positions


def parallelism(layer: LayerInfo) -> int:
    """Independent outputs per example: positions × channels (conv), units (dense, and the
    width of a token layer: its weights are cut by output feature)."""
    return math.prod(layer.output_shape) if layer.type == "conv2d" else layer.output_shape[-1]


def resident_bytes(layer: LayerInfo, header: TraceHeader, arch: DistributedSpec) -> int:
    """Bytes a layer keeps in SRAM: weights, biases, optimizer state, feedback values+indices."""
    precision = arch.precision
    biases = layer.parameters - layer.weights
    bits = layer.weights * precision.weight_bits + biases * precision.bias_bits
    if layer.trainable:
        bits += (
            header.optimizer.state_tensors_per_weight
            * layer.parameters
            * precision.optimizer_state_bits
        )
        feedback = header.feedback_by_layer.get(layer.name)
        if feedback is not None and arch.schedule.feedback_weights == FeedbackWeights.STORED:
            bits += feedback.nonzeros * precision.feedback_bits
            if feedback.nonzeros_per_neuron is not None:
                bits += feedback.nonzeros * max(1, math.ceil(math.log2(feedback.classes)))
    return bits_to_bytes(bits)


def reserve_bytes(arch: DistributedSpec) -> int:
    """Bytes of one tile's SRAM kept for activations and errors."""
    return int(arch.tiles.sram.capacity_bytes * arch.mapping.activation_reserve_fraction)


def _fill(total: int, weights: list[float], minimum: list[int], caps: list[int]) -> list[int]:
    """Give each its minimum, then share what is left by weight without passing the caps."""
    counts = list(minimum)
    rest = total - sum(counts)
    while rest > 0:
        open_ = [i for i in range(len(counts)) if counts[i] < caps[i]]
        if not open_:
            break
        weight_sum = sum(weights[i] for i in open_) or 1.0
        given = 0
        for i in open_:
            share = min(int(rest * weights[i] / weight_sum), caps[i] - counts[i])
            counts[i] += share
            given += share
        if given == 0:
            # Shares rounded to nothing: tiles go one at a time to the heaviest open layer,
            # and shares stay nothing while it is open (the weights and their sum do not
            # change, what is left only shrinks), so it takes them all at once, up to its cap.
            heaviest = max(open_, key=lambda i: (weights[i], -i))
            given = min(rest, caps[heaviest] - counts[heaviest])
            counts[heaviest] += given
        rest -= given
    return counts


def _conv_group(
    layer: LayerInfo, home: Region, header: TraceHeader, arch: DistributedSpec, groups: int
) -> ConvGroup:
    tiles, precision = arch.tiles, arch.precision
    height, width, channels = layer.output_shape
    batch = header.batch_size
    shape = ConvShape(
        output_height=height,
        output_width=width,
        output_channels=channels,
        input_channels=layer.input_shape[-1],
        macs=forward_macs_per_example(layer) * batch,
        weight_bytes=bits_to_bytes(layer.weights * precision.weight_bits),
        input_bytes=bits_to_bytes(math.prod(layer.input_shape) * batch * precision.activation_bits),
        output_bytes=bits_to_bytes(
            math.prod(layer.output_shape) * batch * precision.activation_bits
        ),
        accumulator_ratio=precision.accumulator_bits / precision.activation_bits,
        trained=layer.trainable,
        groups=groups,
    )
    if arch.mapping.spread_convolutions:
        partition = choose_partition(
            shape,
            tiles=min(tiles.count, parallelism(layer)),
            macs_per_tile_per_cycle=tiles.macs_per_cycle,
            link_bytes_per_cycle=arch.noc.link_bandwidth_bytes_per_cycle,
        )
    else:  # weights stay where they are stored: one output-channel group per storage tile
        partition = ConvPartition(
            channel_groups=min(channels, home.tiles), row_blocks=1, column_blocks=1
        )
    if partition.tiles <= home.tiles:
        region = Region(
            layer.name, home.first_tile, partition.tiles, home.resident_bytes, home.spilled_bytes
        )
    else:
        region = Region(
            layer.name, 0, partition.tiles, home.resident_bytes, home.spilled_bytes, shared=True
        )
    return ConvGroup(region, partition)


def place(
    header: TraceHeader, arch: DistributedSpec, groups_of: dict[str, int] | None = None
) -> Placement:
    """Storage regions and execution groups (`groups_of`: `conv_groups` of the records)."""
    tiles = arch.tiles
    weight_layers = [layer for layer in header.layers if layer.type in WEIGHT_TYPES]
    usable = tiles.sram.capacity_bytes - reserve_bytes(arch)
    resident = [resident_bytes(layer, header, arch) for layer in weight_layers]
    if tiles.count < len(weight_layers):
        return _time_shared(header, arch, weight_layers, resident, usable, groups_of or {})
    needed = [max(1, math.ceil(size / usable)) if usable else tiles.count for size in resident]
    macs = [forward_macs_per_example(layer) for layer in weight_layers]
    # More tiles than independent outputs would idle: cap each layer at its parallelism.
    caps = [
        max(need, parallelism(layer)) for need, layer in zip(needed, weight_layers, strict=True)
    ]
    if sum(needed) <= tiles.count:
        counts = _fill(tiles.count, [float(m) for m in macs], needed, caps)
    else:
        if not arch.mapping.allow_spill:
            raise CapacityError(
                "mapping.allow_spill",
                f"{header.network}'s weights, optimizer state and feedback need "
                f"{sum(needed):,} tiles of SRAM but the spec has {tiles.count:,} (got false)",
                "allow spilling to DRAM or add tiles",
            )
        # Share the tiles by storage need to spill as little as possible: convolutions
        # compute on time-shared tiles whatever their storage region.
        counts = _fill(tiles.count, [float(n) for n in needed], [1] * len(needed), needed)
    regions: dict[str, Region] = {}
    groups: dict[str, ConvGroup] = {}
    first = 0
    for layer, size, count in zip(weight_layers, resident, counts, strict=True):
        home = Region(layer.name, first, count, size, max(0, size - count * usable))
        regions[layer.name] = home
        if layer.type == "conv2d":
            conv = (groups_of or {}).get(layer.name, 1)
            groups[layer.name] = _conv_group(layer, home, header, arch, conv)
        first += count
    return _placement(header, arch, regions, groups)


def _time_shared(
    header: TraceHeader,
    arch: DistributedSpec,
    weight_layers: list[LayerInfo],
    resident: list[int],
    usable: int,
    groups_of: dict[str, int],
) -> Placement:
    """Fewer tiles than weight layers: every layer runs on the whole chip in turn (the tile
    pool lets one op hold the tiles at a time), its weights, optimizer state and feedback
    sharing the chip's SRAM with every other layer's. What does not fit — the same share of
    every layer — stays in DRAM and streams in whenever its layer runs."""
    count = arch.tiles.count
    total = sum(resident)
    kept = min(total, count * usable)
    if kept < total and not arch.mapping.allow_spill:
        raise CapacityError(
            "mapping.allow_spill",
            f"{header.network}'s {len(weight_layers)} weight layers time-share "
            f"{count:,} tiles, whose SRAM holds {count * usable:,} of their {total:,} bytes of "
            "weights, optimizer state and feedback (got false)",
            "allow spilling to DRAM or add tiles",
        )
    regions: dict[str, Region] = {}
    groups: dict[str, ConvGroup] = {}
    for layer, size in zip(weight_layers, resident, strict=True):
        spilled = size - (size * kept // total if total else 0)
        home = Region(layer.name, 0, count, size, spilled)
        regions[layer.name] = home
        if layer.type == "conv2d":
            groups[layer.name] = _conv_group(
                layer, home, header, arch, groups_of.get(layer.name, 1)
            )
    return _placement(header, arch, regions, groups)


def _placement(
    header: TraceHeader,
    arch: DistributedSpec,
    regions: dict[str, Region],
    groups: dict[str, ConvGroup],
) -> Placement:
    """The placement of these regions, refused (naming the field) if DRAM cannot hold what
    they spill."""
    spilled = sum(region.spilled_bytes for region in regions.values())
    capacity = arch.dram.capacity_bytes
    if capacity is not None and spilled > capacity:
        raise CapacityError(
            "dram.capacity_bytes",
            f"{header.network} spills {spilled:,} bytes of weights, optimizer state and "
            f"feedback to DRAM, more than it holds (got {capacity:,})",
            "add DRAM or tiles",
        )
    return Placement(regions, _owners(header), arch.tiles.count, groups, spilled)


def _owners(header: TraceHeader) -> dict[str, str]:
    """Each layer's storage region: its own, or the weight layer's listed before it."""
    owner: dict[str, str] = {}
    current = next(layer.name for layer in header.layers if layer.type in WEIGHT_TYPES)
    for layer in header.layers:
        if layer.type in WEIGHT_TYPES:
            current = layer.name
        owner[layer.name] = current
    return owner


def distinct_errors_per_tile(feedback: FeedbackInfo, tiles: int, policy: MappingPolicy) -> float:
    """Output errors a tile must receive under SSDFA (each neuron listens to s classes).

    `colocate` places neurons that share an error together: a tile covering 1/tiles of the
    neurons needs s·⌈C/tiles⌉ errors, and never more than its s·⌈N/tiles⌉ neurons listen to
    (a layer of fewer neurons than classes); `round_robin` scatters them: the expected number
    of distinct classes among a tile's n·s random picks.
    """
    classes, s = feedback.classes, feedback.nonzeros_per_neuron or feedback.classes
    if policy == MappingPolicy.COLOCATE:
        listened = s * math.ceil(feedback.neurons / tiles)
        return float(min(classes, s * math.ceil(classes / tiles), listened))
    neurons = feedback.neurons / tiles
    return classes * (1 - (1 - s / classes) ** neurons)
