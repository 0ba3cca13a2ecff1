"""The one exception family.  Messages read `file: dotted.path: problem (got X)`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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


class CapacityError(SpecError):
    """The simulator found a spec too small for a step: the field, the problem with its
    numbers, and what would fix it.  Raised without a file name (the simulator does not know
    where the spec came from); `located` adds it at the edge."""

    def __init__(self, field: str, problem: str, hint: str = "") -> None:
        self.field, self.problem, self.hint = field, problem, hint
        super().__init__(field, problem, hint)  # args rebuild it (simpy and pickle copy it)

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"

    def at(self, source: str) -> SpecError:
        """The message a user reads: the spec's file, the field, the problem and the hint."""
        hint = f"; {self.hint}" if self.hint else ""
        return SpecError(f"{source}: {self.field}: {self.problem}{hint}")


@contextmanager
def located(source: str) -> Iterator[None]:
    """At an edge that knows where a spec came from: a CapacityError raised in the block
    becomes one SpecError naming `source` (with its hint)."""
    try:
        yield
    except CapacityError as exc:
        raise exc.at(source) from None
