"""Shared fixtures for the hwsim test suite."""

from __future__ import annotations

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/sim/golden/*.json from the current simulator")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: long-running test (deselect with -m 'not slow')"
    )


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test so every test is reproducible on its own."""
    return np.random.default_rng(20240601)
