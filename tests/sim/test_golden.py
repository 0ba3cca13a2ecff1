"""Golden results: every shipped spec on small traces.  A change in any number fails until the
goldens are regenerated on purpose: `python -m pytest tests/sim/test_golden.py --update-golden`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from hwsim.energy import summarize
from hwsim.io.arch import load_arch_with_energies, shipped_archs
from hwsim.io.networks import load_network
from hwsim.sim.engine import simulate
from hwsim.specs.network import OptimizerName
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.loop import TrainConfig, trace_synthetic_step

GOLDEN = Path(__file__).with_name("golden")


@cache
def digits_trace(algorithm: str) -> Trace:
    config = TrainConfig(
        algorithm=Algorithm(algorithm),
        epochs=1,
        batch_size=4,
        learning_rate=1e-3,
        optimizer=OptimizerName.ADAM,
        seed=0,
    )
    return trace_synthetic_step(load_network("digits_fc"), config)


def results(spec: str) -> dict:
    arch, energies = load_arch_with_energies(spec)
    return {
        algorithm: summarize(simulate(arch, digits_trace(algorithm)), energies)
        for algorithm in ("bp", "dfa", "ssdfa")
    }


@pytest.mark.parametrize("spec", shipped_archs())
def test_shipped_spec_matches_its_golden(spec, request):
    path = GOLDEN / f"{spec}.json"
    current = results(spec)
    if request.config.getoption("--update-golden"):
        path.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert path.exists(), f"no golden for {spec}: run with --update-golden"
    assert current == json.loads(path.read_text())
