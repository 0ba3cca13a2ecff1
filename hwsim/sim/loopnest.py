"""A mapping search for matmul and conv ops on the von Neumann substrate (pure, numpy).

The job Timeloop's and ZigZag's mappers do, as a small analytical search.  Every matmul-class
op is a GEMM  C[m, n] += A[m, k] · B[k, n]  whose three loops are cut into tiles (tm, tk, tn)
and run in one of six orders (outermost first).  For each (order, tiles):

- an input X that depends on two of the loops is read from DRAM |X| × the trip counts of the
  loop it does not depend on, when that loop sits outside X's innermost relevant loop
  (loops with one trip do not count: a tile that never changes stays put);
- the output C is finished before it leaves when the k loop sits inside C's loops; otherwise
  each extra pass over k evicts partial sums and reads them back (read-modify-write at
  `accumulator_bits`);
- the tiles must fit the buffer space the op is given: an input tile that changes during the
  nest is double-buffered (two copies), a constant one needs one; C's tile accumulates at
  `accumulator_bits` beside a finished copy at its own precision that drains to DRAM.

The search keeps the mapping with the least DRAM traffic (ties: fewest estimated cycles).
Candidates are ranked once per GEMM and machine, whatever the buffer space (a frontier: the
best-ranked candidate of each smaller footprint), so an op given another budget — at another
design point of a sweep, or with more stream space free — costs a binary search.
Tile candidates per loop are ⌈size / 2^i⌉ and ⌈size / (3·2^i)⌉ (so a batch's candidates contain
half the batch's).

Convolutions are tiled in their own terms: output positions in bands of whole output rows
(or whole images), input channels with the whole R × S window, output channels.  The input
feature map is priced by the windows the bands need — ((r − 1)·stride + R) input rows per band
of r output rows (the stride and R along the height; a dilated window's R is the rows it
spans, (R − 1)·dilation + 1, its MACs and filters those of R) — so the halo is counted and
the im2col over-count (up to R·S/(stride_height·stride_width)) is not.
A backward-data pass writes overlapping windows: the halo rows are partial sums, read and
written back.  A grouped convolution (or a grouped matmul: attention's products of one head
of one example each) is `groups` independent GEMMs that share no operand: the
search maps one group (its share of every operand, its input and output channels) and the
groups run one after another under it (an outermost loop g), so every count but the buffer
footprint is the group's times `groups`.  docs/model.md states the resulting formulas.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from hwsim.specs.trace import Conv2DOp, ConvPass, MatmulOp
from hwsim.units import BITS_PER_BYTE, bits_to_bytes

LOOPS = "mkn"
ORDERS = tuple(itertools.permutations(range(3)))  # outermost first
A, B, C = 0, 1, 2
OPERAND_LOOPS = ((0, 1), (1, 2), (0, 2))  # A: m, k   B: k, n   C: m, n
Int64s = NDArray[np.int64]  # one value per candidate tiling (or per tile candidate)


@dataclass(frozen=True)
class Operand:
    """One GEMM operand: element count and bits per element.

    `resident`: the buffer's reuse share holds the whole tensor (an input it already has, an
    output it keeps): no DRAM traffic, no stream space.  `written` (the output only): the
    finished result goes to DRAM; false when it is consumed on chip (a fused weight update),
    though partial sums that must leave the buffer still go to DRAM and back."""

    elements: int
    bits: int
    resident: bool = False
    written: bool = True


@dataclass(frozen=True)
class ConvGeometry:
    """What a conv pass's tiling needs from its geometry (the trace's Conv2DOp)."""

    conv_pass: ConvPass
    batch: int
    input_height: int
    input_width: int
    input_channels: int
    output_height: int
    output_width: int
    output_channels: int
    kernel_height: int
    kernel_width: int
    stride_height: int
    stride_width: int
    dilation_height: int = 1
    dilation_width: int = 1

    @property
    def reach_height(self) -> int:
        """Input rows one window spans: R, or (R − 1) · dilation + 1 when dilated."""
        return (self.kernel_height - 1) * self.dilation_height + 1

    @classmethod
    def of(cls, op: Conv2DOp) -> ConvGeometry:
        return cls(
            op.conv_pass,
            op.batch,
            op.input_height,
            op.input_width,
            op.input_channels,
            op.output_height,
            op.output_width,
            op.output_channels,
            op.kernel_height,
            op.kernel_width,
            op.stride_height,
            op.stride_width,
            op.dilation_height,
            op.dilation_width,
        )


@dataclass(frozen=True)
class Gemm:
    """The problem a mapping solves: sizes, operands A, B, C, and the buffer space."""

    m: int
    k: int
    n: int
    a: Operand
    b: Operand
    c: Operand
    accumulator_bits: int
    conv: ConvGeometry | None = None


@dataclass(frozen=True)
class Objective:
    """What the search ranks mappings by (`schedule.mapping_objective`): DRAM bytes then
    estimated cycles (`dram_bytes`, the default), cycles then DRAM bytes (`latency`), or the
    estimated energy of the bytes moved — DRAM and buffer port, at these pJ per byte — alone
    (`energy`) or times the cycles (`edp`).  MACs cost the same under every mapping."""

    kind: str = "dram_bytes"
    dram_pj_per_byte: float = 0.0
    buffer_pj_per_byte: float = 0.0


DRAM_BYTES = Objective()


@dataclass(frozen=True)
class Machine:
    """What the tie-break between equal-traffic mappings needs: the PE array (a tile's
    compute folds over its rows and columns) and DRAM bandwidth (the pipeline's fill), and
    what the search ranks by."""

    rows: int
    columns: int
    weight_stationary: bool
    dram_bytes_per_cycle: float
    buffer_bytes_per_cycle: float
    objective: Objective = DRAM_BYTES


@dataclass(frozen=True)
class Mapping:
    """The chosen loop nest of one op and what it moves."""

    order: str  # e.g. "m>n>k", outermost first
    tiles: tuple[int, int, int]  # tm, tk, tn (conv: positions, window = channels·R·S, outputs)
    trips: tuple[int, int, int]
    read_bytes: tuple[int, int]  # DRAM bytes read of A and B
    output_write_bytes: int  # DRAM bytes of C's final write
    partial_bytes: int  # partial sums written out and read back (each way)
    footprint_bytes: int  # buffer bytes the tiles occupy (double-buffered where they change)
    array_reads: tuple[int, int]  # buffer → array, of A and B: every tile each time it is used
    compute_cycles: int = 0  # array cycles of all the tiles (0: no Machine given)
    groups: int = 1  # a grouped conv's groups, run one after another (an outermost loop g)

    @property
    def steps(self) -> int:
        return self.groups * math.prod(self.trips)

    def repeated(self, groups: int) -> Mapping:
        """This mapping of one group run for each of `groups` groups that share no operand:
        traffic, array reads and cycles times `groups`; tiles and footprint unchanged."""
        if groups == 1:
            return self
        return dataclasses.replace(
            self,
            order=f"g>{self.order}",
            read_bytes=(groups * self.read_bytes[0], groups * self.read_bytes[1]),
            output_write_bytes=groups * self.output_write_bytes,
            partial_bytes=groups * self.partial_bytes,
            array_reads=(groups * self.array_reads[0], groups * self.array_reads[1]),
            compute_cycles=groups * self.compute_cycles,
            groups=groups,
        )

    @property
    def array_read_bytes(self) -> int:
        return self.array_reads[0] + self.array_reads[1]

    @property
    def dram_read_bytes(self) -> int:
        return sum(self.read_bytes) + self.partial_bytes

    @property
    def dram_write_bytes(self) -> int:
        return self.output_write_bytes + self.partial_bytes

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes


def _candidates(size: int) -> Int64s:
    """⌈size / 2^i⌉ and ⌈size / (3·2^i)⌉ for i = 0, 1, ... down to 1 (a doubled size's
    candidates contain the size's own)."""
    values = sorted(
        {-(-size // (factor << i)) for factor in (1, 3) for i in range(size.bit_length() + 1)}
    )
    return np.array(values, dtype=np.int64)


def _ceil_div(a: np.int64 | Int64s, b: Int64s) -> Int64s:
    return -(-a // b)


@dataclass(frozen=True)
class _Loop:
    """Tile candidates of one loop: the tile in GEMM units and its trip count."""

    tiles: Int64s
    trips: Int64s


def _plain(size: int, width: int = 1) -> _Loop:
    """Tiles of a loop the PE array unrolls over `width` PEs are whole multiples of it (or
    the whole loop), as a mapper's spatial unrolling requires."""
    tiles = _candidates(size)
    if width > 1:
        aligned = np.minimum(size, -(-tiles // width) * width).tolist()
        tiles = np.array(sorted(set(aligned)), dtype=np.int64)  # np.unique, without numpy.ma
    return _Loop(tiles, _ceil_div(np.int64(size), tiles))


def _bands(conv: ConvGeometry, output_rows: int, input_rows: int) -> tuple[_Loop, Int64s, Int64s]:
    """Output-position tiles of a conv: r whole output rows of one image, or b whole images.

    Returns the loop (tile = positions) and, per candidate, the input rows one tile touches
    (× images in the tile) and the input rows all tiles touch together (× all images)."""
    per_row = conv.output_width
    rows = _candidates(output_rows)[:-1] if output_rows > 1 else np.array([], np.int64)
    images = _candidates(conv.batch)
    stride, kernel = conv.stride_height, conv.reach_height  # a dilated window spans more rows
    window = np.minimum(input_rows, (rows - 1) * stride + kernel)
    full, rest = output_rows // rows, output_rows % rows
    rest_window = np.where(rest > 0, np.minimum(input_rows, (rest - 1) * stride + kernel), 0)
    swept = np.maximum(full * window + rest_window, input_rows)
    tiles = np.concatenate([rows * per_row, images * output_rows * per_row])
    trips = np.concatenate(
        [
            conv.batch * _ceil_div(np.int64(output_rows), rows),
            _ceil_div(np.int64(conv.batch), images),
        ]
    )
    tile_rows = np.concatenate([window, images * input_rows])
    sweep_rows = np.concatenate(
        [conv.batch * swept, np.full(len(images), conv.batch * input_rows, np.int64)]
    )
    return _Loop(tiles, trips), tile_rows, sweep_rows


def _channels(channels: int, window: int) -> tuple[_Loop, Int64s]:
    """Window tiles of a conv: tc whole input channels × the R × S kernel."""
    tc = _candidates(channels)
    return _Loop(tc * window, _ceil_div(np.int64(channels), tc)), tc


def _grid(
    gemm: Gemm, align: tuple[int, int, int] = (1, 1, 1)
) -> tuple[list[Int64s], list[Int64s], list[Int64s], list[Int64s]]:
    """Per (tm, tk, tn) candidate: tiles, trips, and each operand's tile and sweep elements
    (the elements one pass over all its tiles touches: its size, or more with a halo).
    `align`: the PE-array width each plain loop's tiles are multiples of."""
    conv = gemm.conv
    loops: list[_Loop]
    if conv is None:
        loops = [_plain(gemm.m, align[0]), _plain(gemm.k, align[1]), _plain(gemm.n, align[2])]
        extra = None
    else:
        kernel = conv.kernel_height * conv.kernel_width
        # The input map's rows actually used (VALID padding may leave trailing rows unread).
        used_rows = min(
            conv.input_height, (conv.output_height - 1) * conv.stride_height + conv.reach_height
        )
        bands, tile_rows, sweep_rows = _bands(conv, conv.output_height, used_rows)
        channels, tc = _channels(conv.input_channels, kernel)
        # Which GEMM loop is positions (p), window (w) and output channels (f), per pass.
        p, w, f = {
            ConvPass.FORWARD: (0, 1, 2),
            ConvPass.BACKWARD_DATA: (0, 2, 1),
            ConvPass.BACKWARD_WEIGHT: (1, 0, 2),
        }[conv.conv_pass]
        outputs = _plain(conv.output_channels, align[f])
        by_loop = {p: bands, w: channels, f: outputs}
        loops = [by_loop[loop] for loop in range(3)]
        extra = (conv, p, w, tile_rows, sweep_rows, tc)
    grid = np.meshgrid(*[np.arange(len(loop.tiles)) for loop in loops], indexing="ij")
    index = [i.ravel() for i in grid]
    tiles = [loop.tiles[i] for loop, i in zip(loops, index, strict=True)]
    trips = [loop.trips[i] for loop, i in zip(loops, index, strict=True)]
    operands = (gemm.a, gemm.b, gemm.c)
    tile_elements: list[Int64s] = []
    sweep_elements: list[Int64s] = []
    for which, (x, y) in enumerate(OPERAND_LOOPS):
        tile_elements.append(tiles[x] * tiles[y])
        sweep_elements.append(np.full_like(tiles[0], operands[which].elements))
    if extra is not None:
        conv, p, w, tile_rows, sweep_rows, tc = extra
        # The feature map that the window loop indexes: A in forward / backward-weight, C in
        # backward-data.  Its tiles are windows of input rows, whole input width.
        which = next(i for i, loops_of in enumerate(OPERAND_LOOPS) if set(loops_of) == {p, w})
        width = conv.input_width
        band = index[p]
        tile_elements[which] = tile_rows[band] * width * tc[index[w]]
        sweep_elements[which] = np.maximum(
            sweep_rows[band] * width * conv.input_channels, operands[which].elements
        )
    return tiles, trips, tile_elements, sweep_elements


def _bytes(elements: Int64s, bits: int) -> Int64s:
    """Bytes of `elements` elements of `bits` bits each, element-wise, rounded up."""
    return bits_to_bytes(elements * bits)


def _tiled_compute(
    machine: Machine, tiles: list[Int64s], trips: list[Int64s], gemm: Gemm
) -> Int64s:
    """Array cycles of every tile together: each tile folds its reduction (weight
    stationary: k over the rows, n over the columns, m streamed; output stationary: m over
    the rows, n over the columns, k streamed); the last tile of a loop may be ragged."""
    sizes = (gemm.m, gemm.k, gemm.n)

    def folds(loop: int, width: int) -> Int64s:
        last = np.maximum(1, sizes[loop] - (trips[loop] - 1) * tiles[loop])
        return (trips[loop] - 1) * -(-tiles[loop] // width) + -(-last // width)

    if machine.weight_stationary:
        return gemm.m * folds(1, machine.rows) * folds(2, machine.columns)
    return gemm.k * folds(0, machine.rows) * folds(2, machine.columns)


@lru_cache(maxsize=4096)
def search(
    gemm: Gemm, budget_bytes: int, machine: Machine | None = None, fixed_port_bytes: int = 0
) -> Mapping | None:
    """The best mapping of `gemm` by the machine's objective (default: the least traffic)
    whose tiles fit `budget_bytes`; None if none fits.  `fixed_port_bytes`: the op's buffer
    traffic no mapping changes (small operands, the array's partial-sum folds, its writes),
    which the estimated cycles of the objectives other than dram_bytes count.

    Tiles of the loops the array unrolls are whole multiples of its width; when a buffer is
    too small for even that, tiles of any size (the array then runs partly idle, which the
    tiles' compute cycles show)."""
    found = _search(gemm, budget_bytes, machine, True, fixed_port_bytes)
    if found is None and machine is not None:
        found = _search(gemm, budget_bytes, machine, False, fixed_port_bytes)
    return found


def fitting(
    gemm: Gemm, machine: Machine, fixed_port_bytes: int = 0
) -> Callable[[int], Mapping | None]:
    """`search` of `gemm` on `machine` as a function of the budget alone (the same mapping
    for every budget): a bisection of the aligned frontier, ranked once, without the
    per-call cache lookup, which hashes the GEMM; the unaligned candidates only where no
    aligned one fits."""
    frontier = _frontier(gemm, machine, True, fixed_port_bytes)
    negated = frontier.negated_footprints.tolist()
    mappings = frontier.mappings

    def best(budget_bytes: int) -> Mapping | None:
        at = bisect_left(negated, -budget_bytes)
        if at < len(mappings):
            return mappings[at]
        return search(gemm, budget_bytes, machine, fixed_port_bytes)

    return best


def _alignment(machine: Machine | None, aligned: bool) -> tuple[int, int, int]:
    """Tile multiples the array unrolls: k (weight stationary) or m (output stationary), n."""
    if machine is None or not aligned:
        return (1, 1, 1)
    if machine.weight_stationary:
        return (1, machine.rows, machine.columns)
    return (machine.rows, 1, machine.columns)


def _revisits(
    order: tuple[int, ...],
    trips: list[Int64s],
    operands: tuple[Operand, Operand, Operand],
    tile_bytes: list[Int64s],
    accumulating: Int64s,
) -> tuple[list[Int64s], Int64s]:
    """For one loop order: how many times each operand's tiles are fetched (its multiplier),
    and the buffer footprint of every candidate tiling (double-buffered where it moves)."""
    position = {loop: depth for depth, loop in enumerate(order)}
    moving = [trips[i] > 1 for i in range(3)]
    multipliers = []
    footprint = np.zeros_like(trips[0])
    for which, relevant in enumerate(OPERAND_LOOPS):
        other = 3 - sum(relevant)
        inner = np.full_like(trips[0], -1)
        for loop in relevant:
            inner = np.where(moving[loop], np.maximum(inner, position[loop]), inner)
        multipliers.append(np.where(position[other] < inner, trips[other], 1))
        if not operands[which].resident:
            if which == C:  # accumulates at accumulator bits, drains a finished copy
                footprint += accumulating + np.where(inner >= 0, tile_bytes[C], 0)
            else:
                footprint += np.where(inner >= 0, 2, 1) * tile_bytes[which]
    return multipliers, footprint


def _fill_cycles(
    machine: Machine | None,
    compute: Int64s,
    traffic: Int64s,
    port_bytes: Int64s,
    fetched: Int64s,
    steps: Int64s,
) -> Int64s:
    """The tie-break: estimated cycles on `machine` (the slowest of array, DRAM and buffer
    port, plus the pipeline's fill and drain), or without one a fill of at most 1/64 of the
    traffic."""
    if machine is None:
        return np.maximum(fetched // steps, traffic // 64)
    bandwidth = machine.dram_bytes_per_cycle
    port = port_bytes / machine.buffer_bytes_per_cycle
    fill = (
        np.maximum(np.maximum(compute, np.ceil(traffic / bandwidth)), np.ceil(port))
        + np.ceil(fetched / steps / bandwidth)
        + -(-compute // steps)
    )
    return fill.astype(np.int64)


def _search(
    gemm: Gemm, budget_bytes: int, machine: Machine | None, aligned: bool, fixed_port_bytes: int
) -> Mapping | None:
    """The best mapping among the (aligned) candidates that fit `budget_bytes`: the first
    step of the frontier that fits."""
    frontier = _frontier(gemm, machine, aligned, fixed_port_bytes)
    at = int(np.searchsorted(frontier.negated_footprints, -budget_bytes, side="left"))
    return frontier.mappings[at] if at < len(frontier.mappings) else None


@dataclass(frozen=True)
class _Frontier:
    """Every candidate of every loop order ranked once, budget aside, by (the objective, its
    tie-break, steps, order, candidate); kept: each candidate whose footprint is below that
    of every candidate ranked before it.  The best mapping that fits a budget is the first
    of them that fits — so one frontier serves every budget (a sweep's points, the stream
    space free at each moment) where a search per budget would rank them all again."""

    negated_footprints: NDArray[np.int64]  # ascending (the footprints fall along the list)
    mappings: tuple[Mapping, ...]


@dataclass(frozen=True)
class _Candidates:
    """Every candidate tiling of one GEMM on one array, in every loop order: what each moves
    and holds, whatever the bandwidths and the objective that rank them.  Per order the
    same `count` tilings; the order-wide columns hold ORDERS[i]'s at [i·count, (i+1)·count)."""

    tiles: list[Int64s]  # per tiling (one order's)
    trips: list[Int64s]
    write: int  # the finished output's bytes to DRAM
    steps: Int64s  # order-wide from here on
    compute: Int64s  # the array cycles of each tiling
    footprint: Int64s
    read_a: Int64s
    read_b: Int64s
    partial: Int64s
    array_a: Int64s
    array: Int64s
    traffic: Int64s


@lru_cache(maxsize=48)
def _candidates_on(gemm: Gemm, array: Machine | None, aligned: bool) -> _Candidates:
    """The candidates of `gemm` on `array` (a machine of unit bandwidths: its rows, columns
    and dataflow), shared by the machines that differ from it only in bandwidths and
    objective (a sweep's bundles of one array).  Kept for a few GEMMs: each holds ~50
    columns of ~1,000 tilings."""
    tiles, trips, tile_elements, sweep_elements = _grid(gemm, _alignment(array, aligned))
    compute = (
        _tiled_compute(array, tiles, trips, gemm) if array is not None else np.zeros_like(tiles[0])
    )
    operands = (gemm.a, gemm.b, gemm.c)
    sweep_bytes = [_bytes(sweep_elements[i], operands[i].bits) for i in range(3)]
    tile_bytes = [_bytes(tile_elements[i], operands[i].bits) for i in range(3)]
    accumulating = _bytes(tile_elements[C], gemm.accumulator_bits)
    output = operands[C]
    write = (
        bits_to_bytes(output.elements * output.bits)
        if output.written and not output.resident
        else 0
    )
    steps = trips[0] * trips[1] * trips[2]
    orders = [
        _order_costs(
            order, gemm, trips, write, (sweep_bytes, sweep_elements, tile_bytes, accumulating)
        )
        for order in ORDERS
    ]
    columns = {name: np.concatenate([costs[name] for costs in orders]) for name in orders[0]}
    return _Candidates(
        tiles, trips, write, np.tile(steps, len(ORDERS)), np.tile(compute, len(ORDERS)), **columns
    )


def _order_costs(
    order: tuple[int, ...], gemm: Gemm, trips: list[Int64s], write: int, sizes: tuple
) -> dict[str, Int64s]:
    """One loop order's footprint, traffic and array reads for every candidate tiling;
    `write`: the finished output's bytes to DRAM."""
    sweep_bytes, sweep_elements, tile_bytes, accumulating = sizes
    operands = (gemm.a, gemm.b, gemm.c)
    multipliers, footprint = _revisits(order, trips, operands, tile_bytes, accumulating)
    reads = [sweep_bytes[i] * multipliers[i] * (not operands[i].resident) for i in (A, B)]
    array = [sweep_bytes[i] * multipliers[i] for i in (A, B)]
    partial_elements = multipliers[C] * sweep_elements[C] - operands[C].elements
    partial = _bytes(partial_elements, gemm.accumulator_bits) * (not operands[C].resident)
    return {
        "footprint": footprint,
        "read_a": reads[A],
        "read_b": reads[B],
        "partial": partial,
        # Buffer → array: every input tile each time the nest uses it (held or not).
        "array_a": array[A],
        "array": array[A] + array[B],
        "traffic": reads[A] + reads[B] + 2 * partial + write,
    }


def _unit_bandwidths(machine: Machine | None) -> Machine | None:
    """The machine's array alone: what the candidates depend on."""
    if machine is None:
        return None
    return Machine(machine.rows, machine.columns, machine.weight_stationary, 1.0, 1.0)


@lru_cache(maxsize=8192)
def _frontier(
    gemm: Gemm, machine: Machine | None, aligned: bool, fixed_port_bytes: int
) -> _Frontier:
    """The frontier of `gemm`'s candidates: the least-traffic mapping first (by default).

    Ties go to the fewest estimated cycles on `machine` — max(the tiles' array cycles, DRAM
    time, buffer-port time) plus the pipeline's fill and drain (the first tile's reads, the
    last tile's compute); without a machine, to a fill of at most 1/64 of the traffic, then
    the fewest steps, then the earlier loop order and candidate."""
    found = _candidates_on(gemm, _unit_bandwidths(machine), aligned)
    base = found.array + 2 * found.partial
    port = base + found.write
    if machine is not None and machine.objective.kind != DRAM_BYTES.kind:
        port = base + fixed_port_bytes  # all the buffer port serves
    fill = _fill_cycles(
        machine, found.compute, found.traffic, port, found.read_a + found.read_b, found.steps
    )
    primary, secondary = _ranked(machine, found.traffic, fill, base + found.write)
    footprint = found.footprint
    rank = np.lexsort((np.arange(len(footprint)), found.steps, secondary, primary))
    ranked = footprint[rank]
    before = np.minimum.accumulate(np.concatenate([[np.iinfo(np.int64).max], ranked[:-1]]))
    kept = rank[ranked < before]
    return _Frontier(-footprint[kept].astype(np.int64), _kept_mappings(kept.tolist(), found))


def _kept_mappings(kept: list[int], found: _Candidates) -> tuple[Mapping, ...]:
    """The Mapping of each kept candidate (its order's index × count + its own)."""
    count = len(found.tiles[0])
    mappings = []
    for entry in kept:
        order_index, choice = divmod(entry, count)
        mappings.append(
            Mapping(
                order=">".join(LOOPS[loop] for loop in ORDERS[order_index]),
                tiles=_pick(found.tiles, choice),
                trips=_pick(found.trips, choice),
                read_bytes=(int(found.read_a[entry]), int(found.read_b[entry])),
                output_write_bytes=int(found.write),
                partial_bytes=int(found.partial[entry]),
                footprint_bytes=int(found.footprint[entry]),
                array_reads=(
                    int(found.array_a[entry]),
                    int(found.array[entry] - found.array_a[entry]),
                ),
                compute_cycles=int(found.compute[entry]),
            )
        )
    return tuple(mappings)


def _ranked(
    machine: Machine | None, traffic: Int64s, fill: Int64s, port_bytes: Int64s
) -> tuple[np.ndarray, np.ndarray]:
    """(what the objective minimises, its tie-break) for every candidate tiling."""
    objective = machine.objective if machine is not None else DRAM_BYTES
    if objective.kind == "latency":
        return fill, traffic
    if objective.kind in ("energy", "edp"):
        energy = traffic * objective.dram_pj_per_byte + port_bytes * objective.buffer_pj_per_byte
        return (energy if objective.kind == "energy" else energy * fill), fill
    return traffic, fill


def _pick(columns: list[Int64s], choice: int) -> tuple[int, int, int]:
    """The m, k and n loops' values of one candidate tiling."""
    m, k, n = columns
    return int(m[choice]), int(k[choice]), int(n[choice])


def gemm_of(
    op: MatmulOp | Conv2DOp, a: Operand, b: Operand, c: Operand, accumulator_bits: int
) -> Gemm:
    """The GEMM of the op, or of one group of a grouped conv: its m, k, n, its share of
    each operand and its channels (`Mapping.repeated` then runs it for every group)."""
    groups = op.groups  # attention's products: one per example and head
    if groups == 1:
        conv = ConvGeometry.of(op) if isinstance(op, Conv2DOp) else None
        return Gemm(op.m, op.k, op.n, a, b, c, accumulator_bits, conv)
    conv = None
    if isinstance(op, Conv2DOp):
        conv = dataclasses.replace(
            ConvGeometry.of(op),
            input_channels=op.input_channels // groups,
            output_channels=op.output_channels // groups,
        )
    a, b, c = (
        dataclasses.replace(operand, elements=operand.elements // groups) for operand in (a, b, c)
    )
    return Gemm(op.m, op.k, op.n, a, b, c, accumulator_bits, conv)


def hong_kung_bound_bytes(m: int, k: int, n: int, buffer_bytes: int, bits: int) -> float:
    """A GEMM on a fast memory of S words moves at least 2·m·n·k/√S words (Hong & Kung;
    tight constant by Smith et al.), and never less than the compulsory traffic."""
    words = buffer_bytes * BITS_PER_BYTE / bits
    bound = 2 * m * n * k / math.sqrt(words)
    compulsory = m * k + k * n + m * n
    return max(bound, compulsory) * bits / BITS_PER_BYTE
