"""One configuration of the study as a job: all that evaluating it needs, small enough to send to a worker.

A `Configuration` names its model (`ModelSpec`, a subset of the family's largest task count), its chip (a
fixed target, or an architecture sized to the configuration from a template), the numbers changed on every
target, the workload's rules, and the tags of its row. `row` evaluates it in whatever process runs it: the
prepared family and the targets are built once per process and kept, so a worker that runs the configurations
of one family builds it once (`workers.Workers`, grouped by `Configuration.family`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from aalbert.mapper.study.chips import ARCHITECTURES, sized_target, sizes, workload_for
from aalbert.mapper.study.evaluate import ModelSpec, evaluate, overridden_dict, prepared
from aalbert.targets.hardware.spec import Target, target_from_dict
from aalbert.targets.sim.workload import Workload, default_workload, load_workload


@dataclass(frozen=True)
class Configuration:
    spec: ModelSpec
    most: int                                       # the family's largest task count (spec's module is a subset)
    chip: str                                       # a fixed target, or a sized architecture (`ARCHITECTURES`)
    sized: bool
    template: str                                   # the target sized chips are built from
    overrides: tuple[tuple[str, object], ...] = ()  # numbers changed on every target
    fixed_tasks: bool = False                       # task weights never change after deployment
    requests: int = 50
    exits: str | None = None                        # a workload file stating where sentences leave
    tags: tuple[tuple[str, object], ...] = ()       # the row's first columns
    exit_sweep: tuple[float, ...] = ()              # latency targets to rerun the policies at (x the workload's)

    @property
    def family(self) -> ModelSpec:
        """The prepared model the configuration needs (its family at the most tasks)."""
        return dataclasses.replace(self.spec, tasks=max(self.spec.tasks, self.most))


def workload(module, fixed_tasks: bool) -> Workload:
    wl = default_workload(module.graphs)
    return Workload(wl.mix, wl.switch_rate, wl.inferences_per_wakeup, not fixed_tasks,
                    wl.inferences_per_second, wl.lifetime_years)


@functools.lru_cache(maxsize=64)
def fixed_target(name: str, overrides: tuple[tuple[str, object], ...]) -> Target:
    return target_from_dict(*overridden_dict(name, dict(overrides), missing_ok=True))


@functools.lru_cache(maxsize=64)
def template_of(name: str, overrides: tuple[tuple[str, object], ...]) -> tuple[dict, str, Target]:
    """The template's tables with the overrides, where they came from, and the target they make."""
    template, where = overridden_dict(name, dict(overrides), missing_ok=True)
    return template, where, target_from_dict(template, where)


def row(c: Configuration, counted: dict | None = None) -> dict:
    """The configuration's row: its tags, its chip, and the metrics of `evaluate` (with `counted`, its counts
    and prices too, as `evaluate` gives them, and its chip)."""
    module = prepared(c.spec, all_tasks=c.most)
    wl = workload(module, c.fixed_tasks)
    if c.exits is not None:
        stated = load_workload(c.exits, list(module.graphs))
        wl = dataclasses.replace(wl, exits=stated.exits, latency_target_ms=stated.latency_target_ms)
    tags = dict(c.tags)
    if not c.sized:
        target = fixed_target(c.chip, c.overrides)
        metrics = evaluate(module, target, wl, c.requests, exit_sweep=c.exit_sweep, counted=counted)
        if counted is not None:
            counted["target"] = target
        return {**tags, "target": c.chip, "architecture": c.chip, "sized": False, **metrics}
    template, where, base = template_of(c.template, c.overrides)
    s = sizes(module, base, c.fixed_tasks or c.chip == "rram_sram_fixed")
    target = sized_target(template, where, s, c.chip)
    metrics = evaluate(module, target, workload_for(c.chip, wl), c.requests, exit_sweep=c.exit_sweep,
                       counted=counted)
    if counted is not None:
        counted["target"] = target
    return {**tags, "target": ARCHITECTURES[c.chip], "architecture": c.chip, "sized": True, "frozen_bytes": s.frozen,
            "mutable_bytes": s.mutable, "arena_bytes": s.arena, **metrics}


def counted_row(c: Configuration) -> tuple[dict, dict]:
    """The configuration's row, and its counts, prices and chip (`row`'s `counted`)."""
    counted: dict = {}
    return row(c, counted), counted
