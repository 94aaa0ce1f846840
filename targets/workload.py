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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aalbert.ir.fileio import read_toml

from .spec import TargetError

SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True)
class Workload:
    """How the chip is used: task mix, task switches, power gating, lifetime."""

    mix: dict[str, float]
    switch_rate: float = 1.0            # probability that an inference runs another task than the last one
    inferences_per_wakeup: float = 1.0  # inferences between power-ups (volatile memories start empty)
    task_weights_change: bool = True    # task-specific weights are installed and updated in the field
    inferences_per_second: float = 10.0
    lifetime_years: float = 5.0

    @property
    def lifetime_inferences(self) -> float:
        return self.inferences_per_second * self.lifetime_years * SECONDS_PER_YEAR

    @property
    def cold_start_rate(self) -> float:
        return 1.0 / self.inferences_per_wakeup


def default_workload(tasks) -> Workload:
    """A uniform mix, a switch before every inference (none with one task), one inference per power-up."""
    tasks = list(tasks)
    return Workload({t: 1.0 / len(tasks) for t in tasks}, switch_rate=1.0 if len(tasks) > 1 else 0.0)


def load_workload(path: str, tasks) -> Workload:
    """[workload] mix = {task = share, ...}, switch_rate, inferences_per_wakeup, task_weights_change,
    inferences_per_second, lifetime_years."""
    tasks = list(tasks)
    data = read_toml(path, TargetError, "no such workload file", "not valid TOML")
    extra = set(data) - {"workload"}
    if extra or not isinstance(data.get("workload"), dict):
        raise TargetError(f"{path}: expected one [workload] table" + (f", not '{sorted(extra)[0]}'" if extra else ""))
    w = data["workload"]
    known = {"mix", "switch_rate", "inferences_per_wakeup", "task_weights_change", "inferences_per_second",
             "lifetime_years", "source"}
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
    total = float(sum(mix.values()))
    if total <= 0:
        raise TargetError(f"{path}: [workload]: key 'mix' has no positive share")

    def number(key, default, lo, hi):
        v = w.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            raise TargetError(f"{path}: [workload]: key '{key}' must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)
    change = w.get("task_weights_change", True)
    if not isinstance(change, bool):
        raise TargetError(f"{path}: [workload]: key 'task_weights_change' must be true or false, got {change!r}")
    return Workload({t: mix.get(t, 0) / total for t in tasks}, number("switch_rate", 1.0 if len(tasks) > 1 else 0.0, 0.0, 1.0),
                    number("inferences_per_wakeup", 1.0, 1.0, 1e15), change,
                    number("inferences_per_second", 10.0, 1e-9, 1e12), number("lifetime_years", 5.0, 0.0, 1e3))
