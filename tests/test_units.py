"""Unit strings: exact conversions, ambiguous and unknown units rejected with a clear message."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim.units import (
    BYTES_PATTERN,
    GHZ_HZ,
    GIB_BYTES,
    HERTZ_PATTERN,
    KIB_BYTES,
    MHZ_HZ,
    MIB_BYTES,
    format_bytes,
    format_hertz,
    format_si,
    parse_bytes,
    parse_hertz,
)

counts = st.integers(min_value=0, max_value=10**6)


@given(counts)
def test_binary_units_round_trip(n):
    assert parse_bytes(f"{n} KiB") == n * 1024
    assert parse_bytes(f"{n} MiB") == n * 1024**2
    assert parse_bytes(f"{n}GiB") == n * 1024**3
    assert parse_bytes(f"{n} B") == n
    assert parse_bytes(str(n)) == n


@given(counts)
def test_numbers_pass_through(n):
    assert parse_bytes(n) == n and type(parse_bytes(n)) is int
    assert parse_bytes(float(n)) == n and type(parse_bytes(float(n))) is int
    assert parse_hertz(n) == float(n)


@given(st.integers(min_value=1, max_value=10**4))
def test_hertz_units_round_trip(n):
    assert parse_hertz(f"{n} GHz") == n * 1e9
    assert parse_hertz(f"{n} MHz") == n * 1e6
    assert parse_hertz(f"{n} kHz") == n * 1e3
    assert parse_hertz(f"{n}e6 Hz") == n * 1e6


@given(st.integers(min_value=1, max_value=10**6).map(lambda n: n * 1024 + 1))
def test_format_bytes_reads_back_within_its_rounding(count):
    shown = format_bytes(count)
    assert re.match(BYTES_PATTERN, shown)
    assert abs(parse_bytes_loose(shown) - count) <= count * 1e-3


def parse_bytes_loose(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B": 1, "KiB": KIB_BYTES, "MiB": MIB_BYTES, "GiB": GIB_BYTES}[unit]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256 KiB", 256 * KIB_BYTES),
        ("1 MiB", MIB_BYTES),
        ("4 GiB", 4 * GIB_BYTES),
        ("512 B", 512),
        ("1024", 1024),
        ("1.5 KiB", 1536),
        ("1e3", 1000),
        (" 2 KiB ", 2048),
        ("0.5 MiB", 524288),
    ],
)
def test_byte_strings(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 GHz", GHZ_HZ),
        ("800 MHz", 800 * MHZ_HZ),
        ("1e9 Hz", GHZ_HZ),
        ("1.5 GHz", 1.5 * GHZ_HZ),
        ("1e9", GHZ_HZ),
        ("100 kHz", 1e5),
    ],
)
def test_hertz_strings(text, expected):
    assert parse_hertz(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("256 kB", "ambiguous unit 'kB': write KiB (1024 bytes) or a plain number of bytes"),
        ("1 KB", "ambiguous unit 'KB': write KiB (1024 bytes) or a plain number of bytes"),
        ("1 MB", "ambiguous unit 'MB': write MiB (1048576 bytes) or a plain number of bytes"),
        ("4 GB", "ambiguous unit 'GB': write GiB (1073741824 bytes) or a plain number of bytes"),
        ("1 k", "ambiguous unit 'k': write KiB (1024 bytes) or a plain number of bytes"),
        ("1 K", "ambiguous unit 'K': write KiB (1024 bytes) or a plain number of bytes"),
        ("1 M", "ambiguous unit 'M': write MiB (1048576 bytes) or a plain number of bytes"),
        ("3 furlongs", "unknown unit 'furlongs': use B, KiB, MiB, GiB, TiB or a plain number"),
        (
            "4 kib",
            "unknown unit 'kib' (did you mean 'KiB'?): use B, KiB, MiB, GiB, TiB or a plain number",
        ),
        ("1.3 KiB", "must be a whole number of bytes"),
        (2.5, "must be a whole number of bytes"),
        (float("inf"), "must be a finite number of bytes"),
        ("lots", "expected a number with an optional unit, like '256 KiB'"),
        ("1e999999999 B", "number out of range (exponent beyond ±30)"),
        ("", "expected a number with an optional unit, like '256 KiB'"),
        (True, "expected a number of bytes or a string like '256 KiB'"),
        (None, "expected a number of bytes or a string like '256 KiB'"),
        ([1], "expected a number of bytes or a string like '256 KiB'"),
    ],
)
def test_bad_bytes(value, message):
    with pytest.raises(ValueError) as info:
        parse_bytes(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1 G", "ambiguous unit 'G': write GHz or a plain number of hertz"),
        ("800 M", "ambiguous unit 'M': write MHz or a plain number of hertz"),
        ("1 k", "ambiguous unit 'k': write kHz or a plain number of hertz"),
        (
            "1 ghz",
            "unknown unit 'ghz' (did you mean 'GHz'?): use Hz, kHz, MHz, GHz or a plain number",
        ),
        ("1 rpm", "unknown unit 'rpm': use Hz, kHz, MHz, GHz or a plain number"),
        (False, "expected a number of hertz or a string like '1 GHz'"),
        (float("nan"), "must be a finite number of hertz"),
        ("fast", "expected a number with an optional unit, like '1 GHz'"),
    ],
)
def test_bad_hertz(value, message):
    with pytest.raises(ValueError) as info:
        parse_hertz(value)
    assert str(info.value) == message


def test_schema_patterns_agree_with_the_parsers():
    for good in ("256 KiB", "1024", "1.5e3 B", "4GiB"):
        assert re.match(BYTES_PATTERN, good)
        parse_bytes(good)
    for ambiguous in ("256 kB", "1 MB", "1 k"):
        assert not re.match(BYTES_PATTERN, ambiguous)
    assert re.match(HERTZ_PATTERN, "1.5 GHz") and not re.match(HERTZ_PATTERN, "1 G")


def test_formatting_for_people():
    assert format_bytes(256 * KIB_BYTES) == "256 KiB"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(100) == "100 B"
    assert format_bytes(GIB_BYTES) == "1 GiB"
    assert format_bytes(0) == "0 B"
    assert format_hertz(GHZ_HZ) == "1 GHz"
    assert format_hertz(800 * MHZ_HZ) == "800 MHz"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((0.00013179990625, "s"), "131.8 µs"),
        ((1.5e10, "J", "p"), "15 mJ"),
        ((102121754, "B"), "102.1 MB"),
        ((0, "B"), "0 B"),
        ((3.2, "J", "p"), "3.2 pJ"),
        ((1e-20, "s"), "1e-08 ps"),  # below the smallest prefix: the smallest
    ],
)
def test_format_si(args, text):
    assert format_si(*args) == text
