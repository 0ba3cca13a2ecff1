"""The trace's and the network file's closed vocabularies (plain enums, no pydantic) and the
padding arithmetic, in a module of their own so that checking a spec, reading a trace or
simulating imports no schema it does not validate (issue 19: start-up)."""

from __future__ import annotations

from enum import StrEnum


class Padding(StrEnum):
    SAME = "same"
    VALID = "valid"


def conv_output_size(size: int, kernel: int, stride: int, padding: Padding) -> int:
    """Output length of a window sliding over `size` (TensorFlow's SAME/VALID rules)."""
    if padding == Padding.SAME:
        return -(-size // stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding for SAME, as TensorFlow splits it (extra on the after side)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Phase(StrEnum):
    FORWARD = "forward"
    ERROR = "error"
    GRADIENT = "gradient"
    UPDATE = "update"


class Role(StrEnum):
    INPUT = "input"
    LABEL = "label"
    WEIGHT = "weight"
    BIAS = "bias"
    ACTIVATION = "activation"
    ERROR = "error"
    FEEDBACK = "feedback"
    GRADIENT = "gradient"
    OPTIMIZER_STATE = "optimizer_state"


class Algorithm(StrEnum):
    BP = "bp"
    DFA = "dfa"
    SSDFA = "ssdfa"


class ConvPass(StrEnum):
    FORWARD = "forward"
    BACKWARD_DATA = "backward_data"
    BACKWARD_WEIGHT = "backward_weight"


class Slot(StrEnum):
    """Where a matmul or conv operand sits in its GEMM  c[m, n] += a[m, k] · b[k, n]."""

    A = "a"
    B = "b"
    C = "c"
