"""Load YAML files safely and turn every problem into a message naming the file and line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from hwsim.errors import SpecError
from hwsim.specs.common import validate

ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml(path: str | Path) -> Any:
    """`yaml.safe_load` of a file; SpecError for a missing file or a syntax error (with line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(f"{path}: {where}YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: YAML error: {exc}") from None


def load_model(model: type[ModelT], path: str | Path, kind: str) -> ModelT:
    """Load a YAML file of the given `kind` into `model`, reporting every problem at once."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with 'schema_version' and 'kind: {kind}' "
                        f"(got {type(data).__name__})")
    found = data.get("kind")
    if found is not None and found != kind:
        raise SpecError(f"{path}: kind: expected '{kind}' (got {found!r})")
    return validate(model, data, str(path))


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
    raise SpecError(f"unknown {what} '{name_or_path}'{hint} (available: {', '.join(available)}; "
                    f"or give a path to a .yaml file)")
