"""Hardware specs (`kind: arch`).

Every quantity carries its unit in its key.  `_bytes` and `_hz` keys also take unit strings
("256 KiB", "1 GHz"); ambiguous ones ("kB") are rejected.  Energies and areas left out (None)
come from the technology table the spec names; `hwsim.specs.resolve.resolve_energies` turns
both into per-action energies and per-component areas.  docs/arch-spec.md documents every field.

The quantity types live in `hwsim.specs.quantities` and the technology table in
`hwsim.specs.tech`; their names are importable from here too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hwsim.specs.common import FrozenModel, Name, NotBool
from hwsim.specs.quantities import BITS as BITS
from hwsim.specs.quantities import MAX_BANDWIDTH_BYTES_PER_CYCLE as MAX_BANDWIDTH_BYTES_PER_CYCLE
from hwsim.specs.quantities import MAX_BYTES as MAX_BYTES
from hwsim.specs.quantities import MAX_CLOCK_HZ as MAX_CLOCK_HZ
from hwsim.specs.quantities import MAX_ENERGY_PJ as MAX_ENERGY_PJ
from hwsim.specs.quantities import MAX_LATENCY_CYCLES as MAX_LATENCY_CYCLES
from hwsim.specs.quantities import MIN_BANDWIDTH_BYTES_PER_CYCLE as MIN_BANDWIDTH_BYTES_PER_CYCLE
from hwsim.specs.quantities import MIN_CLOCK_HZ as MIN_CLOCK_HZ
from hwsim.specs.quantities import Area, Bandwidth, Bits, Bytes, Energy, Fraction, Hertz, Latency
from hwsim.specs.quantities import ResolvedEnergy as ResolvedEnergy
from hwsim.specs.sparsity import CompressionFormat, Sparsity
from hwsim.specs.tech import ActionEnergies as ActionEnergies
from hwsim.specs.tech import TechSpec as TechSpec
from hwsim.specs.tech import sram_energy_pj_per_access as sram_energy_pj_per_access

ARCH_SCHEMA_VERSION = 1


class Substrate(StrEnum):
    VON_NEUMANN = "von_neumann"
    DISTRIBUTED = "distributed"


class Topology(StrEnum):
    MESH = "mesh"
    BUS = "bus"
    TREE = "tree"


class Dataflow(StrEnum):
    WEIGHT_STATIONARY = "weight_stationary"
    OUTPUT_STATIONARY = "output_stationary"


class BackwardTransport(StrEnum):
    """How BP's δ·Wᵀ crosses a distributed substrate (the weight-transport problem)."""

    PARTIAL_SUMS = "partial_sums"
    TRANSPOSE_WEIGHTS = "transpose_weights"


class MappingPolicy(StrEnum):
    """How neurons are placed on tiles; `colocate` groups SSDFA neurons that share an error."""

    COLOCATE = "colocate"
    ROUND_ROBIN = "round_robin"


def _bits(role: str) -> Any:
    return Field(default=16, description=f"bits per {role} element")


class Precision(FrozenModel):
    """Bits per element for each trace role; the same trace can be priced at fp32 or int8."""

    input_bits: Bits = _bits("input")
    label_bits: Bits = _bits("label")
    weight_bits: Bits = Field(
        default=16,
        description="bits per weight element; also selects "
        "the MAC energy in the tech table (mac_energy_pj)",
    )
    bias_bits: Bits = _bits("bias")
    activation_bits: Bits = Field(
        default=16,
        description="bits per activation element; also "
        "selects the vector-op energy in the tech table",
    )
    error_bits: Bits = _bits("error")
    feedback_bits: Bits = _bits("feedback-matrix")
    gradient_bits: Bits = _bits("gradient")
    optimizer_state_bits: Bits = Field(default=32, description="bits per optimizer-state element")
    accumulator_bits: Bits = Field(default=32, description="bits of a MAC's partial sum")


_OVERRIDE = "overrides the tech table's"
_AREA_OVERRIDE = "µm² of one unit; overrides the tech table's"


class Dram(FrozenModel):
    """Off-chip DRAM: input data, and (von Neumann) everything else or (distributed) spills."""

    technology: str = Field(
        default="lpddr4",
        description="key into the tech table's "
        "dram_energy_pj_per_bit (lpddr4, hbm2, hmc, gddr5, ddr3, ...)",
    )
    channels: Annotated[int, Field(ge=1, le=1024), NotBool] = Field(
        description="independent channels"
    )
    bandwidth_bytes_per_cycle: Bandwidth = Field(  # per channel
        description="peak bytes per clock cycle of ONE channel"
    )
    latency_cycles: Latency = Field(description="cycles from request to first data")
    capacity_bytes: Bytes | None = Field(
        default=None, description="total capacity; null = unlimited"
    )
    read_energy_pj_per_bit: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} dram_energy_pj_per_bit[technology]"
    )
    write_energy_pj_per_bit: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} dram_energy_pj_per_bit[technology]"
    )
    phy_area_mm2_per_channel: Area | None = Field(
        default=None, description=f"{_OVERRIDE} dram_phy_area_mm2_per_channel[technology]"
    )


class Sram(FrozenModel):
    """An on-chip SRAM: the von Neumann global buffer, or the SRAM of ONE distributed tile."""

    capacity_bytes: Bytes = Field(description="capacity of this SRAM (all banks)")
    bandwidth_bytes_per_cycle: Bandwidth = Field(
        description="peak bytes per cycle, all banks together"
    )
    banks: Annotated[int, Field(ge=1, le=65536), NotBool] = Field(
        default=1,
        description="banks; the access energy is that of one bank of capacity_bytes / banks",
    )
    read_energy_pj_per_bit: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} CACTI curve at the bank capacity"
    )
    write_energy_pj_per_bit: Energy | None = Field(
        default=None, description="default: read energy × the tech's sram_write_to_read_ratio"
    )
    leakage_pj_per_cycle: Energy | None = Field(
        default=None,
        description="leakage of this SRAM per cycle; default: the tech's "
        "sram_leakage_pj_per_cycle_per_kib × capacity in KiB",
    )

    @field_validator("banks")
    @classmethod
    def _whole_banks(cls, banks: int, info: ValidationInfo) -> int:
        capacity = info.data.get("capacity_bytes")
        if capacity is not None and capacity % banks:
            raise ValueError(f"must split capacity_bytes ({capacity}) into equal banks")
        return banks


class GlobalBuffer(Sram):
    """The von Neumann global buffer: an SRAM part of which keeps tensors between ops."""

    reuse_fraction: Fraction = Field(
        default=0.5,
        ge=0.0,
        le=0.9,
        description="share of the capacity that keeps activations, errors and gradients "
        "between the op that writes them and the ops that read them (LRU, written back to "
        "DRAM only when evicted while still needed); the rest double-buffers the streams. "
        "0 sends every tensor through DRAM",
    )


class PeArray(FrozenModel):
    """The von Neumann processing-element array."""

    rows: Annotated[int, Field(ge=1, le=16384), NotBool] = Field(description="PE rows")
    columns: Annotated[int, Field(ge=1, le=16384), NotBool] = Field(
        description="PE columns; peak MACs per cycle = rows × columns"
    )
    dataflow: Dataflow = Field(
        default=Dataflow.WEIGHT_STATIONARY, description="which operand stays in the PEs"
    )
    vector_ops_per_cycle: Annotated[int, Field(ge=1, le=2**20), NotBool] = Field(
        description="element-wise (non-MAC) operations per cycle"
    )
    mac_energy_pj: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} mac_energy_pj[precision.weight_bits]"
    )
    vector_op_energy_pj: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} vector_op_energy_pj[precision.activation_bits]"
    )
    mac_area_um2: Area | None = Field(
        default=None, description=f"{_AREA_OVERRIDE} mac_area_um2[precision.weight_bits]"
    )
    vector_op_area_um2: Area | None = Field(
        default=None,
        description=f"{_AREA_OVERRIDE} vector_op_area_um2[precision.activation_bits]",
    )


class Tiles(FrozenModel):
    """The distributed substrate's tiles: each has its own SRAM and MAC units."""

    count: Annotated[int, Field(ge=1, le=65536), NotBool] = Field(description="number of tiles")
    sram: Sram = Field(description="the SRAM of ONE tile")
    macs_per_cycle: Annotated[int, Field(ge=1, le=2**20), NotBool] = Field(
        description="peak MACs per cycle of ONE tile"
    )
    vector_ops_per_cycle: Annotated[int, Field(ge=1, le=2**20), NotBool] = Field(
        description="element-wise (non-MAC) operations per cycle of ONE tile"
    )
    mac_energy_pj: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} mac_energy_pj[precision.weight_bits]"
    )
    vector_op_energy_pj: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} vector_op_energy_pj[precision.activation_bits]"
    )
    mac_area_um2: Area | None = Field(
        default=None, description=f"{_AREA_OVERRIDE} mac_area_um2[precision.weight_bits]"
    )
    vector_op_area_um2: Area | None = Field(
        default=None,
        description=f"{_AREA_OVERRIDE} vector_op_area_um2[precision.activation_bits]",
    )


class Noc(FrozenModel):
    """The distributed substrate's network-on-chip."""

    topology: Topology = Field(description="mesh (2-D), bus (one shared medium) or tree")
    link_bandwidth_bytes_per_cycle: Bandwidth = Field(description="bytes per cycle per link")
    hop_latency_cycles: Latency = Field(
        description="cycles per hop; on a bus a hop is one tile pitch of wire, and a transfer "
        "crosses as many as the stretch of bus it drives"
    )
    multicast: bool = Field(
        default=True, description="one injection reaches many tiles (else one copy per destination)"
    )
    energy_pj_per_bit_per_hop: Energy | None = Field(
        default=None, description=f"{_OVERRIDE} noc_energy_pj_per_bit_per_hop"
    )


class Mapping(FrozenModel):
    """How a network is placed on the distributed substrate's tiles."""

    policy: MappingPolicy = Field(
        default=MappingPolicy.COLOCATE, description="how neurons are assigned to tiles"
    )
    backward: BackwardTransport = Field(
        default=BackwardTransport.PARTIAL_SUMS, description="how BP's δ·Wᵀ crosses the NoC"
    )
    allow_spill: bool = Field(
        default=True,
        description="weights and state that do not fit "
        "in tile SRAM, and activations and errors beyond a tile's "
        "reserve, live in DRAM (counted); false = an error instead",
    )
    activation_reserve_fraction: Fraction = Field(
        default=0.25,
        ge=0.0,
        lt=1.0,
        description="fraction of each tile's SRAM kept for activations and errors (and for "
        "the weights a time-shared convolution reloads)",
    )
    spread_convolutions: bool = Field(
        default=True,
        description="a convolution computes on as many tiles as pays (cut over "
        "output rows, columns, channels and input channels, time-sharing tiles beyond its own "
        "with its weights reloaded); false = its weights stay put and it computes on its "
        "storage region, one output-channel group per tile",
    )


class FeedbackWeights(StrEnum):
    STORED = "stored"
    GENERATED = "generated"


class MappingObjective(StrEnum):
    DRAM_BYTES = "dram_bytes"
    ENERGY = "energy"
    LATENCY = "latency"
    EDP = "edp"


class Schedule(FrozenModel):
    """How a training step is scheduled on the chip."""

    feedback_weights: FeedbackWeights = Field(
        default=FeedbackWeights.STORED,
        description="DFA's and SSDFA's feedback matrices B: stored (in DRAM, or resident in "
        "tile SRAM, and read where used) or generated (regenerated from a seed by a "
        "pseudo-random generator next to each neuron whenever used: no storage and no reads "
        "of B, one generator step per value at the tech table's "
        "feedback_generator_energy_pj_per_bit)",
    )

    fused_weight_update: bool = Field(
        default=True,
        description="the weight gradient is applied to the weights as its tiles "
        "finish (one read and one write of W and of the optimizer state) and never goes to "
        "DRAM; false = the gradient op writes dW to DRAM and the update reads it back",
    )

    mapping_objective: MappingObjective = Field(
        default=MappingObjective.DRAM_BYTES,
        description="what the von Neumann mapping search ranks each op's loop nests by: "
        "dram_bytes (then estimated cycles), latency (estimated cycles, then DRAM bytes), "
        "energy (the DRAM and buffer-port bytes at the tech table's pJ per byte, then "
        "cycles) or edp (that energy times the estimated cycles)",
    )


_PARTS = {
    Substrate.VON_NEUMANN: ("global_buffer", "pe_array"),
    Substrate.DISTRIBUTED: ("tiles", "noc"),
}


class ArchSpec(FrozenModel):
    """One hardware design point: a VonNeumannSpec or a DistributedSpec, chosen by its
    `substrate` (`ArchSpec.model_validate` returns the one the data names).  What the two
    share lives here; each substrate's parts are required fields of its own class."""

    SUBSTRATE: ClassVar[Substrate]
    VARIANTS: ClassVar[tuple[type[ArchSpec], ...]] = ()  # what a file may hold, by substrate

    schema_version: Literal[1] = Field(description="format version, 1")
    kind: Literal["arch"] = Field(description="file kind, 'arch'")
    name: Name = Field(description="identifier: a letter, then letters, digits, _")
    description: str = Field(default="", description="free text")
    substrate: Substrate = Field(description="von_neumann or distributed")
    clock_hz: Hertz = Field(description="clock frequency; every _cycles figure counts these")
    tech: str = Field(
        default="45nm",
        description="a shipped tech name (arch_specs/tech/) or a .yaml path relative to this file",
    )
    precision: Precision = Field(default=Precision(), description="bits per element by role")
    dram: Dram
    mapping: Mapping = Field(default=Mapping(), description="distributed placement policy")
    schedule: Schedule = Field(default=Schedule(), description="how the step is scheduled")
    sparsity: Sparsity = Field(
        default=Sparsity(),
        description="compression and zero skipping from the trace's measured densities "
        "(default: dense, nothing skipped)",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _by_substrate(cls, data: Any, handler: Any) -> Any:
        """Validate as the substrate's own class, which names a missing or foreign part."""
        if cls is ArchSpec and isinstance(data, dict):
            variant = _VARIANTS.get(str(data.get("substrate")))
            if variant is not None:
                return variant.model_validate(data)
            # No such substrate: say so, not that the parts it would have are unknown keys.
            parts = {part for names in _PARTS.values() for part in names}
            return handler({key: value for key, value in data.items() if key not in parts})
        return handler(data)

    @model_validator(mode="before")
    @classmethod
    def _substrate_parts(cls, data: Any) -> Any:
        if cls is ArchSpec or not isinstance(data, dict):
            return data
        substrate = cls.SUBSTRATE
        other = next(kind for kind in Substrate if kind != substrate)
        known = set(cls.model_fields) | set(_PARTS[other])
        if any(key not in known for key in data):  # a typo: its own message names it first
            return data
        missing = [key for key in _PARTS[substrate] if data.get(key) is None]
        extra = [key for key in _PARTS[other] if data.get(key) is not None]
        problems = []
        if missing:
            problems.append(f"{substrate.value} needs {', '.join(missing)}")
        if extra:
            problems.append(
                f"{substrate.value} has no {', '.join(extra)} "
                f"(remove it or set substrate: {other.value})"
            )
        if problems:
            raise ValueError("substrate: " + "; ".join(problems))
        return {key: value for key, value in data.items() if key not in _PARTS[other]}

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs per cycle of the whole chip: rows × columns, or tiles × MACs per tile."""
        raise NotImplementedError

    @property
    def dram_bandwidth_bytes_per_cycle(self) -> float:
        """Peak DRAM bytes per cycle over all channels."""
        return self.dram.channels * self.dram.bandwidth_bytes_per_cycle

    @property
    def sram_bytes(self) -> int:
        """On-chip SRAM of the whole chip: the global buffer, or tile SRAM × tiles."""
        raise NotImplementedError


class VonNeumannSpec(ArchSpec):
    """DRAM, a global buffer and a PE array (`substrate: von_neumann`)."""

    SUBSTRATE: ClassVar[Substrate] = Substrate.VON_NEUMANN
    VARIANTS: ClassVar[tuple[type[ArchSpec], ...]] = ()
    substrate: Literal[Substrate.VON_NEUMANN] = Field(description="von_neumann or distributed")
    global_buffer: GlobalBuffer = Field(description="von_neumann only")
    pe_array: PeArray = Field(description="von_neumann only")

    @model_validator(mode="after")
    def _no_noc(self) -> VonNeumannSpec:
        noc = self.sparsity.compression.noc
        if noc != CompressionFormat.NONE:
            raise ValueError(
                f"sparsity.compression.noc: von_neumann has no network-on-chip (got {noc.value})"
            )
        return self

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.pe_array.rows * self.pe_array.columns

    @property
    def sram_bytes(self) -> int:
        return self.global_buffer.capacity_bytes


class DistributedSpec(ArchSpec):
    """Tiles with their own SRAM, joined by a network-on-chip (`substrate: distributed`)."""

    SUBSTRATE: ClassVar[Substrate] = Substrate.DISTRIBUTED
    VARIANTS: ClassVar[tuple[type[ArchSpec], ...]] = ()
    substrate: Literal[Substrate.DISTRIBUTED] = Field(description="von_neumann or distributed")
    tiles: Tiles = Field(description="distributed only")
    noc: Noc = Field(description="distributed only")

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.tiles.count * self.tiles.macs_per_cycle

    @property
    def sram_bytes(self) -> int:
        return self.tiles.count * self.tiles.sram.capacity_bytes


ArchSpec.VARIANTS = (VonNeumannSpec, DistributedSpec)
_VARIANTS: dict[str, type[ArchSpec]] = {
    variant.SUBSTRATE.value: variant for variant in ArchSpec.VARIANTS
}
# The file schema (`hwsim schema arch`): one of the two, by `substrate`.
ArchFile = Annotated[VonNeumannSpec | DistributedSpec, Field(discriminator="substrate")]
