"""The frozen base model and the translation of pydantic errors into hwsim messages."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hwsim.errors import HwsimError, SpecError

ModelT = TypeVar("ModelT", bound=BaseModel)


class FrozenModel(BaseModel):
    """Immutable value with unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation can hold (through list, Union, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, tuple, dict, typing.Union, types.UnionType) or origin is not None:
        found: list[type[BaseModel]] = []
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
        return found
    return []


def _field_names_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid field names of the model(s) found at `loc` (used to suggest a near miss)."""
    candidates: list[type[BaseModel]] = [model]
    for part in loc:
        if not isinstance(part, str):
            continue
        next_candidates: list[type[BaseModel]] = []
        for candidate in candidates:
            field = candidate.model_fields.get(part)
            if field is not None:
                next_candidates.extend(_models_in(field.annotation))
        if next_candidates:
            candidates = next_candidates
    names: list[str] = []
    for candidate in candidates:
        names.extend(name for name in candidate.model_fields if name not in names)
    return names


def _union_tags(model: type[BaseModel]) -> set[str]:
    """Values of `Literal` discriminator fields (`type`, `kind`) of the models under `model`."""
    tags: set[str] = set()
    seen: set[type[BaseModel]] = set()
    stack = [model]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, field in current.model_fields.items():
            if name in ("type", "kind") and typing.get_origin(field.annotation) is typing.Literal:
                tags.update(str(value) for value in typing.get_args(field.annotation))
            stack.extend(_models_in(field.annotation))
    return tags


def _drop_union_tags(loc: tuple[Any, ...], tags: set[str]) -> tuple[Any, ...]:
    """Tagged unions put the tag in the location (`layers.2.dense.units`); drop it."""
    kept: list[Any] = []
    for i, part in enumerate(loc):
        after_index = i > 0 and isinstance(loc[i - 1], int)
        if after_index and part in tags and i + 1 < len(loc):
            continue
        kept.append(part)
    return tuple(kept)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """One `dotted.path: problem (got X)` line per problem."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        loc = _drop_union_tags(loc, _union_tags(model))
        path = ".".join(str(part) for part in loc) or "(top level)"
        kind = item["type"]
        if kind == "extra_forbidden":
            parent = loc[:-1]
            valid = _field_names_at(model, parent)
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(valid)}"
            problems.append(f"{path}: unknown key{hint}")
            continue
        if kind == "missing":
            problems.append(f"{path}: required key is missing")
            continue
        message = item["msg"]
        message = message.removeprefix("Value error, ")
        problems.append(f"{path}: {message} (got {_short(item.get('input'))})")
    return problems


def raise_problems(source: str, problems: Iterable[str],
                   error: type[HwsimError] = SpecError) -> None:
    """Raise one error listing every problem, each prefixed with the file."""
    lines = [f"{source}: {problem}" for problem in problems]
    if lines:
        raise error("\n".join(lines))


def validate(model: type[ModelT], data: Any, source: str,
             error: type[HwsimError] = SpecError) -> ModelT:
    """Build `model` from plain data or raise `error` naming the file and every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise_problems(source, format_validation_error(exc, model), error)
    raise AssertionError("unreachable")  # pragma: no cover
