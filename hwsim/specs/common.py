"""The frozen base model and the translation of pydantic errors into hwsim messages."""

from __future__ import annotations

import difflib
import reprlib
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from hwsim.errors import HwsimError, SpecError

ModelT = TypeVar("ModelT", bound=BaseModel)

# An identifier in hwsim files: a network's, a layer's, a spec's or a sweep's name.
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


NotBool = BeforeValidator(_not_bool)
"""Put in an `Annotated` number type: YAML's true/false are not 1 and 0 in hwsim files. Put it
after the range (`Annotated[int, Field(ge=1), NotBool]`): pydantic applies a range placed after
a validator as a validator of its own, and the JSON Schema then shows `ge`, not `minimum`."""


def finite_range(
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
) -> Any:
    """A `Field` for a number in a range: no inf or nan, so no `Infinity` in the outputs."""
    return Field(ge=ge, le=le, gt=gt, lt=lt, allow_inf_nan=False)


class FrozenModel(BaseModel):
    """Immutable value with unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, defer_build=True)


def _fields(model: type) -> dict[str, FieldInfo]:
    """A pydantic model's or pydantic dataclass's fields."""
    return getattr(model, "__pydantic_fields__", {})


def _models_in(annotation: Any) -> list[type]:
    """The pydantic model and dataclass types an annotation can hold (through list, tuple,
    Union, Annotated)."""
    if isinstance(annotation, type) and _fields(annotation):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, tuple, dict, typing.Union, types.UnionType) or origin is not None:
        found: list[type] = []
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
        return found
    return []


def _tag_values(model: type) -> set[str]:
    values: set[str] = set()
    for name in ("type", "kind"):
        field = _fields(model).get(name)
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            values.update(str(value) for value in typing.get_args(field.annotation))
    return values


def _walk(model: type, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[str]]:
    """Follow an error location through the models: the location without tagged-union tags
    (`layers.2.dense.units` → `layers.2.units`) and the field names valid where it ends."""
    # A model that stands for several (an arch spec is one of two, by substrate) lists them.
    candidates: list[type] = list(getattr(model, "VARIANTS", ())) or [model]
    kept: list[Any] = []
    parent_names: list[str] = []
    for position, part in enumerate(loc):
        parent_names = _names(candidates)
        if not isinstance(part, str):
            kept.append(part)
            continue
        tagged = [candidate for candidate in candidates if part in _tag_values(candidate)]
        if len(candidates) > 1 and tagged and position + 1 < len(loc):
            candidates = tagged  # a tagged union's tag: narrow to the member it names
            continue
        kept.append(part)
        next_candidates: list[type] = []
        for candidate in candidates:
            field = _fields(candidate).get(part)
            if field is not None:
                next_candidates.extend(_models_in(field.annotation))
        if next_candidates:
            candidates = next_candidates
    return tuple(kept), parent_names


def _names(models: list[type]) -> list[str]:
    names: list[str] = []
    for model in models:
        names.extend(name for name in _fields(model) if name not in names)
    return names


_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 3, 50, 40, 50
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def short_repr(value: Any) -> str:
    """At most 60 characters of `value`, built without walking the whole of a huge value."""
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int beyond Python's 4,300-digit conversion limit
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(error: ValidationError, model: type) -> list[str]:
    """One `dotted.path: problem (got X)` line per problem."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc, valid = _walk(model, tuple(item["loc"]))
        path = ".".join(str(part) for part in loc)
        kind = item["type"]
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):  # model, dataclass
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(valid)}"
            problems.append(f"{path}: unknown key{hint}")
            continue
        if kind == "missing":
            problems.append(f"{path}: required key is missing")
            continue
        message = item["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
        if not path and kind == "value_error":
            problems.append(message)  # a cross-field rule: its message names the fields
            continue
        if kind == "value_error" and "(got " in message:
            problems.append(f"{path}: {message}")  # the rule already names what it got
            continue
        problems.append(f"{path or '(top level)'}: {message} (got {short_repr(item.get('input'))})")
    return problems


def raise_problems(
    source: str, problems: Iterable[str], error: type[HwsimError] = SpecError
) -> None:
    """Raise one error listing every problem, each prefixed with the file."""
    lines = [f"{source}: {problem}" for problem in problems]
    if lines:
        raise error("\n".join(lines))


def validate(
    model: type[ModelT], data: Any, source: str, error: type[HwsimError] = SpecError
) -> ModelT:
    """Build `model` from plain data or raise `error` naming the file and every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise_problems(source, format_validation_error(exc, model), error)
    raise AssertionError("unreachable")  # pragma: no cover
