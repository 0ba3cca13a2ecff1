"""Bits → bytes: one helper (hwsim.units.bits_to_bytes) that rounds up, used everywhere.

A byte count of data moved or stored can never hold fewer bits than the data, so every
conversion rounds up.  Precision allows 4-bit elements (Bits = 4, 8, 16, 32, 64), so an odd
element count at 4 bits is half a byte short of whole: that is where rounding shows.
"""

from __future__ import annotations

import io
import itertools
import tokenize
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hwsim
from hwsim.sim.components import ceil_div
from hwsim.sim.loopnest import Gemm, search
from hwsim.sim.loopnest import Operand as GemmOperand
from hwsim.sim.tiling import operand_bytes, partial_sum_bytes
from hwsim.specs.arch import BITS, Precision
from hwsim.specs.trace import Operand, Role
from hwsim.units import BITS_PER_BYTE, bits_to_bytes
from tests.sim.conftest import VON_NEUMANN, arch
from tests.sim.test_engine import matmul

bit_counts = st.integers(min_value=0, max_value=2**80)  # beyond int64: exact Python ints


@given(bit_counts)
def test_bits_to_bytes_is_the_least_whole_number_of_bytes_that_holds_the_bits(bits):
    nbytes = bits_to_bytes(bits)
    assert isinstance(nbytes, int)
    assert nbytes * 8 >= bits > (nbytes - 1) * 8


def test_bits_to_bytes_small_values():
    assert [bits_to_bytes(b) for b in (0, 1, 7, 8, 9, 12, 16, 20)] == [0, 1, 1, 1, 2, 2, 2, 3]
    assert BITS_PER_BYTE == 8


@given(st.lists(st.integers(min_value=0, max_value=2**62), max_size=50))
def test_bits_to_bytes_on_an_array_is_element_wise_and_keeps_the_dtype(values):
    bits = np.array(values, dtype=np.int64)
    nbytes = bits_to_bytes(bits)
    assert nbytes.dtype == np.int64
    assert nbytes.tolist() == [bits_to_bytes(value) for value in values]


def test_bits_to_bytes_on_unsigned_arrays_does_not_wrap_around():
    assert bits_to_bytes(np.array([0, 1, 9, 255], dtype=np.uint8)).tolist() == [0, 1, 2, 32]


@pytest.mark.parametrize("bits", [1.5, 8.0, np.float64(9), np.array([8.0]), "8", None])
def test_bits_to_bytes_refuses_what_is_not_a_whole_number_of_bits(bits):
    with pytest.raises(TypeError, match="bits_to_bytes needs an int"):
        bits_to_bytes(bits)


@given(bit_counts, st.integers(min_value=1, max_value=2**20))
def test_a_share_of_the_bytes_rounds_up_as_the_share_of_the_bits_would(bits, parts):
    # hwsim.sim.distributed splits a weight gradient's partial sums over channel and input
    # groups as ⌈⌈bits / 8⌉ / parts⌉, which is exactly ⌈bits / (8 · parts)⌉.
    assert ceil_div(bits_to_bytes(bits), parts) == -(-bits // (8 * parts))


def test_an_operand_of_an_odd_count_of_4_bit_elements_takes_the_next_whole_byte():
    precision = Precision(activation_bits=4)
    operand = Operand(tensor="x", role=Role.ACTIVATION, elements=3, density=1.0)
    assert operand_bytes(operand, precision) == 2  # 12 bits


def test_partial_sums_of_an_odd_count_at_4_bits_round_up_each_way():
    pe = arch(VON_NEUMANN).pe_array  # 4 × 4, weight stationary
    # k = 8 folds twice over 4 rows: one extra pass writes the 1 × 1 partial sum out and
    # reads it back, 4 bits each way: a whole byte each way, not half a byte in all.
    record = matmul(1, 8, 1)
    assert partial_sum_bytes(record, pe, Precision(accumulator_bits=4)) == 2
    assert partial_sum_bytes(record, pe, Precision(accumulator_bits=32)) == 8


@given(
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=64),
    st.sampled_from(BITS),
)
def test_partial_sum_bytes_never_move_fewer_bits_than_the_partial_sums(m, k, n, bits):
    pe = arch(VON_NEUMANN).pe_array
    record = matmul(m, k, n)
    one_way_bits = (-(-k // pe.rows) - 1) * m * n * bits
    nbytes = partial_sum_bytes(record, pe, Precision(accumulator_bits=bits))
    assert nbytes % 2 == 0  # the same bytes out and back: the plan halves it exactly
    assert nbytes // 2 * 8 >= one_way_bits > (nbytes // 2 - 1) * 8
    if bits >= 8:  # every width but 4 bits is whole bytes: the old floor gave the same
        assert nbytes == 2 * one_way_bits // 8


def test_the_mapping_search_rounds_4_bit_operands_up():
    m, k, n = 1, 1, 3
    gemm = Gemm(
        m,
        k,
        n,
        GemmOperand(m * k, 4),
        GemmOperand(k * n, 4),
        GemmOperand(m * n, 4),
        accumulator_bits=4,
    )
    mapping = search(gemm, 1 << 20)
    assert mapping is not None
    assert mapping.read_bytes == (1, 2)  # 4 and 12 bits
    assert mapping.output_write_bytes == 2


def _code_tokens(path: Path) -> list[list[str]]:
    """Each logical line's tokens, comments and strings (docstrings) left out."""
    lines: list[list[str]] = [[]]
    source = io.StringIO(path.read_text(encoding="utf-8")).readline
    for token in tokenize.generate_tokens(source):
        if token.type == tokenize.NEWLINE:
            lines.append([])
        elif token.type not in (tokenize.COMMENT, tokenize.STRING, tokenize.NL):
            lines[-1].append(token.string)
    return lines


def _hand_conversions(line: list[str]) -> bool:
    """`x // 8`, `x / 8`, `(x + 7) // 8`, or a literal 8 in a ceil_div call."""
    if any(a in ("//", "/") and b == "8" for a, b in itertools.pairwise(line)):
        return True
    if any(line[i : i + 4] == ["+", "7", ")", "//"] for i in range(len(line))):
        return True
    return "ceil_div" in line and "8" in line


def test_no_module_but_units_converts_bits_to_bytes_by_hand():
    package = Path(hwsim.__file__).parent
    offenders = [
        f"{path.relative_to(package.parent)}: {' '.join(line)}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "units.py" or path.parent != package
        for line in _code_tokens(path)
        if _hand_conversions(line)
    ]
    assert offenders == [], "use hwsim.units.bits_to_bytes:\n" + "\n".join(offenders)
