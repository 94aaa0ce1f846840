"""IR test files: a pipeline, an input module and the expected result in one file (the FileCheck habit).

A file holds one or more cases separated by a line `// -----`. In a case:

    // RUN: canonicalize,share       the pipeline (a case without one takes the previous case's);
                                     %S stands for the folder holding the file
    // DATA: seeded [SEED]           give the weights seeded random data first (default: no data, as
                                     an IR file without its .npz sidecar)
    // SAME-OUTPUTS: [atol=A] [rtol=R] [ids=N]
                                     the interpreter gives the same outputs before and after the
                                     pipeline on seeded inputs (integer inputs drawn from [0, N))
    // CHECK: text                   a line of the printed result holds `text`, after the previous match
    // CHECK-NEXT: text              the line right after the previous match holds `text`
    // CHECK-EMPTY:                  the line right after the previous match is empty
    // CHECK-NOT: text               no line between the previous and the next match (or the end) holds it
    // ERROR: text                   the case fails with one `AalbertError` whose message holds `text`

In `text`, runs of blanks match any run of blanks and `{{regex}}` matches a
regular expression (e.g. `hash "{{[0-9a-f]+}}"`). Everything that is not a
directive is the input module (the IR grammar skips `//` comments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SEPARATOR = re.compile(r"^//\s*-{5,}\s*$")
DIRECTIVE = re.compile(r"^\s*//\s*(RUN|DATA|SAME-OUTPUTS|CHECK|CHECK-NEXT|CHECK-EMPTY|CHECK-NOT|ERROR):(.*)$")
CHECKS = ("CHECK", "CHECK-NEXT", "CHECK-EMPTY", "CHECK-NOT")


class CaseError(Exception):
    """A malformed case (the file's fault, not the pass's)."""


class Mismatch(AssertionError):
    """The result does not match the case's checks."""


@dataclass(frozen=True)
class Check:
    kind: str     # CHECK, CHECK-NEXT, CHECK-EMPTY or CHECK-NOT
    text: str
    line: int     # in the .ir file, 1-based

    def matches(self, line: str) -> bool:
        return pattern(self.text).search(line) is not None


@dataclass
class Case:
    path: Path
    index: int               # 1-based position in its file
    first_line: int          # where its text starts in the file, 1-based
    text: str                # the whole case, directives included
    pipeline: str = ""
    seed: int | None = None  # None: no weight data
    same_outputs: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.index}"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.first_line}"

    @property
    def module_text(self) -> str:
        """The case's text at its own line numbers, so parse errors point into the file."""
        return "\n" * (self.first_line - 1) + self.text


def pattern(text: str) -> re.Pattern:
    """`{{regex}}` parts as given, the rest literal with blanks matching any blanks."""
    parts, text, pos = [], text.strip(), 0
    while pos < len(text):
        start = text.find("{{", pos)
        literal = text[pos:] if start < 0 else text[pos:start]
        parts.append(r"\s+".join(re.escape(w) for w in re.split(r"\s+", literal)))
        if start < 0:
            break
        end = _closing(text, start + 2)
        parts.append(f"(?:{text[start + 2:end]})")
        pos = end + 2
    return re.compile("".join(parts))


def _closing(text: str, pos: int) -> int:
    """Where the `}}` closing a regex that starts at `pos` is (braces inside it, as in {16}, nest)."""
    depth = 0
    for i in range(pos, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0 and text.startswith("}}", i):
                return i
            depth = max(depth - 1, 0)
    raise CaseError(f"unclosed '{{{{' in {text!r}")


def read_cases(path: Path) -> list[Case]:
    lines = path.read_text().splitlines(keepends=True)
    chunks, start = [], 0
    for i, line in enumerate(lines):
        if SEPARATOR.match(line):
            chunks.append((start, lines[start:i]))
            start = i + 1
    chunks.append((start, lines[start:]))
    cases, pipeline = [], ""
    for index, (start, chunk) in enumerate(chunks, start=1):
        case = _case(path, index, start + 1, "".join(chunk))
        if not case.pipeline:
            case.pipeline = pipeline
        if not case.pipeline:
            raise CaseError(f"{case.where}: no '// RUN:' line in this case or an earlier one")
        pipeline = case.pipeline
        cases.append(case)
    return cases


def _case(path: Path, index: int, first_line: int, text: str) -> Case:
    case = Case(path, index, first_line, text)
    for offset, line in enumerate(text.splitlines()):
        m = DIRECTIVE.match(line)
        if not m:
            continue
        kind, arg, where = m.group(1), m.group(2).strip(), f"{path}:{first_line + offset}"
        if kind == "RUN":
            case.pipeline = arg.replace("%S", str(path.parent))
        elif kind == "DATA":
            words = arg.split()
            if not words or words[0] not in ("seeded", "none") or len(words) > 2 or (
                    len(words) == 2 and (words[0] != "seeded" or not words[1].isdigit())):
                raise CaseError(f"{where}: expected '// DATA: seeded [SEED]' or '// DATA: none', got {arg!r}")
            case.seed = int(words[1]) if len(words) == 2 else (0 if words[0] == "seeded" else None)
        elif kind == "SAME-OUTPUTS":
            case.same_outputs = _tolerances(arg, where)
        elif kind == "ERROR":
            if case.error is not None or not arg:
                raise CaseError(f"{where}: one non-empty '// ERROR:' line per case")
            case.error = arg
        else:
            if (kind == "CHECK-EMPTY") != (not arg):
                raise CaseError(f"{where}: {kind} " + ("takes no text" if kind == "CHECK-EMPTY" else "needs a text"))
            try:
                pattern(arg)
            except (CaseError, re.error) as e:
                raise CaseError(f"{where}: {kind}: {e}") from None
            case.checks.append(Check(kind, arg, first_line + offset))
    if case.error is not None and (case.checks or case.same_outputs):
        raise CaseError(f"{case.where}: a case expects an ERROR or checks its result, not both")
    if case.error is None and not any(c.kind in ("CHECK", "CHECK-NEXT") for c in case.checks):
        raise CaseError(f"{case.where}: nothing to check (no CHECK, CHECK-NEXT or ERROR line)")
    for before, after in zip(case.checks, case.checks[1:]):
        if before.kind == "CHECK-NOT" and after.kind in ("CHECK-NEXT", "CHECK-EMPTY"):
            raise CaseError(f"{case.path}:{after.line}: {after.kind} right after CHECK-NOT leaves it nothing to check")
    if case.checks and case.checks[0].kind in ("CHECK-NEXT", "CHECK-EMPTY"):
        raise CaseError(f"{case.path}:{case.checks[0].line}: {case.checks[0].kind} needs a match before it")
    return case


def _tolerances(arg: str, where: str) -> dict[str, float]:
    opts = {"atol": 1e-5, "rtol": 1e-5, "ids": 4}
    for item in arg.split():
        key, eq, value = item.partition("=")
        try:
            if key not in opts or not eq:
                raise ValueError
            opts[key] = int(value) if key == "ids" else float(value)
        except ValueError:
            raise CaseError(f"{where}: SAME-OUTPUTS takes atol=, rtol=, ids=, got {item!r}") from None
    return opts


def match(checks: list[Check], output: str, where: Path) -> None:
    """Raise `Mismatch` naming the first check the output breaks."""
    lines = output.splitlines()
    last, pending = -1, []  # index of the last matched line; CHECK-NOTs waiting for the next match

    def fail(check: Check, why: str):
        shown = "\n".join(f"{i + 1:4d} | {line}" for i, line in enumerate(lines))
        raise Mismatch(f"{where}:{check.line}: {check.kind}: {check.text!r} {why}\noutput:\n{shown}")

    def forbid(upto: int):
        for check in pending:
            for i in range(last + 1, upto):
                if check.matches(lines[i]):
                    fail(check, f"matches output line {i + 1}: {lines[i]!r}")
        pending.clear()

    for check in checks:
        if check.kind == "CHECK-NOT":
            pending.append(check)
        elif check.kind == "CHECK":
            found = next((i for i in range(last + 1, len(lines)) if check.matches(lines[i])), None)
            if found is None:
                fail(check, f"not found after output line {last + 1}")
            forbid(found)
            last = found
        else:
            nxt = last + 1
            if nxt >= len(lines):
                fail(check, "has no line to match: the output ends")
            ok = lines[nxt].strip() == "" if check.kind == "CHECK-EMPTY" else check.matches(lines[nxt])
            if not ok:
                fail(check, f"does not match output line {nxt + 1}: {lines[nxt]!r}")
            last = nxt
    forbid(len(lines))
