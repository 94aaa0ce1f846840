"""The signals that stop a command (SIGINT, SIGTERM), kept where they must land and held off where they must wait.

The kernel hands a signal sent to the process to any of its threads that does not block it. Python runs the
handler in the main thread, but only when that thread next runs: one taken by a helper thread while the main
thread sleeps in a wait (for a worker's result) is not seen until the wait ends. `blocked()` blocks both
signals in the calling thread while it starts threads or processes, which inherit the mask, so that the main
thread is the one left to receive them; one that arrives meanwhile is delivered on leaving.

`deferred()` makes both wait for a stretch that must not be cut (outputs renamed into place): a signal that
arrives meanwhile, in whichever thread, is recorded and raised again on leaving. Both act in the main thread
only, where Python's handlers run; elsewhere they do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOPS = frozenset({signal.SIGINT, signal.SIGTERM})


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in this thread and in the threads and processes started meanwhile."""
    if not _in_main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unblock() -> None:
    """A process forked inside `blocked()` takes both signals again."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM recorded, not acted on, until the block ends; then the first is raised again."""
    if not _in_main_thread():
        yield
        return
    arrived: list[int] = []

    def record(signum, frame):
        arrived.append(signum)

    old = {s: signal.signal(s, record) for s in sorted(STOPS)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if arrived:
            signal.raise_signal(arrived[0])
