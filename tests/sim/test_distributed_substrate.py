"""The distributed substrate: conv layers over the whole chip, halo, reserves, DRAM capacity,
data flow instead of tensor names."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import CapacityError, SpecError, located
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.networks import load_network
from hwsim.sim.dist_conv import (
    CYCLE_TOLERANCE,
    ConvPartition,
    ConvShape,
    choose_partition,
    delivered_bytes,
    estimated_cycles,
    halo_elements,
    input_window_elements,
)
from hwsim.sim.engine import simulate
from hwsim.sim.mapping import forward_macs_per_example, place, reserve_bytes
from hwsim.specs.network import Conv2DLayer, infer_shapes
from hwsim.specs.trace import Algorithm, Conv2DOp, Trace, TraceHeader
from hwsim.train.loop import TrainConfig, trace_header
from tests.sim.conftest import DISTRIBUTED, arch, tiny_trace


def network_header(name: str, batch_size: int = 8) -> TraceHeader:
    """A trace header with a shipped network's layer table (shapes only, nothing traced)."""
    network = load_network(name)
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=batch_size)
    return trace_header(
        network,
        config,
        infer_shapes(network),
        [],
        batch_size=batch_size,
        dataset="synthetic",
        record_count=0,
        densities_measured=False,
    )


@pytest.mark.parametrize("network", ["vgg16", "alexnet"])
@pytest.mark.parametrize("spec", ["distributed", "distributed_small"])
def test_convolutions_compute_on_most_of_the_chip(network, spec):
    header = network_header(network)
    chip, _ = load_arch_with_energies(spec)
    placement = place(header, chip)
    convs = [layer for layer in header.layers if layer.type == "conv2d"]
    macs = sum(forward_macs_per_example(layer) for layer in convs)
    used = (
        sum(
            forward_macs_per_example(layer) * placement.groups[layer.name].region.tiles
            for layer in convs
        )
        / macs
        / chip.tiles.count
    )
    # MAC-weighted share of the chip a convolution computes on (it was ≤ 9 % for VGG16).
    assert used >= 0.9
    for layer in convs:
        group = placement.groups[layer.name]
        assert group.region.tiles == group.partition.tiles <= chip.tiles.count


def test_a_layer_beyond_its_storage_region_time_shares_the_chip():
    placement = place(tiny_trace("bp").header, arch(DISTRIBUTED))
    home, group = placement.regions["conv"], placement.groups["conv"]
    assert group.region.tiles > home.tiles and group.region.shared
    assert group.region.key != home.key  # its own compute and NoC ingress


def _conv(size: int, padding: str, channels: int = 2, batch: int = 1) -> Conv2DOp:
    out = size if padding == "same" else size - 2
    return Conv2DOp(
        kind="conv2d",
        conv_pass="forward",
        batch=batch,
        input_height=size,
        input_width=size,
        input_channels=channels,
        output_height=out,
        output_width=out,
        output_channels=4,
        kernel_height=3,
        kernel_width=3,
        stride=1,
        padding=padding,
        m=batch * out * out,
        k=9 * channels,
        n=4,
    )


@pytest.mark.parametrize(
    ("padding", "size", "rows_per_block"),
    [
        ("same", 8, 5),  # output rows 0–3 read input rows −1…4 (−1 is padding), 4–7 read 3…8
        ("valid", 10, 6),  # output rows 0–3 read 0…5, 4–7 read 4…9
    ],
)
def test_halo_of_a_2x2_cut_in_closed_form(padding, size, rows_per_block):
    op = _conv(size, padding, channels=3, batch=2)
    partition = ConvPartition(channel_groups=1, row_blocks=2, column_blocks=2)
    windows = (2 * rows_per_block) ** 2 * 3 * 2
    assert input_window_elements(op, partition) == windows
    assert halo_elements(op, partition) == windows - size * size * 3 * 2
    whole = ConvPartition(channel_groups=4, row_blocks=1, column_blocks=1)
    assert halo_elements(op, whole) == 0  # one block: the window is the input map


@settings(max_examples=50, deadline=None)
@given(size=st.integers(3, 40), rows=st.integers(1, 8), columns=st.integers(1, 8))
def test_halo_grows_with_the_cut_and_never_goes_negative(size, rows, columns):
    op = _conv(size, "same")
    coarse = ConvPartition(1, rows, columns)
    fine = ConvPartition(1, rows + 1, columns)
    assert 0 <= halo_elements(op, coarse) <= halo_elements(op, fine)


def _shape(
    height: int, in_channels: int, out_channels: int, weights: int, trained: bool = False
) -> ConvShape:
    return ConvShape(
        output_height=height,
        output_width=height,
        output_channels=out_channels,
        input_channels=in_channels,
        macs=10**9,
        weight_bytes=weights,
        input_bytes=height * height * in_channels * 2,
        output_bytes=height * height * out_channels * 2,
        accumulator_ratio=2.0,
        trained=trained,
    )


def test_a_small_map_with_big_weights_is_cut_by_channels_not_space():
    # Spatial blocks would replicate the 1 MB of weights; input groups add small partial sums.
    partition = choose_partition(
        _shape(2, 256, 64, 10**6), tiles=4096, macs_per_tile_per_cycle=16, link_bytes_per_cycle=32
    )
    assert partition.spatial_blocks == 1
    assert partition.tiles >= 4096 / CYCLE_TOLERANCE


def test_a_big_map_with_few_weights_is_cut_in_space():
    partition = choose_partition(
        _shape(224, 3, 64, 3456), tiles=4096, macs_per_tile_per_cycle=16, link_bytes_per_cycle=32
    )
    assert partition.spatial_blocks >= 64 and partition.input_groups == 1


@settings(max_examples=50, deadline=None)
@given(
    height=st.integers(1, 64),
    in_channels=st.integers(1, 512),
    out_channels=st.integers(1, 512),
    tiles=st.integers(1, 8192),
    trained=st.booleans(),
)
def test_the_chosen_cut_fits_and_is_near_the_fastest(
    height, in_channels, out_channels, tiles, trained
):
    shape = _shape(height, in_channels, out_channels, 9 * in_channels * out_channels * 2, trained)
    partition = choose_partition(
        shape, tiles=tiles, macs_per_tile_per_cycle=16, link_bytes_per_cycle=32
    )
    assert 1 <= partition.tiles <= tiles
    assert partition.row_blocks <= height and partition.column_blocks <= height
    assert partition.channel_groups <= out_channels
    assert partition.input_groups <= in_channels
    # Within the tolerance of the plain channel cut (a candidate, so never faster than the
    # fastest), and if it is as fast, it moves no more bytes than that cut.
    plain = ConvPartition(
        channel_groups=1 << (min(out_channels, tiles).bit_length() - 1),
        row_blocks=1,
        column_blocks=1,
    )
    chosen_cycles, plain_cycles = (
        estimated_cycles(shape, cut, 16, 32) for cut in (partition, plain)
    )
    assert chosen_cycles <= CYCLE_TOLERANCE * plain_cycles
    if chosen_cycles >= plain_cycles:
        assert delivered_bytes(shape, partition) <= delivered_bytes(shape, plain)


def test_conv_tiles_receive_windows_and_reloaded_weights():
    trace = tiny_trace("bp")
    spec = arch(DISTRIBUTED)
    result = simulate(spec, trace)
    group = place(trace.header, spec).groups["conv"]
    forward = result.breakdown.query(
        "layer == 'conv' and phase == 'forward' and component == 'noc' and action == 'deliver'"
    )
    op = trace.records[0].op
    windows = input_window_elements(op, group.partition) * 2  # 16-bit
    weights = (72 + 4) * 2
    partition = group.partition
    delivered = partition.channel_groups * windows + partition.spatial_blocks * weights
    if partition.input_groups > 1:  # the output's partial sums, at 32 bits
        delivered += (partition.input_groups - 1) * 4 * 6 * 6 * 4 * 4
    # ± the rounding of per-tile shares of the weights and biases
    assert forward["bytes"].sum() == pytest.approx(delivered, rel=0.05)


def _renamed(trace: Trace) -> Trace:
    names: dict[str, str] = {}

    def rename(operand):
        new = names.setdefault(operand.tensor, f"tensor{len(names)}")
        return dataclasses.replace(operand, tensor=new)

    records = [
        dataclasses.replace(
            record,
            reads=tuple(rename(o) for o in record.reads),
            writes=tuple(rename(o) for o in record.writes),
        )
        for record in trace.records
    ]
    return Trace(header=trace.header, records=records)


@pytest.mark.parametrize("backward", ["partial_sums", "transpose_weights"])
@pytest.mark.parametrize("algorithm", ["bp", "dfa", "ssdfa"])
def test_tensor_names_carry_no_meaning(algorithm, backward):
    spec = arch(DISTRIBUTED, **{"mapping.backward": backward})
    trace = tiny_trace(algorithm)
    original, renamed = simulate(spec, trace), simulate(spec, _renamed(trace))
    assert original.breakdown.equals(renamed.breakdown)
    assert original.cycles == renamed.cycles


def test_bp_partial_sums_go_to_the_region_that_reads_the_error():
    spec = arch(DISTRIBUTED, **{"tiles.count": 64})
    result = simulate(spec, tiny_trace("bp"))
    # fc3's δ·Wᵀ is reduced over the NoC into fc2's tiles (the reader of fc2's error).
    rows = result.breakdown.query("layer == 'fc3' and phase == 'error' and component == 'noc'")
    assert (
        rows.loc[rows["action"] == "inject", "bytes"].sum()
        >= 4 * 12 * 4 * place(tiny_trace("bp").header, spec).regions["fc3"].tiles
    )


def test_activations_beyond_the_reserve_spill_or_are_refused():
    roomy = simulate(arch(DISTRIBUTED), tiny_trace("dfa")).totals()
    cramped_spec = arch(DISTRIBUTED, **{"mapping.activation_reserve_fraction": 0.001})
    cramped = simulate(cramped_spec, tiny_trace("dfa")).totals()
    assert roomy["dram_write_bytes"] == 0
    assert cramped["dram_write_bytes"] > 0  # the spilled activations and errors
    assert cramped["dram_read_bytes"] > roomy["dram_read_bytes"]  # read back by their readers
    refused = arch(
        DISTRIBUTED, **{"mapping.activation_reserve_fraction": 0.001, "mapping.allow_spill": False}
    )
    with (
        pytest.raises(
            SpecError,
            match=r"^arch: mapping.allow_spill: conv's forward op writes "
            r"[\d,]+ bytes of activations and errors into \d+ "
            r"tiles whose reserves .* hold [\d,]+ \(got false\); allow spilling "
            r"to DRAM or enlarge the reserve$",
        ),
        located("arch"),
    ):  # the simulator names the field; the edge adds the file
        simulate(refused, tiny_trace("dfa"))
    with pytest.raises(CapacityError) as caught:
        simulate(refused, tiny_trace("dfa"))
    assert str(caught.value).startswith("mapping.allow_spill: conv's forward op writes ")
    assert "allow spilling" not in str(caught.value)  # advice is the edge's


def test_dram_capacity_is_enforced():
    tiny_dram = arch(DISTRIBUTED, **{"dram.capacity_bytes": 100})
    with (
        pytest.raises(
            SpecError,
            match=r"^x.yaml: dram.capacity_bytes: tiny needs 576 bytes "
            r"of DRAM \(the input data\) \(got 100\)$",
        ),
        located("x.yaml"),
    ):
        simulate(tiny_dram, tiny_trace("bp"))
    spilling = arch(
        DISTRIBUTED,
        **{"tiles.count": 4, "tiles.sram.capacity_bytes": 1024, "dram.capacity_bytes": 1024},
    )
    with pytest.raises(
        SpecError,
        match=r"dram.capacity_bytes: tiny spills [\d,]+ bytes of "
        r"weights, optimizer state and feedback to DRAM",
    ):
        simulate(spilling, tiny_trace("bp"))
    assert simulate(arch(DISTRIBUTED, **{"dram.capacity_bytes": 10**6}), tiny_trace("bp"))


def test_fetches_overlap_compute_when_operands_need_several_blocks():
    trace = tiny_trace("bp")
    small = arch(DISTRIBUTED, **{"mapping.activation_reserve_fraction": 0.02})
    result = simulate(small, trace)
    resources = result.resources.set_index("resource")
    # Some NoC ingress and some tile group are busy at the same time.
    intervals = result.timeline
    both = intervals.groupby("start_cycle").apply(
        lambda frame: (
            (frame["resource"].str.startswith("noc") & (frame["busy_fraction"] > 0)).any()
            and (frame["resource"].str.startswith("tiles") & (frame["busy_fraction"] > 0)).any()
        ),
        include_groups=False,
    )
    assert both.any()
    assert (resources["utilization"] <= 1).all()


@settings(max_examples=20, deadline=None)
@given(
    tiles=st.integers(4, 512),
    reserve=st.floats(0.01, 0.9),
    topology=st.sampled_from(["mesh", "tree", "bus"]),
    multicast=st.booleans(),
    algorithm=st.sampled_from(["bp", "dfa", "ssdfa"]),
)
def test_no_resource_is_busy_longer_than_the_step(tiles, reserve, topology, multicast, algorithm):
    spec = arch(
        DISTRIBUTED,
        **{
            "tiles.count": tiles,
            "noc.topology": topology,
            "noc.multicast": multicast,
            "mapping.activation_reserve_fraction": reserve,
        },
    )
    result = simulate(spec, tiny_trace(algorithm))
    assert (result.resources["busy_cycles"] <= result.cycles).all()
    assert result.totals()["macs"] == tiny_trace(algorithm).macs


@pytest.mark.parametrize(
    "spec", ["distributed", "distributed_small", "distributed_tree", "distributed_small_bus"]
)
def test_error_delivery_bytes_shrink_from_bp_to_dfa_to_ssdfa(spec):
    chip = arch_from_shipped(spec, multicast=False)

    def error_bytes(algorithm):
        frame = simulate(chip, tiny_trace(algorithm)).breakdown
        rows = frame[
            (frame["phase"] == "error")
            & (frame["component"] == "noc")
            & (frame["action"] == "deliver")
        ]
        return rows["bytes"].sum()

    assert error_bytes("ssdfa") < error_bytes("dfa") < error_bytes("bp")


def arch_from_shipped(name: str, **noc):
    chip, _ = load_arch_with_energies(name)
    data = chip.model_dump()
    data["noc"].update(noc)
    return type(chip).model_validate(data)


def test_spatial_blocks_never_exceed_the_output_map():
    header = network_header("alexnet")
    placement = place(header, load_arch_with_energies("distributed")[0])
    for layer in header.layers:
        if layer.type == "conv2d":
            partition = placement.groups[layer.name].partition
            height, width, channels = layer.output_shape
            assert partition.row_blocks <= height and partition.column_blocks <= width
            assert partition.channel_groups <= channels
            assert partition.input_groups <= layer.input_shape[-1]
            assert math.prod(layer.output_shape) >= partition.tiles


def test_stationary_convolutions_keep_their_weights_and_their_region():
    header = network_header("alexnet")
    chip, _ = load_arch_with_energies("distributed")
    stationary = chip.model_copy(
        update={"mapping": chip.mapping.model_copy(update={"spread_convolutions": False})}
    )
    placement = place(header, stationary)
    for name, group in placement.groups.items():
        home = placement.regions[name]
        partition = group.partition
        assert not group.region.shared and group.region.key == home.key
        assert partition.spatial_blocks == partition.input_groups == 1
        assert partition.tiles == min(home.tiles, group.partition.channel_groups)
    trace = tiny_trace("ssdfa")
    spec = arch(DISTRIBUTED, **{"mapping.spread_convolutions": False})
    frame = simulate(spec, trace).breakdown
    spread = simulate(arch(DISTRIBUTED), trace).breakdown

    def conv_noc(rows):
        return rows.query("layer == 'conv' and component == 'noc' and action == 'inject'")[
            "bytes"
        ].sum()

    assert conv_noc(frame) < conv_noc(spread)  # no weight reloads, halos or partial sums


def _conv_ops(name: str, batch: int) -> dict[str, Conv2DOp]:
    """Forward conv ops of a shipped network, from its YAML (nothing traced)."""
    network = load_network(name)
    shapes = {shape.name: shape for shape in infer_shapes(network)}
    ops = {}
    for layer in network.layers:
        if isinstance(layer, Conv2DLayer):
            (height, width, channels), (rows, columns, filters) = (
                shapes[layer.name].input_shape,
                shapes[layer.name].output_shape,
            )
            ops[layer.name] = Conv2DOp(
                kind="conv2d",
                conv_pass="forward",
                batch=batch,
                input_height=height,
                input_width=width,
                input_channels=channels,
                output_height=rows,
                output_width=columns,
                output_channels=filters,
                kernel_height=layer.kernel_size,
                kernel_width=layer.kernel_size,
                stride=layer.stride,
                padding=layer.padding,
                m=batch * rows * columns,
                k=layer.kernel_size**2 * channels,
                n=filters,
            )
    return ops


@pytest.mark.parametrize("network", ["alexnet", "vgg16"])
def test_a_conv_tile_receives_a_window_that_fits_its_reserve(network):
    chip, _ = load_arch_with_energies("distributed")
    placement = place(network_header(network), chip)
    for name, op in _conv_ops(network, batch=8).items():
        partition = placement.groups[name].partition
        per_tile_bytes = (
            input_window_elements(op, partition)
            * 2
            // (partition.input_groups * partition.spatial_blocks)
        )
        assert per_tile_bytes <= reserve_bytes(chip), name
        whole_input_bytes = op.input_height * op.input_width * op.input_channels * 8 * 2
        if name == "conv1" and network == "alexnet":  # it used to receive all 2.47 MB
            assert per_tile_bytes < whole_input_bytes / 100


@pytest.mark.parametrize("spec", ["distributed", "distributed_small"])
def test_local_rules_do_not_finish_later_for_scheduling_reasons(spec):
    """cifar100_conv, one example: SSDFA and DFA no slower than BP on the distributed specs
    (their conv gradients take the whole chip early; the critical path goes first)."""
    from hwsim.io.arch import load_arch
    from hwsim.io.networks import load_network
    from hwsim.specs.trace import Algorithm
    from hwsim.train.loop import TrainConfig
    from hwsim.train.shapes import shape_only_trace

    network = load_network("cifar100_conv")
    arch = load_arch(spec)
    cycles = {
        algorithm: simulate(
            arch,
            shape_only_trace(
                network, TrainConfig.from_network(network, algorithm, epochs=1, batch_size=1)
            ),
        ).cycles
        for algorithm in Algorithm
    }
    assert cycles[Algorithm.SSDFA] <= cycles[Algorithm.BP]
    assert cycles[Algorithm.DFA] <= cycles[Algorithm.BP]
