"""Writing outputs: atomically, with the user's umask, and with path problems as OutputError.

`atomic_output` writes to a temporary file beside the target and renames it into place only
when the block succeeds, so an interrupted or failed run never leaves a half-written file, nor
a `.part` file.  `check_output_file` finds the usual path problems before long work starts.
Folders of outputs: hwsim.io.folders.
"""

from __future__ import annotations

import errno
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from hwsim.errors import OutputError

# Errors of the disk rather than of the code writing to it: reported as OutputError.
DISK_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
}
_DEFERRED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _problem(exc: OSError) -> str:
    return exc.strerror or str(exc)


def make_parent(path: Path) -> None:
    """Create the folder `path` goes in; OutputError names the first part that is in the way."""
    parent = path.parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(f"{path}: {ancestor} is a file, not a folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder {parent}: {_problem(exc)}") from None


def check_output_file(path: str | Path, flag: str = "") -> None:
    """OutputError now if `path` could not be written later: its folder is not creatable or
    writable, or a folder stands where the file should be.  Creates the missing folders."""
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise OutputError(f"{name}: is a folder, expected a file path")
    try:
        make_parent(path)
    except OutputError as exc:
        raise OutputError(f"{flag} {exc}" if flag else str(exc)) from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{name}: the folder {path.parent} is not writable")


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP back for the block (they arrive right after it)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def atomic_output(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it onto `path` only if the block succeeds.

    The file gets the permissions a plain `open` would give (0666 less the umask), not
    mkstemp's 0600.  Path and disk problems raise OutputError naming `path`.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file path")
    make_parent(path)
    temporary = None
    try:
        try:
            # No interruption between creating the file and knowing its name to remove it.
            with signals_held():
                handle, temporary = tempfile.mkstemp(
                    prefix=f".{path.name}.", suffix=".part", dir=path.parent
                )
            os.chmod(temporary, 0o666 & ~umask())
        except OSError as exc:
            raise OutputError(f"{path}: cannot write in {path.parent}: {_problem(exc)}") from None
        try:
            with os.fdopen(
                handle, "wb" if binary else "w", encoding=None if binary else "utf-8"
            ) as f:
                yield f
            os.replace(temporary, path)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS | {errno.EISDIR, errno.ENOTDIR}:
                raise
            raise OutputError(f"{path}: cannot write: {_problem(exc)}") from None
        temporary = None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """`atomic_output` of one small text file into a folder that exists (a sweep's row
    files: about a third of its system calls): the text goes to the hidden
    `.NAME.PID.part` beside `path`, renamed onto it when whole, and removed on failure."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.part"
    try:
        # O_EXCL: a file already there (a dead process's of the same pid, or anyone's) is
        # never opened, truncated or removed; atomic_output then picks a name of its own.
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        with atomic_output(path) as f:
            f.write(text)
        return
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {path.parent}: {_problem(exc)}") from None
    try:
        try:
            data = memoryview(text.encode("utf-8"))
            while data:  # a regular file takes it whole but for an error
                written = os.write(handle, data)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                data = data[written:]
        finally:
            os.close(handle)
        os.replace(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS | {errno.EISDIR, errno.ENOTDIR}:
            raise OutputError(f"{path}: cannot write: {_problem(exc)}") from None
        raise
