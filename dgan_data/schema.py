"""Small declarative checks for the JSON documents we read (headers, manifests, indexes).

Every format validates its document in one place with :func:`check_document`, so a
field of the wrong type, an absurd size or an unknown key is reported as one line
naming the file and the field, never as a TypeError from deep inside the code.

    check_document(meta, {"num_models": Int(1, 1000), "crop": Optional(IntList(4))}, path)
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "Any_",
    "Bool",
    "Dict",
    "Float",
    "Int",
    "IntList",
    "ListOf",
    "Optional",
    "SchemaError",
    "Str",
    "check_document",
]


class SchemaError(ValueError):
    """A JSON document does not have the shape its format prescribes."""


Check = Callable[[Any, str], Any]

#: Containers in error messages: a few items of a few levels.
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxdict = 3, 4
_SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = 8


def _fail(field: str, expected: str, value: Any) -> SchemaError:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # repr() of a huge int is slow and, past 4300 digits, raises ValueError itself
        shown = f"an integer of {value.bit_length()} bits"
    elif isinstance(value, (str, int, float, type(None))):
        shown = " ".join(repr(value).split())  # one line, whatever the string holds
    elif isinstance(value, (list, tuple, dict)):
        try:  # the first items only: a list may be long, its ints too long to print
            shown = " ".join(_SHORT_REPR.repr(value).split())
        except ValueError:
            shown = f"a {type(value).__name__} holding an integer too long to print"
    else:  # a tensor or an array from a checkpoint: its repr spans lines
        shown = f"a {type(value).__name__}"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return SchemaError(f"field '{field}' must be {expected}, got {shown}")


class Int:
    """An integer (not a bool) in [low, high]; a numpy integer (an option given from
    Python) is taken as the int it holds."""

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high

    def __call__(self, value: Any, field: str) -> int:
        desc = "an integer" + _range(self.low, self.high)
        if isinstance(value, np.integer):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(field, desc, value)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise _fail(field, desc, value)
        return value


class Float:
    """A finite number in [low, high] (ints accepted); with ``finite=False`` inf and NaN
    too, but never NaN when a bound is set (it compares as inside any range)."""

    def __init__(
        self, low: float | None = None, high: float | None = None, finite: bool = True
    ) -> None:
        self.low, self.high, self.finite = low, high, finite

    def __call__(self, value: Any, field: str) -> float:
        desc = ("a finite number" if self.finite else "a number") + _range(self.low, self.high)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(field, desc, value)
        try:
            v = float(value)
        except OverflowError:  # an int of 1,000 digits in a JSON document
            raise _fail(field, desc, value) from None
        bounded = self.low is not None or self.high is not None
        if (self.finite and not math.isfinite(v)) or (bounded and math.isnan(v)):
            raise _fail(field, desc, value)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise _fail(field, desc, value)
        return v


class Str:
    """A string of ``min_len`` to ``max_len`` characters, optionally one of ``choices``."""

    def __init__(
        self, max_len: int = 4096, choices: tuple[str, ...] | None = None, min_len: int = 0
    ) -> None:
        self.max_len, self.choices, self.min_len = max_len, choices, min_len

    def __call__(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not self.min_len <= len(value) <= self.max_len:
            most = f"at most {self.max_len}"
            size = f"{self.min_len} to {self.max_len}" if self.min_len else most
            raise _fail(field, f"a string of {size} characters", value)
        if self.choices is not None and value not in self.choices:
            raise _fail(field, f"one of {list(self.choices)}", value)
        return value


class Bool:
    def __call__(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise _fail(field, "true or false", value)
        return value


class Any_:  # noqa: N801 (reads like the type it stands for)
    """Anything JSON can hold (for free-form records such as training notes)."""

    def __call__(self, value: Any, field: str) -> Any:
        return value


class Dict:
    """A JSON object; with ``fields``, checked like a document."""

    def __init__(
        self, fields: Mapping[str, Check] | None = None, allow_unknown: bool = True
    ) -> None:
        self.fields, self.allow_unknown = fields, allow_unknown

    def __call__(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(field, "an object", value)
        if self.fields is not None:
            _check_fields(value, self.fields, field + ".", self.allow_unknown)
        return value


class ListOf:
    """A list of at most ``max_len`` items (exactly ``length`` when given), each checked."""

    def __init__(
        self, item: Check, max_len: int = 1_000_000, length: int | None = None, min_len: int = 0
    ) -> None:
        self.item, self.max_len, self.length, self.min_len = item, max_len, length, min_len

    def __call__(self, value: Any, field: str) -> list[Any]:
        if self.length is not None:
            desc = f"a list of {self.length} items"
        else:
            desc = f"a list of {self.min_len}..{self.max_len} items"
        if not isinstance(value, list):
            raise _fail(field, desc, value)
        n = len(value)
        if (self.length is not None and n != self.length) or not (
            self.min_len <= n <= self.max_len
        ):
            raise _fail(field, desc, value)
        for i, v in enumerate(value):
            self.item(v, f"{field}[{i}]")
        return value


def IntList(length: int, low: int | None = None, high: int | None = None) -> ListOf:  # noqa: N802
    """A list of exactly ``length`` integers in [low, high]."""
    return ListOf(Int(low, high), length=length)


class Optional:
    """``None`` or what ``check`` accepts."""

    def __init__(self, check: Check) -> None:
        self.check = check

    def __call__(self, value: Any, field: str) -> Any:
        return None if value is None else self.check(value, field)


def _range(low: Any, high: Any) -> str:
    if low is None and high is None:
        return ""
    lo = "-inf" if low is None else str(low)
    hi = "inf" if high is None else str(high)
    return f" in [{lo}, {hi}]"


def _check_fields(
    doc: dict[str, Any], fields: Mapping[str, Check], prefix: str, allow_unknown: bool
) -> None:
    for key, check in fields.items():
        optional = isinstance(check, Optional)
        if key not in doc:
            if optional:
                continue
            raise SchemaError(f"field '{prefix}{key}' is missing")
        check(doc[key], prefix + key)
    if not allow_unknown:
        # a JSON object has string keys, a checked Python dict may not: repr() sorts any
        unknown = sorted((k for k in doc if k not in fields), key=repr)
        if unknown:
            where = f" in '{prefix[:-1]}'" if prefix else ""
            raise SchemaError(f"unknown field(s) {unknown}{where} (known: {sorted(fields)})")


def check_document(
    doc: Any, fields: Mapping[str, Check], where: str, *, allow_unknown: bool = True
) -> dict[str, Any]:
    """Check a parsed JSON object against ``fields``; errors name ``where`` and the field."""
    if not isinstance(doc, dict):
        raise SchemaError(f"{where}: expected a JSON object, found {type(doc).__name__}")
    try:
        _check_fields(doc, fields, "", allow_unknown)
    except SchemaError as err:
        raise SchemaError(f"{where}: {err}") from None
    return doc
