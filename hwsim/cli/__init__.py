"""The `hwsim` command.  The only package that prints or exits: `main(argv) -> int`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from hwsim.errors import HwsimError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 2 on bad input (one message on stderr)."""
    from hwsim.cli.commands import dispatch
    from hwsim.cli.parser import build_parser

    try:
        return dispatch(build_parser().parse_args(argv))
    except HwsimError as exc:
        print(f"hwsim: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except BrokenPipeError:  # `hwsim ... | head`: the reader has gone, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("hwsim: interrupted", file=sys.stderr)
        return 130


def entry_point() -> None:
    sys.exit(main())


__all__ = ["entry_point", "main"]
