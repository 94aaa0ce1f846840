"""How the chip is used: the workload (task mix, task switches, power-ups, lifetime) and its TOML file.

The allocator weighs every placement by it, and the backend's request
streams follow it. A workload file holds one table:

    [workload]
    mix = {sst2 = 2, mnli = 1}      # shares of the requests (normalized); default: equal
    switch_rate = 1.0               # probability that an inference runs another task than the last
    inferences_per_wakeup = 1.0     # inferences between power-ups (volatile memories start empty)
    task_weights_change = true      # task-specific weights are updated in the field
    inferences_per_second = 10.0
    lifetime_years = 5.0
    latency_target_ms = 100.0       # a sentence's deadline, arrival to result (DVFS policies plan for it)

and, for models with off-ramps (`aalbert.ir.offramps`), where sentences leave
their layer stack: a histogram of exit points (the off-ramps in layer order,
then the end: counts, or shares that sum to 1), or sample inputs (an `.npz`,
relative to this file) on which the interpreter measures it; and the entropy
threshold (nats) below which a sentence leaves. A task may have its own:

    [exits]
    threshold = 0.28
    histogram = [153, 177, 128, 136, 105, 58, 31, 18, 5, 3, 3, 55]
    predicted = [[153, 0, ...], ...]   # optional: per exit point (row), the sentences predicted at each
    source = "where the histogram comes from"
    [exits.task.mnli]
    threshold = 0.4
    samples = "mnli.npz"
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from aalbert.ir.fileio import read_toml
from aalbert.ir.phases import DECODE, parse_key, task_of
from aalbert.targets.hardware.spec import TargetError

SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True)
class TaskExits:
    """Where one task's sentences leave its layer stack: a histogram of exit points, or inputs to measure it on."""

    threshold: float | None = None           # entropy (nats) below which a sentence leaves at an off-ramp
    histogram: tuple[float, ...] | None = None  # shares of sentences per exit point: each off-ramp, then the end
    counted: int | None = None               # how many sentences the histogram counted, when it gave counts
    samples: str | None = None               # an .npz of inputs, one sentence per row
    source: str = ""
    where: str = ""                          # the file and table that said so, for messages
    confusion: tuple[tuple[float, ...], ...] | None = None  # per exit point, shares predicted at each (None: exact)


@dataclass(frozen=True)
class Workload:
    """How the chip is used: task mix, task switches, power gating, lifetime."""

    mix: dict[str, float]
    switch_rate: float = 1.0            # probability that an inference runs another task than the last one
    inferences_per_wakeup: float = 1.0  # inferences between power-ups (volatile memories start empty)
    task_weights_change: bool = True    # task-specific weights are installed and updated in the field
    inferences_per_second: float = 10.0
    lifetime_years: float = 5.0
    latency_target_ms: float | None = None  # a sentence's deadline, from arrival to result
    exits: dict[str, TaskExits] | None = None  # per task, for models with off-ramps
    generate: int = 1                   # decoders: tokens generated per request (decode steps), T
    prompt: int = 0                     # decoders: prompt tokens per request, P (0: the prefill graph's)

    def runs(self, graph: str) -> float:
        """How often graph `graph` runs per request, expected over the mix: its task's share, times the tokens
        generated for a decode graph (a decoder's request is one prefill and `generate` decode steps)."""
        key = parse_key(graph)
        share = self.mix[key.task]
        return share * self.generate if key.phase == DECODE else share

    @property
    def lifetime_inferences(self) -> float:
        return self.inferences_per_second * self.lifetime_years * SECONDS_PER_YEAR

    @property
    def cold_start_rate(self) -> float:
        return 1.0 / self.inferences_per_wakeup


def default_workload(graphs) -> Workload:
    """A uniform mix over the tasks of `graphs` (a decoder task's two phases are one task), a switch before
    every request (none with one task), one request per power-up."""
    tasks = task_names(graphs)
    return Workload({t: 1.0 / len(tasks) for t in tasks}, switch_rate=1.0 if len(tasks) > 1 else 0.0)


def task_names(graphs) -> list[str]:
    """The distinct tasks of graph keys (`ir.phases`), in order."""
    return list(dict.fromkeys(task_of(name) for name in graphs))


def load_workload(path: str, tasks) -> Workload:
    """[workload] mix = {task = share, ...}, switch_rate, inferences_per_wakeup, task_weights_change,
    inferences_per_second, lifetime_years (tasks: task names or graph keys)."""
    tasks = task_names(tasks)
    data = read_toml(path, TargetError, "no such workload file", "not valid TOML", "a workload")
    extra = set(data) - {"workload", "exits"}
    if extra or not isinstance(data.get("workload"), dict):
        raise TargetError(f"{path}: expected one [workload] table" + (f", not '{sorted(extra)[0]}'" if extra else ""))
    w = data["workload"]
    known = {"mix", "switch_rate", "inferences_per_wakeup", "task_weights_change", "inferences_per_second",
             "lifetime_years", "latency_target_ms", "source"}
    unknown = set(w) - known
    if unknown:
        raise TargetError(f"{path}: [workload]: unknown key '{sorted(unknown)[0]}'")
    mix = w.get("mix", {t: 1.0 for t in tasks})
    if not isinstance(mix, dict) or not mix:
        raise TargetError(f"{path}: [workload]: key 'mix' must be a table of task = share")
    for t, share in mix.items():
        if t not in tasks:
            raise TargetError(f"{path}: [workload]: key 'mix' names task '{t}', which is not compiled "
                              f"(tasks: {', '.join(tasks)})")
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share < math.inf:
            raise TargetError(f"{path}: [workload]: mix share of '{t}' must be a non-negative number")
    top = float(max(mix.values()))
    if top <= 0:
        raise TargetError(f"{path}: [workload]: key 'mix' has no positive share")
    mix = {t: share / top for t, share in mix.items()}  # shares near the largest float would sum to infinity
    total = sum(mix.values())

    def number(key, default, lo, hi):
        v = w.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            raise TargetError(f"{path}: [workload]: key '{key}' must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)
    change = w.get("task_weights_change", True)
    if not isinstance(change, bool):
        raise TargetError(f"{path}: [workload]: key 'task_weights_change' must be true or false, got {change!r}")
    target = number("latency_target_ms", None, 1e-6, 1e9) if "latency_target_ms" in w else None
    return Workload({t: mix.get(t, 0) / total for t in tasks},
                    number("switch_rate", 1.0 if len(tasks) > 1 else 0.0, 0.0, 1.0),
                    number("inferences_per_wakeup", 1.0, 1.0, 1e15), change,
                    number("inferences_per_second", 10.0, 1e-9, 1e12), number("lifetime_years", 5.0, 0.0, 1e3),
                    target, _exits(path, data.get("exits"), tasks))


EXIT_KEYS = {"threshold", "histogram", "samples", "source", "predicted"}


def _exits(path: str, data, tasks: list[str]) -> dict[str, TaskExits] | None:
    """The [exits] table: every task's exits, its own table's over the defaults."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise TargetError(f"{path}: [exits] must be a table")
    unknown = set(data) - EXIT_KEYS - {"task"}
    if unknown:
        raise TargetError(f"{path}: [exits]: unknown key '{sorted(unknown)[0]}'")
    base = _task_exits(path, "[exits]", data, TaskExits())
    own = data.get("task", {})
    if not isinstance(own, dict) or not all(isinstance(v, dict) for v in own.values()):
        raise TargetError(f"{path}: [exits]: key 'task' must hold one table per task ([exits.task.NAME])")
    for t in own:
        if t not in tasks:
            raise TargetError(f"{path}: [exits.task.{t}] names a task that is not compiled (tasks: {', '.join(tasks)})")
    out = {}
    for t in tasks:
        e = _task_exits(path, f"[exits.task.{t}]", own[t], base) if t in own else base
        if e.histogram is None and e.samples is None:
            raise TargetError(f"{path}: [exits] gives task '{t}' neither a histogram nor samples to measure one on")
        out[t] = e
    return out


def _task_exits(path: str, where: str, t: dict, base: TaskExits) -> TaskExits:
    unknown = set(t) - EXIT_KEYS - ({"task"} if where == "[exits]" else set())
    if unknown:
        raise TargetError(f"{path}: {where}: unknown key '{sorted(unknown)[0]}'")
    threshold = base.threshold
    if "threshold" in t:
        v = t["threshold"]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < math.inf:
            raise TargetError(f"{path}: {where}: key 'threshold' must be an entropy in nats, >= 0, got {v!r}")
        threshold = float(v)
    if "histogram" in t and "samples" in t:
        raise TargetError(f"{path}: {where}: give a histogram or samples to measure one on, not both")
    histogram, counted, samples = base.histogram, base.counted, base.samples
    if "histogram" in t:
        histogram, counted, samples = *_histogram(path, where, t["histogram"]), None
    if "samples" in t:
        v = t["samples"]
        if not isinstance(v, str) or not v:
            raise TargetError(f"{path}: {where}: key 'samples' must be the path of an .npz file, got {v!r}")
        samples, histogram, counted = str(Path(path).parent / v), None, None
    source = t.get("source", base.source)
    if not isinstance(source, str):
        raise TargetError(f"{path}: {where}: key 'source' must be a string")
    confusion = None if "samples" in t else base.confusion
    if "predicted" in t:
        if histogram is None:
            raise TargetError(f"{path}: {where}: key 'predicted' is for a histogram (samples give their own "
                              "predictions)")
        confusion = _confusion(path, where, t["predicted"], histogram)
    elif confusion is not None and histogram is not None and len(confusion) != len(histogram):
        raise TargetError(f"{path}: {where}: the [exits] key 'predicted' has {len(confusion)} rows; this "
                          f"histogram has {len(histogram)} exit points (give this table its own 'predicted')")
    return TaskExits(threshold, histogram, counted, samples, source, f"{path}: {where}", confusion)


def _confusion(path: str, where: str, v, histogram: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    """Per exit point (row), the shares of its sentences predicted to leave at each exit point (columns)."""
    n = len(histogram)
    if not isinstance(v, list) or len(v) != n or not all(
            isinstance(row, list) and len(row) == n and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < math.inf for x in row)
            for row in v):
        raise TargetError(f"{path}: {where}: key 'predicted' must be {n} rows (one per exit point) of {n} counts "
                          "(>= 0): for the sentences leaving at each exit point, how many were predicted at each")
    out = []
    for j, row in enumerate(v):
        total = float(sum(row))
        if total <= 0 and histogram[j] > 0:
            raise TargetError(f"{path}: {where}: key 'predicted': row {j + 1} counts no sentence, but the histogram "
                              "has sentences leaving there")
        out.append(tuple(float(x) / total for x in row) if total > 0 else tuple(float(k == j) for k in range(n)))
    return tuple(out)


def _histogram(path: str, where: str, v) -> tuple[tuple[float, ...], int | None]:
    """Shares per exit point, and the count of sentences when the histogram gave counts."""
    if not isinstance(v, list) or not v or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < math.inf for x in v):
        raise TargetError(f"{path}: {where}: key 'histogram' must list a count or share (>= 0) per exit point, "
                          f"got {v!r}")
    total = float(sum(v))
    if all(isinstance(x, int) for x in v):
        if total <= 0 or total > 1e15:
            raise TargetError(f"{path}: {where}: key 'histogram' counts no sentence")
        return tuple(x / total for x in v), int(total)
    if abs(total - 1.0) > 1e-6:
        raise TargetError(f"{path}: {where}: key 'histogram' gives shares that sum to {total:.6g}, not 1 "
                          "(give counts, or shares of 1)")
    return tuple(float(x) / total for x in v), None
