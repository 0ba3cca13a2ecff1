"""The von Neumann substrate: honest resources, fused updates, mappings, convergence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import SpecError, located
from hwsim.sim.engine import simulate
from hwsim.sim.tiling import operand_bytes
from hwsim.specs.trace import Phase, Role
from tests.sim.conftest import VON_NEUMANN, arch, tiny_trace
from tests.sim.test_engine import matmul, one_op_trace


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["bp", "dfa", "ssdfa"]),
    st.sampled_from([2048, 4096, 16384, 1 << 20]),
    st.sampled_from([0.0, 0.25, 0.5, 0.9]),
    st.sampled_from(["adam", "sgd"]),
)
def test_the_buffer_is_never_oversubscribed_and_nothing_is_busier_than_time(
    algorithm, capacity, reuse, optimizer
):
    spec = arch(
        VON_NEUMANN,
        **{
            "global_buffer.capacity_bytes": capacity,
            "global_buffer.banks": 1,
            "global_buffer.reuse_fraction": reuse,
        },
    )
    result = simulate(spec, tiny_trace(algorithm, optimizer=optimizer))
    resources = result.resources.set_index("resource")
    assert 0 < resources.loc["global_buffer", "peak_bytes"] <= capacity
    assert (resources["utilization"] <= 1.0).all()
    assert (resources["busy_cycles"] <= result.cycles).all()


def test_dram_capacity_is_enforced_with_the_bytes_needed():
    trace = tiny_trace("bp")
    with (
        pytest.raises(
            SpecError,
            match=r"my\.yaml: dram\.capacity_bytes: tiny bp \(batch 4\) "
            r"keeps .* bytes\) of weights, .* in DRAM \(got 1 KiB\)",
        ),
        located("my.yaml"),
    ):
        simulate(arch(VON_NEUMANN, **{"dram.capacity_bytes": 1024}), trace)
    simulate(arch(VON_NEUMANN, **{"dram.capacity_bytes": "1 GiB"}), trace)


def test_an_op_whose_smallest_tiles_do_not_fit_names_the_buffer():
    spec = arch(VON_NEUMANN, **{"global_buffer.capacity_bytes": 8, "global_buffer.banks": 1})
    with (
        pytest.raises(
            SpecError,
            match=r"a\.yaml: global_buffer\.capacity_bytes: record 0 "
            r"\(fc1 forward\): .* do not fit",
        ),
        located("a.yaml"),
    ):
        simulate(spec, one_op_trace(matmul(64, 64, 64)))


@pytest.mark.parametrize("algorithm", ["bp", "dfa", "ssdfa"])
def test_a_fused_update_never_sends_the_weight_gradient_through_dram(algorithm):
    trace = tiny_trace(algorithm)
    spec = {"global_buffer.reuse_fraction": 0.0}
    fused = simulate(arch(VON_NEUMANN, **spec), trace)
    unfused = simulate(arch(VON_NEUMANN, **spec, **{"schedule.fused_weight_update": False}), trace)
    precision = arch(VON_NEUMANN).precision
    gradients = sum(
        operand_bytes(operand, precision)
        for record in trace.records
        if record.phase == Phase.GRADIENT
        for operand in record.writes
        if operand.role == Role.GRADIENT
    )
    # Unfused, every gradient is written once and read back once by its update.
    assert unfused.totals()["dram_write_bytes"] - fused.totals()["dram_write_bytes"] == gradients
    assert unfused.totals()["dram_read_bytes"] - fused.totals()["dram_read_bytes"] == gradients
    assert fused.cycles < unfused.cycles
    assert fused.totals()["macs"] == unfused.totals()["macs"]


def test_every_matmul_and_conv_gets_a_mapping_row():
    trace = tiny_trace("bp")
    result = simulate(arch(VON_NEUMANN), trace)
    mapping = result.mapping.set_index("id")
    assert list(mapping.index) == [record.id for record in trace.records]
    for record in trace.records:
        row = mapping.loc[record.id]
        if record.op.kind in ("matmul", "conv2d"):
            assert row["loop_order"] in {"m>k>n", "m>n>k", "k>m>n", "k>n>m", "n>m>k", "n>k>m"}
            assert row["tensor_c"] == next(o.tensor for o in record.writes)
            assert row["reread_a"] >= 1.0 or row["reread_a"] == 0.0
        else:
            assert row["loop_order"] == "stream"
        assert row["bound"] in ("compute", "buffer", "dram")
        assert row["footprint_bytes"] <= 8192


def test_cycles_of_a_long_op_converge_to_its_bound():
    """Hundreds of tiles: the pipeline's fill and drain are a vanishing share, so the answer
    sits within 0.5% of max(compute, DRAM bytes / bandwidth) — no chunk cap moves it."""
    spec = arch(
        VON_NEUMANN,
        **{
            "global_buffer.capacity_bytes": 4096,
            "dram.latency_cycles": 0,
            "global_buffer.bandwidth_bytes_per_cycle": 1e6,
        },
    )
    result = simulate(spec, one_op_trace(matmul(64, 512, 512)))
    row = result.mapping.iloc[0]
    assert row["steps"] > 100
    bound = max(row["compute_cycles"], row["dram_cycles"])
    assert bound <= result.cycles <= 1.005 * bound


def test_writing_the_mapping_csv(tmp_path):
    from hwsim.cli import main
    from hwsim.io.traces import write_trace

    path = tmp_path / "t.jsonl"
    write_trace(path, tiny_trace("bp"))
    assert (
        main(
            [
                "simulate",
                "--arch",
                "von_neumann",
                "--trace",
                str(path),
                "--out",
                str(tmp_path / "out"),
                "--format",
                "json",
            ]
        )
        == 0
    )
    text = (tmp_path / "out" / "mapping.csv").read_text()
    assert text.startswith("id,layer,phase,op,loop_order,tile_m,tile_k,tile_n,steps,")
    assert len(text.splitlines()) == len(tiny_trace("bp").records) + 1


def test_a_buffer_too_small_for_array_wide_tiles_still_runs_the_array_partly_idle():
    """A 64 × 64 array wants tiles 64 wide; a 2 KiB buffer cannot hold them, so the search
    takes narrower tiles and the array's cycles show the idle PEs."""
    big_array = {"pe_array.rows": 64, "pe_array.columns": 64, "dram.latency_cycles": 0}
    roomy = simulate(
        arch(VON_NEUMANN, **big_array, **{"global_buffer.capacity_bytes": 1 << 20}),
        one_op_trace(matmul(64, 256, 256)),
    )
    cramped = simulate(
        arch(
            VON_NEUMANN,
            **big_array,
            **{"global_buffer.capacity_bytes": 2048, "global_buffer.banks": 1},
        ),
        one_op_trace(matmul(64, 256, 256)),
    )
    narrow = cramped.mapping.iloc[0]
    assert narrow["tile_k"] < 64 or narrow["tile_n"] < 64
    assert narrow["compute_cycles"] > roomy.mapping.iloc[0]["compute_cycles"]
