"""`schedule.mapping_objective` (issue 19, item 4): the search ranks by the architect's choice
over the same candidates; each objective's pick is the best by its own measure; the physics
invariants hold under every objective; the default is today's search."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.cli import main
from hwsim.errors import CapacityError
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.networks import load_network
from hwsim.sim.engine import simulate
from hwsim.sim.loopnest import Gemm, Machine, Mapping, Objective, Operand, search
from hwsim.specs.arch import MappingObjective
from hwsim.specs.trace import Algorithm
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.sim.invariants import simulate_within_invariants

OBJECTIVES = ("dram_bytes", "latency", "energy", "edp")
DRAM_PJ, BUFFER_PJ = 64.0, 8.0  # per byte: DRAM eight times the buffer, as at 45 nm


def _with(arch, objective: MappingObjective):
    schedule = arch.schedule.model_copy(update={"mapping_objective": objective})
    return arch.model_copy(update={"schedule": schedule})


def _machine(kind: str) -> Machine:
    return Machine(16, 16, True, 8.0, 64.0, Objective(kind, DRAM_PJ, BUFFER_PJ))


def _traffic(mapping: Mapping) -> int:
    return sum(mapping.read_bytes) + 2 * mapping.partial_bytes + mapping.output_write_bytes


def _energy(mapping: Mapping) -> float:
    port = mapping.array_read_bytes + 2 * mapping.partial_bytes + mapping.output_write_bytes
    return _traffic(mapping) * DRAM_PJ + port * BUFFER_PJ


def _cycles(mapping: Mapping, machine: Machine) -> float:
    """The search's estimate T of one op (docs/model.md), from the mapping it returns, as the
    objectives other than dram_bytes count it (no fixed buffer traffic given here)."""
    steps = math.prod(mapping.trips)
    port = mapping.array_read_bytes + 2 * mapping.partial_bytes
    compute = mapping.compute_cycles
    fill = max(
        compute,
        math.ceil(_traffic(mapping) / machine.dram_bytes_per_cycle),
        math.ceil(port / machine.buffer_bytes_per_cycle),
    )
    reads = sum(mapping.read_bytes)
    return fill + math.ceil(reads / steps / machine.dram_bytes_per_cycle) + -(-compute // steps)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 600),
    k=st.integers(1, 600),
    n=st.integers(1, 600),
    budget_kib=st.integers(8, 256),
)
def test_each_objective_picks_the_best_by_its_own_measure(m, k, n, budget_kib):
    gemm = Gemm(m, k, n, Operand(m * k, 16), Operand(k * n, 16), Operand(m * n, 16), 32)
    picks = {kind: search(gemm, budget_kib * 1024, _machine(kind)) for kind in OBJECTIVES}
    if picks["dram_bytes"] is None:
        assert all(pick is None for pick in picks.values())  # the same candidates fit
        return
    machine = _machine("latency")
    assert _traffic(picks["dram_bytes"]) == min(_traffic(p) for p in picks.values())
    assert _cycles(picks["latency"], machine) == min(_cycles(p, machine) for p in picks.values())
    assert _energy(picks["energy"]) == min(_energy(p) for p in picks.values())
    edp = {kind: _energy(p) * _cycles(p, machine) for kind, p in picks.items()}
    assert edp["edp"] == min(edp.values())
    for pick in picks.values():  # every pick fits and does the whole op
        assert pick.footprint_bytes <= budget_kib * 1024
        assert _traffic(pick) >= (m * k + k * n + m * n) * 2


@pytest.fixture(scope="module")
def conv_trace():
    network = load_network("cifar10_conv")
    return shape_only_trace(
        network, TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=2)
    )


@pytest.mark.parametrize("kind", OBJECTIVES)
def test_the_invariants_hold_under_every_objective(conv_trace, kind):
    arch, energies = load_arch_with_energies("von_neumann")
    chip = _with(arch, MappingObjective(kind))
    result = simulate_within_invariants(chip, conv_trace, energies=energies)
    assert result.totals()["macs"] == conv_trace.macs
    direct = simulate(chip, conv_trace, energies=energies)
    assert direct.cycles == simulate(chip, conv_trace, energies=energies).cycles  # deterministic


def test_the_default_is_todays_search(conv_trace):
    arch, energies = load_arch_with_energies("von_neumann")
    explicit = _with(arch, MappingObjective.DRAM_BYTES)
    a, b = simulate(arch, conv_trace), simulate(explicit, conv_trace, energies=energies)
    assert a.cycles == b.cycles and a.breakdown.equals(b.breakdown)


def test_energy_objectives_need_the_energies(conv_trace):
    arch, _ = load_arch_with_energies("von_neumann")
    chip = arch.model_copy(
        update={
            "schedule": arch.schedule.model_copy(update={"mapping_objective": MappingObjective.EDP})
        }
    )
    with pytest.raises(CapacityError, match="schedule.mapping_objective: edp ranks mappings"):
        simulate(chip, conv_trace)


def _simulate_argv(trace, objective: str) -> list[str]:
    setting = f"schedule.mapping_objective={objective}"
    return ["simulate", "--arch", "von_neumann", "--trace", str(trace), "--set", setting]


def test_on_the_command_line(tmp_path, capsys, digits_shape_trace):
    figures = {}
    for kind in OBJECTIVES:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main([*_simulate_argv(digits_shape_trace, kind), "--format", "json"]) == 0
        figures[kind] = json.loads(printed.getvalue())
    assert {figure["macs"] for figure in figures.values()} == {figures["energy"]["macs"]}
    argv = _simulate_argv(digits_shape_trace, "energi")
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "schedule.mapping_objective" in error and "energy" in error
