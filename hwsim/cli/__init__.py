"""The `hwsim` command.  The only package that prints or exits: `main(argv) -> int`."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence

from hwsim.errors import HwsimError


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that the same clean-up runs (no .part file or
    folder survives)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_HANDLED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


_MAIN_PID: list[int] = []  # the process that installed the handler (not a forked worker)


def _terminate(signum: int, frame: object) -> None:
    if _MAIN_PID and os.getpid() != _MAIN_PID[-1]:  # a pool worker: die as SIGTERM means
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise _Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 2 on bad input (one message on stderr)."""
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = {signum: signal.signal(signum, _terminate) for signum in _HANDLED}
    _MAIN_PID.append(os.getpid())
    try:
        return _main(argv)
    finally:
        _MAIN_PID.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(argv: Sequence[str] | None) -> int:
    from hwsim.cli.parser import build_parser

    try:
        args = build_parser().parse_args(argv)  # --help and --version end here, light
        from hwsim.cli.dispatch import dispatch  # each command imports what it needs

        return dispatch(args)
    except HwsimError as exc:
        print(f"hwsim: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except BrokenPipeError:  # `hwsim ... | head`: the reader has gone, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — silence the flush at exit
        return 0
    except _Terminated as exc:
        print("hwsim: terminated", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("hwsim: interrupted", file=sys.stderr)
        return 130


def entry_point() -> None:
    sys.exit(main())


__all__ = ["entry_point", "main"]
