"""What a simulation returns: cycles, a tidy count breakdown, resource use and a timeline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from hwsim.sim.components import Ledger
from hwsim.specs.arch import ArchSpec
from hwsim.specs.trace import Phase, Trace

if TYPE_CHECKING:  # pandas is imported by what builds a table: a sweep's row builds none
    import pandas as pd

BREAKDOWN_COLUMNS = ["layer", "phase", "component", "action", "count", "bytes", "cycles"]
# Each op's loop nest (von Neumann): column → "q" (int64), "d" (float64) or "s" (text).
MAPPING_KINDS = {
    "id": "q",
    "layer": "s",
    "phase": "s",
    "op": "s",
    "loop_order": "s",
    "tile_m": "q",
    "tile_k": "q",
    "tile_n": "q",
    "steps": "q",
    "tensor_a": "s",
    "tensor_b": "s",
    "tensor_c": "s",
    "reread_a": "d",
    "reread_b": "d",
    "writes_c": "d",
    "footprint_bytes": "q",
    "dram_read_bytes": "q",
    "dram_write_bytes": "q",
    "compute_cycles": "q",
    "buffer_cycles": "q",
    "dram_cycles": "q",
    "bound": "s",
}
MAPPING_COLUMNS = list(MAPPING_KINDS)


@dataclass(frozen=True, eq=False)
class SimResult:
    """One simulated training step.  Counts are per step; `per_example` divides by the batch."""

    arch: str
    substrate: str
    network: str
    algorithm: str
    batch_size: int
    clock_hz: float
    cycles: int
    breakdown: pd.DataFrame  # BREAKDOWN_COLUMNS, per step
    resources: pd.DataFrame  # resource, busy/idle/wait cycles, utilization, peak_bytes held
    timeline: pd.DataFrame  # resource, start_cycle, end_cycle, busy_fraction, bytes_per_cycle
    mapping: pd.DataFrame  # MAPPING_COLUMNS: each op's loop nest (von Neumann; else empty)

    def total(self, component: str, action: str, column: str = "bytes") -> int:
        rows = self.breakdown
        mask = (rows["component"] == component) & (rows["action"] == action)
        return int(rows.loc[mask, column].sum())

    def totals(self) -> dict[str, int]:
        """Per-step totals under the names `simulate --format json` uses."""
        return step_totals(self.breakdown, self.substrate, self.cycles)


@dataclass(frozen=True, eq=False)
class StepCounts:
    """A simulated step's counts and cycles without the tables a SimResult builds (loop
    nests, resources, timeline) and without pandas: what a sweep's row keeps, and what
    `simulate --format json` prints from."""

    arch: str
    substrate: str
    network: str
    algorithm: str
    batch_size: int
    clock_hz: float
    cycles: int
    # BREAKDOWN_COLUMNS (names as object arrays) and `pair`, each row's code into `pairs`,
    # in the breakdown's order (empty columns if nothing was counted)
    columns: dict[str, np.ndarray]
    pairs: np.ndarray  # [codes, 2] object: each code's (component, action)

    def totals(self) -> dict[str, int]:
        """Per-step totals, as SimResult.totals."""
        return step_totals(self.columns, self.substrate, self.cycles)


# The phases whose traffic is the learning rule's own (the forward pass is every rule's).
LEARNING_PHASES = frozenset({Phase.ERROR.value, Phase.GRADIENT.value, Phase.UPDATE.value})


def step_totals(
    breakdown: pd.DataFrame | Mapping[str, np.ndarray], substrate: str, cycles: int
) -> dict[str, int]:
    """A step's totals from its breakdown, in one pass over the rows (a sweep prices many
    small steps; a pandas mask per figure cost more than the sums).

    NoC bytes are counted three ways: `noc_injected_bytes` (put on the network once per
    transfer: a multicast counts once; `noc_bytes` is the same figure under its older name),
    `noc_delivered_bytes` (every copy a tile receives) and `noc_byte_hops` (bytes × links
    crossed).  `off_tile_bytes` = DRAM reads and writes + NoC delivered bytes;
    `learning_off_tile_bytes` the same over the error, gradient and update phases."""
    # (component, action) → count, bytes, bytes in the learning phases
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for phase, component, action, count, nbytes in zip(
        breakdown["phase"].tolist(),
        breakdown["component"].tolist(),
        breakdown["action"].tolist(),
        breakdown["count"].tolist(),
        breakdown["bytes"].tolist(),
        strict=True,
    ):
        entry = sums[component, action]
        entry[0] += count
        entry[1] += nbytes
        if phase in LEARNING_PHASES:
            entry[2] += nbytes
    sram = "global_buffer" if substrate == "von_neumann" else "tile_sram"
    moved = ("dram", "read"), ("dram", "write"), ("noc", "deliver")
    return {
        "macs": sum(count for (_, action), (count, _, _) in sums.items() if action == "mac"),
        "cycles": cycles,
        "dram_read_bytes": sums["dram", "read"][1],
        "dram_write_bytes": sums["dram", "write"][1],
        "sram_read_bytes": sums[sram, "read"][1] + sums[sram, "drain"][1],
        "sram_write_bytes": sums[sram, "write"][1] + sums[sram, "fill"][1],
        "noc_bytes": sums["noc", "inject"][1],
        "noc_injected_bytes": sums["noc", "inject"][1],
        "noc_delivered_bytes": sums["noc", "deliver"][1],
        "noc_byte_hops": sums["noc", "byte_hop"][0],
        "off_tile_bytes": sum(sums[pair][1] for pair in moved),
        "learning_off_tile_bytes": sum(sums[pair][2] for pair in moved),
    }


def _breakdown(ledger: Ledger, trace: Trace) -> pd.DataFrame:
    """One row per (layer, phase, component, action): layers in network order, phases in
    step order, then component and action by name."""
    import pandas as pd

    sorted_ = sorted_counts(ledger, trace)
    if sorted_ is None:
        frame = pd.DataFrame(columns=BREAKDOWN_COLUMNS)
        return frame.astype({"count": "int64", "bytes": "int64", "cycles": "int64"})
    counts = sorted_[0]
    columns = {
        name: _text(counts.pop(name)) if name in TEXT_COLUMNS else counts.pop(name)
        for name in BREAKDOWN_COLUMNS
    }
    return pd.DataFrame(columns, copy=False)  # the sorted arrays are the frame's own


TEXT_COLUMNS = ("layer", "phase", "component", "action")


def sorted_counts(ledger: Ledger, trace: Trace) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """The breakdown's columns (BREAKDOWN_COLUMNS, names as object arrays) and `pair` (each
    row's (component, action) code into the returned code table), in the breakdown's order;
    None if nothing was counted.  The ledger lets go of its counts."""
    scopes, pairs, scope_names, pair_names, counts, moved, busy = ledger.take_counts()
    if not len(counts):
        return None
    # The order is worked out on the small code tables, then applied to the rows by code.
    layer_order = {layer.name: i for i, layer in enumerate(trace.header.layers)}
    phase_order = {phase.value: i for i, phase in enumerate(Phase)}
    scope_rank = _ranks(
        [
            (layer_order.get(layer, len(layer_order)), phase_order[phase], code)
            for code, (layer, phase) in enumerate(scope_names)
        ]
    )
    pair_rank = _ranks([tuple(names) for names in pair_names])
    rank = scope_rank[scopes]
    rank *= len(pair_names)
    rank += pair_rank[pairs]
    order = np.argsort(rank)
    del rank
    # One column at a time, each unsorted column let go of once its sorted copy is made
    # (a 25,000-layer step has 750,000 rows: every column held twice is ~50 MB).
    columns: dict[str, np.ndarray] = {}
    scope_codes = scopes[order]
    del scopes
    columns["layer"], columns["phase"] = scope_names[scope_codes, 0], scope_names[scope_codes, 1]
    del scope_codes
    columns["pair"] = pairs[order]
    columns["component"] = pair_names[columns["pair"], 0]
    columns["action"] = pair_names[columns["pair"], 1]
    unsorted = [counts, moved, busy]
    del counts, moved, busy
    for name in ("count", "bytes", "cycles"):
        columns[name] = unsorted.pop(0)[order]
    return columns, pair_names


def _ranks(keys: list[tuple]) -> np.ndarray:
    """Each entry's place, from 0, when `keys` are sorted."""
    ranks = np.empty(len(keys), dtype=np.int64)
    ranks[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
    return ranks


def _busy_cycles(ledger: Ledger) -> dict[str, int]:
    """Cycles each resource was busy: the union of its busy intervals."""
    busy: dict[str, int] = {}
    for resource in ledger.intervals:
        starts, ends, _ = ledger.spans(resource)
        order = np.lexsort((ends, starts))
        starts, ends = starts[order], ends[order]
        # Sorted by start, an interval adds what lies beyond the furthest end before it.
        reach = np.maximum.accumulate(ends)
        before = np.concatenate([[np.iinfo(np.int64).min], reach[:-1]])
        busy[resource] = int(np.maximum(ends - np.maximum(starts, before), 0).sum())
    return busy


def _resources(ledger: Ledger, cycles: int) -> pd.DataFrame:
    import pandas as pd

    busy: dict[str, int] = defaultdict(int, _busy_cycles(ledger))
    names = sorted(set(busy) | set(ledger.waits) | set(ledger.peak_bytes))
    rows = [
        (
            name,
            busy[name],
            max(0, cycles - busy[name]),
            ledger.waits.get(name, 0),
            busy[name] / cycles if cycles else 0.0,
            ledger.peak_bytes.get(name, 0),
        )
        for name in names
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "resource",
            "busy_cycles",
            "idle_cycles",
            "wait_cycles",
            "utilization",
            "peak_bytes",
        ],
    )


def _integral(points: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Σ_i weights_i · min(edge, points_i) at every edge, in O((n + bins) log n) time and O(n)
    memory: sorted points, prefix sums, one binary search per edge."""
    order = np.argsort(points, kind="stable")
    points, weights = points[order], weights[order]
    below = np.searchsorted(points, edges, side="left")  # points_i < edge: take points_i
    weighted = np.concatenate([[0.0], np.cumsum(weights * points)])
    total = np.concatenate([[0.0], np.cumsum(weights)])
    return weighted[below] + edges * (total[-1] - total[below])


MAX_TIMELINE_RESOURCES = 64  # beyond this, resources of one kind share a timeline


def _timeline_groups(names: list[str]) -> dict[str, list[str]]:
    """Timeline rows → the resources they cover: each resource its own, unless there are more
    than MAX_TIMELINE_RESOURCES; then the resources of one kind (`tiles.fc1`, `tiles.fc2`, ...
    are kind `tiles`) share one row, `tiles.*`, whose busy fraction is the kind's mean (a
    25,000-layer network's 50,000 per-layer resources would make five million rows)."""
    if len(names) <= MAX_TIMELINE_RESOURCES:
        return {name: [name] for name in names}
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        kind, dot, _ = name.partition(".")
        groups[f"{kind}.*" if dot else name].append(name)
    return {label: members for label, members in sorted(groups.items())}


def _timeline(ledger: Ledger, cycles: int, bins: int) -> pd.DataFrame:
    """Busy fraction and bytes per cycle of every resource in `bins` equal slices of time.

    An interval's busy time and its bytes (spread evenly over it) fall into the slices it
    overlaps; computed from prefix sums, never an intervals × slices array, so memory stays
    linear in the number of intervals."""
    import pandas as pd

    columns = ["resource", "start_cycle", "end_cycle", "busy_fraction", "bytes_per_cycle"]
    if not ledger.intervals:
        return pd.DataFrame(columns=columns)
    bins = max(1, min(bins, cycles or 1))
    edges = np.linspace(0, max(cycles, 1), bins + 1)
    width = np.diff(edges)
    groups = _timeline_groups(sorted(ledger.intervals))
    busy_rows, moved_rows = [], []
    for members in groups.values():
        starts, ends, amounts = (
            np.concatenate(parts).astype(np.float64)
            for parts in zip(*(ledger.spans(name) for name in members), strict=True)
        )
        ones = np.ones_like(starts)
        # Overlap of [s, e] with [0, edge] is min(edge, e) − min(edge, s).
        busy = _integral(ends, ones, edges) - _integral(starts, ones, edges)
        rate = amounts / np.maximum(ends - starts, 1)
        moved = _integral(ends, rate, edges) - _integral(starts, rate, edges)
        busy_rows.append(np.clip(np.diff(busy) / width / len(members), 0.0, 1.0))
        moved_rows.append(np.maximum(np.diff(moved), 0.0) / width)
    return pd.DataFrame(
        {
            "resource": np.repeat(np.array(list(groups), dtype=object), bins),
            "start_cycle": np.tile(edges[:-1].round().astype(np.int64), len(groups)),
            "end_cycle": np.tile(edges[1:].round().astype(np.int64), len(groups)),
            "busy_fraction": np.concatenate(busy_rows),
            "bytes_per_cycle": np.concatenate(moved_rows),
        }
    )


def _mapping(ledger: Ledger) -> pd.DataFrame:
    """The ops' loop nests in record order (von Neumann; an empty frame elsewhere)."""
    import pandas as pd

    arrays = ledger.take_mappings(MAPPING_KINDS)
    if arrays is None:
        return pd.DataFrame(columns=MAPPING_COLUMNS)
    order = np.argsort(arrays["id"], kind="stable")
    # Column by column, each logged column let go of as its sorted copy is made.
    return pd.DataFrame(
        {
            name: _text(arrays.pop(name)[order])
            if MAPPING_KINDS[name] == "s"
            else arrays.pop(name)[order]
            for name in MAPPING_COLUMNS
        },
        copy=False,
    )


@cache
def _text_dtype() -> pd.StringDtype | None:
    """The text dtype of the big tables (breakdown, mapping): pandas' own string dtype, kept
    in Python objects.  A step's labels are a few distinct strings shared by many rows (a
    25,000-layer step: 750,000 breakdown rows), 8 bytes a row as objects; Arrow storage,
    pandas' default once pyarrow is installed, copies each row's text (benchmarks/big_trace.py
    with pyarrow installed, von_neumann at 200,007 records: 509 MB peak, 529 MB with Arrow
    storage).  None where pandas keeps text as plain objects (pandas 2 by default): those
    columns stay object arrays."""
    import pandas as pd

    default = pd.Series(["text"]).dtype
    if not isinstance(default, pd.StringDtype):
        return None
    return pd.StringDtype("python", na_value=default.na_value)


def _text(values: np.ndarray):
    """An object array of strings as a column in _text_dtype() (no copy of the strings)."""
    import pandas as pd

    dtype = _text_dtype()
    return values if dtype is None else pd.array(values, dtype=dtype)


def _algorithm(trace: Trace) -> str:
    header = trace.header
    return "inference" if header.inference else header.algorithm.value


def build_result(arch: ArchSpec, trace: Trace, ledger: Ledger, cycles: int, bins: int) -> SimResult:
    header = trace.header
    return SimResult(
        arch=arch.name,
        substrate=arch.substrate.value,
        network=header.network,
        algorithm=_algorithm(trace),
        batch_size=header.batch_size,
        clock_hz=arch.clock_hz,
        cycles=cycles,
        # Built biggest part first, each part's columns let go by the ledger as it is
        # built, so a big step never holds its ledger and its result tables in full at once.
        mapping=_mapping(ledger),
        breakdown=_breakdown(ledger, trace),
        resources=_resources(ledger, cycles),
        timeline=_timeline(ledger, cycles, bins),
    )


def build_counts(arch: ArchSpec, trace: Trace, ledger: Ledger, cycles: int) -> StepCounts:
    """A step's StepCounts from its ledger (which lets go of its counts)."""
    sorted_ = sorted_counts(ledger, trace)
    if sorted_ is None:
        empty = np.zeros(0, dtype=np.int64)
        sorted_ = {name: empty for name in (*BREAKDOWN_COLUMNS, "pair")}, np.empty((0, 2), object)
    columns, pairs = sorted_
    return StepCounts(
        arch=arch.name,
        substrate=arch.substrate.value,
        network=trace.header.network,
        algorithm=_algorithm(trace),
        batch_size=trace.header.batch_size,
        clock_hz=arch.clock_hz,
        cycles=cycles,
        columns=columns,
        pairs=pairs,
    )
