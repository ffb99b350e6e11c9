"""Typed parameters: strict numbers with bounds, and one way to say what is wrong with a value.

Every pydantic model of simcode (the scenario's sections, each coding scheme's and each delay model's
`Params`, a ParamsModel) declares its numbers with the types below, so a boolean is never a number,
a whole float is the integer a YAML file means (`1e6`), nothing is infinite or NaN, and every number
has bounds. The fields' types, bounds, defaults and descriptions are the one statement of what is
allowed: error messages (`problem`) and `simcode codes show` (`describe`) read them from there.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from simcode.errors import BadInput

# Upper bounds: far beyond anything useful, low enough that no sum of simulated seconds or count
# of floats overflows; the memory estimate (simcode.memory) is the real limit on sizes.
MAX_COUNT = 10**6         # agents, learners, obstacles, hidden units
MAX_SIZE = 10**9          # iterations, steps, transitions, minibatch rows
MAX_SECONDS = 1e9         # any duration, in simulated seconds
MAX_RATE = 1e18           # bytes or floating-point operations per second
MAX_SEED = 2**63 - 1


def _whole_number(value: Any) -> Any:
    """YAML reads `1e6` as a float: a whole float is the integer the user means (and a numpy
    integer from a script is an integer)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Strict, so that a boolean is no number; a float field still takes an int, and no float may be
# infinite or NaN.
Int = Annotated[int, BeforeValidator(_whole_number), Field(strict=True)]
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Bool = Annotated[bool, Field(strict=True)]  # true or false, not 1 or "yes"


class ParamsModel(BaseModel):
    """Base of a coding scheme's or a delay model's parameters: no unknown keys, fixed once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def short_number(value: float) -> str:
    """3 significant digits, exponents without padding: 0.25, 23.5, 1e9, 4.58e10."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{value:.3g}")


NUMBER_ERRORS = {"int_type": "is not a whole number", "int_parsing": "is not a whole number",
                 "int_from_float": "is not a whole number", "float_type": "is not a number",
                 "float_parsing": "is not a number", "finite_number": "is not finite",
                 "greater_than": "is out of range", "greater_than_equal": "is out of range",
                 "less_than": "is out of range", "less_than_equal": "is out of range"}


def value_types(annotation: Any) -> list[Any]:
    """The types a field's value may have, None and Annotated's metadata left out."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return [get_args(t)[0] if get_origin(t) is Annotated else t for t in members if t is not type(None)]


def allowed_range(field: FieldInfo | None) -> str:
    """'a whole number in [1, 1000000]', 'a finite number > 0' from a field's type and bounds."""
    whole = field is not None and int in value_types(field.annotation)
    kind = "a whole number" if whole else "a finite number"
    bound = {attr: getattr(item, attr) for item in getattr(field, "metadata", [])
             for attr in ("gt", "ge", "lt", "le") if getattr(item, attr, None) is not None}
    low = ("(", bound["gt"]) if "gt" in bound else ("[", bound["ge"]) if "ge" in bound else None
    high = (")", bound["lt"]) if "lt" in bound else ("]", bound["le"]) if "le" in bound else None
    if low and high:
        return f"{kind} in {low[0]}{short_number(low[1])}, {short_number(high[1])}{high[0]}"
    if low:
        return f"{kind} {'>' if low[0] == '(' else '>='} {short_number(low[1])}"
    if high:
        return f"{kind} {'<' if high[0] == ')' else '<='} {short_number(high[1])}"
    return kind


def allowed_values(field: FieldInfo) -> str:
    """What a field takes, read from its type and bounds ("'peel' or 'solve'", 'a finite number in
    (0, 1]'), with its description after it."""
    types = value_types(field.annotation)
    if len(types) == 1 and get_origin(types[0]) is Literal:
        kind = " or ".join(repr(value) for value in get_args(types[0]))
    elif types == [bool]:
        kind = "true or false"
    elif types and all(t in (int, float) for t in types):
        kind = allowed_range(field)
    else:
        return field.description or "a value"
    return f"{kind} ({field.description})" if field.description else kind


def problem(err: Mapping[str, Any], field: FieldInfo | None) -> str:
    """What is wrong with the value of one pydantic error and what is allowed, as one line."""
    kind, value = err["type"], err.get("input")
    if kind == "literal_error":
        return f"{value!r} is not allowed; allowed: {err.get('ctx', {}).get('expected', '')}"
    if kind == "bool_type":
        return f"{value!r} is not a boolean; allowed: true, false"
    if kind in NUMBER_ERRORS:
        return f"{value!r} {NUMBER_ERRORS[kind]}; allowed: {allowed_range(field)}"
    if kind == "list_type":
        return f"{value!r} is not a list; allowed: {allowed_values(field) if field is not None else 'a list'}"
    if kind == "missing":
        return f"missing; allowed: {allowed_values(field) if field is not None else 'a value'}"
    return f"{err['msg']} (got {value!r})"


def first_error(exc: ValidationError) -> Mapping[str, Any]:
    """The error to report of several: a value the user gave that is wrong comes before a key they
    have not given yet (pareto with a bad alpha and no scale names the alpha)."""
    errors = exc.errors()
    return next((err for err in errors if err["type"] != "missing"), errors[0])


def check(model: type[ParamsModel], values: Mapping[str, Any], owner: str, also: tuple[str, ...] = ()) -> ParamsModel:
    """`values` as an instance of `model`, or a BadInput naming the (first) bad key and what is allowed.
    An unknown key's message names `owner` ("scheme 'ldpc'") and lists the model's keys and `also`
    (keys the caller takes beside them)."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        err = first_error(exc)
        key = str(err["loc"][0]) if err["loc"] else ""  # the parameter, not an element of a list it holds
        if err["type"] == "extra_forbidden":
            allowed = ", ".join([*model.model_fields, *also]) or "none"
            raise BadInput(key, f"unknown parameter of {owner}; allowed: {allowed}") from None
        raise BadInput(key, problem(err, model.model_fields.get(key))) from None


def describe(model: type[BaseModel]) -> list[str]:
    """One line per parameter: its name, whether it is required or its default, what it takes."""
    lines = []
    for name, field in model.model_fields.items():
        default = "required" if field.is_required() else "unset" if field.default is None else field.default
        lines.append(f"{name} = {default}: {allowed_values(field)}")
    return lines
