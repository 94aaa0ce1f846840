"""How much memory one command may ask for, checked before anything is allocated.

A small input can describe a huge amount of work (a 180-byte IR constant of
64 M elements, a 1 MB `.npz` that inflates to gigabytes, a batch of 100,000).
Every loader and every step that sizes data from its input asks
`check_bytes` first, so such a request is one clear error instead of minutes
of swapping. The budget is per command: `DEFAULT_BUDGET`, or what the user
gives with `--max-memory` (`budget(...)` sets it for a block of code).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from typing import BinaryIO, Iterator

from .errors import AalbertError

DEFAULT_BUDGET = 8 * 2 ** 30  # bytes: a quarter to a third of a development machine's memory

_budget = DEFAULT_BUDGET


class LimitError(AalbertError):
    """A request for more memory than the command's budget."""


def max_bytes() -> int:
    return _budget


@contextlib.contextmanager
def budget(nbytes: int) -> Iterator[None]:
    """Run a block with `nbytes` as the memory budget."""
    global _budget
    old, _budget = _budget, int(nbytes)
    try:
        yield
    finally:
        _budget = old


def check_bytes(nbytes: float, what: str) -> None:
    """Refuse `what` if it needs more than the budget (the message names it and how to raise the budget)."""
    if nbytes > _budget:
        raise LimitError(f"{what} needs {_size(nbytes)}, more than the memory budget of {_size(_budget)} "
                         "(raise it with --max-memory)")


def _size(n: float) -> str:
    for unit, scale in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def parse_size(text: str) -> int:
    """`--max-memory` values: a number of bytes with an optional unit (K, M, G, KiB, MB, ...)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise AalbertError(f"--max-memory: expected a size such as 2G or 512MiB, got {text!r}")
    scale = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    if value < 2 ** 20:
        raise AalbertError(f"--max-memory: {text!r} is less than 1 MiB")
    return value


def open_regular(path: str | os.PathLike, what: str = "input") -> BinaryIO:
    """Open an input file for reading, refusing anything but a regular file (a FIFO would block the
    command forever, a device such as /dev/zero would be read until memory runs out).

    The file is opened without blocking and checked on the open descriptor, so a path swapped for a
    FIFO between a check and the open cannot slip through."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise AalbertError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AalbertError(f"{path}: is a directory, expected a file ({what})") from None
    except OSError as e:
        raise AalbertError(f"{path}: cannot read ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AalbertError(f"{path}: is a directory, expected a file ({what})")
        if not stat.S_ISREG(st.st_mode):
            raise AalbertError(f"{path}: is not a regular file ({_file_kind(st.st_mode)}); {what} must be a file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str | os.PathLike, what: str = "input") -> None:
    """Refuse a path that is not a regular file, for readers that open it themselves (onnx, torch)."""
    open_regular(path, what).close()


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"
