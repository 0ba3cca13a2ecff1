"""Batch-norm statistics reduced across the tiles that hold a channel on the distributed
substrate (issue 15, item 5; hwsim.sim.dist_norm): who holds each channel from the cut, the
bytes and latency in closed form, nothing moved when every channel is on one tile or the trace
is an inference pass, and the physics invariants on a graph with batch norm; a batch norm
runs where its convolution left the map; a layer norm's per-row and per-feature sums combined
the same way."""

from __future__ import annotations

import dataclasses
import math
from functools import cache

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.io.arch import load_arch_with_energies
from hwsim.io.networks import load_network
from hwsim.sim.components import Ledger, ceil_div
from hwsim.sim.dist_gemm import operand_copies
from hwsim.sim.dist_norm import channel_holders, statistics_exchange
from hwsim.sim.dist_store import RESIDENT_ROLES
from hwsim.sim.distributed import DistributedSubstrate
from hwsim.sim.engine import simulate
from hwsim.sim.mapping import Placement, Region, conv_groups, place
from hwsim.sim.result import build_result
from hwsim.specs.arch import DistributedSpec
from hwsim.specs.trace import Algorithm, MatmulOp, OpRecord, ReduceOp, Trace
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.sim.invariants import SHIPPED_SPECS, simulate_within_invariants

DISTRIBUTED_SPECS = [name for name in SHIPPED_SPECS if name.startswith("distributed")]


@cache
def step(rule: Algorithm, batch_size: int = 2, inference: bool = False) -> Trace:
    network = load_network("digits_resnet")
    config = TrainConfig.from_network(
        network, rule, epochs=1, batch_size=batch_size, inference=inference
    )
    return shape_only_trace(network, config)


def chip(name: str, **changes: object) -> DistributedSpec:
    spec, _ = load_arch_with_energies(name)
    assert isinstance(spec, DistributedSpec)
    data = spec.model_dump()
    for path, value in changes.items():  # "tiles.count" → data["tiles"]["count"]
        *parents, key = path.split(".")
        node = data
        for parent in parents:
            node = node[parent]
        node[key] = value
    return DistributedSpec.model_validate(data)


def holdings(channels: int, channel_groups: int, tiles_per_group: int, spatial: int) -> int:
    """Σ_c t_c in closed form: S · Σ_k max(c_k, G) over the K contiguous channel groups."""
    share, extra = divmod(channels, channel_groups)
    sizes = [share + 1] * extra + [share] * (channel_groups - extra)
    return spatial * sum(max(size, tiles_per_group) for size in sizes)


@settings(max_examples=200, deadline=None)
@given(
    channels=st.integers(1, 600),
    groups=st.integers(1, 64),
    tiles_per_group=st.integers(1, 64),
    spatial=st.integers(1, 64),
)
def test_each_channel_is_held_by_its_blocks_times_its_share_of_the_group(
    channels, groups, tiles_per_group, spatial
):
    groups = min(groups, channels)  # a cut never has more channel groups than channels
    holders = channel_holders(channels, groups, tiles_per_group, spatial)
    assert len(holders) == channels
    assert sum(holders) == holdings(channels, groups, tiles_per_group, spatial)
    assert all(tiles % spatial == 0 and tiles >= spatial for tiles in holders)
    # Every tile of the cut holds some channel: no more holdings than channels plus tiles.
    assert sum(holders) <= channels * spatial + groups * tiles_per_group * spatial


@settings(max_examples=200, deadline=None)
@given(
    holders=st.lists(st.integers(1, 300), min_size=1, max_size=200),
    bits_per_value=st.sampled_from([8, 16, 32]),
    values=st.integers(1, 3),
    multicast=st.booleans(),
)
def test_the_exchange_moves_two_values_per_extra_holding_each_way(
    holders, bits_per_value, values, multicast
):
    channels = len(holders)
    exchange = statistics_exchange(holders, channels * values * bits_per_value, multicast)
    extra = sum(holders) - channels
    shared = sum(1 for tiles in holders if tiles > 1)
    assert (
        exchange.gathered_bytes
        == exchange.returned_bytes
        == ceil_div(extra * values * bits_per_value, 8)
    )
    injected = shared if multicast else extra
    assert exchange.returned_injected_bytes == ceil_div(injected * values * bits_per_value, 8)
    assert exchange.returned_bytes >= exchange.returned_injected_bytes
    if all(tiles == 1 for tiles in holders):  # out of the formula, not a special case
        assert exchange.gathered_bytes == exchange.returned_bytes == 0


def alone(spec: DistributedSpec, trace: Trace, record: OpRecord, combine: bool = True):
    """(cycles, NoC injected, delivered, byte-hops) of `record` run on its own, its inputs
    already in its tiles (nothing fetched); without the combining when not `combine`."""
    env, ledger = simpy.Environment(), Ledger()
    substrate = DistributedSubstrate(env, spec, trace.header, ledger, trace.records)
    if not combine:
        substrate.norm_layers = {}
        substrate.row_products = {}
    env.process(substrate.execute(record))
    env.run()
    rows = build_result(spec, trace, ledger, int(env.now), 1).breakdown
    noc = rows[rows["component"] == "noc"].set_index("action")
    injected = int(noc["bytes"].get("inject", 0))
    delivered = int(noc["bytes"].get("deliver", 0))
    return int(env.now), injected, delivered, int(noc["count"].get("byte_hop", 0))


def batch_norm_reductions(trace: Trace) -> list[OpRecord]:
    kinds = {layer.name: layer.type for layer in trace.header.layers}
    return [
        record
        for record in trace.records
        if kinds[record.layer] == "batch_norm" and isinstance(record.op, ReduceOp)
    ]


def placement_of(spec: DistributedSpec, trace: Trace) -> Placement:
    return place(trace.header, spec, conv_groups(trace.records))


def expected(spec: DistributedSpec, trace: Trace, record: OpRecord) -> tuple[int, int, Region]:
    """(bytes each way, bytes injected by the return, the tiles) in closed form: on the
    convolution's execution group, where the map is (its per-channel statistics, read
    backward, go to it)."""
    placement = placement_of(spec, trace)
    group = placement.group_of(record.layer)
    channels = next(layer for layer in trace.header.layers if layer.name == record.layer)
    channels = channels.output_shape[-1]
    if group is not None:
        cut, region = group.partition, group.region
        groups, per_group, spatial = cut.channel_groups, cut.input_groups, cut.spatial_blocks
    else:
        region = placement.region_of(record.layer)
        groups, per_group, spatial = 1, region.tiles, 1
    extra = holdings(channels, groups, per_group, spatial) - channels
    sizes = [channels // groups + (1 if k < channels % groups else 0) for k in range(groups)]
    shared = sum(size if spatial > 1 else min(size, max(0, per_group - size)) for size in sizes)
    bits = {"bias": spec.precision.bias_bits, "gradient": spec.precision.gradient_bits}
    per_value = {bits[operand.role.value] for operand in record.writes}
    assert len(per_value) == 1 and sum(o.elements for o in record.writes) == 2 * channels
    (value_bits,) = per_value
    return (
        ceil_div(extra * 2 * value_bits, 8),
        ceil_div(shared * 2 * value_bits, 8),
        region,
    )


@pytest.mark.parametrize("rule", list(Algorithm), ids=str)
def test_a_spread_convolutions_channels_combine_their_statistics_in_closed_form(rule):
    """On distributed_small every convolution of digits_resnet is spread over the chip, each
    channel over several spatial blocks or input groups: forward, every batch norm moves
    2 values a channel from each extra holder to its reducer and 2 back, 16 bits each;
    backward, Σdy and Σdy·x̂ the same way."""
    spec = chip("distributed_small")
    trace = step(rule)
    records = batch_norm_reductions(trace)
    assert {record.phase.value for record in records} == {"forward", "gradient"}
    forward = 0
    for record in records:
        each_way, returned, region = expected(spec, trace, record)
        cycles, *with_exchange = alone(spec, trace, record)
        # Without it: the statistics, read backward, come to the map from the storage tiles.
        bare, *fetched = alone(spec, trace, record, combine=False)
        assert fetched == [0, 0, 0] or record.phase.value == "gradient"
        injected, delivered, byte_hops = (
            a - b for a, b in zip(with_exchange, fetched, strict=True)
        )
        assert (injected, delivered, byte_hops) == (each_way + returned, 2 * each_way, delivered)
        assert delivered >= injected
        # On the BN's path: each non-empty step is a neighbour exchange after the compute.
        noc = spec.noc
        latency = sum(
            ceil_div(ceil_div(nbytes, region.tiles), noc.link_bandwidth_bytes_per_cycle)
            + noc.hop_latency_cycles
            for nbytes in (each_way, each_way)
            if nbytes
        )
        assert cycles == bare + latency
        forward += delivered if record.phase.value == "forward" else 0
    assert forward > 0  # the spread channels do move statistics


def test_the_stem_example_of_the_model_doc():
    """docs/model.md: the stem's 16 channels on 8 spatial blocks each, E = 112 holdings
    beyond one a channel, 448 bytes each way at 16 bits."""
    spec, trace = chip("distributed_small"), step(Algorithm.BP)
    (record,) = [
        r
        for r in batch_norm_reductions(trace)
        if r.layer == "stem_bn" and r.phase.value == "forward"
    ]
    cut = placement_of(spec, trace).groups["stem"].partition
    assert (cut.spatial_blocks, cut.input_groups, spec.precision.bias_bits) == (8, 1, 16)
    assert expected(spec, trace, record)[0] == 448
    assert alone(spec, trace, record)[2] == 2 * 448


@pytest.mark.parametrize("rule", list(Algorithm), ids=str)
def test_every_channel_on_one_tile_moves_no_statistics(rule):
    """Weights kept where they are stored (each conv cut by output channel) on a chip of 8
    tiles, fewer than any layer's channels: every channel is on one tile, forward and
    backward, and the whole step is what it is without the combining."""
    spec = chip("distributed_stationary", **{"tiles.count": 8})
    trace = step(rule)
    for record in batch_norm_reductions(trace):
        assert alone(spec, trace, record)[1:] == alone(spec, trace, record, combine=False)[1:]
        assert expected(spec, trace, record)[:2] == (0, 0)


def test_an_inference_pass_reduces_no_statistics():
    """Batch norm by running statistics: no per-channel reduction is recorded, so nothing is
    combined; every record costs what it costs without the combining."""
    trace = step(Algorithm.BP, inference=True)
    assert trace.header.inference and not batch_norm_reductions(trace)
    spec = chip("distributed_small")
    for record in trace.records:
        assert alone(spec, trace, record) == alone(spec, trace, record, combine=False)


@pytest.mark.parametrize("spec", DISTRIBUTED_SPECS)
@pytest.mark.parametrize("rule", list(Algorithm), ids=str)
def test_a_graph_with_batch_norm_keeps_the_invariants(rule, spec):
    result = simulate_within_invariants(spec, step(rule))
    rows = result.breakdown
    kinds = {layer.name: layer.type for layer in step(rule).header.layers}
    noc = rows[(rows["component"] == "noc") & rows["layer"].map(kinds).eq("batch_norm")]
    sums = noc.groupby("action")["bytes"].sum()
    assert sums["deliver"] >= sums["inject"] > 0


def test_the_step_moves_exactly_the_records_exchanges_more():
    """The whole step on distributed_small: its NoC bytes grow by the sum of the batch norms'
    exchanges, and no other layer's traffic moves."""
    spec = chip("distributed_small")
    trace = step(Algorithm.BP)
    with_exchange = simulate(spec, trace).breakdown
    kinds = {layer.name: layer.type for layer in trace.header.layers}
    hidden = trace.header.model_copy(
        update={
            "layers": [
                dataclasses.replace(layer, type="scale") if layer.type == "batch_norm" else layer
                for layer in trace.header.layers
            ]
        }
    )
    without = simulate(spec, Trace(header=hidden, records=trace.records)).breakdown
    added = sum(expected(spec, trace, record)[0] * 2 for record in batch_norm_reductions(trace))

    def delivered(rows, batch_norm: bool):
        chosen = rows[(rows["component"] == "noc") & (rows["action"] == "deliver")]
        return chosen[chosen["layer"].map(kinds).eq("batch_norm") == batch_norm]["bytes"].sum()

    assert delivered(with_exchange, True) - delivered(without, True) == added
    assert delivered(with_exchange, False) == delivered(without, False)


@pytest.mark.parametrize("spec", DISTRIBUTED_SPECS)
def test_a_batch_norm_runs_where_its_convolution_left_the_map(spec):
    """Every batch-norm record that reads the map runs on the convolution's execution group:
    its scale, shift and statistics (a few values a channel) go to the map, not the map to
    them; its running statistics and weight updates stay beside the stored vectors."""
    chip_, trace = chip(spec), step(Algorithm.BP)
    substrate = DistributedSubstrate(
        simpy.Environment(), chip_, trace.header, Ledger(), trace.records
    )
    placement = substrate.placement
    kinds = {layer.name: layer.type for layer in trace.header.layers}
    checked = 0
    for record in trace.records:
        group = placement.group_of(record.layer)
        if kinds[record.layer] != "batch_norm" or group is None:
            continue
        reads_map = any(
            o.role not in RESIDENT_ROLES and o.role.value != "gradient" for o in record.reads
        )
        region, _ = substrate._region(record)
        assert region == (group.region if reads_map else placement.region_of(record.layer))
        checked += reads_map
    assert checked == 4 * len([k for k in kinds.values() if k == "batch_norm"])  # 2 + 1 + 1


def test_on_time_shared_tiles_the_map_makes_no_round_trip():
    """On `distributed` a convolution computes on tiles borrowed from other layers: its batch
    norm's forward moves its statistics exchange and its per-channel vectors to those tiles
    (a copy of each a tile at most), never the map to the storage tiles and back."""
    spec, trace = chip("distributed"), step(Algorithm.BP)
    rows = simulate(spec, trace).breakdown
    placement = placement_of(spec, trace)
    layers = {layer.name: layer for layer in trace.header.layers}
    bits = spec.precision.bias_bits
    checked = 0
    for name, layer in layers.items():
        if layer.type != "batch_norm" or not placement.group_of(name).region.shared:
            continue
        mine = rows[(rows["layer"] == name) & (rows["phase"] == "forward")]
        delivered = mine[(mine["component"] == "noc") & (mine["action"] == "deliver")][
            "bytes"
        ].sum()
        (statistics,) = [
            r
            for r in batch_norm_reductions(trace)
            if r.layer == name and r.phase.value == "forward"
        ]
        exchange = 2 * expected(spec, trace, statistics)[0]
        vectors = 4 * layer.output_shape[-1] * bits // 8  # scale, shift and 2 statistics
        tiles = placement.group_of(name).region.tiles
        assert exchange <= delivered <= exchange + vectors * tiles
        assert delivered - exchange < 2 * math.prod(layer.output_shape) * bits // 8
        checked += 1
    assert checked >= 2  # the convolutions spread over borrowed tiles


def transformer_step(rule: Algorithm, batch_size: int = 2) -> Trace:
    network = load_network("digits_transformer")
    return shape_only_trace(
        network, TrainConfig.from_network(network, rule, epochs=1, batch_size=batch_size)
    )


@pytest.mark.parametrize("spec", DISTRIBUTED_SPECS)
def test_a_layer_norm_combines_its_rows_and_features_in_closed_form(spec):
    """A [rows, D] map held by feature on T tiles: the statistics forward and the row sums of
    the input error (2 values a row) are combined over the min(T, D) tiles a row spans,
    E = R·(min(T, D) − 1); Σdy and Σdy·x̂ over the rows per feature as a batch norm's
    channels, E = Σ_d (t_d − 1); nothing more moves."""
    chip_, trace = chip(spec), transformer_step(Algorithm.BP)
    placement = placement_of(chip_, trace)
    layers = {layer.name: layer for layer in trace.header.layers}
    moved = 0
    for record in trace.records:
        layer = layers[record.layer]
        if layer.type != "layer_norm":
            continue
        width, tiles = layer.output_shape[-1], placement.region_of(record.layer).tiles
        function = record.op.function
        if function in ("mean_variance", "layer_norm_derivative"):
            rows = record.reads[0].elements // width
            extra = rows * (min(tiles, width) - 1)
            role = "activation" if function == "mean_variance" else "error"
            value_bits = getattr(chip_.precision, f"{role}_bits")
        elif function == "scale_shift_gradient":
            extra = holdings(width, 1, tiles, 1) - width
            value_bits = chip_.precision.gradient_bits
        else:
            assert alone(chip_, trace, record)[1:] == alone(chip_, trace, record, combine=False)[1:]
            continue
        each_way = ceil_div(extra * 2 * value_bits, 8)
        _, injected, delivered, _ = alone(chip_, trace, record)
        _, injected0, delivered0, _ = alone(chip_, trace, record, combine=False)
        assert delivered - delivered0 == 2 * each_way
        assert each_way <= injected - injected0 <= 2 * each_way
        moved += delivered - delivered0
    assert moved > 0


@pytest.mark.parametrize("spec", DISTRIBUTED_SPECS)
@pytest.mark.parametrize("rule", list(Algorithm), ids=str)
def test_a_transformer_with_layer_norm_keeps_the_invariants(rule, spec):
    simulate_within_invariants(spec, transformer_step(rule))


@pytest.mark.parametrize("spec", DISTRIBUTED_SPECS)
@pytest.mark.parametrize("rule", [Algorithm.BP, Algorithm.DFA], ids=str)
def test_attention_combines_each_softmax_row_over_the_tiles_its_columns_span(spec, rule):
    """Attention's scores [groups·m rows, n] are cut over the q column blocks of their
    product's grid (hwsim.sim.dist_gemm): the softmax combines each row's (max, Σ exp) pair
    (the online softmax's, one exchange) and its derivative each row's Σ dA·A over those q
    tiles, E = rows·(q − 1) at the written bits; nothing else moves, and the loss's softmax
    over the logits moves nothing."""
    chip_, trace = chip(spec), transformer_step(rule)
    placement = placement_of(chip_, trace)
    kinds = {layer.name: layer.type for layer in trace.header.layers}
    products = {
        record.writes[0].tensor: record.op
        for record in trace.records
        if isinstance(record.op, MatmulOp) and record.writes
    }
    checked = moved = 0
    for record in trace.records:
        function = getattr(record.op, "function", None)
        if function not in ("softmax", "softmax_derivative"):
            continue
        _, injected, delivered, _ = alone(chip_, trace, record)
        _, injected0, delivered0, _ = alone(chip_, trace, record, combine=False)
        if kinds[record.layer] != "attention":
            assert (injected, delivered) == (injected0, delivered0)
            continue
        product = products[record.reads[0].tensor]
        columns, _ = operand_copies(product, placement.region_of(record.layer).tiles)
        rows = product.groups * product.m
        values, role = (2, "activation") if function == "softmax" else (1, "error")
        bits = getattr(chip_.precision, f"{role}_bits")
        each_way = ceil_div(rows * (columns - 1) * values * bits, 8)
        assert delivered - delivered0 == 2 * each_way
        assert each_way <= injected - injected0 <= 2 * each_way
        checked += 1
        moved += delivered - delivered0
    assert checked == 4  # two blocks, forward and backward (DFA: BP inside each block)
    assert moved > 0
