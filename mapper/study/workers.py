"""Independent jobs of a command on local worker processes, with a serial run's results.

`Workers(jobs, each_bytes)` lives as long as the command (a context manager): the study's configurations, its
early-exit and sensitivity runs and the sweep's points go through it. `map(fn, args)` returns `fn`'s results in
the order of `args` whatever order they finish in, so every output is byte for byte that of `jobs=1`, which runs
them here one after another. `each(fn, args, done)` tells `done` of each result as it arrives (the sweep caches a
point as soon as it is computed).

A worker keeps what it built for the jobs it takes next (the prepared model of a family, the mapping search's
cache), so jobs are handed out grouped (`group`: the model a job needs), and a worker builds each model once.
How many workers: as many as asked (by default the cores this process may run on), at most as many as there are
jobs, and as many as the memory budget holds at `each_bytes` a job; each gets its share of the budget
(`limits.grant`).

Stopping: the command decides. A worker ignores SIGINT (Ctrl-C reaches every process of the terminal's group) and
ends at once on SIGTERM. The pool's threads in the command (the executor's manager and queue feeder) start with
both signals blocked (`signals.blocked`), so the kernel hands them to the main thread: one taken by a pool thread
left the main thread asleep in its wait for a result until the next job finished. When the command leaves
`Workers` by an exception (SIGINT, SIGTERM, a failed job), it ends its workers with SIGTERM and waits for each, so
none runs on and none is left unreaped; the jobs they had are dropped, and their results were never written
anywhere.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from typing import Any

from aalbert import signals
from aalbert.limits import grant, room

STOP_SECONDS = 5.0  # a worker sent SIGTERM that has not ended by then is killed


def default_jobs() -> int:
    """The cores this process may run on."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13
    if count is not None:
        return count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Workers:
    def __init__(self, jobs: int = 1, each_bytes: int = 0):
        self.jobs, self.each_bytes = max(1, jobs), each_bytes
        self._pool: Executor | None = None
        self._size = 1

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.stop()

    def close(self) -> None:
        """Let the workers finish and leave."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def stop(self) -> None:
        """End the workers now, their jobs unfinished, and reap each."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # the executor has no public handle on its processes before Python 3.14 (terminate_workers)
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for p in processes:
            if p.is_alive():
                p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.join(STOP_SECONDS)
            if p.is_alive():  # SIGTERM held off somewhere: it cannot hold off SIGKILL
                p.kill()
                p.join()

    def size(self, jobs: int) -> int:
        """How many workers would run `jobs` jobs: as asked, at most one a job and what the budget holds."""
        if self._pool is not None:
            return self._size
        return max(1, min(self.jobs, jobs, room() // max(self.each_bytes, 1)))

    def _executor(self, jobs: int) -> Executor | None:
        if self._pool is None and self.size(jobs) > 1:
            self._size = self.size(jobs)
            self._pool = ProcessPoolExecutor(max_workers=self._size, initializer=_start_worker,
                                             initargs=(room() // self._size,))
        return self._pool

    def each(self, fn: Callable[[Any], Any], args: Iterable, done: Callable[[int, Any], None],
             group: Callable[[Any], Hashable] | None = None) -> None:
        """`done(i, fn(args[i]))` for every job, in the order they finish (here: in order)."""
        args = list(args)
        order = _grouped(args, group)
        pool = self._executor(len(args)) if len(args) > 1 else None
        if pool is None:
            for i in order:
                done(i, fn(args[i]))
            return
        with signals.blocked():  # the threads and workers the first submit starts inherit the mask
            futures = {pool.submit(fn, args[i]): i for i in order}
        try:
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def map(self, fn: Callable[[Any], Any], args: Iterable, progress=None,
            group: Callable[[Any], Hashable] | None = None) -> list:
        """`fn` of every job, in the order of `args`; `progress` advanced by one per job done."""
        args = list(args)
        results: list = [None] * len(args)

        def done(i: int, result) -> None:
            results[i] = result
            if progress is not None:
                progress.update(1)

        self.each(fn, args, done, group)
        return results


def _start_worker(budget: int) -> None:
    """A worker's first step: its share of the memory budget, and signals left to the command (SIGINT ignored,
    SIGTERM the default, which ends the process; the command's own handler, inherited through fork, would hand
    the running job an exception instead, and the worker would take the next one)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signals.unblock()  # forked while the command held them blocked
    grant(budget)


def _grouped(args: list, group: Callable[[Any], Hashable] | None) -> list[int]:
    """The jobs' indices, those of one group together, groups in the order they first appear."""
    if group is None:
        return list(range(len(args)))
    first: dict[Hashable, list[int]] = {}
    for i, a in enumerate(args):
        first.setdefault(group(a), []).append(i)
    return [i for members in first.values() for i in members]
