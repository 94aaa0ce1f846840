"""What one command writes: never over what it reads, and all of it together or nothing.

`atomic_writer(path)` writes to a temporary file beside `path` and renames it
into place. Inside `command_outputs()`, the rename waits: every file the
command writes is staged, and at the end all are renamed together, with
SIGINT and SIGTERM held off, so a failure or a signal part-way leaves every
output as it was before (folders the command made for them are removed
again). An output path that is a symbolic link keeps its link: the file it
points to is staged beside and replaced. An output that is not a file but a
character device or a FIFO (/dev/null, a pipe a reader waits on, or
/dev/stdout and the other open descriptors under /proc/self/fd, whatever
they lead to) is never renamed over: its bytes are staged in an anonymous
temporary file and written to it directly, first at the commit. Before
committing, each output is compared with every file the command read:
loaders call `note_read` (a model, its weight sidecar or external data, a
target, workload, policy, trace or input arrays), and an output that is one
of them, or a link to one, is refused. A command can ask the same question
before doing any work (`refuse_overlap`).

Writes that must last on their own (a sweep's cache entries, kept so that
an interrupted sweep resumes) pass `durable=True`. Filesystem failures (a
full disk, /dev/full, a read-only folder, a path under a regular file) are
one `AalbertError` naming the path.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from aalbert import signals
from aalbert.errors import AalbertError, OptionError


class _Outputs:
    def __init__(self) -> None:
        self.staged: dict[Path, str] = {}   # destination -> temporary file
        self.direct: dict[Path, IO[bytes]] = {}  # device, FIFO or open descriptor -> its bytes, staged
        self.reads: set[Path] = set()
        self.made_dirs: list[Path] = []

    def clash(self, path: Path) -> Path | None:
        real = Path(os.path.realpath(path))
        for r in self.reads:
            if real == r or (path.exists() and r.exists() and os.path.samefile(path, r)):
                return r
        return None

    def commit(self) -> None:
        for dest in [*self.staged, *self.direct]:
            if self.clash(dest) is not None:
                raise OptionError(f"{dest}: refusing to overwrite a file this command reads")
        # devices and FIFOs first (a reader may make the write wait, so signals are not held): if one fails,
        # no file has been replaced yet
        for dest, staged in list(self.direct.items()):
            _deliver(staged, dest)
            staged.close()
            del self.direct[dest]
        with signals.deferred():
            for dest, tmp in self.staged.items():
                os.replace(tmp, dest)
        self.staged.clear()

    def abort(self) -> None:
        for tmp in self.staged.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.staged.clear()
        for staged in self.direct.values():
            staged.close()
        self.direct.clear()
        for d in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty


_CURRENT: contextvars.ContextVar[_Outputs | None] = contextvars.ContextVar("aalbert_outputs", default=None)


@contextlib.contextmanager
def command_outputs() -> Iterator[None]:
    """Stage every file written inside the block; commit them together at its end, or none."""
    outputs = _Outputs()
    token = _CURRENT.set(outputs)
    try:
        yield
        try:
            outputs.commit()
        except OSError as e:
            raise AalbertError(f"{e.filename or 'output'}: cannot write ({e.strerror})") from None
        outputs.made_dirs.clear()
    finally:
        outputs.abort()
        _CURRENT.reset(token)


def note_read(*paths: str | os.PathLike | None) -> None:
    """Record files the current command reads (outputs may not overwrite them)."""
    outputs = _CURRENT.get()
    if outputs is None:
        return
    for p in paths:
        if p is not None:
            outputs.reads.add(Path(os.path.realpath(p)))


def refuse_overlap(outputs: Iterable[str | os.PathLike | None], what: str = "output") -> None:
    """Before any work: refuse an output that is (or links to) a file the command has said it reads."""
    current = _CURRENT.get()
    if current is None:
        return
    for o in outputs:
        if o is not None and current.clash(Path(o)) is not None:
            raise OptionError(f"{o}: refusing to overwrite a file this command reads with the {what}")


def make_dir(path: str | os.PathLike) -> Path:
    """Create a folder for outputs (and its parents); removed again if the command fails while it is empty."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AalbertError(f"{path}: cannot create the folder ({e.strerror})") from None
    if not path.is_dir():
        raise AalbertError(f"{path}: exists and is not a folder")
    current = _CURRENT.get()
    if current is not None:
        current.made_dirs.extend(reversed(missing))
    return path


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", durable: bool = False) -> Iterator[IO]:
    """Write to a temporary file next to `path` (next to the file it links to, if it is a link); rename it over
    that file on success (inside a command, when the command commits, unless `durable`). A character device,
    a FIFO or an open descriptor is written to directly instead, never replaced."""
    path = Path(path)
    current = None if durable else _CURRENT.get()
    dest = path if durable else _destination(path)
    if dest is None:
        yield from _direct_writer(path, mode, current)
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent or ".")
    except OSError as e:
        raise AalbertError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        if current is None:
            os.replace(tmp, dest)
        else:
            old = current.staged.pop(dest, None)
            if old is not None:
                os.unlink(old)
            current.staged[dest] = tmp
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise AalbertError(f"{path}: cannot write ({e.strerror})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _direct_writer(path: Path, mode: str, current: _Outputs | None) -> Iterator[IO]:
    """The bytes for a device, FIFO or descriptor, staged in an anonymous temporary file."""
    try:
        staged = tempfile.TemporaryFile()
    except OSError as e:
        raise AalbertError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with contextlib.ExitStack() as keep:
            f = open(staged.fileno(), mode, closefd=False)
            keep.callback(f.close)
            yield f
        if current is None:
            _deliver(staged, path)
            staged.close()
        else:
            old = current.direct.pop(path, None)
            if old is not None:
                old.close()
            current.direct[path] = staged
    except OSError as e:
        staged.close()
        raise AalbertError(f"{path}: cannot write ({e.strerror})") from None
    except BaseException:
        staged.close()
        raise


def _deliver(staged: IO[bytes], path: Path) -> None:
    """Copy staged bytes to a device, FIFO or descriptor, appending (a regular file behind /dev/stdout keeps
    what the command printed before); a failure (ENOSPC from /dev/full, a reader gone) is one error."""
    sys.stdout.flush()  # what the command printed comes first when /dev/stdout is a file
    staged.seek(0)
    try:
        with open(path, "ab", buffering=0) as out:
            shutil.copyfileobj(staged, out)
    except OSError as e:
        raise AalbertError(f"{path}: cannot write ({e.strerror})") from None


def _destination(path: Path) -> Path | None:
    """Where to stage and rename for `path`: the file itself, or for a link the file it leads to. None for a
    character device, a FIFO or an open descriptor (/proc/self/fd/N, /dev/stdout), written to directly.
    A block device, a socket or a folder is refused."""
    hops = 0
    p = Path(os.path.abspath(path))
    while True:
        parent = Path(os.path.realpath(p.parent))
        if parent.parts[:2] == ("/", "proc"):
            return None  # an open descriptor: the file behind it stays the one the shell opened
        p = parent / p.name
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return p
        except OSError as e:
            raise AalbertError(f"{path}: cannot write ({e.strerror})") from None
        if not stat.S_ISLNK(st.st_mode):
            break
        hops += 1
        if hops > 40:
            raise AalbertError(f"{path}: cannot write (too many levels of symbolic links)")
        p = p.parent / os.readlink(p)
    if stat.S_ISREG(st.st_mode):
        return p
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return None
    kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode) else \
        "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file"
    raise AalbertError(f"{path}: is {kind}; refusing to write over it")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
