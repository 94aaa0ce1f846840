"""The error family for everything a user can cause.

Every error that bad input can trigger (a malformed file, an unsupported op,
an option out of range, a model that does not fit) is an `AalbertError`.
Command-line tools print its message on one line and exit with status 2;
anything else escaping is a bug in aalbert.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A position in a text file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class AalbertError(Exception):
    """Base of all user-facing errors; the message is one line."""

    def __init__(self, message: str, loc: Loc | None = None):
        self.loc = loc
        self.message = message
        super().__init__(f"{loc}: {message}" if loc else message)


class IRParseError(AalbertError):
    """The IR text does not follow the grammar."""


class IRVerifyError(AalbertError):
    """The IR is well-formed text but breaks an invariant (SSA, types, ...)."""


class FrontendError(AalbertError):
    """A model file or module cannot be imported."""


class UnsupportedOpError(FrontendError):
    """An operator the frontend does not know."""


class InterpreterError(AalbertError):
    """The reference interpreter cannot run a graph on the given inputs."""


class OptionError(AalbertError):
    """A bad command-line option, pass option or configuration value."""
