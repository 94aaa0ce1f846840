"""Pass infrastructure: declarative passes, a registry, pipelines and a checked pass manager.

A pass is a frozen dataclass with a `name` and typed options; its options
double as pipeline syntax, e.g. `fold-transposes,dce` or
`quantize{bits=4,format=int}`. `PassManager` runs a pipeline, verifies the
module after every pass (naming the pass that broke it) and can keep the IR
text after each pass for `--dump-ir`.

What a pass learns that is not IR (the allocator's objective, bound and
binding constraints) goes into `Analyses`, kept by the pass manager beside
the module, as MLIR's analysis manager keeps analyses: a result is recorded
by type, asked for by type, and dropped when a later pass changes the module.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from aalbert.errors import IRVerifyError, OptionError
from aalbert.ir.module import Module
from aalbert.ir.printer import print_module
from aalbert.ir.verifier import verify

A = TypeVar("A")


class Analyses:
    """Results computed about a module that are not part of the IR, one per type."""

    def __init__(self) -> None:
        self._results: dict[type, object] = {}

    def put(self, result: object) -> None:
        self._results[type(result)] = result

    def get(self, kind: type[A]) -> A | None:
        return self._results.get(kind)  # type: ignore[return-value]

    def clear(self) -> None:
        self._results.clear()


@dataclass(frozen=True)
class Pass:
    """Base class: subclasses are frozen dataclasses whose fields are options."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False       # reads weight values, not only types and facts
    changes_nothing: ClassVar[bool] = False  # a check: analyses stay valid after it

    def run(self, module: Module, analyses: Analyses) -> Module:
        raise NotImplementedError

    def spec(self) -> str:
        """This pass as pipeline text (options that differ from the defaults)."""
        opts = [f"{f.name}={_format(getattr(self, f.name))}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default]
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")


PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    if cls.name in PASSES:
        raise ValueError(f"pass {cls.name} registered twice")
    PASSES[cls.name] = cls
    return cls


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)) or value is None:
        return str(value)
    return str(getattr(value, "name", value))  # a Target, Workload or Policy given in Python: its name


_ITEM = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*(\{[^{}]*\})?\s*")


def parse_pipeline(text: str) -> list[Pass]:
    """Parse `p1,p2{opt=v,...},...` into pass instances."""
    passes: list[Pass] = []
    pos = 0
    text = text.strip()
    if not text:
        raise OptionError("empty pass pipeline")
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise OptionError(f"bad pass pipeline {text!r} at character {pos + 1}")
        passes.append(make_pass(m.group(1), _options(m.group(1), m.group(2))))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise OptionError(f"bad pass pipeline {text!r}: expected ',' at character {pos + 1}")
            pos += 1
            if pos == len(text):
                raise OptionError(f"bad pass pipeline {text!r}: ends with ','")
    return passes


def _options(name: str, body: str | None) -> dict[str, str]:
    if not body:
        return {}
    opts: dict[str, str] = {}
    inner = body[1:-1].strip()
    if not inner:
        return opts
    for item in _split_top(inner):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise OptionError(f"pass '{name}': bad option {item.strip()!r} (expected key=value)")
        if key in opts:
            raise OptionError(f"pass '{name}': option '{key}' given twice")
        opts[key] = value
    return opts


def _split_top(text: str) -> list[str]:
    """Split at commas that are not inside <...> (so afloat<8,3> stays one value)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "<") - (ch == ">")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def make_pass(name: str, options: Mapping[str, object], typed: bool = False) -> Pass:
    """The pass `name` with `options`: text converted by each option's annotation, or, with `typed` (a pipeline
    built in Python), values as they are, which may be objects (a `Target`, a `Workload`, a `Policy`)."""
    cls = PASSES.get(name)
    if cls is None:
        near = difflib.get_close_matches(name, PASSES, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise OptionError(f"unknown pass '{name}'{hint}; known passes: {', '.join(sorted(PASSES))}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, raw in options.items():
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            near = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise OptionError(f"pass '{name}': unknown option '{key}'{hint} (options: {known})")
        kwargs[key] = raw if typed else _convert(name, key, str(raw), hints[key])
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise OptionError(f"pass '{name}': {e}") from None


def _convert(name: str, key: str, raw: str, hint) -> object:
    args = typing.get_args(hint)
    if type(None) in args and len(args) == 2:  # an optional option: 'none' is its absence
        if raw.lower() == "none":
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if hint is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if hint is int:
            return int(raw)
        if hint is float:
            value = float(raw)
            if not math.isfinite(value):
                raise OptionError(f"pass '{name}': option '{key}' must be a finite number, got {raw!r}")
            return value
        if typing.get_origin(hint) is typing.Literal:
            choices = typing.get_args(hint)
            if raw not in choices:
                raise OptionError(f"pass '{name}': option '{key}' must be one of {', '.join(choices)}, got {raw!r}")
            return raw
        return raw
    except ValueError:
        kind = getattr(hint, "__name__", str(hint))
        raise OptionError(f"pass '{name}': option '{key}' must be {kind}, got {raw!r}") from None


class PassManager:
    """Run passes in order; keep analyses; optionally keep each stage's IR text. With `verify_each` (tests,
    debugging) the module is verified after every pass and a failure names the pass; without it, once at
    the end."""

    def __init__(self, passes: list[Pass], verify_each: bool = True, keep_text: bool = False):
        self.passes = passes
        self.verify_each = verify_each
        self.keep_text = keep_text
        self.dumps: list[tuple[str, str]] = []  # (file name, IR text)
        self.analyses = Analyses()

    def run(self, module: Module, before_pass: Callable[[Pass, Module], None] | None = None) -> Module:
        for p in self.passes:  # refuse before doing any work
            if p.needs_data and not module.has_data:
                raise OptionError(f"pass '{p.name}' needs weight data, and the module has none "
                                  "(load it with its .npz sidecar)")
        for i, p in enumerate(self.passes, start=1):
            if before_pass is not None:
                before_pass(p, module)
            if not p.changes_nothing:
                self.analyses.clear()
            module = p.run(module, self.analyses)
            if self.verify_each:
                try:
                    verify(module)
                except IRVerifyError as e:
                    raise IRVerifyError(f"after pass '{p.name}': {e.message}", e.loc) from None
            if self.keep_text:
                self.dumps.append((f"{i:02d}-{p.name}.ir", print_module(module)))
        if not self.verify_each and self.passes:
            try:
                verify(module)
            except IRVerifyError as e:
                raise IRVerifyError(f"after the pipeline: {e.message}", e.loc) from None
        return module
