"""Feedback weights generated on chip (issue 17, item 4): `schedule.feedback_weights:
generated` regenerates B next to each neuron whenever it is used — no storage and no reads of
B — at one generator step per value, priced from the tech table."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from hwsim.energy import summarize
from hwsim.errors import SpecError
from hwsim.io.arch import load_arch_with_energies, load_tech_file
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
from hwsim.sim.mapping import place, resident_bytes
from hwsim.specs.arch import ArchSpec
from hwsim.specs.resolve import resolve_energies
from hwsim.specs.trace import Role, Trace
from hwsim.units import bits_to_bytes

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "workloads" / "traces"
TECH = ROOT / "arch_specs" / "tech" / "45nm.yaml"
SPECS = ["von_neumann", "von_neumann_hbm", "distributed_stationary", "distributed_small"]


@cache
def alexnet(rule: str) -> Trace:
    return read_trace(TRACES / f"alexnet_{rule}_b8.jsonl.gz")


def _generated(arch: ArchSpec) -> ArchSpec:
    schedule = arch.schedule.model_dump() | {"feedback_weights": "generated"}
    return type(arch).model_validate(arch.model_dump() | {"schedule": schedule})


def _b_bytes(trace: Trace, arch: ArchSpec) -> int:
    """What the step reads of B: every feedback operand once."""
    return sum(
        bits_to_bytes(o.elements * arch.precision.feedback_bits)
        for r in trace.records
        for o in r.reads
        if o.role == Role.FEEDBACK
    )


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("rule", ["dfa", "ssdfa"])
def test_generated_b_reads_nothing_of_b_and_costs_its_generator_steps(spec, rule):
    trace = alexnet(rule)
    stored_arch, energies = load_arch_with_energies(spec)
    generated_arch = _generated(stored_arch)
    generated_energies = resolve_energies(generated_arch, load_tech_file(TECH))
    stored, generated = simulate(stored_arch, trace), simulate(generated_arch, trace)
    assert generated.totals()["macs"] == stored.totals()["macs"]
    b_bytes = _b_bytes(trace, stored_arch)
    memory = "dram" if stored_arch.substrate == "von_neumann" else "tile_sram"
    saved = stored.total(memory, "read") - generated.total(memory, "read")
    # von Neumann: B streams from DRAM once a step; distributed: each tile reads its share.
    assert abs(saved - b_bytes) <= 0.1 * b_bytes, (saved, b_bytes)
    values = sum(o.elements for r in trace.records for o in r.reads if o.role == Role.FEEDBACK)
    compute = "pe_array" if stored_arch.substrate == "von_neumann" else "tiles"
    assert generated.total(compute, "feedback_generate", "count") == values
    assert stored.total(compute, "feedback_generate", "count") == 0
    per_value = 0.003 * stored_arch.precision.feedback_bits  # the 45 nm table's
    assert generated_energies.feedback_generate_pj == pytest.approx(per_value)
    rows = summarize(generated, generated_energies)
    before = summarize(stored, energies)
    if rule == "dfa" and stored_arch.substrate == "von_neumann":
        assert rows["energy_pj"] < before["energy_pj"]  # 1,000 × 8,192 values from DRAM


def test_the_distributed_substrate_stores_no_b():
    trace = alexnet("ssdfa")
    arch, _ = load_arch_with_energies("distributed_stationary")
    for layer in trace.header.layers:
        feedback = trace.header.feedback_by_layer.get(layer.name)
        stored = resident_bytes(layer, trace.header, arch)
        generated = resident_bytes(layer, trace.header, _generated(arch))
        if feedback is None:
            assert stored == generated
        else:  # values and their class indices (SSDFA) are gone
            index_bits = (feedback.classes - 1).bit_length()
            bits = feedback.nonzeros * (arch.precision.feedback_bits + index_bits)
            assert stored - generated == pytest.approx(bits / 8, abs=1)
    placed = place(trace.header, _generated(arch))
    assert placed.spilled_bytes == 0


def test_bp_is_unchanged_and_a_tech_without_a_generator_energy_is_refused():
    arch, energies = load_arch_with_energies("von_neumann")
    trace = alexnet("bp")
    a, b = simulate(arch, trace), simulate(_generated(arch), trace)
    assert summarize(a, energies) == summarize(b, energies)
    tech = load_tech_file(TECH).model_copy(update={"feedback_generator_energy_pj_per_bit": None})
    with pytest.raises(SpecError, match="schedule.feedback_weights: generated needs "):
        resolve_energies(_generated(arch), tech, "my.yaml")
