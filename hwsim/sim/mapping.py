"""Where things live on the distributed substrate (pure functions, no simpy).

Every weight layer gets a contiguous region of tiles big enough to keep its weights, biases,
optimizer state and feedback matrix resident (a share of each tile's SRAM is reserved for
activations and errors); tiles left over go to layers in proportion to their MACs.  Layers
without weights (pooling, activations, dropout) run on the tiles of the weight layer before
them.  What does not fit spills to DRAM — or is an error when the spec forbids spilling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.errors import SpecError
from hwsim.specs.arch import ArchSpec, MappingPolicy
from hwsim.specs.trace import FeedbackInfo, LayerInfo, TraceHeader

WEIGHT_TYPES = ("dense", "conv2d")


@dataclass(frozen=True)
class Region:
    layer: str
    first_tile: int
    tiles: int
    resident_bytes: int
    spilled_bytes: int

    @property
    def spilled_fraction(self) -> float:
        return self.spilled_bytes / self.resident_bytes if self.resident_bytes else 0.0


@dataclass(frozen=True)
class Placement:
    regions: dict[str, Region]  # by weight layer
    owner: dict[str, str]  # every layer → the weight layer whose tiles run it
    total_tiles: int

    def region_of(self, layer: str) -> Region:
        return self.regions[self.owner[layer]]


def forward_macs_per_example(layer: LayerInfo) -> int:
    positions = math.prod(layer.output_shape[:-1]) if layer.type == "conv2d" else 1
    return layer.weights * positions


def resident_bytes(layer: LayerInfo, header: TraceHeader, arch: ArchSpec) -> int:
    """Bytes a layer keeps in SRAM: weights, biases, optimizer state, feedback values+indices."""
    precision = arch.precision
    biases = layer.parameters - layer.weights
    bits = layer.weights * precision.weight_bits + biases * precision.bias_bits
    if layer.trainable:
        bits += header.optimizer.state_tensors_per_weight * layer.parameters * \
            precision.optimizer_state_bits
        feedback = _feedback_for(layer.name, header.feedback)
        if feedback is not None:
            bits += feedback.nonzeros * precision.feedback_bits
            if feedback.nonzeros_per_neuron is not None:
                bits += feedback.nonzeros * max(1, math.ceil(math.log2(feedback.classes)))
    return (bits + 7) // 8


def _feedback_for(layer: str, feedback: list[FeedbackInfo]) -> FeedbackInfo | None:
    return next((info for info in feedback if info.layer == layer), None)


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
        if given == 0:  # shares rounded to nothing: one more tile to the heaviest open layer
            heaviest = max(open_, key=lambda i: (weights[i], -i))
            counts[heaviest] += 1
            given = 1
        rest -= given
    return counts


def place(header: TraceHeader, arch: ArchSpec, source: str = "arch") -> Placement:
    tiles = arch.tiles
    weight_layers = [layer for layer in header.layers if layer.type in WEIGHT_TYPES]
    if tiles.count < len(weight_layers):
        raise SpecError(f"{source}: tiles.count: {header.network} has {len(weight_layers)} "
                        f"weight layers and needs at least one tile each (got {tiles.count})")
    usable = int(tiles.sram.capacity_bytes * (1 - arch.mapping.activation_reserve_fraction))
    resident = [resident_bytes(layer, header, arch) for layer in weight_layers]
    needed = [max(1, math.ceil(size / usable)) for size in resident]
    macs = [forward_macs_per_example(layer) for layer in weight_layers]
    # A tile holds whole neurons (dense units, conv output channels): no more tiles than that.
    caps = [max(need, layer.output_shape[-1]) for need, layer in zip(needed, weight_layers,
                                                                      strict=True)]
    if sum(needed) <= tiles.count:
        counts = _fill(tiles.count, [float(m) for m in macs], needed, caps)
    else:
        if not arch.mapping.allow_spill:
            raise SpecError(
                f"{source}: mapping.allow_spill: {header.network}'s weights, optimizer state "
                f"and feedback need {sum(needed):,} tiles of SRAM but the spec has "
                f"{tiles.count:,}; allow spilling to DRAM or add tiles (got false)")
        # Share the tiles half by storage, half by compute, so big convolutions keep MACs.
        blend = [n / sum(needed) + m / (sum(macs) or 1) for n, m in zip(needed, macs,
                                                                          strict=True)]
        counts = _fill(tiles.count, blend, [1] * len(needed), caps)
    regions: dict[str, Region] = {}
    first = 0
    for layer, size, count in zip(weight_layers, resident, counts, strict=True):
        regions[layer.name] = Region(layer.name, first, count, size,
                                     max(0, size - count * usable))
        first += count
    owner: dict[str, str] = {}
    current = weight_layers[0].name
    for layer in header.layers:
        if layer.type in WEIGHT_TYPES:
            current = layer.name
        owner[layer.name] = current
    return Placement(regions, owner, tiles.count)


def distinct_errors_per_tile(feedback: FeedbackInfo, tiles: int, policy: MappingPolicy) -> float:
    """Output errors a tile must receive under SSDFA (each neuron listens to s classes).

    `colocate` places neurons that share an error together: a tile covering 1/tiles of the
    neurons needs s·⌈C/tiles⌉ errors; `round_robin` scatters them: the expected number of
    distinct classes among a tile's n·s random picks.
    """
    classes, s = feedback.classes, feedback.nonzeros_per_neuron or feedback.classes
    if policy == MappingPolicy.COLOCATE:
        return float(min(classes, s * math.ceil(classes / tiles)))
    neurons = feedback.neurons / tiles
    return classes * (1 - (1 - s / classes) ** neurons)
