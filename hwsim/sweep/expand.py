"""A sweep file → its points (validated arch specs) and workloads (traces), each keyed by a
content hash, before anything runs.

Order: base specs in file order; within a base, the grid in row-major order (the first axis
outermost, the last one fastest; a zip group is one dimension); a seeded sample keeps grid
order.  Every point is validated as a spec file is, and every problem of every point is
reported at once, in one SpecError naming the sweep file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from hwsim import __version__
from hwsim.errors import HwsimError, SpecError
from hwsim.io.arch import tech_path
from hwsim.io.networks import load_network
from hwsim.io.overrides import apply_overrides, check_path, load_arch_mapping
from hwsim.io.traces import read_trace
from hwsim.io.yamlio import load_model
from hwsim.specs.arch import ActionEnergies, ArchSpec, TechSpec
from hwsim.specs.common import format_validation_error, raise_problems
from hwsim.specs.resolve import resolve_energies
from hwsim.specs.sweep import Axis, SweepSpec
from hwsim.specs.trace import Algorithm, Trace
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace

KEY_HEX_DIGITS = 20  # 80 bits: collisions are out of reach for any sweep
# Beyond this, a grid is sampled: every point is validated and held before any runs (~0.13 ms
# and ~7.5 KB a point here), so 50,000 points take ~6.6 s and ~460 MB before the first row.
MAX_POINTS = 50_000
_NUMPY_CHOICE_LIMIT = 2**62  # Generator.choice draws from a C long range


def content_key(*parts: Any) -> str:
    """A short hex digest of JSON-serialisable parts (stable across runs and machines)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_HEX_DIGITS]


@dataclass(frozen=True)
class Workload:
    """One trace every point is priced on."""

    label: str
    source: str  # the trace file, or "shape-only"
    trace: Trace = field(repr=False)
    key: str

    def columns(self) -> dict[str, Any]:
        header = self.trace.header
        sparse = [
            info.nonzeros_per_neuron
            for info in header.feedback
            if info.nonzeros_per_neuron is not None
        ]
        return {
            "workload": self.label,
            "network": header.network,
            "algorithm": header.algorithm.value,
            "batch_size": header.batch_size,
            "nonzeros_per_neuron": sparse[0] if sparse else None,
            "shape_only": self.source == "shape-only",
        }


@dataclass(frozen=True)
class Point:
    """One validated design point: a base spec with the axis values applied."""

    index: int
    base: str
    values: dict[str, Any]
    arch: ArchSpec
    energies: ActionEnergies
    key: str


@dataclass(frozen=True)
class Row:
    """A point priced on a workload: one row of the results table."""

    point: Point
    workload: Workload
    workload_index: int
    key: str


@dataclass(frozen=True)
class Expansion:
    spec: SweepSpec
    source: str
    points: list[Point]
    workloads: list[Workload]

    @property
    def rows(self) -> list[Row]:
        return [
            Row(point, workload, index, content_key(point.key, workload.key, __version__))
            for point in self.points
            for index, workload in enumerate(self.workloads)
        ]


def _relative(name_or_path: str, folder: Path) -> str:
    """Paths in a sweep file are relative to its folder; bare names stay names."""
    if (
        Path(name_or_path).suffix in (".yaml", ".yml", ".gz", ".jsonl", ".onnx")
        and not Path(name_or_path).is_absolute()
    ):
        return str(folder / name_or_path)
    return name_or_path


def grid_size(axes: list[Axis]) -> int:
    return math.prod(axis.length for axis in axes)


def grid_indices(spec: SweepSpec, source: str = "sweep") -> list[int]:
    """Indices into the grid of every point of one base: all, or a seeded sample in order."""
    total = grid_size(spec.axes)
    wanted = total if spec.sampling is None else min(total, spec.sampling.samples)
    if wanted * len(spec.base) > MAX_POINTS:
        raise SpecError(
            f"{source}: {'sampling.samples' if spec.sampling else 'axes'}: "
            f"{wanted * len(spec.base):,} points is more than {MAX_POINTS:,}; "
            f"draw fewer with sampling: {{samples: N, seed: S}}"
        )
    if spec.sampling is None or spec.sampling.samples >= total:
        return list(range(total))
    rng = np.random.default_rng(spec.sampling.seed)
    if total <= _NUMPY_CHOICE_LIMIT:
        return sorted(int(i) for i in rng.choice(total, size=spec.sampling.samples, replace=False))
    return _sample_huge(rng, spec.axes, spec.sampling.samples)


def _sample_huge(rng: np.random.Generator, axes: list[Axis], samples: int) -> list[int]:
    """`samples` distinct grid indices of a grid too large for numpy's integers: each index
    drawn digit by digit (one uniform position per axis, so uniform over the grid), repeats
    drawn again; seeded, so the same seed draws the same points."""
    chosen: set[int] = set()
    while len(chosen) < samples:
        index = 0
        for axis in axes:
            index = index * axis.length + int(rng.integers(axis.length))
        chosen.add(index)
    return sorted(chosen)


def grid_values(axes: list[Axis], index: int) -> dict[str, Any]:
    """The axis values of grid point `index` (row-major: the last axis varies fastest)."""
    values: dict[str, Any] = {}
    for axis in reversed(axes):
        index, position = divmod(index, axis.length)
        for member in axis.members:
            path, choices = member.plain
            values[path] = choices[position]
    return {path: values[path] for axis in axes for path, _ in (m.plain for m in axis.members)}


def _axis_problems(spec: SweepSpec) -> list[str]:
    problems = []
    for i, axis in enumerate(spec.axes):
        members = (
            [(f"axes.{i}.zip.{j}", m) for j, m in enumerate(axis.zip)]
            if axis.zip is not None
            else [(f"axes.{i}", axis)]
        )
        for where, member in members:
            path = member.plain[0]
            problem = check_path(path)
            if problem is not None:
                problems.append(f"{where}.path: {path}: {problem}")
    return problems


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{path}={value!r}" for path, value in values.items())


class _Points:
    """Validates points of one sweep, collecting problems (repeated ones named once)."""

    def __init__(self) -> None:
        self.problems: dict[str, list[str]] = {}
        self._techs: dict[tuple[str, Path], TechSpec] = {}

    def _tech(self, arch: ArchSpec, path: Path) -> TechSpec:
        key = (arch.tech, path)  # the same tech name from the same base: the same table
        if key not in self._techs:
            self._techs[key] = load_model(TechSpec, tech_path(arch, path), "tech")
        return self._techs[key]

    def build(
        self, index: int, base: str, path: Path, data: dict, values: dict[str, Any]
    ) -> Point | None:
        where = f"point {index} ({base}{'; ' + _describe(values) if values else ''})"
        found: list[str] = []
        try:
            arch = ArchSpec.model_validate(apply_overrides(data, values.items()))
        except ValidationError as exc:
            found = format_validation_error(exc, ArchSpec)
        else:
            try:
                energies = resolve_energies(arch, self._tech(arch, path), source="\0")
            except HwsimError as exc:
                found = [line.removeprefix("\0: ") for line in str(exc).splitlines()]
        for problem in found:
            self.problems.setdefault(problem, []).append(where)
        if found:
            return None
        key = content_key(arch.model_dump(mode="json"), energies.model_dump(mode="json"))
        return Point(index, base, values, arch, energies, key)

    def messages(self) -> list[str]:
        lines = []
        for problem, where in self.problems.items():
            more = len(where) - 1
            tail = f" (and {more} more point{'s' if more > 1 else ''})" if more else ""
            lines.append(f"{where[0]}: {problem}{tail}")
        return lines


def _network_workloads(spec: SweepSpec, folder: Path, source: str) -> Iterator[Workload]:
    for i, item in enumerate(spec.workloads.networks):
        where = f"{source}: workloads.networks.{i}"
        try:
            network = load_network(_relative(item.network, folder))
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        for algorithm in item.algorithms:
            sparse = algorithm == Algorithm.SSDFA
            none: list[int | None] = [None]
            counts = (list(item.nonzeros_per_neuron or []) or none) if sparse else none
            for batch in item.batch_sizes or [network.training.batch_size]:
                for s in counts:
                    config = TrainConfig.from_network(
                        network,
                        algorithm,
                        epochs=1,
                        batch_size=batch,
                        seed=item.seed,
                        optimizer=item.optimizer,
                        nonzeros_per_neuron=s,
                        rank=None if algorithm == Algorithm.BP else item.rank,
                    )
                    try:
                        trace = shape_only_trace(network, config)
                    except SpecError as exc:
                        raise SpecError(f"{where}: {exc}") from None
                    label = f"{network.name}_{algorithm.value}_b{batch}"
                    if sparse:
                        label += f"_s{config.nonzeros_per_neuron}"
                    if config.rank is not None:
                        label += f"_r{config.rank}"
                    yield Workload(
                        label, "shape-only", trace, content_key(trace.model_dump(mode="json"))
                    )


def load_workloads(spec: SweepSpec, folder: Path, source: str) -> list[Workload]:
    """Trace files (read and validated), then networks traced shape-only."""
    workloads = []
    for name in spec.workloads.traces:
        path = Path(_relative(name, folder))
        trace = read_trace(path)
        label = path.name.removesuffix(".gz").removesuffix(".jsonl")
        workloads.append(
            Workload(label, str(path), trace, content_key(trace.model_dump(mode="json")))
        )
    workloads.extend(_network_workloads(spec, folder, source))
    labels = [workload.label for workload in workloads]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise SpecError(f"{source}: workloads: each workload once; repeated: {', '.join(repeated)}")
    return workloads


def load_sweep_spec(path: str | Path) -> SweepSpec:
    return load_model(SweepSpec, path, "sweep")


def expand(sweep: SweepSpec | str | Path) -> Expansion:
    """Validate every point and load every workload of a sweep (a file, or a model whose
    relative paths are taken from the working directory)."""
    if isinstance(sweep, SweepSpec):
        spec, folder, source = sweep, Path.cwd(), f"sweep {sweep.name}"
    else:
        spec, folder, source = load_sweep_spec(sweep), Path(sweep).parent, str(sweep)
    raise_problems(source, _axis_problems(spec))
    builder = _Points()
    points: list[Point] = []
    indices = grid_indices(spec, source)
    count = 0
    for base in spec.base:
        path, data = load_arch_mapping(_relative(base, folder))
        for grid_index in indices:
            point = builder.build(count, path.stem, path, data, grid_values(spec.axes, grid_index))
            count += 1
            if point is not None:
                points.append(point)
    raise_problems(source, builder.messages())
    return Expansion(spec, source, points, load_workloads(spec, folder, source))
