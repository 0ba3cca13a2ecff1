"""Output folders that never cost the user a file: hwsim writes only a folder it made (it marks
it) or an empty one, and replaces a folder it made whole, from a temporary folder beside it.

    out = OutputFolder(path, inputs=[trace_path], flag="--out")  # refused now, before work
    with out as folder:          # a temporary folder beside the target
        ...write files into folder...
    # renamed into place: the previous contents (all hwsim's) removed, nothing else touched

A folder is hwsim's when it holds the mark `.hwsim-output.json`, which lists every file and
folder hwsim wrote there (a sweep's or a feedback study's folder is marked by its layout
instead, since its files are added one by one as rows finish).  Refused, with one OutputError
naming the path given:

- a non-empty folder with no mark, or a marked folder that holds anything the mark does not
  list (a file the user put there);
- the working folder, `.`, `..` or any folder that holds the working folder;
- any folder at or above an input of the command (so an input is never overwritten);
- a path inside the installed hwsim package or its shipped files;
- a path where a file stands.

A symlink keeps meaning what it points at: the folder it points to is replaced, the link
stays.  No temporary folder survives an exception or a signal that Python sees; one left by
SIGKILL or a power cut (named after a process that no longer runs, and marked) is removed the
next time that folder is written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from types import TracebackType

from hwsim.errors import HwsimError, OutputError
from hwsim.io.outputs import DISK_ERRNOS, make_parent, signals_held, umask

MARK = ".hwsim-output.json"
_WRITER = "hwsim"
SWEEP_LAYOUT = "sweep"
STUDY_LAYOUT = "study"
# What a folder added to in place holds, by its layout: the only names such a folder may hold
# (a sweep's: hwsim.sweep.store; a feedback study's: hwsim.feedback_study), and the hidden .part
# file a row or spec being written when the run was killed (SIGKILL) may leave beside them.
_LAYOUT_ENTRIES = {
    SWEEP_LAYOUT: re.compile(
        r"(sweep\.yaml|results\.csv|results\.parquet|points/?|specs/?"
        r"|points/[0-9a-f]+\.json|specs/[0-9a-f]+\.yaml"
        r"|points/\.[0-9a-f]+\.json\.[A-Za-z0-9_]+\.part|specs/\.[0-9a-f]+\.yaml\.[A-Za-z0-9_]+\.part"
        r"|\.(?:sweep\.yaml|results\.csv|results\.parquet)\.[A-Za-z0-9_]+\.part)"
    ),
    STUDY_LAYOUT: re.compile(
        r"(study\.json|study\.csv|index\.html|plotly\.min\.js|runs/?"
        r"|runs/[0-9a-f]+\.json|runs/\.[0-9a-f]+\.json\.[A-Za-z0-9_]+\.part)"
    ),
}
_STALE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.(?:[^.]+\.part|old)")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
_NAME_BYTES = 80


def safe_name(text: str) -> str:
    """A file or folder name for a label read from a file (a network, a spec, a workload):
    the label itself when it is a plain name, else its letters, digits and `_.+-` with a
    short hash of the whole label (so two labels never share a name).  Never empty, never
    `.`/`..`, never a path, never hidden."""
    cleaned = _UNSAFE.sub("_", text).lstrip(".-")[:_NAME_BYTES]
    if cleaned == text and cleaned:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'unnamed'}-{digest}"


def _named(flag: str, path: Path) -> str:
    return f"{flag} {path}" if flag else str(path)


def _working_folder(name: str) -> Path:
    try:
        return Path.cwd().resolve()
    except OSError:  # FileNotFoundError: the working folder was deleted under us
        raise OutputError(
            f"{name}: the working folder no longer exists; cd to a folder and run again"
        ) from None


def _package_folders() -> list[Path]:
    """The installed package and the shipped files it reads: never an output."""
    from hwsim.io.shipped import shipped_dir

    package = Path(__file__).resolve().parents[1]
    return [package, *(shipped_dir(kind).resolve() for kind in ("arch", "network"))]


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def read_mark(folder: Path) -> dict | None:
    """The mark of a folder hwsim wrote, or None (no mark, or not one of hwsim's)."""
    try:
        mark = json.loads((folder / MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(mark, dict) or mark.get("written_by") != _WRITER:
        return None
    entries = mark.get("entries")
    if mark.get("layout") not in _LAYOUT_ENTRIES:
        if not (isinstance(entries, list) and all(isinstance(e, str) for e in entries)):
            return None
        mark["listed"] = set(entries)  # looked up once per entry of the folder
    return mark


def _entries(folder: Path) -> list[str]:
    """Every file and folder under `folder` (folders end in /), relative, symlinks not
    followed, the mark left out."""
    found = []
    for root, folders, files in os.walk(folder):
        relative = Path(root).relative_to(folder)
        for name in folders:
            found.append(f"{(relative / name).as_posix()}/")
        for name in files:
            entry = (relative / name).as_posix()
            if entry != MARK:
                found.append(entry)
    return sorted(found)


def _is_listed(entry: str, mark: dict) -> bool:
    """Whether the mark says hwsim wrote `entry` (a sweep's or a study's: its layout does)."""
    layout = _LAYOUT_ENTRIES.get(mark.get("layout", ""))
    if layout is not None:
        return layout.fullmatch(entry) is not None
    return entry in mark["listed"]


def _foreign(folder: Path, mark: dict) -> list[str]:
    """What `folder` holds that its mark does not say hwsim wrote."""
    return [entry for entry in _entries(folder) if not _is_listed(entry, mark)]


def write_mark(folder: Path, command: str, *, layout: str | None = None) -> None:
    """Mark `folder` as hwsim's: its present contents (or, for a sweep, its layout)."""
    from hwsim import __version__
    from hwsim.io.outputs import atomic_output

    mark: dict = {"written_by": _WRITER, "hwsim_version": __version__, "command": command}
    if layout is not None:
        mark["layout"] = layout
    else:
        mark["entries"] = _entries(folder)
    with atomic_output(folder / MARK) as f:
        f.write(json.dumps(mark, indent=1) + "\n")


def _remove_stale(target: Path) -> None:
    """Temporary folders of this target left by a process that no longer runs (SIGKILL)."""
    with suppress(OSError):
        for entry in target.parent.iterdir():
            match = _STALE.fullmatch(entry.name)
            if match is None or match["name"] != target.name or not entry.is_dir():
                continue
            if entry.is_symlink() or _alive(int(match["pid"])) or not (entry / MARK).is_file():
                continue
            if entry.name.endswith(".part"):  # a set being written: every file in it is ours
                shutil.rmtree(entry, ignore_errors=True)
            else:  # an earlier set put aside: only what its mark lists
                _remove_listed(entry, read_mark(entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process
        return True
    return True


def _remove_listed(folder: Path, mark: dict | None) -> None:
    """Delete what the mark lists (a sweep: its layout), then the folders left empty.  A file
    it does not list stays (the folder with it), so nothing hwsim did not write is removed."""
    if mark is None:
        with suppress(OSError):
            folder.rmdir()
        return
    entries = [entry for entry in _entries(folder) if _is_listed(entry, mark)]
    for entry in entries:
        if not entry.endswith("/"):
            with suppress(FileNotFoundError):
                (folder / entry).unlink()
    (folder / MARK).unlink(missing_ok=True)
    for entry in sorted((e for e in entries if e.endswith("/")), key=len, reverse=True):
        with suppress(OSError):
            (folder / entry).rmdir()
    with suppress(OSError):
        folder.rmdir()


class OutputFolder:
    """A folder of outputs written as one set; refused at construction if it is not hwsim's
    to write (see the module docstring).  `with OutputFolder(...) as folder:` gives a
    temporary folder beside the target, renamed onto it when the block succeeds.

    `keep_partial`: when the block fails (Ctrl-C, an error), what it finished is still put in
    place, if it wrote anything — for long runs that keep what they finished.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        command: str,
        inputs: Iterable[str | Path] = (),
        flag: str = "",
        keep_partial: bool = False,
    ) -> None:
        self.path = Path(path)
        self.command = command
        self.flag = flag
        self.keep_partial = keep_partial
        self.inputs = [Path(item) for item in inputs]
        self.target = claim(self.path, inputs=self.inputs, flag=flag)
        self._temporary: Path | None = None

    @property
    def name(self) -> str:
        return _named(self.flag, self.path)

    def __enter__(self) -> Path:
        _remove_stale(self.target)  # claimed at construction; the swap checks again
        make_parent(self.target)
        with signals_held():  # no interruption between making the folder and knowing it
            try:
                temporary = Path(
                    tempfile.mkdtemp(
                        prefix=f".{self.target.name}.{os.getpid()}.",
                        suffix=".part",
                        dir=self.target.parent,
                    )
                )
            except OSError as exc:
                raise OutputError(
                    f"{self.name}: cannot write in {self.target.parent}: {exc.strerror or exc}"
                ) from None
            self._temporary = temporary
        try:
            temporary.chmod(0o777 & ~umask())
            write_mark(temporary, self.command)  # so a stale copy is known to be ours
        except BaseException:
            self._discard()
            raise
        return temporary

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        temporary = str(self._temporary)
        try:
            if exc is None:
                self._swap()
            elif self.keep_partial and self._has_output():
                with suppress(HwsimError):  # keep what it finished, if the disk lets us
                    self._swap()
        except HwsimError as error:
            raise type(error)(str(error).replace(temporary, str(self.path))) from None
        finally:
            self._discard()
        if isinstance(exc, HwsimError):  # messages name the final path, not the temporary
            raise type(exc)(str(exc).replace(temporary, str(self.path))) from None

    def _has_output(self) -> bool:
        return self._temporary is not None and bool(_entries(self._temporary))

    def _swap(self) -> None:
        assert self._temporary is not None
        try:
            write_mark(self._temporary, self.command)
            with signals_held():  # two renames: no interruption between them
                claim(self.path, inputs=self.inputs, flag=self.flag)  # still ours to replace
                old, mark = None, None
                if self.target.exists():
                    mark = read_mark(self.target)
                    old = self.target.with_name(f".{self.target.name}.{os.getpid()}.old")
                    os.replace(self.target, old)
                try:
                    os.replace(self._temporary, self.target)
                except OSError:
                    if old is not None:  # the last set goes back where it was
                        os.replace(old, self.target)
                    raise
                self._temporary = None
                if old is not None:
                    _remove_listed(old, mark)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS | {errno.ENOTEMPTY, errno.EBUSY, errno.EXDEV}:
                raise
            raise OutputError(f"{self.name}: cannot write: {exc.strerror or exc}") from None

    def _discard(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


def claim(
    path: str | Path,
    *,
    inputs: Iterable[str | Path] = (),
    flag: str = "",
    resume: str | None = None,
) -> Path:
    """The real folder `path` stands for, if hwsim may write it; else OutputError, one line.

    `resume` (a layout such as "sweep"): the folder is added to in place rather than replaced,
    so it must be new, empty, or a folder of that layout.
    """
    path = Path(path)
    name = _named(flag, path)
    cwd, target = _resolved(path, name)
    if _is_within(cwd, target):
        what = "is the working folder" if target == cwd else "holds the working folder"
        raise OutputError(f"{name}: {what}; give a folder of its own (e.g. reports/out)")
    for item, source in _existing(cwd, inputs):
        if _is_within(source, target):
            raise OutputError(
                f"{name}: holds the input {item}, which writing it would replace; "
                "give another folder"
            )
    if not target.exists():  # (a dangling symlink: the folder it names is made)
        _check_creatable(target, name)
        return target
    if not target.is_dir():
        raise OutputError(f"{name}: exists and is not a folder")
    _check_owned(target, name, resume)
    if not os.access(target, os.W_OK | os.X_OK) or not os.access(target.parent, os.W_OK):
        raise OutputError(f"{name}: the folder is not writable")
    return target


def _existing(cwd: Path, items: Iterable[str | Path]) -> Iterator[tuple[str | Path, Path]]:
    """(item, its real path) for each input that exists (a shipped name is not a path)."""
    for item in items:
        try:
            yield item, (cwd / item).resolve(strict=True)
        except (OSError, RuntimeError):
            continue


def _resolved(path: Path, name: str) -> tuple[Path, Path]:
    """(the working folder, the real path `path` names); refused inside hwsim's own files."""
    cwd = _working_folder(name)
    try:
        target = (cwd / path).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise OutputError(f"{name}: cannot be resolved: {exc}") from None
    for folder in _package_folders():
        if _is_within(target, folder):
            raise OutputError(
                f"{name}: is inside hwsim's own files ({folder}); give a path outside them"
            )
    return cwd, target


def refuse_inside(path: str | Path, folders: Iterable[Path], flag: str = "") -> None:
    """OutputError if `path` lies inside one of `folders` (input folders a command reads
    whole: what it wrote there would be read back as part of them next time)."""
    name = _named(flag, Path(path))
    cwd, target = _resolved(Path(path), name)
    for folder, source in _existing(cwd, folders):
        if source.is_dir() and source in target.parents:
            raise OutputError(
                f"{name}: is inside the input {folder}, which would then hold it; give a "
                "folder outside it"
            )


def check_output_file_target(
    path: str | Path, *, inputs: Iterable[str | Path] = (), flag: str = ""
) -> None:
    """An output file that is not one of the command's inputs nor inside hwsim's own files
    (the file itself, when it exists, is the user's explicit target and is replaced)."""
    path = Path(path)
    name = _named(flag, path)
    cwd, target = _resolved(path, name)
    for item, source in _existing(cwd, inputs):
        if source == target:
            raise OutputError(f"{name}: is the input {item}; give another path")


def _check_creatable(target: Path, name: str) -> None:
    """The first folder of `target` that exists is a folder, and writable."""
    for ancestor in target.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(f"{name}: {ancestor} is a file, not a folder")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise OutputError(f"{name}: the folder {ancestor} is not writable")
            return


def _check_owned(target: Path, name: str, resume: str | None) -> None:
    try:
        empty = next(target.iterdir(), None) is None
    except OSError as exc:
        raise OutputError(f"{name}: cannot read the folder: {exc.strerror or exc}") from None
    if empty:
        return
    mark = read_mark(target)
    if mark is None:
        damaged = " (its mark is damaged)" if (target / MARK).exists() else ""
        raise OutputError(
            f"{name}: holds files hwsim did not write{damaged}; give a new or empty folder "
            "(hwsim writes only folders it made)"
        )
    if resume is not None and mark.get("layout") != resume:
        raise OutputError(
            f"{name}: was written by `hwsim {mark.get('command', '?')}`, not a {resume}; "
            f"a {resume} is resumed only in its own folder: give a new one"
        )
    foreign = _foreign(target, mark)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise OutputError(
            f"{name}: holds {shown}, which hwsim did not write; move it away or give another folder"
        )


def claim_for_layout(
    path: str | Path, layout: str, command: str, *, inputs: Iterable[str | Path] = (), flag=""
) -> Path:
    """Claim a folder that is added to in place (a sweep's): create it, mark it, return it."""
    target = claim(path, inputs=inputs, flag=flag, resume=layout)
    _remove_stale(target)
    make_parent(target / "file")
    try:
        target.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{_named(flag, Path(path))}: cannot create: {exc.strerror}") from None
    if read_mark(target) is None:
        write_mark(target, command, layout=layout)
    return target


__all__ = [
    "MARK",
    "STUDY_LAYOUT",
    "SWEEP_LAYOUT",
    "OutputFolder",
    "check_output_file_target",
    "claim",
    "claim_for_layout",
    "read_mark",
    "refuse_inside",
    "safe_name",
    "write_mark",
]
