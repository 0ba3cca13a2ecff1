"""Energy = Σ counts × energy per action (+ leakage × time): a pure function of the spec's
per-action energies, a simulation's counts and its cycles."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwsim.sim.result import SimResult, StepCounts
from hwsim.sim.sparsity import SAVED, SKIPPED, action
from hwsim.specs.arch import ActionEnergies
from hwsim.specs.trace import Role
from hwsim.units import BITS_PER_BYTE

SUMMARY_KEYS = (
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
    "area_mm2",  # of the design point (ActionEnergies.area), not per example
)
# The closed vocabulary of what is priced: every (component, action) the simulator counts,
# with the column its energy multiplies (count or bytes) and the pJ per unit of it.  A pair
# not listed is an UnpricedAction, never 0 pJ by default.
_Price = tuple[str, Callable[[ActionEnergies], float]]


def _per_byte(per_bit: Callable[[ActionEnergies], float]) -> _Price:
    return "bytes", lambda energies: per_bit(energies) * BITS_PER_BYTE


def _sram_prices(component: str) -> dict[tuple[str, str], _Price]:
    read = _per_byte(lambda energies: energies.sram_read_pj_per_bit)
    write = _per_byte(lambda energies: energies.sram_write_pj_per_bit)
    # fill (from DRAM) is a write of the buffer, drain (to DRAM) a read of it
    return {
        (component, "read"): read,
        (component, "drain"): read,
        (component, "write"): write,
        (component, "fill"): write,
    }


PRICES: dict[tuple[str, str], _Price] = {
    **{
        (compute, "mac"): ("count", lambda energies: energies.mac_pj)
        for compute in ("pe_array", "tiles")
    },
    **{
        (compute, "vector_op"): ("count", lambda energies: energies.vector_op_pj)
        for compute in ("pe_array", "tiles")
    },
    **{
        (compute, "feedback_generate"): ("count", lambda energies: energies.feedback_generate_pj)
        for compute in ("pe_array", "tiles")
    },
    ("dram", "read"): _per_byte(lambda energies: energies.dram_read_pj_per_bit),
    ("dram", "write"): _per_byte(lambda energies: energies.dram_write_pj_per_bit),
    **_sram_prices("global_buffer"),
    **_sram_prices("tile_sram"),
    ("noc", "byte_hop"): (
        "count",
        lambda energies: energies.noc_pj_per_bit_per_hop * BITS_PER_BYTE,
    ),
    # Injected and delivered NoC bytes are priced as byte-hops and as tile SRAM writes.
    ("noc", "inject"): ("count", lambda energies: 0.0),
    ("noc", "deliver"): ("count", lambda energies: 0.0),
}


# What sparsity did not spend (hwsim.sim.sparsity): bytes a level did not move by role, MACs
# zeros gated by their gating roles (one operand or two, a+b) — 0 pJ, for the record: the
# bytes moved and the MACs performed are in the rows above.
_FREE: _Price = ("count", lambda energies: 0.0)
PRICES.update(
    {
        (level, action(SAVED, role.value)): _FREE
        for level in ("dram", "noc", "global_buffer", "tile_sram")
        for role in Role
    }
)
_GATES = [role.value for role in Role] + [f"{a.value}+{b.value}" for a in Role for b in Role]
PRICES.update(
    {
        (compute, action(SKIPPED, gates)): _FREE
        for compute in ("pe_array", "tiles")
        for gates in _GATES
    }
)


class UnpricedAction(LookupError):
    """A count of a (component, action) that has no energy: a simulator change that must say
    what it costs (hwsim.energy.PRICES), not a user's input."""


def unit_energy(component: str, action: str, energies: ActionEnergies) -> tuple[str, float]:
    """(which column is priced, pJ per unit of it) for one kind of row."""
    try:
        column, per_unit = PRICES[component, action]
    except KeyError:
        raise UnpricedAction(
            f"no energy for {component} {action}: add it to hwsim.energy.PRICES"
        ) from None
    return column, per_unit(energies)


def step_energy_pj(counts: StepCounts, energies: ActionEnergies) -> float:
    """A step's energy per example from its counts alone: `per_example_breakdown`'s
    energy_pj summed, to the last bit (the same products, rows and order), without pandas."""
    columns = counts.columns
    per_count, per_byte = _unit_prices(columns["pairs"], energies)
    pair = columns["pair"]
    energy = (
        columns["count"].astype(np.float64) * per_count[pair]
        + columns["bytes"].astype(np.float64) * per_byte[pair]
    )
    energy = np.append(energy, counts.cycles * energies.leakage_pj_per_cycle)
    return float((energy / counts.batch_size).sum())


def _unit_prices(
    pairs: Iterable[Sequence[str]], energies: ActionEnergies
) -> tuple[np.ndarray, np.ndarray]:
    """pJ per count and pJ per byte of each (component, action) in `pairs`, by position."""
    names = list(pairs)
    per_count, per_byte = np.zeros(len(names)), np.zeros(len(names))
    for code, (component, action_name) in enumerate(names):
        column, per_unit = unit_energy(component, action_name, energies)
        (per_count if column == "count" else per_byte)[code] = per_unit
    return per_count, per_byte


def price(breakdown: pd.DataFrame, cycles: int, energies: ActionEnergies) -> pd.DataFrame:
    """The breakdown with an `energy_pj` column and one leakage row (same units as given)."""
    return _priced(breakdown, cycles, energies, batch=None)


def per_example_breakdown(result: SimResult, energies: ActionEnergies) -> pd.DataFrame:
    """Tidy rows (layer, phase, component, action → count, bytes, cycles, energy_pj) per
    training example."""
    return _priced(result.breakdown, result.cycles, energies, batch=result.batch_size)


def _priced(
    breakdown: pd.DataFrame, cycles: int, energies: ActionEnergies, batch: int | None
) -> pd.DataFrame:
    """The priced rows and the leakage row, divided by `batch` when given: built column by
    column (a 25,000-layer step has 750,000 rows: a concatenated copy of the whole frame
    and then of its divided columns held three copies of the numbers at once)."""
    # Priced per distinct (component, action), applied to every row at once.
    components, component_names = pd.factorize(breakdown["component"])
    actions, action_names = pd.factorize(breakdown["action"])
    stride = max(len(action_names), 1)
    kinds = components.astype(np.int64) * stride + actions
    per_count = np.zeros(len(component_names) * stride)
    per_byte = np.zeros_like(per_count)
    for kind in np.unique(kinds):
        component, action = divmod(int(kind), stride)
        column, per_unit = unit_energy(component_names[component], action_names[action], energies)
        (per_count if column == "count" else per_byte)[kind] = per_unit
    energy = (
        breakdown["count"].to_numpy(dtype=np.float64) * per_count[kinds]
        + breakdown["bytes"].to_numpy(dtype=np.float64) * per_byte[kinds]
    )
    del components, actions, kinds
    leakage: dict[str, str | int] = {
        "layer": "(chip)",
        "phase": "(all)",
        "component": "chip",
        "action": "leakage",
        "count": cycles,
        "bytes": 0,
        "cycles": cycles,
    }
    columns: dict[str, pd.Series | np.ndarray] = {}
    for name, value in leakage.items():
        if isinstance(value, str):  # in the column's own dtype: never a Python str a row
            text = breakdown[name]
            row = pd.Series([value], dtype=text.dtype)
            columns[name] = pd.concat([text, row], ignore_index=True)
        else:
            numbers = np.append(breakdown[name].to_numpy(dtype=np.int64), value)
            columns[name] = numbers if batch is None else numbers / batch
    energy = np.append(energy, cycles * energies.leakage_pj_per_cycle)
    columns["energy_pj"] = energy if batch is None else energy / batch
    return pd.DataFrame(columns, copy=False)


def area_frame(energies: ActionEnergies) -> pd.DataFrame:
    """The design point's area, one row per component: what `simulate --out` writes as
    area.csv (component, count, area_mm2, source); its area_mm2 sums to the summary's."""
    return pd.DataFrame(
        [(row.component.value, row.count, row.area_mm2, row.source) for row in energies.area.rows],
        columns=["component", "count", "area_mm2", "source"],
    )


def area_by_component(energies: ActionEnergies) -> dict[str, float]:
    return {row.component.value: row.area_mm2 for row in energies.area.rows}


def summarize(
    result: SimResult, energies: ActionEnergies, priced: pd.DataFrame | None = None
) -> dict:
    """Per-training-example figures under the keys of `simulate --format json`; `priced` is
    `per_example_breakdown(result, energies)` when the caller has it already."""
    batch = result.batch_size
    totals = result.totals()
    if priced is None:
        priced = per_example_breakdown(result, energies)
    summary: dict[str, Any] = {key: value / batch for key, value in totals.items()}
    summary["latency_s"] = summary["cycles"] / result.clock_hz
    summary["energy_pj"] = float(priced["energy_pj"].sum())
    summary["area_mm2"] = energies.area.area_mm2
    summary = {key: summary[key] for key in SUMMARY_KEYS}
    summary["breakdown"] = {
        f"energy_pj_by_{column}": {
            str(key): float(value)
            for key, value in priced.groupby(column, sort=False)["energy_pj"].sum().items()
        }
        for column in ("component", "phase", "layer")
    }
    summary["breakdown"]["area_mm2_by_component"] = area_by_component(energies)
    summary["run"] = {
        "arch": result.arch,
        "substrate": result.substrate,
        "network": result.network,
        "algorithm": result.algorithm,
        "batch_size": batch,
        "cycles_per_step": result.cycles,
    }
    return summary
