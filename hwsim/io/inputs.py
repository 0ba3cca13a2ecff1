"""Opening input files defensively: regular files only, and never more bytes than a bound.

A FIFO, a device (`/dev/zero`) or a socket given as an input is refused before a byte is read,
so a mistyped path cannot hang hwsim or fill its memory.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from hwsim.errors import HwsimError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: Path, error: type[HwsimError], expected: str) -> io.BufferedReader:
    """Open `path` for binary reading if it is a regular file; else `error` saying what it is.

    `expected` names what was wanted ("a YAML file", "a trace file") for the message.
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not block; fstat then refuses it.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected {expected}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        what = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise error(f"{path}: is {what}, expected {expected}")
    if hasattr(os, "set_blocking"):
        os.set_blocking(descriptor, True)
    return io.BufferedReader(io.FileIO(descriptor, "rb"))


def read_bounded(path: Path, limit_bytes: int, error: type[HwsimError], expected: str) -> bytes:
    """The whole of a regular file of at most `limit_bytes`; else `error` naming the bound."""
    with open_regular(path, error, expected) as f:
        try:
            data = f.read(limit_bytes + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit_bytes:
        raise error(f"{path}: larger than {limit_bytes:,} bytes, too large for {expected}")
    return data


def is_onnx_path(name_or_path: str | Path) -> bool:
    """An ONNX model, converted in memory (hwsim.io.onnx), rather than a network file."""
    return str(name_or_path).lower().endswith(".onnx")
