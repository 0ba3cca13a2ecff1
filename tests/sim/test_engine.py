"""The simulator against closed forms, bounds, conservation and determinism."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hwsim.energy import price, summarize
from hwsim.errors import SpecError, located
from hwsim.sim.engine import simulate
from hwsim.specs.arch import ActionEnergies
from hwsim.specs.trace import RECORD, OpRecord, Trace
from tests.sim.conftest import DISTRIBUTED, VON_NEUMANN, arch, tiny_trace

ENERGIES = ActionEnergies(
    mac_pj=1.5,
    vector_op_pj=0.4,
    dram_read_pj_per_bit=8,
    dram_write_pj_per_bit=8,
    sram_read_pj_per_bit=0.3,
    sram_write_pj_per_bit=0.3,
    noc_pj_per_bit_per_hop=0.2,
    leakage_pj_per_cycle=1.0,
)


def record(
    id_: int, op: dict, reads: list, writes: list, deps=(), phase="forward", other_ops: int = 0
) -> OpRecord:
    gemm = op["kind"] == "matmul"
    macs = op["m"] * op["k"] * op["n"] if gemm else 0

    def operand(tensor, role, elements, slot=None):
        return {"tensor": tensor, "role": role, "elements": elements, "density": 1.0, "slot": slot}

    # A matmul's first two reads are its a and b, its first write its c.
    slots = ("a", "b") if gemm else ()
    return RECORD.validate_python(
        {
            "schema_version": 3,
            "id": id_,
            "layer": "fc1",
            "phase": phase,
            "op": op,
            "macs": macs,
            "other_ops": other_ops,
            "reads": [operand(*r, *(slots[i : i + 1])) for i, r in enumerate(reads)],
            "writes": [
                operand(*w, *(("c",) if gemm and i == 0 else ())) for i, w in enumerate(writes)
            ],
            "deps": list(deps),
        }
    )


def one_op_trace(*records: OpRecord) -> Trace:
    base = tiny_trace("bp")
    header = base.header.model_copy(update={"record_count": len(records)})
    return Trace(header=header, records=list(records))


def matmul(m: int, k: int, n: int, id_: int = 0, deps=()) -> OpRecord:
    return record(
        id_,
        {"kind": "matmul", "m": m, "k": k, "n": n},
        [("x", "activation", m * k), ("w", "weight", k * n)],
        [(f"y{id_}", "activation", m * n)],
        deps,
    )


def test_compute_bound_matmul_takes_macs_over_array_size():
    fast = arch(
        VON_NEUMANN,
        **{
            "dram.bandwidth_bytes_per_cycle": 1e6,
            "dram.latency_cycles": 0,
            "global_buffer.capacity_bytes": 10**7,
            "global_buffer.bandwidth_bytes_per_cycle": 1e6,
        },
    )
    m, k, n = 64, 4, 8
    result = simulate(fast, one_op_trace(matmul(m, k, n)))
    # One cycle to load, MACs / (4 × 4) to compute, one cycle to store.
    assert result.cycles == 1 + math.ceil(m * k * n / 16) + 1
    assert result.totals()["macs"] == m * k * n


def test_unaligned_matmul_pays_for_idle_array_columns():
    fast = arch(
        VON_NEUMANN,
        **{
            "dram.bandwidth_bytes_per_cycle": 1e6,
            "dram.latency_cycles": 0,
            "global_buffer.capacity_bytes": 10**7,
            "global_buffer.bandwidth_bytes_per_cycle": 1e6,
        },
    )
    result = simulate(fast, one_op_trace(matmul(10, 5, 5)))
    assert result.cycles == 1 + 10 * math.ceil(5 / 4) * math.ceil(5 / 4) + 1


def test_bandwidth_bound_op_takes_bytes_over_bandwidth_plus_latency():
    slow = arch(
        VON_NEUMANN,
        **{
            "dram.channels": 2,
            "dram.bandwidth_bytes_per_cycle": 4,
            "dram.latency_cycles": 30,
            "global_buffer.capacity_bytes": 10**7,
            "global_buffer.bandwidth_bytes_per_cycle": 10**6,
            "pe_array.vector_ops_per_cycle": 10**6,
        },
    )
    elements = 1000  # 2,000 bytes at 16 bits, read and then written
    op = record(
        0,
        {"kind": "elementwise", "function": "relu", "elements": elements},
        [("x", "activation", elements)],
        [("y", "activation", elements)],
        other_ops=elements,
    )
    result = simulate(slow, one_op_trace(op))
    transfer = 2000 / (2 * 4) + 30
    assert result.cycles == transfer + 1 + transfer


def test_latency_dominates_a_tiny_op():
    op = record(
        0,
        {"kind": "elementwise", "function": "relu", "elements": 2},
        [("x", "activation", 2)],
        [("y", "activation", 2)],
        other_ops=2,
    )
    result = simulate(arch(VON_NEUMANN, **{"dram.latency_cycles": 500}), one_op_trace(op))
    assert 1000 < result.cycles < 1010


def test_a_small_buffer_rereads_operands_from_dram():
    big = arch(VON_NEUMANN, **{"global_buffer.capacity_bytes": 10**7})
    small = arch(VON_NEUMANN, **{"global_buffer.capacity_bytes": 1024})
    trace = one_op_trace(matmul(32, 64, 64))
    roomy, cramped = simulate(big, trace).totals(), simulate(small, trace).totals()
    operands = (32 * 64 + 64 * 64) * 2
    assert roomy["dram_read_bytes"] == operands
    assert cramped["dram_read_bytes"] > operands
    assert cramped["dram_write_bytes"] == roomy["dram_write_bytes"] == 32 * 64 * 2


def _reads(id_: int, tensor: str, elements: int, deps=()) -> OpRecord:
    return record(
        id_,
        {"kind": "elementwise", "function": "relu", "elements": elements},
        [(tensor, "activation", elements)],
        [(f"out{id_}", "activation", elements)],
        deps,
        other_ops=elements,
    )


def _writes(id_: int, tensor: str, elements: int) -> OpRecord:
    return record(
        id_,
        {"kind": "elementwise", "function": "relu", "elements": elements},
        [(f"x{id_}", "input", elements)],
        [(tensor, "activation", elements)],
        other_ops=elements,
    )


def test_the_reuse_share_keeps_activations_between_ops():
    trace = one_op_trace(
        _writes(0, "a", 100),
        _reads(1, "a", 100, [0]),
        _reads(2, "a", 100, [1]),
        _reads(3, "out1", 100, [1]),
        _reads(4, "out2", 100, [2]),
        _reads(5, "out3", 100, [3]),
        _reads(6, "out4", 100, [4]),
        _reads(7, "out5", 100, [5]),
        _reads(8, "out6", 100, [6]),
    )
    streaming = simulate(arch(VON_NEUMANN), trace).totals()
    reusing = simulate(arch(VON_NEUMANN, **{"global_buffer.reuse_fraction": 0.5}), trace).totals()
    assert streaming["dram_read_bytes"] == 9 * 200  # every op reads its 100 values from DRAM
    assert streaming["dram_write_bytes"] == 9 * 200
    assert reusing["dram_read_bytes"] == 200  # only the input; every activation stays on chip
    # Nothing is evicted while still needed; the two results no op reads (out7, out8) are
    # the step's outputs and go to DRAM.
    assert reusing["dram_write_bytes"] == 2 * 200
    # The array reads and writes the same bytes; only the DRAM fills and drains go.
    assert reusing["sram_read_bytes"] == streaming["sram_read_bytes"] - 7 * 200
    assert reusing["sram_write_bytes"] == streaming["sram_write_bytes"] - 8 * 200


def test_a_full_reuse_share_writes_back_only_what_is_still_needed():
    # Three 1,000-byte activations written before any is read; the share holds two.
    trace = one_op_trace(
        _writes(0, "a", 500),
        _writes(1, "b", 500),
        _writes(2, "c", 500),
        _reads(3, "a", 500, [0, 1, 2]),
        _reads(4, "b", 500, [3]),
        _reads(5, "c", 500, [4]),
    )
    spec = arch(
        VON_NEUMANN,
        **{"global_buffer.capacity_bytes": 8192, "global_buffer.reuse_fraction": 2200 / 8192},
    )
    totals = simulate(spec, trace).totals()
    # "a", evicted by "c" while still needed, and the three results no op reads.
    assert totals["dram_write_bytes"] == 1000 + 3 * 1000
    assert totals["dram_read_bytes"] == 3 * 1000 + 1000  # the three inputs, then "a" again


def test_independent_ops_overlap_and_chained_ops_do_not():
    parallel = one_op_trace(matmul(16, 16, 16, 0), matmul(16, 16, 16, 1))
    chained = one_op_trace(matmul(16, 16, 16, 0), matmul(16, 16, 16, 1, deps=[0]))
    spec = arch(VON_NEUMANN)
    assert simulate(spec, parallel).cycles < simulate(spec, chained).cycles


@pytest.mark.parametrize("base", [VON_NEUMANN, DISTRIBUTED])
@pytest.mark.parametrize("algorithm", ["bp", "dfa", "ssdfa"])
def test_real_traces_run_and_count_every_mac(base, algorithm):
    trace = tiny_trace(algorithm)
    result = simulate(arch(base), trace)
    assert result.totals()["macs"] == trace.macs
    assert result.cycles > 0
    assert set(result.breakdown["phase"]) <= {"forward", "error", "gradient", "update"}


@pytest.mark.parametrize("reuse", [0.0, 0.3, 0.9])
def test_von_neumann_bytes_are_conserved_between_levels(reuse):
    for algorithm in ("bp", "dfa", "ssdfa"):
        spec = arch(VON_NEUMANN, **{"global_buffer.reuse_fraction": reuse})
        result = simulate(spec, tiny_trace(algorithm))
        assert result.total("dram", "read") == result.total("global_buffer", "fill")
        assert result.total("dram", "write") == result.total("global_buffer", "drain")


def test_distributed_deliveries_land_in_tile_sram():
    result = simulate(arch(DISTRIBUTED), tiny_trace("dfa"))
    op_writes = sum(sum(o.elements for o in r.writes) for r in tiny_trace("dfa").records)
    assert result.total("tile_sram", "write") >= result.total("noc", "deliver")
    assert result.total("tile_sram", "write") >= op_writes * 2  # 16-bit at least


def test_ssdfa_delivers_fewer_error_bytes_than_dfa_on_tiles():
    spec = arch(DISTRIBUTED, **{"noc.multicast": False})
    dfa = simulate(spec, tiny_trace("dfa")).breakdown
    ssdfa = simulate(spec, tiny_trace("ssdfa")).breakdown

    def error_delivery(frame):
        rows = frame[(frame["phase"] == "error") & (frame["action"] == "deliver")]
        return rows["bytes"].sum()

    assert error_delivery(ssdfa) < error_delivery(dfa)


def test_bp_backward_moves_weights_or_partial_sums_across_the_noc():
    partial = simulate(arch(DISTRIBUTED), tiny_trace("bp")).breakdown
    transposed = simulate(
        arch(DISTRIBUTED, **{"mapping.backward": "transpose_weights"}), tiny_trace("bp")
    ).breakdown
    for frame in (partial, transposed):
        noc = frame[(frame["phase"] == "error") & (frame["component"] == "noc")]
        assert noc["bytes"].sum() > 0
    assert not partial.equals(transposed)


def test_spilling_is_counted_or_refused():
    cramped = arch(DISTRIBUTED, **{"tiles.count": 4, "tiles.sram.capacity_bytes": 1024})
    result = simulate(cramped, tiny_trace("bp"))
    assert result.total("dram", "write") > 0  # spilled weights and optimizer state written back
    refused = arch(
        DISTRIBUTED,
        **{"tiles.count": 4, "tiles.sram.capacity_bytes": 1024, "mapping.allow_spill": False},
    )
    with (
        pytest.raises(
            SpecError,
            match=r"^x.yaml: mapping.allow_spill: tiny's weights, optimizer state "
            r"and feedback need [\d,]+ tiles of SRAM but the spec "
            r"has 4 \(got false\); allow spilling to DRAM or add tiles$",
        ),
        located("x.yaml"),
    ):
        simulate(refused, tiny_trace("bp"))


@pytest.mark.parametrize("algorithm", ["bp", "dfa", "ssdfa"])
def test_fewer_tiles_than_weight_layers_time_share_the_chip(algorithm):
    """tiny has 4 weight layers: on 1-3 tiles each layer runs on the whole chip in turn, its
    weights sharing the SRAM with the others', what does not fit streamed in from DRAM."""
    from hwsim.sim.mapping import place, reserve_bytes

    trace = tiny_trace(algorithm)
    for count in (1, 2, 3):
        for capacity in (4096, 512):
            spec = arch(
                DISTRIBUTED, **{"tiles.count": count, "tiles.sram.capacity_bytes": capacity}
            )
            placement = place(trace.header, spec)
            usable = capacity - reserve_bytes(spec)
            total = sum(region.resident_bytes for region in placement.regions.values())
            # Each layer keeps its share rounded down: never more than the SRAM holds.
            over = max(0, total - count * usable)
            assert over <= placement.spilled_bytes <= over + (len(placement.regions) if over else 0)
            assert all(region.tiles == count for region in placement.regions.values())
            result = simulate(spec, trace)
            assert result.totals()["macs"] == trace.macs
            assert (result.resources["utilization"] <= 1.0).all()
            assert (result.resources["busy_cycles"] <= result.cycles).all()
    # What spills is read from DRAM when its layer runs: a smaller SRAM reads more.
    small, large = (
        simulate(arch(DISTRIBUTED, **{"tiles.count": 2, "tiles.sram.capacity_bytes": c}), trace)
        for c in (512, 4096)
    )
    assert small.total("dram", "read") > large.total("dram", "read")
    refused = arch(
        DISTRIBUTED,
        **{"tiles.count": 2, "tiles.sram.capacity_bytes": 512, "mapping.allow_spill": False},
    )
    with pytest.raises(SpecError, match=r"tiny's 4 weight layers time-share 2 tiles, whose SRAM"):
        simulate(refused, trace)


@pytest.mark.parametrize("base", [VON_NEUMANN, DISTRIBUTED])
def test_same_inputs_give_identical_results(base):
    first = simulate(arch(base), tiny_trace("dfa"))
    second = simulate(arch(base), tiny_trace("dfa"))
    assert first.breakdown.equals(second.breakdown)
    assert first.timeline.equals(second.timeline)
    assert json.dumps(summarize(first, ENERGIES)) == json.dumps(summarize(second, ENERGIES))


def test_cost_does_not_grow_with_identical_tiles():
    small = simulate(arch(DISTRIBUTED, **{"tiles.count": 16}), tiny_trace("ssdfa"))
    huge = simulate(arch(DISTRIBUTED, **{"tiles.count": 65536}), tiny_trace("ssdfa"))
    # Identical tiles are one group per region: no row and no resource per tile.  (The small
    # chip has more rows: its convolution time-shares tiles it does not own.)
    assert len(huge.breakdown) <= len(small.breakdown)
    assert len(huge.resources) <= len(small.resources)


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 4),
    dram_bw=st.integers(1, 64),
    latency=st.integers(0, 200),
    buffer_kib=st.integers(1, 64),
    rows=st.integers(1, 16),
    columns=st.integers(1, 16),
    reuse=st.floats(0, 0.9),
    algorithm=st.sampled_from(["bp", "dfa", "ssdfa"]),
)
def test_cycles_never_beat_the_roofline(
    channels, dram_bw, latency, buffer_kib, rows, columns, reuse, algorithm
):
    spec = arch(
        VON_NEUMANN,
        **{
            "dram.channels": channels,
            "global_buffer.reuse_fraction": reuse,
            "dram.bandwidth_bytes_per_cycle": dram_bw,
            "dram.latency_cycles": latency,
            "global_buffer.capacity_bytes": buffer_kib * 1024,
            "pe_array.rows": rows,
            "pe_array.columns": columns,
        },
    )
    result = simulate(spec, tiny_trace(algorithm))
    totals = result.totals()
    compute_bound = totals["macs"] / (rows * columns)
    memory_bound = (totals["dram_read_bytes"] + totals["dram_write_bytes"]) / (channels * dram_bw)
    assert result.cycles >= max(compute_bound, memory_bound)


@settings(max_examples=40, deadline=None)
@given(
    scale=st.integers(1, 1000),
    mac=st.floats(0, 10),
    dram=st.floats(0, 100),
    sram=st.floats(0, 5),
    noc=st.floats(0, 2),
)
def test_energy_is_linear_in_counts(scale, mac, dram, sram, noc):
    energies = ActionEnergies(
        mac_pj=mac,
        vector_op_pj=mac / 4,
        dram_read_pj_per_bit=dram,
        dram_write_pj_per_bit=dram,
        sram_read_pj_per_bit=sram,
        sram_write_pj_per_bit=sram,
        noc_pj_per_bit_per_hop=noc,
        leakage_pj_per_cycle=mac,
    )
    result = simulate(arch(DISTRIBUTED), tiny_trace("dfa"))
    once = price(result.breakdown, result.cycles, energies)["energy_pj"].sum()
    scaled = result.breakdown.copy()
    scaled[["count", "bytes", "cycles"]] *= scale
    many = price(scaled, result.cycles * scale, energies)["energy_pj"].sum()
    assert many == pytest.approx(once * scale, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("algorithm", ["bp", "ssdfa"])
@pytest.mark.parametrize("spec", [VON_NEUMANN, DISTRIBUTED])
def test_priced_rows_are_each_row_priced_by_hand_plus_leakage(spec, algorithm):
    """price and per_example_breakdown build their frames column by column: each row's
    energy is its count or bytes times the unit energy of its kind (unit_energy, one row
    at a time), the leakage row comes last, and per example divides every number by the
    batch; the text columns keep the breakdown's dtype."""
    from hwsim.energy import per_example_breakdown, unit_energy

    result = simulate(arch(spec), tiny_trace(algorithm, batch_size=4))
    rows = result.breakdown
    priced = price(rows, result.cycles, ENERGIES)
    expected = [
        row[
            "count"
            if unit_energy(row["component"], row["action"], ENERGIES)[0] == "count"
            else "bytes"
        ]
        * unit_energy(row["component"], row["action"], ENERGIES)[1]
        for _, row in rows.iterrows()
    ]
    assert len(priced) == len(rows) + 1
    assert priced["energy_pj"].iloc[:-1].tolist() == pytest.approx(expected, rel=1e-12)
    assert priced.iloc[-1].to_dict() == {
        "layer": "(chip)",
        "phase": "(all)",
        "component": "chip",
        "action": "leakage",
        "count": result.cycles,
        "bytes": 0,
        "cycles": result.cycles,
        "energy_pj": pytest.approx(result.cycles * ENERGIES.leakage_pj_per_cycle),
    }
    for column in ("layer", "phase", "component", "action"):
        assert priced[column].dtype == rows[column].dtype
        assert priced[column].iloc[:-1].tolist() == rows[column].tolist()
    for column in ("count", "bytes", "cycles"):
        assert priced[column].dtype == "int64"
        assert priced[column].iloc[:-1].tolist() == rows[column].tolist()
    per_example = per_example_breakdown(result, ENERGIES)
    for column in ("count", "bytes", "cycles", "energy_pj"):
        assert per_example[column].tolist() == pytest.approx((priced[column] / 4).tolist())
    assert per_example.columns.tolist() == priced.columns.tolist()


def test_the_big_tables_keep_their_text_as_shared_python_strings():
    """Breakdown, mapping and priced rows hold text as Python objects (pandas' string dtype
    with Python storage, or plain objects where that is pandas' default), never Arrow
    storage, which copies every row's text: the labels are strings shared by many rows."""
    import numpy as np
    import pandas as pd

    from hwsim.energy import per_example_breakdown
    from hwsim.sim.result import MAPPING_KINDS

    result = simulate(arch(VON_NEUMANN), tiny_trace("bp", batch_size=4))
    labels = ["layer", "phase", "component", "action"]
    tables = [
        (result.breakdown, labels),
        (per_example_breakdown(result, ENERGIES), labels),
        (result.mapping, [name for name, kind in MAPPING_KINDS.items() if kind == "s"]),
    ]
    for frame, columns in tables:
        assert len(frame) > 1
        for column in columns:
            dtype = frame[column].dtype
            assert dtype == np.dtype(object) or (
                isinstance(dtype, pd.StringDtype) and dtype.storage == "python"
            ), (column, dtype)
            assert all(isinstance(value, str) for value in frame[column])


def test_simulate_leaves_the_garbage_collector_as_it_found_it():
    """simulate freezes what was alive before the step so that collecting the step's state
    skips it; nothing stays frozen afterwards, whether the step ends or raises."""
    import gc

    from hwsim.errors import SpecError

    assert gc.get_freeze_count() == 0
    assert simulate(arch(DISTRIBUTED), tiny_trace("dfa")).cycles > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(SpecError, match="dram.capacity_bytes"):
        simulate(arch(VON_NEUMANN, **{"dram.capacity_bytes": 100}), tiny_trace("bp"))
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_summary_has_the_documented_keys_per_example():
    result = simulate(arch(VON_NEUMANN), tiny_trace("bp", batch_size=4))
    summary = summarize(result, ENERGIES)
    assert list(summary)[:14] == [
        "macs",
        "cycles",
        "latency_s",
        "dram_read_bytes",
        "dram_write_bytes",
        "sram_read_bytes",
        "sram_write_bytes",
        "noc_bytes",
        "noc_injected_bytes",
        "noc_delivered_bytes",
        "noc_byte_hops",
        "off_tile_bytes",
        "learning_off_tile_bytes",
        "energy_pj",
    ]
    assert summary["macs"] == tiny_trace("bp", batch_size=4).macs / 4
    assert summary["latency_s"] == pytest.approx(result.cycles / 4 / 1e9)
    components = summary["breakdown"]["energy_pj_by_component"]
    assert sum(components.values()) == pytest.approx(summary["energy_pj"])


@settings(max_examples=25, deadline=None)
@given(
    tiles=st.integers(4, 4096),
    macs=st.integers(1, 16),
    link=st.integers(1, 64),
    sram_kib=st.integers(1, 64),
    topology=st.sampled_from(["mesh", "tree", "bus"]),
    multicast=st.booleans(),
    algorithm=st.sampled_from(["bp", "dfa", "ssdfa"]),
)
def test_distributed_cycles_never_beat_the_roofline(
    tiles, macs, link, sram_kib, topology, multicast, algorithm
):
    spec = arch(
        DISTRIBUTED,
        **{
            "tiles.count": tiles,
            "tiles.macs_per_cycle": macs,
            "tiles.sram.capacity_bytes": sram_kib * 1024,
            "noc.topology": topology,
            "noc.multicast": multicast,
            "noc.link_bandwidth_bytes_per_cycle": link,
        },
    )
    result = simulate(spec, tiny_trace(algorithm))
    totals = result.totals()
    compute_bound = totals["macs"] / (tiles * macs)
    memory_bound = (totals["dram_read_bytes"] + totals["dram_write_bytes"]) / 8
    assert result.cycles >= max(compute_bound, memory_bound)
    assert totals["macs"] == tiny_trace(algorithm).macs


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 10**6),
    st.integers(1, 150),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.integers(0, 10**9)), max_size=60),
)
@example(cycles=86, bins=66, spans=[(0.0, 1.0, 1), (0.953125, 0.9375, 105276256)])
def test_the_timeline_spreads_busy_time_and_bytes_over_the_slices_exactly(cycles, bins, spans):
    """Against the dense intervals × slices formula it replaced (linear memory now)."""
    import numpy as np

    from hwsim.sim.components import Ledger
    from hwsim.sim.result import _timeline

    ledger = Ledger()
    intervals = []
    for a, b, nbytes in spans:
        start, end = sorted((int(a * cycles), int(b * cycles)))
        ledger.busy("unit", start, end, nbytes)
        if end > start:  # an empty interval is not logged
            intervals.append((start, end, nbytes))
    frame = _timeline(ledger, cycles, bins)
    if not intervals:
        assert frame.empty
        return
    edges = np.linspace(0, cycles, max(1, min(bins, cycles)) + 1)
    starts, ends, amounts = (
        np.array(column, dtype=float) for column in zip(*intervals, strict=True)
    )
    overlap = np.clip(
        np.minimum(ends[:, None], edges[None, 1:]) - np.maximum(starts[:, None], edges[None, :-1]),
        0,
        None,
    )
    width = np.diff(edges)
    busy = np.minimum(overlap.sum(axis=0) / width, 1.0)
    moved = (overlap / np.maximum(ends - starts, 1)[:, None] * amounts[:, None]).sum(axis=0)
    assert np.allclose(frame["busy_fraction"], busy, atol=1e-9)
    # Prefix sums of rate × cycle subtract numbers as large as Σ rate · cycles: a slice's
    # rounding error is that scale × float64's epsilon, not absolute.
    scale = (amounts / np.maximum(ends - starts, 1)).sum() * cycles
    assert np.allclose(
        frame["bytes_per_cycle"], moved / width, rtol=1e-7, atol=1e-6 + 1e-13 * scale
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=40))
def test_busy_cycles_are_the_union_of_the_busy_intervals(spans):
    """Overlapping uses of a shared resource count once: utilisation never exceeds 1."""
    from hwsim.sim.components import Ledger
    from hwsim.sim.result import _busy_cycles

    ledger = Ledger()
    covered: set[int] = set()
    for a, b in spans:
        start, end = sorted((a, b))
        ledger.busy("unit", start, end)
        covered.update(range(start, end))
    assert _busy_cycles(ledger).get("unit", 0) == len(covered)


def test_many_resources_of_one_kind_share_a_timeline_row_with_their_mean_busy_fraction():
    import numpy as np

    from hwsim.sim.components import Ledger
    from hwsim.sim.result import MAX_TIMELINE_RESOURCES, _timeline

    ledger = Ledger()
    regions = MAX_TIMELINE_RESOURCES + 1
    for index in range(regions):  # region i is busy for the first i+1 of 100 cycles
        ledger.busy(f"tiles.layer{index}", 0, index + 1, nbytes=10 * (index + 1))
    ledger.busy("dram", 0, 100, nbytes=100)
    frame = _timeline(ledger, 100, 1)
    assert list(frame["resource"]) == ["dram", "tiles.*"]
    tiles = frame.set_index("resource").loc["tiles.*"]
    assert np.isclose(tiles["busy_fraction"], np.mean(np.arange(1, regions + 1)) / 100)
    assert np.isclose(tiles["bytes_per_cycle"], 10 * regions * (regions + 1) / 2 / 100)
    ledger.intervals.pop("tiles.layer0")  # at the bound, every resource has its own row
    ledger.intervals.pop("tiles.layer1")
    assert len(set(_timeline(ledger, 100, 1)["resource"])) == MAX_TIMELINE_RESOURCES


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fc1", "fc2", "conv1"]),
            st.sampled_from(["forward", "error"]),
            st.sampled_from([("dram", "read"), ("pe_array", "mac"), ("noc", "byte_hop")]),
            st.integers(0, 2**40),
            st.integers(0, 2**40),
            st.integers(0, 2**40),
        ),
        max_size=60,
    ),
    st.integers(1, 8),
)
def test_the_ledger_sums_every_add_exactly_whenever_it_compacts(adds, every):
    """Adds are held in columns and summed per key every COMPACT_EVERY adds: the totals are
    exact sums whatever the compaction points, and every key added to is a row."""
    from collections import Counter

    import hwsim.sim.components as components
    from hwsim.sim.components import Ledger, Scope

    expected: dict[tuple, Counter] = {}
    ledger = Ledger()
    saved, components.COMPACT_EVERY = components.COMPACT_EVERY, every
    try:
        for layer, phase, (component, action), count, nbytes, cycles in adds:
            scope = Scope(layer, phase)
            ledger.add(scope, component, action, count=count, nbytes=nbytes, cycles=cycles)
            totals = expected.setdefault((layer, phase, component, action), Counter())
            totals.update(count=count, nbytes=nbytes, cycles=cycles)
    finally:
        components.COMPACT_EVERY = saved
    scopes, pairs, scope_names, pair_names, *sums = ledger.take_counts()
    rows = {
        (*scope_names[scope], *pair_names[pair]): (int(count), int(nbytes), int(cycles))
        for scope, pair, count, nbytes, cycles in zip(scopes, pairs, *sums, strict=True)
    }
    assert rows == {
        key: (totals["count"], totals["nbytes"], totals["cycles"])
        for key, totals in expected.items()
    }


def test_records_waiting_for_stream_space_each_try_at_most_once_per_release(monkeypatch):
    """A wide step (DFA's hidden-layer errors) leaves many records ready at once: the waiting
    ones are woken one at a time while there is space, so the checks for space grow with the
    records, not with records × releases (waking every waiter on every release did)."""
    import hwsim.sim.von_neumann as von_neumann

    checks, attempts = [], []
    real_check, real_plan = von_neumann.VonNeumannSubstrate._space_to_try, von_neumann.Planner.plan

    def check(self):
        checks.append(len(self.waiting))
        return real_check(self)

    def plan(self, record, *args):
        attempts.append(record.id)
        return real_plan(self, record, *args)

    monkeypatch.setattr(von_neumann.VonNeumannSubstrate, "_space_to_try", check)
    monkeypatch.setattr(von_neumann.Planner, "plan", plan)
    ops = [matmul(64, 64, 64, id_=index) for index in range(120)]
    cramped = arch(VON_NEUMANN, **{"global_buffer.capacity_bytes": 65536})
    result = simulate(cramped, one_op_trace(*ops))
    assert max(checks) > 50  # most records did wait
    assert sorted(attempts) == list(range(120))  # each planned once, and ran
    assert len(checks) <= 4 * len(ops)
    assert (result.resources["busy_cycles"] <= result.cycles).all()


@pytest.mark.parametrize("window", [1, 3])
def test_no_more_records_are_in_flight_than_the_issue_window(monkeypatch, window):
    import hwsim.sim.engine as engine
    import hwsim.sim.von_neumann as von_neumann

    running, most, ran = [0], [0], []
    execute = von_neumann.VonNeumannSubstrate.execute

    def counted(self, record):
        running[0] += 1
        most[0] = max(most[0], running[0])
        yield from execute(self, record)
        running[0] -= 1
        ran.append(record.id)

    monkeypatch.setattr(von_neumann.VonNeumannSubstrate, "execute", counted)
    trace = tiny_trace("dfa")
    wide = simulate(arch(VON_NEUMANN), trace)
    assert most[0] > window  # the step has more than the window ready at once
    most[0], ran[:] = 0, []
    monkeypatch.setattr(engine, "ISSUE_WINDOW", window)
    narrow = simulate(arch(VON_NEUMANN), trace)
    assert most[0] == window
    assert sorted(ran) == [record.id for record in trace.records]
    assert narrow.totals()["macs"] == wide.totals()["macs"] == trace.macs
