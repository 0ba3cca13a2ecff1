"""The issue's acceptance on real layers: dense layers near their compulsory traffic, and the
paper's order (SSDFA ≤ DFA ≤ BP) for AlexNet and VGG16 on every shipped von Neumann spec.

The AlexNet and VGG16 traces are shipped in workloads/traces/ (tracing VGG16 takes ~11 s and
3 GB, too much for the test suite); regenerate them with the commands in
workloads/traces/README.md.  A test here anchors them to the network files."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest

from hwsim.energy import summarize
from hwsim.io.arch import load_arch_with_energies, shipped_archs
from hwsim.io.networks import load_network
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
from hwsim.sim.tiling import plan_op
from hwsim.specs.arch import Substrate
from hwsim.specs.trace import Algorithm, Conv2DOp, ConvPass, Phase, Trace
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from tests.sim.test_engine import one_op_trace, record

TRACES = Path(__file__).parents[2] / "workloads" / "traces"
VON_NEUMANN_SPECS = [
    name
    for name in shipped_archs()
    if load_arch_with_energies(name)[0].substrate == Substrate.VON_NEUMANN
]
RULES = ("bp", "dfa", "ssdfa")


@cache
def shipped_trace(network: str, algorithm: str) -> Trace:
    return read_trace(TRACES / f"{network}_{algorithm}_b8.jsonl.gz")


@pytest.mark.parametrize("network", ["alexnet", "vgg16"])
def test_shipped_traces_match_their_network(network):
    spec = load_network(network)
    for algorithm in RULES:
        trace = shipped_trace(network, algorithm)
        header = trace.header
        assert (header.network, header.algorithm.value, header.batch_size) == (
            network,
            algorithm,
            8,
        )
        assert [layer.name for layer in header.layers] == [layer.name for layer in spec.layers]
        forward = (
            sum(
                layer.weights
                * (math.prod(layer.output_shape[:-1]) if layer.type == "conv2d" else 1)
                for layer in header.layers
            )
            * header.batch_size
        )
        assert trace.macs_by_phase()[Phase.FORWARD] == forward


@pytest.mark.parametrize("spec", VON_NEUMANN_SPECS)
@pytest.mark.parametrize("network", ["alexnet", "vgg16"])
def test_local_rules_never_cost_more_than_bp(spec, network):
    arch, energies = load_arch_with_energies(spec)
    summaries = [
        summarize(simulate(arch, shipped_trace(network, algorithm)), energies)
        for algorithm in RULES
    ]
    for key in ("dram_read_bytes", "energy_pj"):
        ssdfa, dfa, bp = (summary[key] for summary in reversed(summaries))
        assert ssdfa <= dfa <= bp, key
    # Cycles come out of a greedy list schedule, which is not monotone in the work it is
    # given (Graham's anomalies): the order holds within 1% (docs/model.md, Contention).
    ssdfa, dfa, bp = (summary["cycles"] for summary in reversed(summaries))
    assert ssdfa <= 1.01 * dfa and dfa <= 1.01 * bp
    moved = [summary["dram_read_bytes"] + summary["dram_write_bytes"] for summary in summaries]
    assert moved[2] <= moved[1] <= moved[0]


DENSE_LAYERS = [(9216, 4096), (4096, 4096), (4096, 1000), (784, 1000), (3072, 4000)]


def dense_records(batch: int, inputs: int, outputs: int):
    """One record per matmul phase of a dense layer (each simulated alone)."""
    yield (
        "forward",
        record(
            0,
            {"kind": "matmul", "m": batch, "k": inputs, "n": outputs},
            [("x", "activation", batch * inputs), ("w", "weight", inputs * outputs)],
            [("y", "activation", batch * outputs)],
        ),
    )
    yield (
        "error",
        record(
            0,
            {"kind": "matmul", "m": batch, "k": outputs, "n": inputs},
            [("d", "error", batch * outputs), ("w", "weight", inputs * outputs)],
            [("dx", "error", batch * inputs)],
            phase="error",
        ),
    )
    yield (
        "gradient",
        record(
            0,
            {"kind": "matmul", "m": inputs, "k": batch, "n": outputs},
            [("x", "activation", batch * inputs), ("d", "error", batch * outputs)],
            [("dw", "gradient", inputs * outputs)],
            phase="gradient",
        ),
    )


@pytest.mark.parametrize("spec", VON_NEUMANN_SPECS)
def test_dense_layers_move_within_1_2x_of_their_compulsory_traffic(spec):
    """Batch 1–64: every phase's DRAM bytes per step ≤ 1.2 × each operand moved once."""
    arch, _ = load_arch_with_energies(spec)
    precision = arch.precision
    for inputs, outputs in DENSE_LAYERS:
        for batch in (1, 2, 4, 8, 16, 32, 64):
            for phase, op in dense_records(batch, inputs, outputs):
                compulsory = sum(
                    operand.elements * getattr(precision, f"{operand.role.value}_bits") // 8
                    for operand in (*op.reads, *op.writes)
                )
                totals = simulate(arch, one_op_trace(op)).totals()
                moved = totals["dram_read_bytes"] + totals["dram_write_bytes"]
                assert compulsory <= moved <= 1.2 * compulsory, (phase, inputs, outputs, batch)


def conv_bound_bytes(record, buffer_bytes: int, bits: int) -> float:
    """Hong–Kung for a conv pass: the buffer acts R·S/(stride_h·stride_w) times larger (each
    input value feeds that many windows), never below each operand moved once."""
    op = record.op
    reuse = max(1.0, op.kernel_height * op.kernel_width / (op.stride_height * op.stride_width))
    words = buffer_bytes * 8 / bits
    compulsory = sum(operand.elements for operand in (*record.reads, *record.writes))
    return max(2 * op.macs / math.sqrt(words * reuse), compulsory) * bits / 8


@pytest.mark.parametrize("spec", VON_NEUMANN_SPECS)
def test_conv_passes_stay_within_3x_of_their_lower_bound(spec):
    """Every conv pass (forward, backward-data, backward-weight), planned alone in the whole
    buffer, moves between 1× and 3× its bound (docs/model.md states the measured 2.8×)."""
    arch, _ = load_arch_with_energies(spec)
    assert (
        len(
            {
                getattr(arch.precision, f"{role}_bits")
                for role in ("input", "activation", "error", "weight", "gradient")
            }
        )
        == 1
    )
    network = load_network("cifar10_conv")
    cifar = trace_synthetic_step(
        network, TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=2, seed=0)
    )
    convs = [
        op
        for trace in (shipped_trace("alexnet", "bp"), shipped_trace("vgg16", "bp"), cifar)
        for op in trace.records
        if isinstance(op.op, Conv2DOp)
    ]
    assert {op.op.conv_pass for op in convs} == set(ConvPass)
    capacity = arch.global_buffer.capacity_bytes
    for op in convs:
        plan = plan_op(op, arch.precision, capacity, arch.pe_array)
        moved = plan.dram_read_bytes + plan.dram_write_bytes
        bound = conv_bound_bytes(op, capacity, arch.precision.activation_bits)
        assert bound * (1 - 1e-9) <= moved <= 3 * bound, (op.layer, op.op.conv_pass)


@pytest.mark.parametrize("network", ["alexnet", "vgg16"])
def test_distributed_small_keeps_pace_with_von_neumann_at_equal_peak_macs(network):
    """256 MACs per cycle on both: the distributed chip, using its tiles on convolutions, is
    within a small factor of von_neumann's cycles and moves fewer DRAM bytes."""
    small, _ = load_arch_with_energies("distributed_small")
    buffer, _ = load_arch_with_energies("von_neumann")
    assert small.peak_macs_per_cycle == buffer.peak_macs_per_cycle
    for algorithm in RULES:
        trace = shipped_trace(network, algorithm)
        tiles, array = simulate(small, trace).totals(), simulate(buffer, trace).totals()
        assert tiles["cycles"] <= 1.5 * array["cycles"]
        assert (
            tiles["dram_read_bytes"] + tiles["dram_write_bytes"]
            < array["dram_read_bytes"] + array["dram_write_bytes"]
        )
