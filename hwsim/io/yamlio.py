"""Load YAML files safely and turn every problem into a message naming the file and line.

Spec files are small, plain data.  Beyond `yaml.safe_load` the loader refuses what has no place
in them and could hurt: aliases (`*name`, the "billion laughs" expansion), nesting deeper than
`MAX_DEPTH`, repeated keys (the last one would silently win), files larger than
`MAX_YAML_BYTES`, and anything that is not a regular file (a FIFO, `/dev/zero`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from hwsim.errors import SpecError
from hwsim.io.inputs import read_bounded
from hwsim.specs.common import validate

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_YAML_BYTES = 4 * 2**20  # the largest shipped spec is ~3 KB
MAX_DEPTH = 32  # mappings and lists inside each other; the shipped specs use 4


class _Refused(yaml.MarkedYAMLError):
    """A construct hwsim's spec files do not allow (not a syntax error)."""


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader without aliases, deep nesting or duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                None,
                None,
                f"aliases (*{event.anchor}) are not allowed in hwsim files; write the value out",
                event.start_mark,
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(
                None,
                None,
                f"nested more than {MAX_DEPTH} levels deep",
                self.peek_event().start_mark,
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: let PyYAML report it
                break
            if repeated:
                raise _Refused(
                    None,
                    None,
                    f"key {_short_key(key)} appears more than once in this mapping",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: _SpecLoader, node: yaml.ScalarNode) -> int:
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:  # more digits than Python converts (4,300)
        raise _Refused(
            None, None, f"number too long ({len(node.value):,} characters)", node.start_mark
        ) from None


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _short_key(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with the spec loader; SpecError names `source` and the line."""
    try:
        loader = _SpecLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        mark = exc.problem_mark
        raise SpecError(
            f"{source}: line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(f"{source}: {where}YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: YAML error: {exc}") from None
    except RecursionError:  # PyYAML's parser recursing on pathological input
        raise SpecError(f"{source}: nested too deeply to be an hwsim file") from None


def load_yaml(path: str | Path) -> Any:
    """The data of a YAML file; SpecError for a missing, unreadable or malformed file."""
    path = Path(path)
    raw = read_bounded(path, MAX_YAML_BYTES, SpecError, "a YAML file")
    if raw[:2] == b"\x1f\x8b":
        raise SpecError(
            f"{path}: is gzip-compressed, expected a YAML file (a trace? traces go "
            "to --trace; did you swap --arch and --trace?)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.start}), expected a YAML file"
        ) from None
    first_line = text.split("\n", 1)[0]
    if first_line.startswith("{") and '"kind":"trace"' in first_line.replace(" ", ""):
        raise SpecError(
            f"{path}: is a trace (JSON Lines), expected a YAML file; traces go to "
            "--trace (did you swap --arch and --trace?)"
        )
    return parse_yaml(text, str(path))


def load_model(model: type[ModelT], path: str | Path, kind: str) -> ModelT:
    """Load a YAML file of the given `kind` into `model`, reporting every problem at once."""
    return validate(model, load_mapping(path, kind), str(path))


def load_mapping(path: str | Path, kind: str) -> dict:
    """A YAML file's top-level mapping, checked to be of `kind`, not yet validated."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}: expected a mapping with 'schema_version' and 'kind: {kind}' "
            f"(got {type(data).__name__})"
        )
    found = data.get("kind")
    if found is not None and found != kind:
        hint = "; this is a trace: give it to --trace" if found == "trace" else ""
        raise SpecError(f"{path}: kind: expected '{kind}' (got {_short_key(found)}){hint}")
    return data


def resolve_named_file(name_or_path: str, folder: Path, what: str) -> Path:
    """A path as given, or `folder/<name>.yaml` for a bare name; SpecError suggests near names."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    named = folder / f"{name_or_path}.yaml"
    if named.exists():
        return named
    available = sorted(path.stem for path in folder.glob("*.yaml"))
    near = difflib.get_close_matches(name_or_path, available, n=1)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise SpecError(
        f"unknown {what} '{name_or_path}'{hint} (available: {', '.join(available)}; "
        f"or give a path to a .yaml file)"
    )
