"""New layer kinds (issue 15, item 3): average pools and grouped convolutions.

The gradients of the average pools are checked in test_layers (POOL_NETWORKS); here: a small
net of every new kind simulates on every shipped spec within the physics invariants, under
BP and under SSDFA.
"""

from __future__ import annotations

import math
from functools import cache

import pytest

from hwsim.io.arch import load_arch_with_energies
from hwsim.sim.engine import simulate
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from tests.train.builders import make_network
from tests.train.test_graphs import SHIPPED_SPECS


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


NETWORKS = {"pools": pools}


@cache
def new_kind_trace(name: str, algorithm: Algorithm) -> Trace:
    network = NETWORKS[name]()
    config = TrainConfig.from_network(network, algorithm, epochs=1, batch_size=2, optimizer="sgd")
    return trace_synthetic_step(network, config)


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
@pytest.mark.parametrize("algorithm", [Algorithm.BP, Algorithm.SSDFA])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_new_kinds_simulate_on_every_shipped_spec_within_the_invariants(spec, algorithm, name):
    trace = new_kind_trace(name, algorithm)
    chip, _ = load_arch_with_energies(spec)
    result = simulate(chip, trace)
    assert result.totals()["macs"] == trace.macs
    assert (result.resources["utilization"] <= 1.0).all()
    assert (result.resources["busy_cycles"] <= result.cycles).all()
    parameters = sum(layer.parameters for layer in trace.header.layers)
    if chip.substrate == "von_neumann":
        assert result.total("dram", "read") >= math.ceil(
            parameters * chip.precision.weight_bits / 8
        )
    wide = type(chip).model_validate(
        {
            **chip.model_dump(),
            "precision": {k: 2 * v for k, v in chip.precision.model_dump().items()},
        }
    )
    moved = result.breakdown["bytes"].sum()
    moved_wide = simulate(wide, trace).breakdown["bytes"].sum()
    assert moved <= moved_wide <= 2 * moved
