"""The one exception family.  Messages read `file: dotted.path: problem (got X)`."""

from __future__ import annotations


class HwsimError(Exception):
    """Bad input of any kind.  The CLI prints the message on one line and exits with status 2."""


class SpecError(HwsimError):
    """A network, arch or sweep file (or a flag that stands for one) is invalid."""


class TraceError(HwsimError):
    """A trace file is missing, truncated or does not follow the trace format."""


class DataError(HwsimError):
    """A dataset is missing, malformed or does not fit the network."""


class OutputError(HwsimError):
    """An output path cannot be written: a read-only folder, a file where a folder should be,
    a folder where a file should be, a full disk."""


class ArgumentError(HwsimError, ValueError):
    """A bad argument to a function of the Python API: an unknown rule, table kind or figure
    option, or a value of the wrong type.  Also a ValueError, as Python's own are."""
