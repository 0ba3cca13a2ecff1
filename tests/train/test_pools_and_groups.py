"""New layer kinds (issue 15, item 3): average pools and grouped convolutions.

The gradients of the average pools are checked in test_layers (POOL_NETWORKS), and random
chains of every kind are live == described in test_ops.  Here: grouped and depthwise
convolutions against finite differences and a loop reference; their trace records (one
group's GEMM, groups × its MACs, no `groups` field when ungrouped) and the loader's checks;
their pricing as `groups` independent GEMMs; a small net of every new kind on every shipped
spec within the physics invariants, under BP and SSDFA; and bad input.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache

import numpy as np
import pytest
import yaml

from hwsim.cli import main
from hwsim.errors import SpecError, TraceError
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.networks import load_network
from hwsim.io.traces import read_trace, write_trace
from hwsim.sim.dist_conv import map_copies
from hwsim.sim.mapping import conv_groups, place
from hwsim.sim.tiling import compute_cycles, plan_op
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Conv2DOp, OpRecord, Phase, Trace, record_json
from hwsim.train.layers import StepContext
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from tests.sim.invariants import SHIPPED_SPECS, simulate_within_invariants
from tests.train.builders import make_model, make_network
from tests.train.test_layers import batch, check_all_gradients


def pools() -> NetworkSpec:
    return make_network(
        [9, 9, 2],
        3,
        [
            {"type": "conv2d", "name": "c1", "filters": 4, "kernel_size": 3, "activation": "relu"},
            {"type": "avg_pool", "name": "p1", "pool_size": 3, "stride": 2, "padding": "same"},
            {"type": "conv2d", "name": "c2", "filters": 4, "kernel_size": 3},
            {"type": "global_avg_pool", "name": "gap"},
            {"type": "dense", "name": "h", "units": 5, "activation": "tanh"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )


def grouped() -> NetworkSpec:
    """A MobileNet-like block: a stem, a depthwise 3x3 (stride 2), a pointwise 1x1, a
    grouped 3x3 (groups 2, two filters a channel), a global average pool.

    On a [8, 8, 3] input the same net breaks "linear in precision" on `distributed` under
    SSDFA, grouped or not: the ungrouped 1x1 layer's cut (choose_partition) changes when the
    widths double and moves 2.48x the bytes; on this input the cut stays."""
    return make_network(
        [6, 6, 2],
        3,
        [
            {"type": "conv2d", "name": "stem", "filters": 8, "kernel_size": 3,
             "activation": "relu"},
            {"type": "conv2d", "name": "dw", "filters": 8, "kernel_size": 3, "stride": 2,
             "groups": 8, "activation": "relu"},
            {"type": "conv2d", "name": "pw", "filters": 8, "kernel_size": 1, "activation": "relu"},
            {"type": "conv2d", "name": "g2", "filters": 16, "kernel_size": 3, "groups": 2},
            {"type": "global_avg_pool", "name": "gap"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )  # fmt: skip


NETWORKS = {"pools": pools, "grouped": grouped}


@cache
def new_kind_trace(name: str, algorithm: Algorithm) -> Trace:
    network = NETWORKS[name]()
    config = TrainConfig.from_network(network, algorithm, epochs=1, batch_size=2, optimizer="sgd")
    return trace_synthetic_step(network, config)


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
@pytest.mark.parametrize("algorithm", [Algorithm.BP, Algorithm.SSDFA])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_new_kinds_simulate_on_every_shipped_spec_within_the_invariants(spec, algorithm, name):
    simulate_within_invariants(spec, new_kind_trace(name, algorithm))


# ------------------------------------------------------------------ grouped convolutions

GROUPED_NETWORKS = {
    # groups 2 of a 4-channel map, stride 1 SAME; then depthwise (groups = channels = 6,
    # two filters a channel) stride 2 SAME on an odd map.
    "g2s1same-depthwise_s2same": (
        [7, 7, 4],
        [
            {"type": "conv2d", "name": "c1", "filters": 6, "kernel_size": 3, "groups": 2,
             "activation": "tanh"},
            {"type": "conv2d", "name": "c2", "filters": 12, "kernel_size": 3, "stride": 2,
             "groups": 6, "activation": "sigmoid"},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    ),
    # depthwise 5x5 stride 2 VALID (one filter a channel, no bias), groups 3 pointwise-like
    # 1x1, groups 3 3x3 stride 3 VALID (a stride beyond the kernel).
    "depthwise_s2valid-g3k1-g3s3valid": (
        [11, 10, 3],
        [
            {"type": "conv2d", "name": "c1", "filters": 3, "kernel_size": 5, "stride": 2,
             "padding": "valid", "groups": 3, "use_bias": False, "activation": "tanh"},
            {"type": "conv2d", "name": "c2", "filters": 6, "kernel_size": 1, "groups": 3},
            {"type": "conv2d", "name": "c3", "filters": 3, "kernel_size": 2, "stride": 3,
             "padding": "valid", "groups": 3, "activation": "tanh"},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(GROUPED_NETWORKS))
def test_grouped_conv_gradients_match_finite_differences(case: str, rng) -> None:
    input_shape, layers = GROUPED_NETWORKS[case]
    network = make_network(input_shape, 3, layers)
    model = make_model(network, rng)
    x, y = batch(network, 2, rng)
    check_all_gradients(model, x, y)


def _direct_grouped_conv(x, weight, bias, stride: int, groups: int) -> np.ndarray:
    """Loops over output positions and groups (TensorFlow SAME: extra padding after)."""
    _, height, width, channels = x.shape
    k, _, per_group, filters = weight.shape
    assert per_group == channels // groups
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + k - height, 0)
    pad_w = max((out_w - 1) * stride + k - width, 0)
    padded = np.pad(
        x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    )
    outputs = filters // groups
    expected = np.zeros((x.shape[0], out_h, out_w, filters))
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[:, stride * i : stride * i + k, stride * j : stride * j + k, :]
            for g in range(groups):
                ins = slice(g * per_group, (g + 1) * per_group)
                outs = slice(g * outputs, (g + 1) * outputs)
                expected[:, i, j, outs] = (
                    np.einsum("bhwc,hwcf->bf", patch[..., ins], weight[..., outs]) + bias[outs]
                )
    return expected


@pytest.mark.parametrize(("groups", "filters"), [(1, 6), (2, 6), (3, 3), (6, 6), (6, 12)])
def test_grouped_conv_forward_matches_direct_convolution(groups, filters, rng) -> None:
    network = make_network(
        [6, 7, 6],
        3,
        [
            {"type": "conv2d", "name": "c", "filters": filters, "kernel_size": 3, "stride": 2,
             "groups": groups},
            {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    )  # fmt: skip
    model = make_model(network, rng)
    conv = model.layers[0]
    weight, bias = conv.params["weight"], conv.params["bias"]
    assert weight.shape == (3, 3, 6 // groups, filters)
    assert model.shapes[0].weights == weight.size
    x = rng.standard_normal((2, 6, 7, 6))
    got = conv.forward(x, StepContext(training=False))
    expected = _direct_grouped_conv(x, weight, bias, 2, groups)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ grouped convs in the trace


def _forward_conv(trace: Trace, layer: str) -> OpRecord:
    return next(
        r for r in trace.records if r.layer == layer and r.phase == Phase.FORWARD and r.macs
    )


def test_a_grouped_conv_records_one_group_gemm_and_groups_times_its_macs():
    trace = new_kind_trace("grouped", Algorithm.BP)
    for layer, groups, per_group_k, per_group_n in (("dw", 8, 9, 1), ("g2", 2, 36, 8)):
        record = _forward_conv(trace, layer)
        op = record.op
        assert isinstance(op, Conv2DOp)
        positions = 2 * op.output_height * op.output_width
        assert (op.groups, op.m, op.k, op.n) == (groups, positions, per_group_k, per_group_n)
        assert record.macs == groups * positions * per_group_k * per_group_n
        weights = next(layer_ for layer_ in trace.header.layers if layer_.name == layer).weights
        assert record.macs == weights * positions  # every weight once per output position
        assert f'"groups":{groups},' in record_json(record)
    # Ungrouped, the record reads as it always has: no `groups` field.
    assert '"groups"' not in record_json(_forward_conv(trace, "pw"))
    assert "groups" not in json.loads(record_json(_forward_conv(trace, "stem")))["op"]


def test_the_loader_checks_a_grouped_conv_against_its_groups(tmp_path):
    trace = new_kind_trace("grouped", Algorithm.BP)
    path = write_trace(tmp_path / "t.jsonl", trace)
    assert read_trace(path) == trace
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if '"groups":2,' in line)
    bad = tmp_path / "bad.jsonl"
    for change, message in (
        ('"groups":3,', "groups must divide input_channels (8) and output_channels (16) (got 3)"),
        (
            '"groups":4,',
            "m, k, n must be [18, 18, 4] per group for a forward pass of this geometry "
            "(got [18, 36, 8])",
        ),
    ):
        lines_bad = [*lines]
        lines_bad[number] = lines[number].replace('"groups":2,', change)
        bad.write_text("\n".join(lines_bad) + "\n")
        with pytest.raises(TraceError, match=re.escape(f"line {number + 1}: op.conv2d: ")) as info:
            read_trace(bad)
        assert message in str(info.value)


# --------------------------------------------------------- grouped convs on the substrates


def _one_group(record: OpRecord) -> OpRecord:
    """The record of one group of a grouped conv, as an ungrouped conv of its channels."""
    op = record.op
    assert isinstance(op, Conv2DOp)
    groups = op.groups
    alone = dataclasses.replace(
        op,
        input_channels=op.input_channels // groups,
        output_channels=op.output_channels // groups,
        groups=1,
    )

    def share(operands):
        return tuple(
            dataclasses.replace(o, elements=o.elements // groups) if o.slot else o for o in operands
        )

    return dataclasses.replace(
        record,
        op=alone,
        macs=record.macs // groups,
        reads=share(record.reads),
        writes=share(record.writes),
    )


@pytest.mark.parametrize("layer", ["dw", "g2"])
@pytest.mark.parametrize("spec", ["von_neumann", "von_neumann_hbm"])
def test_von_neumann_prices_a_grouped_conv_as_groups_independent_gemms(spec, layer):
    chip, _ = load_arch_with_energies(spec)
    trace = new_kind_trace("grouped", Algorithm.BP)
    for record in trace.records:
        if record.layer != layer or not isinstance(record.op, Conv2DOp):
            continue
        budget = 1 << 20
        grouped = plan_op(record, chip.precision, budget, chip.pe_array)
        alone = plan_op(_one_group(record), chip.precision, budget, chip.pe_array)
        groups = record.op.groups
        assert grouped.mapping is not None and alone.mapping is not None
        assert grouped.mapping.order == f"g>{alone.mapping.order}"
        assert grouped.mapping.tiles == alone.mapping.tiles
        gemm_bytes = (grouped.mapping.dram_bytes, grouped.mapping.array_read_bytes)
        assert gemm_bytes == (
            groups * alone.mapping.dram_bytes,
            groups * alone.mapping.array_read_bytes,
        )
        assert grouped.compute_cycles == groups * alone.compute_cycles
        assert grouped.steps == groups * alone.steps
        assert grouped.footprint_bytes == alone.footprint_bytes
        assert grouped.macs == record.macs == groups * alone.macs


def test_a_depthwise_conv_leaves_a_weight_stationary_arrays_rows_idle():
    """Its reduction is K = kernel² = 9 deep: 9 of the array's rows work, the rest idle."""
    chip, _ = load_arch_with_energies("von_neumann")
    pe = chip.pe_array
    assert pe.dataflow == "weight_stationary" and pe.rows > 9
    record = _forward_conv(new_kind_trace("grouped", Algorithm.BP), "dw")
    cycles = compute_cycles(record, vector_ops_per_cycle=1, pe=pe)
    op = record.op
    assert isinstance(op, Conv2DOp)
    assert cycles == op.groups * op.m  # one fold of K over the rows, of n = 1 over the columns
    assert record.macs / (cycles * pe.rows * pe.columns) == 9 / (pe.rows * pe.columns)


@pytest.mark.parametrize(
    ("channels", "cuts", "groups", "copies"),
    [
        (16, 4, 1, 4),  # ungrouped: every cut needs the whole map
        (16, 8, 8, 1),  # the cuts are the groups: each input channel goes to one cut
        (16, 2, 8, 1),  # a cut of four whole groups needs their channels only
        (16, 16, 8, 2),  # a group split over two cuts: its channels go to both
        (12, 3, 4, 1.5),  # cuts 4, 4, 4 of groups of 3: each cut spans two groups
    ],
)
def test_distributed_output_cuts_receive_the_input_channels_of_their_groups(
    channels, cuts, groups, copies
):
    assert map_copies(1200, channels, cuts, groups) == 1200 * copies


def test_the_distributed_placement_learns_the_groups_from_the_records():
    trace = new_kind_trace("grouped", Algorithm.BP)
    chip, _ = load_arch_with_energies("distributed")
    assert conv_groups(trace.records) == {"dw": 8, "g2": 2}
    placement = place(trace.header, chip, conv_groups(trace.records))
    assert placement.groups["dw"].partition.input_groups == 1  # a depthwise reduction: uncut


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("conv", "message"),
    [
        ({"filters": 6, "groups": 4}, "must divide the input channels (4) and filters (6) (got 4)"),
        ({"filters": 6, "groups": 3}, "must divide the input channels (4) and filters (6) (got 3)"),
        ({"filters": 4, "groups": 0}, "must be greater than or equal to 1"),
    ],
)
def test_groups_that_do_not_divide_are_one_message_naming_file_layer_and_field(
    tmp_path, capsys, conv, message
):
    data = make_network(
        [5, 5, 4],
        3,
        [
            {"type": "conv2d", "name": "c", "kernel_size": 3, "filters": 4},
            {"type": "global_avg_pool", "name": "gap"},
            {"type": "dense", "name": "out", "units": 3},
        ],
    ).model_dump(mode="json", exclude_none=True)
    data["layers"][0].update(conv)
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_network(path)
    assert str(info.value).startswith(f"{path}: layers.0")
    assert "groups" in str(info.value) and message in str(info.value)
    out = tmp_path / "t.jsonl"
    assert main(["trace", "--network", str(path), "--algorithm", "bp", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"hwsim: error: {info.value}"]
    assert not out.exists()


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            {"type": "global_avg_pool", "name": "gap"},
            "layers.0 (global_avg_pool 'gap'): needs a [height, width, channels] input but "
            "gets shape [20]",
        ),
        (
            {"type": "avg_pool", "name": "p", "pool_size": 3},
            "layers.0 (avg_pool 'p'): needs a [height, width, channels] input but gets shape [20]",
        ),
    ],
)
def test_a_pool_of_a_flat_input_is_refused_naming_the_layer(layer, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_network([20], 3, [layer, {"type": "dense", "name": "out", "units": 3}])


def test_an_avg_pool_larger_than_its_valid_input_is_refused():
    message = "layers.0 (avg_pool 'p'): pool 5 is larger than its 4x4 input with valid padding"
    layers = [
        {"type": "avg_pool", "name": "p", "pool_size": 5},
        {"type": "global_avg_pool", "name": "g"},
        {"type": "dense", "name": "out", "units": 3},
    ]
    with pytest.raises(ValueError, match=re.escape(message)):
        make_network([4, 4, 1], 3, layers)
