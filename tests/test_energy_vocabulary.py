"""The energy table's actions are a closed vocabulary (issue 19, item 1): a (component, action)
the table does not price raises instead of costing 0 pJ."""

from __future__ import annotations

import pandas as pd
import pytest

from hwsim.energy import PRICES, UnpricedAction, price, unit_energy
from hwsim.io.arch import load_arch_with_energies


@pytest.fixture(scope="module")
def energies():
    return load_arch_with_energies("distributed")[1]


def test_an_unpriced_action_raises(energies):
    with pytest.raises(UnpricedAction, match=r"^no energy for dram refresh: add it to "):
        unit_energy("dram", "refresh", energies)
    breakdown = pd.DataFrame(
        {
            "layer": ["fc1"],
            "phase": ["forward"],
            "component": ["vector_unit"],
            "action": ["vector_op"],
            "count": [10],
            "bytes": [0],
            "cycles": [1],
        }
    )
    with pytest.raises(UnpricedAction, match="vector_unit vector_op"):
        price(breakdown, 100, energies)


def test_every_priced_action_prices_counts_or_bytes(energies):
    for (component, action), (column, _) in PRICES.items():
        kind, per_unit = unit_energy(component, action, energies)
        assert kind == column in ("count", "bytes") and per_unit >= 0, (component, action)
    # a byte moved through a memory costs its bits' energy; a MAC costs the MAC's
    assert unit_energy("dram", "read", energies) == ("bytes", energies.dram_read_pj_per_bit * 8)
    assert unit_energy("tiles", "mac", energies) == ("count", energies.mac_pj)
