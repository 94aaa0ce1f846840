"""`aalbert.signals`: threads started inside `blocked()` never take SIGINT or SIGTERM, and inside `deferred()` a
stopping signal, whichever thread the kernel hands it to, waits for the block to end."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from aalbert import signals


def _blocked_in(tid: int) -> set[int]:
    """The signals thread `tid` of this process blocks, from the kernel's view."""
    lines = Path(f"/proc/self/task/{tid}/status").read_text().splitlines()
    line = next(row for row in lines if row.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {s for s in range(1, 65) if mask >> (s - 1) & 1}


def _thread_started(inside_blocked: bool) -> set[int]:
    ready, leave = threading.Event(), threading.Event()
    tid: list[int] = []

    def run():
        tid.append(threading.get_native_id())
        ready.set()
        leave.wait()

    t = threading.Thread(target=run)
    if inside_blocked:
        with signals.blocked():
            t.start()
    else:
        t.start()
    ready.wait()
    try:
        return _blocked_in(tid[0])
    finally:
        leave.set()
        t.join()


def test_a_thread_started_inside_blocked_blocks_both_and_the_caller_gets_them_back():
    before = _blocked_in(threading.get_native_id())
    assert {signal.SIGINT, signal.SIGTERM} <= _thread_started(inside_blocked=True)
    assert not {signal.SIGINT, signal.SIGTERM} & _thread_started(inside_blocked=False)
    assert _blocked_in(threading.get_native_id()) == before


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler, which it installs only when it did not inherit SIGINT ignored (a suite
    started in the background does)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("python_sigint")
@pytest.mark.parametrize("where", ["this thread", "another thread"])
def test_a_signal_inside_deferred_lets_the_block_finish_then_is_raised(where):
    leave = threading.Event()
    other = threading.Thread(target=leave.wait)
    other.start()
    finished = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals.deferred():
                if where == "this thread":
                    signal.raise_signal(signal.SIGINT)
                else:  # the C handler runs there; Python's runs here at the next instruction
                    signal.pthread_kill(other.ident, signal.SIGINT)
                for _ in range(20):
                    time.sleep(0.005)
                finished.append(True)
    finally:
        leave.set()
        other.join()
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
