"""How much memory one command may use, checked before the work that would need it.

A small input can describe a huge amount of work (a 180-byte IR constant of
64 M elements, a 1 MB `.npz` that inflates to gigabytes, a batch of 100,000).
Every loader and every step that sizes data from its input estimates what it
will allocate and asks `check_bytes` first, so such a request is one clear
error instead of minutes of swapping. One budget bounds the whole command:
a step may start only if what the process holds now (its resident set) plus
the step's estimate fits. The budget is what the user gives with
`--max-memory`, or by default `DEFAULT_SHARE` of the memory available when
the command starts (`MemAvailable` in /proc/meminfo, which counts what the
system can give without swapping) on top of what the process holds then
(`budget(...)` sets it for a block of code). Outside any command, as in a
library call, each check allows that share of what is available at the time.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
from collections.abc import Iterator

from aalbert.errors import AalbertError

DEFAULT_SHARE = 0.9  # of the available memory: the rest is the margin left to the system and to estimates' error
DEFAULT_RULE = f"{DEFAULT_SHARE:.0%} of the memory available when the command starts"

_budget: int | None = None  # None: no command's budget; each check allows DEFAULT_SHARE of what is available


class LimitError(AalbertError):
    """A request for more memory than the command's budget."""


def available_bytes() -> int:
    """Memory the system can give now without swapping: MemAvailable (Linux), else psutil's estimate."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import psutil

    return int(psutil.virtual_memory().available)


def in_use() -> int:
    """This process's resident set now."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        return int(psutil.Process().memory_info().rss)


def default_budget() -> int:
    """What the process holds now plus `DEFAULT_SHARE` of the memory available now."""
    return in_use() + int(DEFAULT_SHARE * available_bytes())


def max_bytes() -> int:
    return default_budget() if _budget is None else _budget


@contextlib.contextmanager
def budget(nbytes: int | None = None) -> Iterator[None]:
    """Run a block (a command) with `nbytes` as the memory budget; None: the default, fixed as the block
    starts."""
    global _budget
    old, _budget = _budget, int(default_budget() if nbytes is None else nbytes)
    try:
        yield
    finally:
        _budget = old


def grant(nbytes: int) -> None:
    """This process's budget from now on: what it holds now plus `nbytes` (a worker's share of its command's
    budget)."""
    global _budget
    _budget = in_use() + int(nbytes)


def room() -> int:
    """What the budget leaves beside what the process holds now."""
    return max(max_bytes() - in_use(), 0)


def check_bytes(nbytes: float, what: str) -> None:
    """Refuse `what` if it needs more than the budget leaves beside what the process already holds (the
    message names it and how to raise the budget)."""
    limit, held = max_bytes(), in_use()
    if nbytes + held <= limit:
        return
    if nbytes > limit or _budget is None:
        raise LimitError(f"{what} needs {_size(nbytes)}, more than the memory budget of {_size(limit)} "
                         "(raise it with --max-memory)")
    raise LimitError(f"{what} needs {_size(nbytes)}, more than the {_size(max(limit - held, 0))} that the memory "
                     f"budget of {_size(limit)} leaves beside the {_size(held)} in use (raise it with --max-memory)")


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


def open_regular(path: str | os.PathLike, what: str = "input") -> io.BufferedReader:
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
