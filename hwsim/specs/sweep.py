"""Sweep files (`kind: sweep`): base specs, workloads, axes and the metrics to keep.

A sweep expands into points: every base spec × every combination of the axes (a grid product,
`zip` groups advancing together, or a seeded random sample of that grid), each point priced on
every workload.  Axis values are plain YAML values applied to the base spec's YAML at a dotted
path before validation, so a point is checked exactly as a spec file is.  docs/sweep-format.md
documents every field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, NonNegativeInt, PositiveInt, model_validator

from hwsim.specs.common import FrozenModel
from hwsim.specs.network import Name, OptimizerName
from hwsim.specs.trace import Algorithm

SWEEP_SCHEMA_VERSION = 1
DOTTED_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
DottedPath = Annotated[
    str,
    Field(
        pattern=DOTTED_PATH_PATTERN,
        description=("dotted path into the arch spec's YAML, e.g. global_buffer.capacity_bytes"),
    ),
]


class Metric(StrEnum):
    """Per-example figures of `hwsim simulate --format json` (the sweep table's columns)."""

    MACS = "macs"
    CYCLES = "cycles"
    LATENCY_S = "latency_s"
    DRAM_READ_BYTES = "dram_read_bytes"
    DRAM_WRITE_BYTES = "dram_write_bytes"
    SRAM_READ_BYTES = "sram_read_bytes"
    SRAM_WRITE_BYTES = "sram_write_bytes"
    NOC_BYTES = "noc_bytes"
    NOC_INJECTED_BYTES = "noc_injected_bytes"
    NOC_DELIVERED_BYTES = "noc_delivered_bytes"
    NOC_BYTE_HOPS = "noc_byte_hops"
    OFF_TILE_BYTES = "off_tile_bytes"
    LEARNING_OFF_TILE_BYTES = "learning_off_tile_bytes"
    ENERGY_PJ = "energy_pj"
    AREA_MM2 = "area_mm2"  # the design point's, not per example (hwsim.specs.area)


def _as_list(value: Any) -> Any:
    """A single entry written without brackets (`base: von_neumann`) is a list of one."""
    return (
        [value] if isinstance(value, str | int | float) and not isinstance(value, bool) else value
    )


class Axis(FrozenModel):
    """One swept field (`path` and `values`), or a `zip` group of fields that advance together."""

    path: DottedPath | None = None
    values: list[Any] | None = Field(
        default=None, min_length=1, description="the values the field takes, in order"
    )
    zip: list[Axis] | None = Field(
        default=None,
        min_length=2,
        description=(
            "fields that advance together (one dimension of the grid); equal numbers of values"
        ),
    )

    @model_validator(mode="after")
    def _one_form(self) -> Axis:
        if self.zip is not None:
            if self.path is not None or self.values is not None:
                raise ValueError(
                    "an axis is either 'path' with 'values' or a 'zip' group, not both"
                )
            if any(member.zip is not None for member in self.zip):
                raise ValueError("zip: a zip group holds plain axes, not other zip groups")
            lengths = [len(member.values or ()) for member in self.zip]
            if len(set(lengths)) > 1:
                paths = ", ".join(f"{m.path} ({n})" for m, n in zip(self.zip, lengths, strict=True))
                raise ValueError(f"zip: every axis needs the same number of values (got {paths})")
            return self
        if self.path is None or self.values is None:
            raise ValueError("an axis needs 'path' and 'values' (or a 'zip' list of axes)")
        return self

    @property
    def members(self) -> list[Axis]:
        """The plain axes of this dimension: itself, or the members of its zip group."""
        return list(self.zip) if self.zip is not None else [self]

    @property
    def plain(self) -> tuple[str, list[Any]]:
        """A plain axis's (path, values); validation sets both on every plain axis."""
        if self.path is None or self.values is None:
            raise ValueError("a zip group has no single path and values")
        return self.path, self.values

    @property
    def length(self) -> int:
        return len(self.members[0].values or ())


class NetworkWorkload(FrozenModel):
    """Networks traced shape-only (no numpy step) under each rule and batch size."""

    network: str = Field(
        min_length=1,
        description="shipped network name, a network YAML path or an ONNX model (relative to "
        "the sweep file)",
    )
    algorithms: list[Algorithm] = Field(
        default=[Algorithm.BP, Algorithm.DFA, Algorithm.SSDFA],
        min_length=1,
        description="learning rules",
    )
    batch_sizes: list[PositiveInt] | None = Field(
        default=None, min_length=1, description="examples per step (default: the network's)"
    )
    nonzeros_per_neuron: list[PositiveInt] | None = Field(
        default=None,
        min_length=1,
        description="ssdfa: feedback non-zeros per neuron s, one "
        "workload each (default: the network's)",
    )
    rank: PositiveInt | None = Field(default=None, description="dfa/ssdfa: feedback rank")
    optimizer: OptimizerName | None = Field(
        default=None, description="sgd or adam (default: the network's)"
    )
    seed: int = Field(default=0, description="seed recorded in the trace header")


class Workloads(FrozenModel):
    """What each point is priced on: trace files, and networks traced shape-only."""

    traces: list[str] = Field(
        default=[], description="trace files (.jsonl[.gz]), relative to the sweep file"
    )
    networks: list[NetworkWorkload] = Field(
        default=[], description="networks × rules × batch sizes, traced shape-only"
    )

    @model_validator(mode="after")
    def _something(self) -> Workloads:
        if not self.traces and not self.networks:
            raise ValueError("workloads: give at least one of 'traces' or 'networks'")
        return self


class Sampling(FrozenModel):
    """A seeded random sample of the grid instead of all of it."""

    samples: PositiveInt = Field(
        description="points drawn per base spec, without replacement "
        "(all of the grid if it has fewer)"
    )
    seed: NonNegativeInt = Field(default=0, description="seed of the draw")


# What a sweep file may write for `base`: one name, or a list of at least one.
_BASES = str | Annotated[list[str], Field(min_length=1)]


class SweepSpec(FrozenModel):
    """A design-space sweep over arch specs."""

    schema_version: Literal[1] = Field(description="format version, 1")
    kind: Literal["sweep"] = Field(description="file kind, 'sweep'")
    name: Name = Field(description="identifier: a letter, then letters, digits, _")
    description: str = Field(default="", description="free text")
    base: Annotated[list[str], BeforeValidator(_as_list, json_schema_input_type=_BASES)] = Field(
        min_length=1,
        description="arch specs the axes modify: shipped names or YAML paths "
        "(relative to the sweep file)",
    )
    workloads: Workloads
    axes: list[Axis] = Field(default=[], description="grid dimensions, outermost first")
    sampling: Sampling | None = Field(default=None, description="draw a random subset of the grid")
    metrics: list[Metric] = Field(
        default=list(Metric), min_length=1, description="per-example figures kept in the table"
    )

    @model_validator(mode="after")
    def _distinct_paths(self) -> SweepSpec:
        paths = self.axis_paths
        repeated = sorted({path for path in paths if paths.count(path) > 1})
        if repeated:
            raise ValueError(f"axes: each path may be swept once; repeated: {', '.join(repeated)}")
        return self

    @property
    def axis_paths(self) -> list[str]:
        """The swept paths (every plain axis has one: `Axis._one_form` checks)."""
        return [
            member.path for axis in self.axes for member in axis.members if member.path is not None
        ]
