"""`aalbert-study` stopped by a signal while its workers run: SIGTERM to the command (as `kill` sends it) and
SIGINT to its whole process group (as Ctrl-C does). It leaves within seconds with one line on stderr and the
status shells expect, its workers gone with it (ended and reaped, none left running), and no output written.
A signal sent to the process may be handed by the kernel to any of its threads that does not block it; one
taken by a pool thread left the command asleep until a job finished, so that case is tried on purpose."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import sigint_as_from_a_shell

# four configurations of the study-size decoder: each worker builds its model, then places and simulates it,
# which keeps it busy for several seconds, far longer than a stopped study may take to leave
GRID = ["--family", "lora-decoder", "--decoder-size", "study", "--adapters", "5-8", "--lora", "merge-on-switch",
        "--targets", "edge_accel", "--no-sized", "--requests", "4", "--quiet", "--jobs", "2"]
PROMPT = 10.0  # seconds a stopped study may take to leave (about 1.5 s on an idle machine; over 5 s once under load)


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, each with its start time (so a reused pid is not taken for it)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found[int(entry.name)] = fields[19]
    return found


def _running(pid: int, started: str) -> bool:
    """Whether process `pid`, started at `started`, still exists (running, or ended but not reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started


def _stop(argv: list[str], send, threads: int = 1) -> tuple[int, str, dict[int, str]]:
    """Start the command `argv` in its own session, wait until its two workers (and `threads` threads of its own)
    run, `send(proc)` a signal, and give its exit status, stderr and the workers it had."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_from_a_shell)
    try:
        deadline = time.monotonic() + 120
        workers: dict[int, str] = {}
        while (len(workers) < 2 or len(_threads(proc.pid)) < threads) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = _children(proc.pid)
        assert len(workers) == 2 and len(_threads(proc.pid)) >= threads, proc.communicate()[1]
        send(proc)
        _, err = proc.communicate(timeout=PROMPT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, err, workers


def _threads(pid: int) -> list[int]:
    return sorted(int(t.name) for t in Path(f"/proc/{pid}/task").iterdir())


@pytest.mark.parametrize("how, status, says", [
    ("sigterm", 143, "terminated"),
    ("ctrl-c", 130, "interrupted"),
])
def test_a_signal_stops_the_workers_and_writes_nothing(tmp_path, how, status, says):
    out = tmp_path / "study"

    def send(proc):
        time.sleep(1.0)  # both are at their jobs
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)

    code, err, workers = _stop([sys.executable, "-m", "aalbert.mapper.cli.study", *GRID, "--out", str(out)], send)
    assert code == status, err
    assert err.splitlines() == [f"aalbert-study: {says}"]
    assert [pid for pid, started in workers.items() if _running(pid, started)] == []
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


# a command whose two workers sleep far longer than a stopped command may take to leave
SLEEPER = """
import sys, time
from aalbert.mapper.cli.common import main_wrapper
from aalbert.mapper.study.workers import Workers

def body(argv):
    with Workers(2) as workers:
        workers.map(time.sleep, [120, 120, 120])

sys.exit(main_wrapper("sleeper", body)())
"""


@pytest.mark.parametrize("signum, status, says", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")], ids=["sigint", "sigterm"])
def test_a_signal_sent_to_a_pool_thread_reaches_the_command_at_once(signum, status, says):
    def send(proc):
        # kill() names a thread: the kernel delivers to that thread unless it blocks the signal
        os.kill(next(tid for tid in _threads(proc.pid) if tid != proc.pid), signum)

    # the executor's manager and queue feeder threads beside the main one
    code, err, workers = _stop([sys.executable, "-c", SLEEPER], send, threads=3)
    assert code == status, err
    assert err.splitlines() == [f"sleeper: {says}"]
    assert [pid for pid, started in workers.items() if _running(pid, started)] == []
