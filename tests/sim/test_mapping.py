"""Placement on tiles and NoC hop geometry: the pure functions behind the distributed model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.sim.mapping import (
    Placement,
    Region,
    distinct_errors_per_tile,
    forward_macs_per_example,
    place,
    resident_bytes,
)
from hwsim.sim.noc import Geometry
from hwsim.specs.arch import MappingPolicy, Noc
from hwsim.specs.trace import FeedbackInfo
from tests.sim.conftest import DISTRIBUTED, arch, tiny_trace


def test_resident_bytes_count_weights_state_and_feedback():
    header = tiny_trace("ssdfa").header  # Adam: 2 state tensors per parameter
    fc1 = next(layer for layer in header.layers if layer.name == "fc1")
    feedback = next(info for info in header.feedback if info.layer == "fc1")
    spec = arch(DISTRIBUTED)
    expected_bits = (
        fc1.weights * 16
        + (fc1.parameters - fc1.weights) * 16
        + 2 * fc1.parameters * 32
        + feedback.nonzeros * 16
        + feedback.nonzeros * 2
    )  # ⌈log2 4⌉ index bits
    assert resident_bytes(fc1, header, spec) == (expected_bits + 7) // 8


def test_regions_are_contiguous_capped_and_cover_every_layer():
    header = tiny_trace("bp").header
    placement = place(header, arch(DISTRIBUTED, **{"tiles.count": 1024}))
    regions = list(placement.regions.values())
    assert [r.layer for r in regions] == ["conv", "fc1", "fc2", "fc3"]
    assert [r.first_tile for r in regions] == [
        0,
        *[sum(x.tiles for x in regions[:i]) for i in range(1, 4)],
    ]
    # No region has more tiles than independent outputs: 6·6 positions × 4 filters, then
    # 16, 12 and 4 units; the convolution's share is no longer capped by its 4 channels.
    caps = [6 * 6 * 4, 16, 12, 4]
    assert [r.tiles for r in regions] == caps
    assert placement.owner["pool"] == "conv" and placement.owner["flat"] == "conv"
    assert all(r.spilled_bytes == 0 for r in regions)


def test_tiles_follow_macs_until_a_layer_reaches_its_parallelism():
    header = tiny_trace("bp").header
    placement = place(header, arch(DISTRIBUTED, **{"tiles.count": 64}))
    conv, fc1 = placement.regions["conv"], placement.regions["fc1"]
    # conv: 36·72 = 2,592 MACs per example; fc1: 576: conv gets the lion's share.
    assert conv.tiles > 3 * fc1.tiles
    assert sum(r.tiles for r in placement.regions.values()) == 64


def test_cramped_chips_spill_what_does_not_fit():
    header = tiny_trace("bp").header
    spec = arch(DISTRIBUTED, **{"tiles.count": 4, "tiles.sram.capacity_bytes": 1024})
    placement = place(header, spec)
    usable = int(1024 * 0.75)
    for region in placement.regions.values():
        resident = resident_bytes(
            next(x for x in header.layers if x.name == region.layer), header, spec
        )
        assert region.spilled_bytes == max(0, resident - region.tiles * usable)
    assert sum(r.spilled_bytes for r in placement.regions.values()) > 0


def test_forward_macs_of_a_conv_layer_count_positions():
    conv = next(x for x in tiny_trace("bp").header.layers if x.name == "conv")
    assert forward_macs_per_example(conv) == conv.weights * 6 * 6


@pytest.mark.parametrize(
    ("tiles", "policy", "expected"),
    [
        (100, MappingPolicy.COLOCATE, 1.0),  # more tiles than classes: one error per tile
        (2, MappingPolicy.COLOCATE, 5.0),  # each tile hosts half the classes
        (1, MappingPolicy.ROUND_ROBIN, 10 * (1 - 0.9**1000)),
    ],
)
def test_errors_a_tile_must_receive_under_ssdfa(tiles, policy, expected):
    info = FeedbackInfo(
        layer="fc1", classes=10, neurons=1000, nonzeros=1000, nonzeros_per_neuron=1, rank=None
    )
    assert distinct_errors_per_tile(info, tiles, policy) == pytest.approx(expected)


def test_colocation_needs_fewer_errors_than_scattering():
    info = FeedbackInfo(
        layer="fc1", classes=100, neurons=4096, nonzeros=4096, nonzeros_per_neuron=1, rank=None
    )
    colocated = distinct_errors_per_tile(info, 64, MappingPolicy.COLOCATE)
    scattered = distinct_errors_per_tile(info, 64, MappingPolicy.ROUND_ROBIN)
    assert colocated == 2 and scattered > 40


def _geometry(topology: str, multicast: bool = True, tiles: int = 64):
    header = tiny_trace("bp").header
    spec = arch(
        DISTRIBUTED, **{"tiles.count": tiles, "noc.topology": topology, "noc.multicast": multicast}
    )
    placement = place(header, spec)
    noc = Noc.model_validate(
        {
            "topology": topology,
            "link_bandwidth_bytes_per_cycle": 8,
            "hop_latency_cycles": 2,
            "multicast": multicast,
        }
    )
    return Geometry(noc, placement), placement


def test_multicast_injects_once_and_unicast_once_per_tile():
    geometry, placement = _geometry("mesh")
    fc1, fc2 = placement.regions["fc1"], placement.regions["fc2"]
    multicast = geometry.broadcast(100, fc1, fc2)
    assert multicast.injected_bytes == 100
    assert multicast.delivered_bytes == 100 * fc2.tiles
    distance = geometry.distance(fc1, fc2)
    assert multicast.byte_hops == 100 * distance + 100 * (fc2.tiles - 1)
    geometry, placement = _geometry("mesh", multicast=False)
    unicast = geometry.broadcast(100, placement.regions["fc1"], placement.regions["fc2"])
    assert unicast.injected_bytes == unicast.delivered_bytes == 100 * fc2.tiles


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mesh_hops_to_a_regions_tiles_are_counted_tile_by_tile(data):
    """The closed form of the hops from a source (or the DRAM controller at tile 0) to every
    tile of a row-major region equals the Manhattan distances summed one tile at a time."""
    total = data.draw(st.integers(1, 400), label="chip tiles")
    first = data.draw(st.integers(0, total - 1), label="first tile")
    tiles = data.draw(st.integers(1, total - first), label="region tiles")
    start = data.draw(st.integers(0, total - 1), label="source first tile")
    source = data.draw(
        st.one_of(
            st.none(),
            st.integers(1, total - start).map(lambda n: Region("src", start, n, 0, 0)),
        ),
        label="source",
    )
    noc = Noc.model_validate(
        {"topology": "mesh", "link_bandwidth_bytes_per_cycle": 8, "hop_latency_cycles": 1}
    )
    geometry = Geometry(noc, Placement({}, {}, total, {}, 0))
    side = geometry.side
    centre = 0 if source is None else source.first_tile + source.tiles // 2
    row, column = divmod(centre, side)
    expected = sum(
        abs(tile // side - row) + abs(tile % side - column) for tile in range(first, first + tiles)
    )
    destination = Region("dst", first, tiles, 0, 0)
    assert geometry.hops_to_tiles(source, destination) == expected
    scatter = geometry.scatter(tiles * 100, source, destination)
    assert scatter.byte_hops == 100 * expected  # each tile its 100-byte slice, its own hops


def test_a_bus_is_priced_by_the_stretch_of_wire_a_transfer_drives():
    geometry, placement = _geometry("bus")
    fc2, fc1 = placement.regions["fc2"], placement.regions["fc1"]
    span = fc2.first_tile + fc2.tiles - 1 - fc1.first_tile  # fc1 lies before fc2
    assert geometry.distance(fc2, fc1) == span
    reduction = geometry.reduce(40, fc2, fc1)
    assert reduction.injected_bytes == 40 * fc2.tiles
    assert reduction.byte_hops == 40 * fc2.tiles * span
    # Serialised on the one bus, and the same latency rule as a broadcast: hops × hop latency.
    assert reduction.cycles == 40 * fc2.tiles // 8 + 2 * span
    broadcast = geometry.broadcast(40, fc2, fc1)
    assert broadcast.cycles == 40 // 8 + 2 * span
    assert broadcast.byte_hops == 40 * span


def test_bus_wire_energy_grows_with_the_tiles_it_spans():
    hops = []
    for tiles in (16, 64, 256):
        geometry, placement = _geometry("bus", tiles=tiles)
        transfer = geometry.broadcast(100, None, placement.regions["fc3"])
        hops.append(transfer.byte_hops)
    assert hops[0] < hops[1] < hops[2]
    assert hops[2] == 100 * (
        placement.regions["fc3"].first_tile + placement.regions["fc3"].tiles - 1
    )


def test_tree_distances_grow_with_log_of_tiles():
    small, placement_small = _geometry("tree", tiles=16)
    large, placement_large = _geometry("tree", tiles=4096)
    a = small.distance(None, placement_small.regions["fc3"])
    b = large.distance(None, placement_large.regions["fc3"])
    assert (a, b) == (2 * 4, 2 * 12)


def _fill_one_tile_at_a_time(total, weights, minimum, caps):
    """The placement's share-out as first written: when shares round to nothing, one tile at
    a time to the heaviest open layer (quadratic in layers on a big chip)."""
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
            counts[max(open_, key=lambda i: (weights[i], -i))] += 1
            given = 1
        rest -= given
    return counts


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1e6), st.integers(1, 4), st.integers(0, 60)), min_size=1, max_size=12
    ),
    st.integers(0, 400),
)
def test_the_tile_share_out_gives_what_one_tile_at_a_time_gave(layers, extra):
    from hwsim.sim.mapping import _fill

    weights = [weight for weight, _, _ in layers]
    minimum = [low for _, low, _ in layers]
    caps = [low + room for _, low, room in layers]
    total = sum(minimum) + extra
    expected = _fill_one_tile_at_a_time(total, weights, minimum, caps)
    assert _fill(total, weights, minimum, caps) == expected
