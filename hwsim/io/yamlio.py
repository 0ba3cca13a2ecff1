"""Load YAML files safely and turn every problem into a message naming the file and line.

Spec files are small, plain data.  Beyond `yaml.safe_load` the loader refuses what has no place
in them and could hurt: aliases (`*name`, the "billion laughs" expansion), nesting deeper than
`MAX_DEPTH`, repeated keys (the last one would silently win), files larger than
`MAX_YAML_BYTES`, and anything that is not a regular file (a FIFO, `/dev/zero`).

YAML is parsed with libyaml (`yaml.CSafeLoader`) where PyYAML was built with it, and with
PyYAML's pure-Python loader otherwise.  Both refuse the same things with the same messages, at
the same line and column; a syntax error is worded by the parser that found it.  libyaml
composes nodes by recursing in C, so before it composes, a pass over its events (a loop, not
recursion) refuses aliases and deep nesting at the offending node.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import yaml
from pydantic import BaseModel

from hwsim.errors import SpecError
from hwsim.io.inputs import read_bounded
from hwsim.specs.common import validate

if TYPE_CHECKING:  # the C module exists only where PyYAML was built with libyaml
    from yaml._yaml import Mark as _LibyamlMark

ModelT = TypeVar("ModelT", bound=BaseModel)
_EventMark: TypeAlias = "yaml.Mark | _LibyamlMark | None"  # libyaml's events carry its own Mark

MAX_YAML_BYTES = 4 * 2**20  # the largest shipped spec is ~3 KB
MAX_DEPTH = 32  # mappings and lists inside each other; the shipped specs use 4

# Parse with libyaml when PyYAML has it; a test turns this off to check the pure-Python loader.
_WITH_LIBYAML: bool = yaml.__with_libyaml__

_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE  # what both parsers refuse to read
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # how both count lines
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"  # libyaml 0.2.6 stops at 1,000 levels


class _Refused(yaml.MarkedYAMLError):
    """A construct hwsim's spec files do not allow (not a syntax error)."""


def _refused_at(mark: _EventMark, problem: str) -> _Refused:
    # PyYAML's stubs give MarkedYAMLError only PyYAML's Mark; libyaml's has the same fields.
    return _Refused(None, None, problem, cast("yaml.Mark | None", mark))


def _alias_refused(event: yaml.AliasEvent) -> _Refused:
    return _refused_at(
        event.start_mark,
        f"aliases (*{event.anchor}) are not allowed in hwsim files; write the value out",
    )


def _too_deep(mark: _EventMark) -> _Refused:
    return _refused_at(mark, f"nested more than {MAX_DEPTH} levels deep")


class _SpecConstructor(yaml.constructor.SafeConstructor):
    """SafeConstructor without duplicate keys or integers too long for Python."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
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


def _construct_int(loader: _PySpecLoader | _CSpecLoader, node: yaml.ScalarNode) -> int:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:  # more digits than Python converts (4,300)
        raise _Refused(
            None, None, f"number too long ({len(node.value):,} characters)", node.start_mark
        ) from None


_SpecConstructor.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _PySpecLoader(_SpecConstructor, yaml.SafeLoader):
    """PyYAML's pure-Python loader, refusing aliases and deep nesting as it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _alias_refused(self.peek_event())
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _too_deep(self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


if yaml.__with_libyaml__:

    class _CSpecLoader(_SpecConstructor, yaml.CSafeLoader):
        """libyaml's loader; give it only text that `_check_events` has passed."""


def _check_events(text: str) -> None:
    """Refuse aliases and nesting deeper than MAX_DEPTH, reading libyaml's events in a loop.

    Depth counts nodes as `_PySpecLoader` does: a scalar inside 32 collections is at depth 33.
    """
    try:
        _scan_events(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        if isinstance(exc, _Refused) or exc.problem != _LIBYAML_TOO_DEEP or mark is None:
            raise
        # libyaml scans up to 1,024 characters ahead of the events it gives, so in `[[[[...` it
        # meets its own limit before it gives the node too deep for hwsim; that node, or an
        # earlier problem, is in the text before the limit, which nests no deeper than libyaml
        # allows.  A scanner error there, or a parser error at its end, comes from cutting it.
        limit = mark.index
        try:
            _scan_events(text[: limit + text.startswith("\ufeff")])
        except _Refused:
            raise
        except yaml.parser.ParserError as earlier:
            if earlier.problem_mark is None or earlier.problem_mark.index < limit:
                raise
        except yaml.YAMLError:
            pass
        raise _too_deep(mark) from None


def _scan_events(text: str) -> None:
    parser = yaml._yaml.CParser(text)
    open_collections = 0
    for event in iter(parser.get_event, None):
        if isinstance(event, yaml.AliasEvent):
            raise _alias_refused(event)
        if isinstance(event, yaml.NodeEvent):
            if open_collections >= MAX_DEPTH:
                raise _too_deep(event.start_mark)
            if isinstance(event, yaml.CollectionStartEvent):
                open_collections += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            open_collections -= 1


def _load(text: str) -> Any:
    loader: _CSpecLoader | _PySpecLoader
    if _WITH_LIBYAML:
        _check_events(text)
        loader = _CSpecLoader(text)
    else:
        loader = _PySpecLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index`, counted as PyYAML counts them."""
    line, line_start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, line_start = line + 1, match.end()
    column = index - line_start + 1
    if line_start == 0 and text.startswith("\ufeff"):  # a byte order mark takes no column
        column -= 1
    return line, column


def _where(mark: yaml.Mark | None, text: str) -> str:
    if mark is None:
        return ""
    body = text.removeprefix("\ufeff")  # libyaml's index does not count it
    if mark.column == 0 and mark.index == len(body) and not _LINE_BREAK.match(body[-1:]):
        # libyaml puts the end of a text without a final line break at the start of a next,
        # empty line; PyYAML, and anyone reading the file, at the end of the last line.
        line, column = _line_column(text, len(text))
    else:
        line, column = mark.line + 1, mark.column + 1
    return f"line {line}, column {column}: "


def _short_key(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def dump_yaml(data: Any) -> str:
    """Plain data (a model's `model_dump(mode="json")`) as YAML text, keys in their order:
    libyaml's emitter where PyYAML has it (a sweep writes one spec file a point: 7× faster
    than the pure-Python emitter, and the same text), PyYAML's otherwise."""
    dumper = yaml.CSafeDumper if _WITH_LIBYAML else yaml.SafeDumper
    return yaml.dump(data, Dumper=dumper, sort_keys=False)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with the spec loader; SpecError names `source` and the line."""
    unreadable = _NON_PRINTABLE.search(text)
    if unreadable:
        line, column = _line_column(text, unreadable.start())
        raise SpecError(
            f"{source}: line {line}, column {column}: YAML syntax error: unacceptable "
            f"character #x{ord(unreadable.group()):04x}: special characters are not allowed"
        )
    try:
        return _load(text)
    except _Refused as exc:
        raise SpecError(f"{source}: {_where(exc.problem_mark, text)}{exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        where = _where(exc.problem_mark, text)
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


class SectionDumper:
    """`dump_yaml` of many mappings that share most of their top-level entries (a sweep's
    points: the same spec but for a field or two): each entry's YAML is made once, and a
    mapping's text is its entries' texts in order — the text `dump_yaml` gives, since a block
    mapping's entries are written one after another, as long as no two entries share one
    list or mapping object (`model_dump` makes every one anew)."""

    def __init__(self) -> None:
        self._texts: dict[tuple[str, str], str] = {}

    def dump(self, data: dict[str, Any]) -> str:
        if not data:
            return dump_yaml(data)
        parts = []
        for key, value in data.items():
            memo = (key, json.dumps(value))
            text = self._texts.get(memo)
            if text is None:
                text = self._texts[memo] = dump_yaml({key: value})
            parts.append(text)
        return "".join(parts)
