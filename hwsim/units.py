"""Unit constants, conversions and the parsers of unit strings.  The only module that holds
1024 and 1e9, and the 8 of bits → bytes (`bits_to_bytes`).

`parse_bytes` and `parse_hertz` are pydantic `BeforeValidator`s: numbers pass through, strings
with an explicit unit ("256 KiB", "1.5 GHz") are converted, and ambiguous units ("kB", "MB",
"k") are rejected, because a reader cannot tell whether they mean 1000 or 1024.
"""

from __future__ import annotations

import difflib
import math
import re
from fractions import Fraction
from typing import Any, Protocol, TypeVar, overload

KIB_BYTES = 1024
MIB_BYTES = 1024 * KIB_BYTES
GIB_BYTES = 1024 * MIB_BYTES
TIB_BYTES = 1024 * GIB_BYTES
KHZ_HZ = 1e3
MHZ_HZ = 1e6
GHZ_HZ = 1e9
BITS_PER_BYTE = 8
UM2_PER_MM2 = 1e6  # square micrometres in a square millimetre

BYTE_UNITS = {"B": 1, "KiB": KIB_BYTES, "MiB": MIB_BYTES, "GiB": GIB_BYTES, "TiB": TIB_BYTES}
HERTZ_UNITS = {"Hz": 1, "kHz": int(KHZ_HZ), "MHz": int(MHZ_HZ), "GHz": int(GHZ_HZ)}
# Decimal-or-binary prefixes a reader cannot resolve, and what to write instead.
_AMBIGUOUS_BYTES = {
    "k": "KiB",
    "K": "KiB",
    "kB": "KiB",
    "KB": "KiB",
    "kb": "KiB",
    "M": "MiB",
    "MB": "MiB",
    "Mb": "MiB",
    "G": "GiB",
    "GB": "GiB",
    "Gb": "GiB",
    "T": "TiB",
    "TB": "TiB",
}
_AMBIGUOUS_HERTZ = {"k": "kHz", "K": "kHz", "M": "MHz", "G": "GHz"}
# JSON Schema patterns of the strings the parsers accept (editors flag "256 kB" as you type).
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
BYTES_PATTERN = rf"^\s*{_NUMBER}\s*(?:{'|'.join(BYTE_UNITS)})?\s*$"
HERTZ_PATTERN = rf"^\s*{_NUMBER}\s*(?:{'|'.join(HERTZ_UNITS)})?\s*$"
_MAX_EXPONENT = 30  # exact arithmetic on 1e999999999 would never finish
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-z]*)\s*$")


class IntArray(Protocol):
    """What `bits_to_bytes` needs of a numpy integer array (units does not import numpy)."""

    @property
    def dtype(self) -> Any: ...
    def __floordiv__(self, other: int, /) -> Any: ...
    def __mod__(self, other: int, /) -> Any: ...


IntArrayT = TypeVar("IntArrayT", bound=IntArray)


@overload
def bits_to_bytes(bits: int) -> int: ...


@overload
def bits_to_bytes(bits: IntArrayT) -> IntArrayT: ...


def bits_to_bytes(bits: int | IntArray) -> int | IntArray:
    """Whole bytes that hold `bits` bits: ⌈bits / 8⌉, in exact integer arithmetic.

    Rounds up: the bytes moved or stored never hold fewer bits than the data (1 bit is
    1 byte, 20 bits are 3).  Takes an int or a numpy integer array (element-wise, same
    dtype); a float or a float array is a TypeError, never a silently rounded count.
    """
    if not isinstance(bits, int):
        kind = getattr(getattr(bits, "dtype", None), "kind", "")
        if kind not in ("i", "u"):
            raise TypeError(f"bits_to_bytes needs an int or an integer array, got {bits!r}")
    # floor + 1 when bits remain: no negation, so unsigned arrays cannot wrap around
    return bits // BITS_PER_BYTE + (bits % BITS_PER_BYTE > 0)


def _split(text: str, example: str) -> tuple[Fraction, str]:
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"expected a number with an optional unit, like '{example}'")
    number = match.group(1)
    exponent = re.search(r"[eE]([+-]?\d+)$", number)
    if exponent and abs(int(exponent.group(1))) > _MAX_EXPONENT:
        raise ValueError(f"number out of range (exponent beyond ±{_MAX_EXPONENT})")
    return Fraction(number), match.group(2)


def _unknown_unit(unit: str, units: dict[str, int]) -> ValueError:
    by_case = {name.lower(): name for name in units}
    near = by_case.get(unit.lower()) or next(iter(difflib.get_close_matches(unit, units, 1)), None)
    hint = f" (did you mean '{near}'?)" if near else ""
    return ValueError(f"unknown unit '{unit}'{hint}: use {', '.join(units)} or a plain number")


def _scale(
    text: str,
    units: dict[str, int],
    ambiguous: dict[str, str],
    plain: str,
    example: str,
    show_size: bool,
) -> Fraction:
    number, unit = _split(text, example)
    if not unit:
        return number
    if unit in units:
        return number * units[unit]
    if unit in ambiguous:
        better = ambiguous[unit]
        size = f" ({units[better]} {plain})" if show_size else ""
        raise ValueError(
            f"ambiguous unit '{unit}': write {better}{size} or a plain number of {plain}"
        )
    raise _unknown_unit(unit, units)


def _finite_number(value: object, what: str, example: str) -> int | float | str:
    """`value` itself, if it is a number (not true/false, inf or nan) or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number of {what} or a string like '{example}'")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number of {what}")
    return value


def parse_bytes(value: object) -> object:
    """A byte count from an int, a whole float, or a string: "512 B", "256 KiB", "4 GiB", "1024".

    Returns an int; a count that is not whole raises ValueError, as do ambiguous units ("kB").
    """
    number = _finite_number(value, "bytes", "256 KiB")
    if isinstance(number, int):
        return number
    if isinstance(number, float):
        exact = Fraction(number)
    else:
        exact = _scale(number, BYTE_UNITS, _AMBIGUOUS_BYTES, "bytes", "256 KiB", True)
    if exact.denominator != 1:
        raise ValueError("must be a whole number of bytes")
    return int(exact)


def parse_hertz(value: object) -> object:
    """A frequency in hertz from a number or a string: "1 GHz", "800 MHz", "1e9 Hz", "1e9"."""
    number = _finite_number(value, "hertz", "1 GHz")
    if isinstance(number, int | float):
        return float(number)
    return float(_scale(number, HERTZ_UNITS, _AMBIGUOUS_HERTZ, "hertz", "1 GHz", False))


def _format(value: float, units: dict[str, int]) -> str:
    name, size = next(
        ((name, size) for name, size in reversed(units.items()) if abs(value) >= size),
        next(iter(units.items())),
    )
    return f"{value / size:.4g} {name}"


def format_bytes(count: float) -> str:
    """A byte count for people: 262144 → "256 KiB", 1536 → "1.5 KiB", 100 → "100 B"."""
    return _format(count, BYTE_UNITS)


def format_hertz(frequency: float) -> str:
    """A frequency for people: 1e9 → "1 GHz", 8e8 → "800 MHz"."""
    return _format(frequency, HERTZ_UNITS)


SI_PREFIXES = ("p", "n", "µ", "m", "", "k", "M", "G", "T", "P")


def format_si(value: float, unit: str, prefix: str = "", digits: int = 4) -> str:
    """`value`, given in `prefix` + `unit`, with the decimal prefix that puts it in
    [1, 1000) and `digits` significant digits: (0.00013179990625, "s") → "131.8 µs",
    (1.5e10, "J", "p") → "15 mJ", (102121754, "B") → "102.1 MB"."""
    given = SI_PREFIXES.index(prefix)
    index = given + (math.floor(math.log10(abs(value)) / 3) if value else 0)
    index = min(max(index, 0), len(SI_PREFIXES) - 1)
    return f"{value / 1000.0 ** (index - given):.{digits}g} {SI_PREFIXES[index]}{unit}"
