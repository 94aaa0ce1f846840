"""What passes learn about weights and graphs, declared once: the schema of fact records.

A fact record (`Role`, `Encoding`, `Placement`, `Arena`) is a frozen
dataclass; its fields' type hints and defaults are its schema. A field may be
an int, a float, a bool, a str, a `Literal` of strings (a choice), a tuple of
ints or of strs, or any of these or None; `metadata={"key": ...}` renames it
in the text, `metadata={"min": n}` bounds a number from below and
`metadata={"always": True}` prints it even when it has its default value. The
printer, the parser and the verifier all read the schema through this
module, so a new field is one line in its record:

- `fact_attrs(record, baseline)`: the fields as IR attributes, leaving out
  those equal to the baseline's (or None);
- `fact_record(cls, attrs, baseline)`: a record from IR attributes, every key
  known and every value of its field's type, else `FactError`;
- `check_record(record)`: the same checks on a record a pass built, plus the
  record's own `check()` for rules across fields.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal


class FactError(ValueError):
    """A fact that does not fit its schema (the message names the key)."""


@dataclass(frozen=True)
class FactField:
    name: str                       # the dataclass field
    key: str                        # its name in the IR text
    base: type                      # int, float, bool, str or tuple
    item: type | None = None        # tuple items: int or str
    choices: tuple[str, ...] = ()   # a Literal's strings
    optional: bool = False          # None is allowed
    required: bool = False          # no default
    default: Any = None
    always: bool = False            # printed even when equal to the default
    minimum: float = -math.inf

    def describe(self) -> str:
        if self.choices:
            text = " or ".join(repr(c) for c in self.choices)
        elif self.base is tuple:
            text = f"a list of {self.item.__name__}s"
        else:
            text = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.base]
        if self.minimum > -math.inf:
            text += f" >= {self.minimum:g}"
        return text + (" (or absent)" if self.optional else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.base is tuple:
            return type(value) is tuple and all(type(v) is self.item for v in value)
        exact = type(value)  # not compared inline: mypy would narrow `value` to `self.base`'s instances (object)
        if exact is not self.base and not (self.choices and isinstance(value, str)):
            return False
        if self.choices:
            return value in self.choices
        if self.base in (int, float):
            return not math.isnan(value) and value >= self.minimum
        return True


def _field(f: dataclasses.Field, hint: Any) -> FactField:
    optional = False
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        (hint,) = [a for a in args if a is not type(None)]
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    default: Any = None
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif callable(f.default_factory):  # not dataclasses.MISSING
        default = f.default_factory()
    common = dict(name=f.name, key=f.metadata.get("key", f.name), optional=optional, required=required,
                  default=default, always=f.metadata.get("always", False), minimum=f.metadata.get("min", -math.inf))
    if typing.get_origin(hint) is Literal:
        return FactField(base=str, choices=tuple(typing.get_args(hint)), **common)
    if typing.get_origin(hint) is tuple:
        item, ellipsis = typing.get_args(hint)
        if ellipsis is not Ellipsis or item not in (int, str):
            raise TypeError(f"fact field {f.name}: tuples hold ints or strs, as tuple[int, ...]")
        return FactField(base=tuple, item=item, **common)
    if hint not in (int, float, bool, str):
        raise TypeError(f"fact field {f.name}: unsupported type {hint}")
    return FactField(base=hint, **common)


@functools.cache
def schema(cls: type) -> tuple[FactField, ...]:
    """The fields of a fact record, in declaration order."""
    hints = typing.get_type_hints(cls)
    return tuple(_field(f, hints[f.name]) for f in dataclasses.fields(cls))


def fact_keys(cls: type) -> set[str]:
    return {f.key for f in schema(cls)}


def fact_attrs(record: object, baseline: Any = None) -> dict[str, Any]:
    """The record's fields by text key, leaving out None and what equals the baseline's field (without a
    baseline: the field's default; fields without a default are always given)."""
    out = {}
    cls: type = type(record)  # as `type`: mypy takes a type[...] for unhashable (python/mypy#11470)
    for f in schema(cls):
        value = getattr(record, f.name)
        if value is None:
            continue
        if baseline is not None and value == getattr(baseline, f.name):
            continue
        if baseline is None and not (f.required or f.always) and value == f.default:
            continue
        out[f.key] = value
    return out


def fact_record(cls: type, attrs: dict[str, Any], baseline: Any = None) -> Any:
    """Build a record of `cls` from attributes by text key (fields not given: the baseline's or defaults)."""
    fields = {f.key: f for f in schema(cls)}
    for key in attrs:
        if key not in fields:
            raise FactError(f"unknown fact '{key}'")
    missing = [k for k, f in fields.items() if f.required and k not in attrs and baseline is None]
    if missing:
        raise FactError(f"fact '{missing[0]}' is missing")
    values = {}
    for key, value in attrs.items():
        f = fields[key]
        if not f.accepts(value):
            raise FactError(f"fact '{key}' must be {f.describe()}, got {value!r}")
        values[f.name] = value
    record = dataclasses.replace(baseline, **values) if baseline is not None else cls(**values)
    _check(record)
    return record


def check_record(record: object) -> None:
    """Raise FactError if a record's fields do not fit its schema or contradict each other."""
    cls: type = type(record)  # see fact_attrs
    for f in schema(cls):
        value = getattr(record, f.name)
        if not f.accepts(value):
            raise FactError(f"fact '{f.key}' must be {f.describe()}, got {value!r}")
    _check(record)


def _check(record: Any) -> None:
    check = getattr(record, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as e:
            raise FactError(str(e)) from None
