"""Small networks and models for the trainer tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.specs.network import NetworkSpec
from hwsim.train.model import Model, WeightInit


def make_network(
    input_shape: list[int], classes: int, layers: list[dict[str, Any]], name: str = "t"
) -> NetworkSpec:
    return NetworkSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "network",
            "name": name,
            "dataset": "synthetic",
            "input_shape": input_shape,
            "classes": classes,
            "layers": layers,
        }
    )


def make_model(network: NetworkSpec, rng: np.random.Generator) -> Model:
    """A float64 model with Glorot weights and non-zero biases (so that a bias wired the wrong
    way cannot hide behind a zero value)."""
    model = Model(network, np.float64)
    model.initialize(rng, WeightInit.GLOROT)
    for layer in model.trainable_layers():
        if "bias" in layer.params:
            layer.params["bias"][:] = rng.uniform(-0.2, 0.2, layer.params["bias"].shape)
    return model
