"""Small specs and traces for simulator tests."""

from __future__ import annotations

import copy
from functools import cache

import numpy as np
import pytest

from hwsim.specs.arch import ArchSpec
from hwsim.specs.network import NetworkSpec, OptimizerName
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.loop import TrainConfig, Trainer

VON_NEUMANN = {
    "schema_version": 1,
    "kind": "arch",
    "name": "tiny_vn",
    "substrate": "von_neumann",
    "clock_hz": 1e9,
    "dram": {"channels": 2, "bandwidth_bytes_per_cycle": 8, "latency_cycles": 50},
    "global_buffer": {
        "capacity_bytes": 8192,
        "bandwidth_bytes_per_cycle": 64,
        "banks": 2,
        "reuse_fraction": 0.0,
    },
    "pe_array": {"rows": 4, "columns": 4, "vector_ops_per_cycle": 4},
}
DISTRIBUTED = {
    "schema_version": 1,
    "kind": "arch",
    "name": "tiny_dist",
    "substrate": "distributed",
    "clock_hz": 1e9,
    "dram": {"channels": 1, "bandwidth_bytes_per_cycle": 8, "latency_cycles": 50},
    "tiles": {
        "count": 16,
        "sram": {"capacity_bytes": 4096, "bandwidth_bytes_per_cycle": 16},
        "macs_per_cycle": 4,
        "vector_ops_per_cycle": 4,
    },
    "noc": {"topology": "mesh", "link_bandwidth_bytes_per_cycle": 8, "hop_latency_cycles": 1},
}
TINY_NETWORK = {
    "schema_version": 1,
    "kind": "network",
    "name": "tiny",
    "dataset": "synthetic",
    "input_shape": [6, 6, 2],
    "classes": 4,
    "layers": [
        {"type": "conv2d", "name": "conv", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "max_pool", "name": "pool", "pool_size": 2},
        {"type": "flatten", "name": "flat"},
        {"type": "dense", "name": "fc1", "units": 16, "activation": "tanh"},
        {"type": "dense", "name": "fc2", "units": 12, "activation": "tanh"},
        {"type": "dense", "name": "fc3", "units": 4},
    ],
}


def arch(base: dict, **changes) -> ArchSpec:
    """A copy of `base` with dotted-path changes: arch(VON_NEUMANN, **{"dram.channels": 4})."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return ArchSpec.model_validate(data)


@cache
def tiny_trace(algorithm: str = "bp", batch_size: int = 4, optimizer: str = "adam") -> Trace:
    network = NetworkSpec.model_validate(TINY_NETWORK)
    config = TrainConfig(
        algorithm=Algorithm(algorithm),
        epochs=1,
        batch_size=batch_size,
        learning_rate=0.01,
        optimizer=OptimizerName(optimizer),
        seed=1,
    )
    trainer = Trainer(network, config)
    rng = np.random.default_rng(1)
    x = rng.random((batch_size, 6, 6, 2), dtype=np.float32)
    y = rng.integers(0, 4, size=batch_size)
    return trainer.traced_step(x, y, "synthetic")


@pytest.fixture
def von_neumann() -> ArchSpec:
    return arch(VON_NEUMANN)


@pytest.fixture
def distributed() -> ArchSpec:
    return arch(DISTRIBUTED)
