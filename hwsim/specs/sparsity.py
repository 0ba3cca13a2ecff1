"""The `sparsity:` section of an arch spec: how the chip treats the zeros a trace measured.

Compression stores the operands of `compressed_roles` in a sparse format at each level that
names one (DRAM, the NoC, on-chip SRAM); zero skipping gates the MACs whose operand of a
`skip_zero_macs` role is zero.  The defaults change nothing.  docs/model.md has the formulas
(hwsim.sim.sparsity computes them), docs/arch-spec.md the fields.
"""

from __future__ import annotations

import difflib
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from hwsim.specs.common import FrozenModel, NotBool
from hwsim.specs.vocab import Role


class CompressionFormat(StrEnum):
    """How a level stores an operand: dense, or one of three sparse formats."""

    NONE = "none"
    BITMASK = "bitmask"
    RLE = "rle"
    CSR = "csr"


def _member_of(enum: type[StrEnum], noun: str) -> Any:
    """A BeforeValidator: a name not in `enum` is refused with the nearest member."""
    names = [member.value for member in enum]

    def check(value: Any) -> Any:
        if isinstance(value, str) and value not in names:
            near = difflib.get_close_matches(value, names, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ValueError(f"unknown {noun} (known: {', '.join(names)}){hint} (got {value!r})")
        return value

    return BeforeValidator(check)


Level = Annotated[CompressionFormat, _member_of(CompressionFormat, "format")]
RoleName = Annotated[Role, _member_of(Role, "role")]


class Compression(FrozenModel):
    """The format of the compressed roles at each level of the memory hierarchy."""

    dram: Level = Field(
        default=CompressionFormat.NONE,
        description="how compressed roles are stored in DRAM (and so move to and from it): "
        "none, bitmask, rle or csr",
    )
    noc: Level = Field(
        default=CompressionFormat.NONE,
        description="how compressed roles cross the network-on-chip (distributed only; "
        "decompressed as they arrive in a tile)",
    )
    sram: Level = Field(
        default=CompressionFormat.NONE,
        description="how compressed roles are held in on-chip SRAM (the global buffer, the "
        "tiles): their reads and writes take the format's bytes; capacity is planned dense",
    )


class Sparsity(FrozenModel):
    """Compression and zero skipping from the densities the trainer measured."""

    compression: Compression = Field(
        default=Compression(), description="sparse format per level (none = dense)"
    )
    compressed_roles: tuple[RoleName, ...] = Field(
        default=(Role.ACTIVATION, Role.ERROR),
        description="the roles stored in the levels' formats; the others stay dense",
    )
    rle_run_bits: Annotated[int, Field(ge=1, le=16), NotBool] = Field(
        default=5, description="rle: bits of a zero-run field (1–16)"
    )
    skip_zero_macs: tuple[RoleName, ...] = Field(
        default=(),
        description="roles whose zeros gate a MAC (a matmul's or conv's operands in slots a "
        "and b, a gather's reads): its energy is not spent",
    )
    skip_cycles: bool = Field(
        default=False, description="skipped MACs also save the op's compute cycles"
    )

    @field_validator("compressed_roles")
    @classmethod
    def _feedback_is_sparse_already(cls, roles: tuple[Role, ...]) -> tuple[Role, ...]:
        if Role.FEEDBACK in roles:
            raise ValueError(
                "feedback is stored as its non-zeros already (SSDFA's B: s values and "
                "indices per neuron; DFA's B is dense) (got feedback)"
            )
        return roles

    @field_validator("skip_cycles")
    @classmethod
    def _skip_cycles_needs_roles(cls, skip_cycles: bool, info: ValidationInfo) -> bool:
        if skip_cycles and not info.data.get("skip_zero_macs", ()):
            raise ValueError("true needs roles in sparsity.skip_zero_macs to skip (got true)")
        return skip_cycles

    @property
    def compresses(self) -> bool:
        """Some level stores some role compressed."""
        levels = (self.compression.dram, self.compression.noc, self.compression.sram)
        return bool(self.compressed_roles) and any(
            level != CompressionFormat.NONE for level in levels
        )

    @property
    def active(self) -> bool:
        """Anything differs from a dense chip."""
        return self.compresses or bool(self.skip_zero_macs)
