"""Energy = Σ counts × energy per action (+ leakage × time): a pure function of the spec's
per-action energies, a simulation's counts and its cycles."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsim.sim.result import SimResult, StepCounts
from hwsim.sim.sparsity import SAVED, SKIPPED, action
from hwsim.specs.arch import ActionEnergies
from hwsim.specs.trace import Role
from hwsim.units import BITS_PER_BYTE

if TYPE_CHECKING:  # imported by what builds a table: `simulate --format json` builds none
    import pandas as pd

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
    return float(_counts_energy_pj(counts, energies).sum())


def _counts_energy_pj(counts: StepCounts, energies: ActionEnergies) -> np.ndarray:
    columns = counts.columns
    return _row_energy_pj(
        columns["count"],
        columns["bytes"],
        columns["pair"],
        counts.pairs,
        counts.cycles,
        counts.batch_size,
        energies,
    )


def _row_energy_pj(
    count: Any,
    nbytes: Any,
    pair: np.ndarray,
    pairs: Iterable[Sequence[str]],
    cycles: int,
    batch: int | None,
    energies: ActionEnergies,
) -> np.ndarray:
    """Each row's energy (row i is the (component, action) `pairs[pair[i]]`) and then the
    leakage row's, divided by `batch` when given: the energy_pj column of `price` and
    `per_example_breakdown`, and the numbers every summary sums."""
    per_count, per_byte = _unit_prices(pairs, energies)
    energy = (
        np.asarray(count, dtype=np.float64) * per_count[pair]
        + np.asarray(nbytes, dtype=np.float64) * per_byte[pair]
    )
    energy = np.append(energy, cycles * energies.leakage_pj_per_cycle)
    return energy if batch is None else energy / batch


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


# The row `price` adds for the whole chip's leakage, priced per cycle of the step.
LEAKAGE_ROW = {"layer": "(chip)", "phase": "(all)", "component": "chip", "action": "leakage"}


def price(breakdown: pd.DataFrame, cycles: int, energies: ActionEnergies) -> pd.DataFrame:
    """The breakdown with an `energy_pj` column and one leakage row (same units as given)."""
    return _priced(breakdown, cycles, energies, batch=None)


def per_example_breakdown(result: SimResult, energies: ActionEnergies) -> pd.DataFrame:
    """Tidy rows (layer, phase, component, action → count, bytes, cycles, energy_pj) per
    training example."""
    return _priced(result.breakdown, result.cycles, energies, batch=result.batch_size)


def _frame_pairs(breakdown: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each row's code into the (component, action) pairs the frame has, and those pairs."""
    import pandas as pd

    components, component_names = pd.factorize(breakdown["component"])
    actions, action_names = pd.factorize(breakdown["action"])
    stride = max(len(action_names), 1)
    kinds = components.astype(np.int64) * stride + actions
    present = np.unique(kinds)
    pairs = [
        (str(component_names[kind // stride]), str(action_names[kind % stride]))
        for kind in present.tolist()
    ]
    return np.searchsorted(present, kinds), pairs


def _priced(
    breakdown: pd.DataFrame, cycles: int, energies: ActionEnergies, batch: int | None
) -> pd.DataFrame:
    """The priced rows and the leakage row, divided by `batch` when given: built column by
    column (a 25,000-layer step has 750,000 rows: a concatenated copy of the whole frame
    and then of its divided columns held three copies of the numbers at once)."""
    import pandas as pd

    pair, pairs = _frame_pairs(breakdown)
    energy = _row_energy_pj(
        breakdown["count"], breakdown["bytes"], pair, pairs, cycles, batch, energies
    )
    del pair
    leakage: dict[str, str | int] = {**LEAKAGE_ROW, "count": cycles, "bytes": 0, "cycles": cycles}
    columns: dict[str, pd.Series | np.ndarray] = {}
    for name, value in leakage.items():
        if isinstance(value, str):  # in the column's own dtype: never a Python str a row
            text = breakdown[name]
            row = pd.Series([value], dtype=text.dtype)
            columns[name] = pd.concat([text, row], ignore_index=True)
        else:
            numbers = np.append(breakdown[name].to_numpy(dtype=np.int64), value)
            columns[name] = numbers if batch is None else numbers / batch
    columns["energy_pj"] = energy
    return pd.DataFrame(columns, copy=False)


def area_frame(energies: ActionEnergies) -> pd.DataFrame:
    """The design point's area, one row per component: what `simulate --out` writes as
    area.csv (component, count, area_mm2, source); its area_mm2 sums to the summary's."""
    import pandas as pd

    return pd.DataFrame(
        [(row.component.value, row.count, row.area_mm2, row.source) for row in energies.area.rows],
        columns=["component", "count", "area_mm2", "source"],
    )


def area_by_component(energies: ActionEnergies) -> dict[str, float]:
    return {row.component.value: row.area_mm2 for row in energies.area.rows}


def summarize(result: SimResult, energies: ActionEnergies) -> dict:
    """Per-training-example figures under the keys of `simulate --format json`."""
    pair, pairs = _frame_pairs(result.breakdown)
    breakdown = result.breakdown
    energy = _row_energy_pj(
        breakdown["count"],
        breakdown["bytes"],
        pair,
        pairs,
        result.cycles,
        result.batch_size,
        energies,
    )
    return _summary(result, breakdown, energy, energies)


def summarize_counts(counts: StepCounts, energies: ActionEnergies) -> dict:
    """`summarize` of the same step from its StepCounts (`simulate_counts`), without pandas:
    the same figures to the last bit (one implementation, `_summary`)."""
    return _summary(counts, counts.columns, _counts_energy_pj(counts, energies), energies)


def figures(step: SimResult | StepCounts, energy_pj: float, energies: ActionEnergies) -> dict:
    """The per-example figures of a summary (SUMMARY_KEYS), given the step's energy."""
    batch = step.batch_size
    values: dict[str, Any] = {key: value / batch for key, value in step.totals().items()}
    values["latency_s"] = values["cycles"] / step.clock_hz
    values["energy_pj"] = energy_pj
    values["area_mm2"] = energies.area.area_mm2
    return {key: values[key] for key in SUMMARY_KEYS}


def _summary(
    step: SimResult | StepCounts,
    columns: Any,
    energy: np.ndarray,
    energies: ActionEnergies,
) -> dict:
    """A step's summary from its breakdown's columns (a frame or StepCounts.columns) and
    each row's energy per example, the leakage row's last."""
    summary: dict[str, Any] = figures(step, float(energy.sum()), energies)
    summary["breakdown"] = {
        f"energy_pj_by_{column}": group_sums(
            [*columns[column].tolist(), LEAKAGE_ROW[column]], energy
        )
        for column in ("component", "phase", "layer")
    }
    summary["breakdown"]["area_mm2_by_component"] = area_by_component(energies)
    summary["run"] = {
        "arch": step.arch,
        "substrate": step.substrate,
        "network": step.network,
        "algorithm": step.algorithm,
        "batch_size": step.batch_size,
        "cycles_per_step": step.cycles,
    }
    return summary


def group_sums(keys: Sequence[str], values: np.ndarray) -> dict[str, float]:
    """Each key's values summed exactly rounded (math.fsum: whatever the rows' order and
    the pandas version), keys in the order they first appear."""
    groups: dict[str, list[float]] = {}
    for key, value in zip(keys, values.tolist(), strict=True):
        groups.setdefault(str(key), []).append(value)
    return {key: math.fsum(group) for key, group in groups.items()}
