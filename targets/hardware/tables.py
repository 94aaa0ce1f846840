"""Reading a target's TOML tables: typed getters, one-line errors naming the file, table and key."""

from __future__ import annotations

import difflib
import math

from aalbert.errors import AalbertError


class TargetError(AalbertError):
    """A target (or workload) file that cannot be used."""


class Table:
    """A TOML table being read: typed getters, and unknown keys reported at the end."""

    def __init__(self, where: str, data, required_source: bool = True):
        if not isinstance(data, dict):
            raise TargetError(f"{where}: expected a table")
        self.where = where
        self.data = data
        self.used: set[str] = set()
        if required_source and _has_numbers(data) and not isinstance(data.get("source"), str):
            raise TargetError(f"{where}: numbers without a 'source' (say where they come from)")

    def get(self, key: str, kind, default=...):
        self.used.add(key)
        if key not in self.data:
            near = difflib.get_close_matches(key, [k for k in self.data if k not in self.used], n=1)
            if near and default is ...:  # a misspelling is more useful to hear about than a missing key
                raise TargetError(f"{self.where}: unknown key '{near[0]}' (did you mean '{key}'?)")
            if default is ...:
                raise TargetError(f"{self.where}: missing key '{key}'")
            return default
        value = self.data[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is bool:
            ok = isinstance(value, bool)
        elif kind is str:
            ok = isinstance(value, str)
        elif kind is list:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            value = tuple(value) if ok else value
        elif kind is dict:
            ok = isinstance(value, dict)
        else:
            raise TypeError(kind)
        if not ok:
            raise TargetError(f"{self.where}: key '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
        return value

    def positive(self, key: str, kind=float, default=..., allow_zero: bool = False, allow_inf: bool = False):
        """A positive number (or zero) in the range where every figure derived from it stays finite: floats
        in [1e-9, 1e12] in the table's unit (inf only where it means "never", as an endurance), integers up
        to 2^50."""
        value = self.get(key, kind, default)
        if value is None:
            return value
        sign = "non-negative" if allow_zero else "positive"
        if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
            raise TargetError(f"{self.where}: key '{key}' must be {sign}, got {value}")
        if math.isinf(value):
            if allow_inf:
                return value
            raise TargetError(f"{self.where}: key '{key}' must be finite, got {value}")
        if kind is int and value > 2 ** 50 or kind is float and value and not 1e-9 <= value <= (
                math.inf if allow_inf else 1e12):
            raise TargetError(f"{self.where}: key '{key}' = {value} is outside the range aalbert models "
                              f"({'1 to 2^50' if kind is int else '1e-9 to 1e12'})")
        return value

    def choice(self, key: str, choices, default=...):
        value = self.get(key, str, default)
        if value not in choices:
            raise TargetError(f"{self.where}: key '{key}' must be one of {', '.join(choices)}, got {value!r}")
        return value

    def done(self, extra=()) -> None:
        unknown = set(self.data) - self.used - {"source"} - set(extra)
        if unknown:
            key = sorted(unknown)[0]
            near = difflib.get_close_matches(key, sorted(self.used | set(extra)), n=1)
            raise TargetError(f"{self.where}: unknown key '{key}'" + (f" (did you mean '{near[0]}'?)" if near else ""))


def named_table(where: str, kind: str, index: int, data) -> Table:
    """The table of the `index`-th entry of an array of tables (`[[memory]]`, `[[buffer]]`), named in errors by
    its `name` key when it has one."""
    label = data.get("name") if isinstance(data, dict) and isinstance(data.get("name"), str) else f"#{index}"
    return Table(f"{where}: {kind} '{label}'", data)


def _has_numbers(data: dict) -> bool:
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values())
