"""NoC bytes counted three ways (docs/model.md, *Data movement*): injected once per transfer,
delivered once per copy a tile receives, byte-hops per link crossed.  Properties over random
chips, regions and sizes, with the closed forms of a unicast and a multicast."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.sim.engine import simulate
from hwsim.sim.mapping import Placement, Region
from hwsim.sim.noc import Geometry, Transfer
from hwsim.specs.arch import Noc
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.sim.conftest import DISTRIBUTED, arch, tiny_trace


@st.composite
def chips(draw):
    """A geometry on a chip of random size and topology, a source (a region or the DRAM
    controller) and a destination region."""
    topology = draw(st.sampled_from(["mesh", "tree", "bus"]), label="topology")
    multicast = draw(st.booleans(), label="multicast")
    total = draw(st.integers(1, 400), label="chip tiles")
    first = draw(st.integers(0, total - 1), label="first tile")
    tiles = draw(st.integers(1, total - first), label="destination tiles")
    start = draw(st.integers(0, total - 1), label="source first tile")
    source = draw(
        st.one_of(
            st.none(), st.integers(1, total - start).map(lambda n: Region("src", start, n, 0, 0))
        ),
        label="source",
    )
    noc = Noc.model_validate(
        {
            "topology": topology,
            "link_bandwidth_bytes_per_cycle": draw(st.integers(1, 64), label="link"),
            "hop_latency_cycles": draw(st.integers(0, 4), label="hop latency"),
            "multicast": multicast,
        }
    )
    geometry = Geometry(noc, Placement({}, {}, total, {}, 0))
    return geometry, source, Region("dst", first, tiles, 0, 0)


def _sound(transfer: Transfer) -> None:
    assert transfer.delivered_bytes >= transfer.injected_bytes >= 0
    assert transfer.byte_hops >= 0
    assert transfer.cycles >= 0


@settings(max_examples=100, deadline=None)
@given(chips(), st.integers(1, 10**7))
def test_a_broadcast_delivers_a_copy_to_every_tile(chip, nbytes):
    geometry, source, destination = chip
    tiles, noc = destination.tiles, geometry.noc
    transfer = geometry.broadcast(nbytes, source, destination)
    _sound(transfer)
    assert transfer.delivered_bytes == tiles * nbytes
    distance = geometry.distance(source, destination)
    if noc.topology == "bus":  # one drive of the bus reaches every tap
        assert transfer.injected_bytes == nbytes
        assert transfer.byte_hops == nbytes * geometry.bus_span(source, destination)
    elif noc.multicast:  # injected once, copied at the branches
        assert transfer.injected_bytes == nbytes
        edges = tiles - 1 if noc.topology == "mesh" else 2 * tiles - 2
        assert transfer.byte_hops == nbytes * distance + nbytes * edges
    else:  # one unicast copy per tile, each on its own path
        assert transfer.injected_bytes == tiles * nbytes
        if noc.topology == "mesh":
            assert transfer.byte_hops == nbytes * geometry.hops_to_tiles(source, destination)
        else:
            spread = geometry.spread(destination)
            assert transfer.byte_hops == tiles * nbytes * (distance + spread // 2)


@settings(max_examples=100, deadline=None)
@given(chips(), st.data())
def test_a_partial_multicast_delivers_at_least_what_it_injects(chip, data):
    """Each tile wants `each` of the `nbytes` (SSDFA's errors a tile's neurons listen to, a
    convolution's window): whenever the tiles together want all of it, they receive at least
    what was injected."""
    geometry, source, destination = chip
    tiles = destination.tiles
    nbytes = data.draw(st.integers(1, 10**6), label="bytes")
    each = data.draw(st.integers(-(-nbytes // tiles), nbytes), label="bytes per tile")
    transfer = geometry.broadcast(nbytes, source, destination, each)
    _sound(transfer)
    assert transfer.delivered_bytes == tiles * each


@settings(max_examples=100, deadline=None)
@given(chips(), st.integers(1, 10**7))
def test_a_scatter_delivers_what_it_injects(chip, nbytes):
    geometry, source, destination = chip
    transfer = geometry.scatter(nbytes, source, destination)
    _sound(transfer)
    assert transfer.injected_bytes == transfer.delivered_bytes == nbytes
    if geometry.noc.topology == "mesh":  # every tile its slice, each over its own path
        hops = geometry.hops_to_tiles(source, destination)
        assert transfer.byte_hops == nbytes * hops // destination.tiles


@settings(max_examples=100, deadline=None)
@given(chips(), st.integers(1, 10**5), st.data())
def test_reductions_and_halo_exchanges_deliver_at_least_what_they_inject(chip, nbytes, data):
    geometry, source, destination = chip
    partials = source or destination
    reduction = geometry.reduce(nbytes, partials, destination)
    _sound(reduction)
    assert reduction.injected_bytes == reduction.delivered_bytes == partials.tiles * nbytes
    delivered = data.draw(st.integers(nbytes, 10 * nbytes), label="halo bytes delivered")
    exchange = geometry.neighbours(delivered, nbytes, destination)
    _sound(exchange)
    assert exchange.delivered_bytes == delivered


@settings(max_examples=15, deadline=None)
@given(
    tiles=st.integers(4, 512),
    topology=st.sampled_from(["mesh", "tree", "bus"]),
    multicast=st.booleans(),
    algorithm=st.sampled_from(["bp", "dfa", "ssdfa"]),
)
def test_a_steps_figures_add_up(tiles, topology, multicast, algorithm):
    """A whole step: delivered ≥ injected, off-tile = DRAM + delivered, its learning phases a
    part of it, and nothing negative."""
    spec = arch(
        DISTRIBUTED,
        **{"tiles.count": tiles, "noc.topology": topology, "noc.multicast": multicast},
    )
    totals = simulate(spec, tiny_trace(algorithm)).totals()
    assert totals["noc_delivered_bytes"] >= totals["noc_injected_bytes"] == totals["noc_bytes"]
    assert totals["noc_byte_hops"] >= 0
    dram = totals["dram_read_bytes"] + totals["dram_write_bytes"]
    assert totals["off_tile_bytes"] == dram + totals["noc_delivered_bytes"]
    assert 0 < totals["learning_off_tile_bytes"] <= totals["off_tile_bytes"]


@pytest.mark.parametrize("policy", ["colocate", "round_robin"])
def test_sparse_feedback_to_fewer_neurons_than_classes_injects_no_more_than_it_delivers(policy):
    """A layer of 4 neurons under SSDFA (s = 1, 10 classes) listens to at most 4 errors: the
    multicast of E injects what its tiles receive, not all 10 (issue 17's edge case)."""
    network = NetworkSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "network",
            "name": "narrow",
            "dataset": "synthetic",
            "input_shape": [16],
            "classes": 10,
            "layers": [
                {"type": "dense", "name": "h", "units": 4, "activation": "relu"},
                {"type": "dense", "name": "out", "units": 10},
            ],
        }
    )
    config = TrainConfig.from_network(network, Algorithm.SSDFA, epochs=1, batch_size=2)
    spec = arch(DISTRIBUTED, **{"tiles.count": 64, "mapping.policy": policy})
    breakdown = simulate(spec, shape_only_trace(network, config)).breakdown
    noc = breakdown[breakdown["component"] == "noc"]
    moved = noc.groupby(["layer", "phase", "action"])["bytes"].sum()
    for layer, phase in {(layer, phase) for layer, phase, _ in moved.index}:
        assert moved[layer, phase, "deliver"] >= moved[layer, phase, "inject"], (layer, phase)
    assert moved["h", "error", "inject"] < 2 * 10 * 2  # fewer than the batch's C errors
