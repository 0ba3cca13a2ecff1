"""The quantity types of hardware specs and technology tables.

Every quantity carries its unit in its key and a physically sensible range.  `Bytes` and `Hertz`
also take unit strings ("256 KiB", "1 GHz"); ambiguous ones ("kB") are rejected.
docs/arch-spec.md documents the ranges.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from hwsim.specs.common import NotBool, finite_range
from hwsim.units import BYTES_PATTERN, HERTZ_PATTERN, parse_bytes, parse_hertz

# Physically sensible ranges: wide enough for any real design, narrow enough that no count,
# cycle or energy overflows a 64-bit table column or prints as Infinity.  docs/arch-spec.md.
MAX_BYTES = 2**50  # 1 PiB
MIN_CLOCK_HZ, MAX_CLOCK_HZ = 1e3, 1e11  # 1 kHz … 100 GHz
MIN_BANDWIDTH_BYTES_PER_CYCLE, MAX_BANDWIDTH_BYTES_PER_CYCLE = 1e-3, 2.0**20
MAX_LATENCY_CYCLES = 10**6
MAX_ENERGY_PJ = 1e6  # any one action, per bit or per access or per cycle


def _plain_bandwidth(value: object) -> object:
    if isinstance(value, str):
        raise ValueError(
            f"bandwidths are a plain number of bytes per cycle, without a unit: "
            f"bytes per second / clock_hz (got {value!r})"
        )
    return value


Bandwidth = Annotated[
    float,
    finite_range(ge=MIN_BANDWIDTH_BYTES_PER_CYCLE, le=MAX_BANDWIDTH_BYTES_PER_CYCLE),
    BeforeValidator(_plain_bandwidth),
    NotBool,
]
Latency = Annotated[int, Field(ge=0, le=MAX_LATENCY_CYCLES), NotBool]
Fraction = Annotated[float, NotBool]
# The JSON Schema shows what a file may hold (a number or a unit string), not the parsed type.
Bytes = Annotated[
    int,
    BeforeValidator(parse_bytes),
    Field(gt=0, le=MAX_BYTES),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_BYTES},
                {
                    "type": "string",
                    "pattern": BYTES_PATTERN,
                    "examples": ["512 B", "256 KiB", "4 GiB"],
                },
            ]
        },
        mode="validation",
    ),
]
Hertz = Annotated[
    float,
    BeforeValidator(parse_hertz),
    Field(ge=MIN_CLOCK_HZ, le=MAX_CLOCK_HZ),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": MIN_CLOCK_HZ, "maximum": MAX_CLOCK_HZ},
                {"type": "string", "pattern": HERTZ_PATTERN, "examples": ["1 GHz", "800 MHz"]},
            ]
        },
        mode="validation",
    ),
]
Energy = Annotated[float, finite_range(ge=0, le=MAX_ENERGY_PJ), NotBool]
ResolvedEnergy = Annotated[float, finite_range(ge=0)]  # whole-chip leakage can exceed the bound
MAX_AREA_UM2 = 1e9  # any one unit's area: 1,000 mm²
Area = Annotated[float, finite_range(gt=0, le=MAX_AREA_UM2), NotBool]
Bits = Literal[4, 8, 16, 32, 64]
BITS = (4, 8, 16, 32, 64)
