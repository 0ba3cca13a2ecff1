"""Dotted-path overrides of an arch spec's YAML (`--set global_buffer.capacity_bytes="1 MiB"`),
applied to the raw mapping before validation, so an overridden spec is checked as a file is."""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hwsim.errors import SpecError
from hwsim.io.arch import arch_path, load_tech
from hwsim.io.yamlio import load_mapping, parse_yaml
from hwsim.specs.arch import (
    ActionEnergies,
    ArchSpec,
    DistributedSpec,
    VonNeumannSpec,
)
from hwsim.specs.common import validate
from hwsim.specs.resolve import resolve_energies


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (through Optional and Annotated), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Annotated, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields; an arch spec's are those of either substrate's spec."""
    if model is ArchSpec:
        return {**VonNeumannSpec.model_fields, **DistributedSpec.model_fields}
    return model.model_fields


def check_path(path: str, model: type[BaseModel] = ArchSpec) -> str | None:
    """None if `path` names a field of `model`, else what is wrong, with the nearest field."""
    current: type[BaseModel] | None = model
    walked: list[str] = []
    for part in path.split("."):
        if current is None:
            return f"'{'.'.join(walked)}' is a value, not a mapping with '{part}'"
        known = _fields(current)
        fields = list(known)
        if part not in fields:
            near = difflib.get_close_matches(part, fields, n=1)
            where = f" in '{'.'.join(walked)}'" if walked else ""
            hint = (
                f"; did you mean '{'.'.join([*walked, near[0]])}'?"
                if near
                else f"; valid keys{where}: {', '.join(fields)}"
            )
            return f"unknown field '{part}'{where}{hint}"
        current = _model_of(known[part].annotation)
        walked.append(part)
    return None


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[tuple[str, Any]]) -> dict:
    """`data` with each dotted path set to its value (missing mappings made).  The mappings on
    an override's path are copied; the rest is shared with `data`, which is never changed
    (a sweep applies its axes to the same base for every point)."""
    result = dict(data)
    copied: set[int] = {id(result)}
    for path, value in overrides:
        *parents, leaf = path.split(".")
        node = result
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
            elif id(child) not in copied:
                child = dict(child)
            copied.add(id(child))
            node[part] = child
            node = child
        node[leaf] = copy.deepcopy(value)
    return result


def parse_assignment(text: str, flag: str = "--set") -> tuple[str, Any]:
    """`path=value` → (path, the value parsed as YAML); SpecError naming the flag otherwise."""
    path, equals, value = text.partition("=")
    path = path.strip()
    if not equals or not path:
        raise SpecError(
            f"{flag} {text}: expected PATH=VALUE, e.g. {flag} global_buffer.capacity_bytes='1 MiB'"
        )
    problem = check_path(path)
    if problem is not None:
        raise SpecError(f"{flag} {text}: {problem}")
    # The spec loader's YAML (no aliases, bounded nesting and size), as for spec files.
    parsed = parse_yaml(value, f"{flag} {path}") if value.strip() else None
    return path, parsed


def load_arch_mapping(name_or_path: str | Path) -> tuple[Path, dict]:
    """The file of a shipped name or path, and its raw YAML mapping (not yet validated)."""
    path = arch_path(name_or_path)
    return path, load_mapping(path, "arch")


def validate_arch(
    data: Mapping[str, Any], path: Path, source: str
) -> tuple[ArchSpec, ActionEnergies]:
    """Validate an (overridden) arch mapping read from `path` and resolve its energies; errors
    name `source`.  A relative `tech:` path is taken from `path`'s folder, as for the file."""
    arch = validate(ArchSpec, data, source)
    return arch, resolve_energies(arch, load_tech(arch, path), source=source)


def load_arch_with_overrides(
    name_or_path: str | Path, assignments: Iterable[str], flag: str = "--set"
) -> tuple[ArchSpec, ActionEnergies]:
    """`load_arch_with_energies` with `PATH=VALUE` assignments applied before validation."""
    overrides = [parse_assignment(text, flag) for text in assignments]
    return load_arch_with_values(name_or_path, overrides, flag)


def load_arch_with_values(
    name_or_path: str | Path, overrides: Iterable[tuple[str, Any]], flag: str = "set"
) -> tuple[ArchSpec, ActionEnergies]:
    """`load_arch_with_energies` with (dotted path, value) pairs applied before validation,
    each path checked against the schema first; errors name the file and `flag`."""
    overrides = list(overrides)
    for key, _ in overrides:
        problem = check_path(key) if isinstance(key, str) else "expected a dotted path"
        if problem is not None:
            raise SpecError(f"{flag} {key}: {problem}")
    path, data = load_arch_mapping(name_or_path)
    source = str(path)
    if overrides:
        source += " with " + " ".join(f"{flag} {key}={value!r}" for key, value in overrides)
    return validate_arch(apply_overrides(data, overrides), path, source)
