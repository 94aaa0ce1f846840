"""The study: ALBERT fine-tuned per task vs adapter-ALBERT, across task counts and memory architectures.

For every compression policy, model family and number of tasks, one
configuration is compiled, placed, simulated and run as a request stream
(`mapper.evaluate`) on (a) each fixed chip (`targets`, the built-in edge
accelerators) and (b) chips sized to the configuration (`mapper.chips`: all
SRAM, RRAM + SRAM, RRAM + SRAM with task weights fixed), built from the
`template` target. A variation (`overrides` on every target's numbers, fixed
task weights) is how `mapper.sensitivity` reruns it. Outputs are written by
`mapper.study_report`.

Early exit and DVFS are one more dimension, when asked for (`run_exits`): the most-tasks
configurations again, each task model with an exit classifier after every
layer but the last, under a workload that states where sentences leave and a
latency target (by default EdgeBERT's SST-2 exits, `examples/workloads/
edgebert_sst2.toml`), on every chip; each row has every policy's figures
(`targets.policies`), its main ones EdgeBERT's predict-then-scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aalbert.mapper.study.chips import ARCHITECTURES, sized_target, sizes, workload_for
from aalbert.mapper.study.evaluate import (
    ModelSpec,
    evaluate,
    overridden_dict,
    parameter_settings,
    parameter_table,
    prepared,
)
from aalbert.targets.hardware.spec import target_from_dict
from aalbert.targets.sim.workload import Workload, default_workload, load_workload

FAMILY_LABEL = {"adapter-albert": "adapter-ALBERT", "albert": "ALBERT"}


@dataclass
class StudyConfig:
    tasks: list[int] = field(default_factory=lambda: list(range(1, 9)))
    families: list[str] = field(default_factory=lambda: ["adapter-albert", "albert"])
    targets: list[str] = field(default_factory=lambda: ["edge_accel", "edge_accel_sram", "edge_accel_dram"])
    policies: list[str] = field(default_factory=lambda: ["edgebert"])
    size: str = "base"
    seq_len: int = 128
    requests: int = 50
    fixed_tasks: bool = False
    accounting: bool = True
    sized: bool = True                 # also chips sized to each configuration
    template: str = "edge_accel"       # the target sized chips are built from
    sensitivity: bool = False
    early_exit: bool = False           # also the most-tasks configurations with off-ramps, early exit and DVFS
    exits: str | None = None           # a workload file stating where sentences leave; None: EdgeBERT's SST-2


def run_study(cfg: StudyConfig, progress=None, overrides: dict | None = None,
              fixed_tasks: bool | None = None) -> list[dict]:
    """Every configuration's metrics; `overrides` change every target's numbers (as `overridden_dict`),
    `fixed_tasks` the workload's rule for task weights (default: the config's)."""
    overrides = overrides or {}
    fixed = cfg.fixed_tasks if fixed_tasks is None else fixed_tasks
    rows = []
    most = max(cfg.tasks)
    targets = {t: target_from_dict(*overridden_dict(t, overrides, missing_ok=True)) for t in cfg.targets}
    template, where = overridden_dict(cfg.template, overrides, missing_ok=True)
    chips = _Chips(cfg, targets, (template, where, target_from_dict(template, where)), progress)
    for policy in cfg.policies:
        for family in cfg.families:
            for n in cfg.tasks:
                module = prepared(ModelSpec(family, n, cfg.size, policy=policy, seq_len=cfg.seq_len), all_tasks=most)
                rows += chips.rows(module, workload(module, fixed), fixed, {"policy": policy, "family": family})
    return rows


@dataclass
class _Chips:
    """The chips every configuration runs on: the fixed `targets` and, with `cfg.sized`, chips sized to it from
    the template (`sizing`: its table, where that came from, and the target it makes)."""

    cfg: StudyConfig
    targets: dict
    sizing: tuple
    progress: Any = None

    def rows(self, module, wl: Workload, fixed: bool, tags: dict) -> list[dict]:
        """The configuration's rows on the fixed chips and, with `cfg.sized`, on chips sized to it."""
        cfg, progress = self.cfg, self.progress
        template, where, base = self.sizing
        rows = []
        for tname, target in self.targets.items():
            metrics = evaluate(module, target, wl, cfg.requests)
            rows.append({**tags, "target": tname, "architecture": tname, "sized": False, **metrics})
            _tick(progress)
        if not cfg.sized:
            return rows
        for arch, label in ARCHITECTURES.items():
            if fixed and arch == "rram_sram":
                continue  # with task weights fixed, the RRAM + SRAM chip is the next one
            s = sizes(module, base, fixed or arch == "rram_sram_fixed")
            target = sized_target(template, where, s, arch)
            metrics = evaluate(module, target, workload_for(arch, wl), cfg.requests)
            rows.append({**tags, "target": label, "architecture": arch, "sized": True, "frozen_bytes": s.frozen,
                         "mutable_bytes": s.mutable, "arena_bytes": s.arena, **metrics})
            _tick(progress)
        return rows


OFF_RAMPS = "classifier"  # the study's off-ramps: a classifier per layer on the model's pooler


def exits_path(cfg: StudyConfig):
    """The workload file stating where sentences leave: the config's, or EdgeBERT's SST-2 (built in)."""
    if cfg.exits is not None:
        return Path(cfg.exits)
    return resources.files("aalbert.examples").joinpath("workloads", "edgebert_sst2.toml")


def run_exits(cfg: StudyConfig, progress=None) -> list[dict]:
    """The most-tasks configurations with off-ramps, early exit and DVFS, on every chip (`early_exit` "on")."""
    most = max(cfg.tasks)
    targets = {t: target_from_dict(*overridden_dict(t, {})) for t in cfg.targets}
    template, where = overridden_dict(cfg.template, {})
    chips = _Chips(cfg, targets, (template, where, target_from_dict(template, where)), progress)
    rows = []
    with resources.as_file(exits_path(cfg)) as path:
        for policy in cfg.policies:
            for family in cfg.families:
                module = prepared(ModelSpec(family, most, cfg.size, policy=policy, seq_len=cfg.seq_len,
                                            off_ramps=OFF_RAMPS))
                stated = load_workload(str(path), list(module.graphs))
                wl = dataclasses.replace(workload(module, cfg.fixed_tasks), exits=stated.exits,
                                         latency_target_ms=stated.latency_target_ms)
                rows += chips.rows(module, wl, cfg.fixed_tasks, {"policy": policy, "family": family,
                                                                  "early_exit": "on"})
    return rows


def stated_exits(cfg: StudyConfig) -> Workload:
    """The early-exit workload file, read for the study's tasks and checked against the model's layers before any
    work (the example's off-ramps follow layers 1 .. L-1: a histogram has L entries)."""
    from aalbert.examples.config import SIZES, task_names
    from aalbert.ir.offramps import ExitError

    with resources.as_file(exits_path(cfg)) as path:
        stated = load_workload(str(path), task_names(max(cfg.tasks)))
        if stated.exits is None:
            raise ExitError(f"{path}: no [exits] table: the early-exit configurations need to know where sentences "
                            "leave")
    layers = SIZES[cfg.size].num_layers
    for e in stated.exits.values():
        if e.histogram is not None and len(e.histogram) != layers:
            raise ExitError(f"{e.where}: key 'histogram' has {len(e.histogram)} entries; the {cfg.size} models have "
                            f"{layers} layers, off-ramps after layers 1-{layers - 1}, so it needs {layers} (give "
                            "--exits FILE)")
    return stated


def exit_configurations(cfg: StudyConfig) -> int:
    per = len(cfg.targets) + (len(ARCHITECTURES) - (1 if cfg.fixed_tasks else 0) if cfg.sized else 0)
    return len(cfg.policies) * len(cfg.families) * per if cfg.early_exit else 0


def _tick(progress) -> None:
    if progress is not None:
        progress.update(1)


def workload(module, fixed_tasks: bool) -> Workload:
    wl = default_workload(module.graphs)
    return Workload(wl.mix, wl.switch_rate, wl.inferences_per_wakeup, not fixed_tasks,
                    wl.inferences_per_second, wl.lifetime_years)


def configurations(cfg: StudyConfig) -> int:
    per = len(cfg.targets) + (len(ARCHITECTURES) if cfg.sized else 0)
    return len(cfg.policies) * len(cfg.families) * len(cfg.tasks) * per


def _bottlenecks(cfg: StudyConfig) -> tuple[int, ...]:
    return (8, 16) if cfg.size == "tiny" else (16, 32, 64, 128, 256)


def accounting_steps(cfg: StudyConfig) -> int:
    """How many models the parameter accounting builds (for a progress bar)."""
    return len(parameter_settings(_bottlenecks(cfg))) if cfg.accounting else 0


def accounting_rows(cfg: StudyConfig, progress=None) -> list[dict] | None:
    if not cfg.accounting:
        return None
    return parameter_table(cfg.size, _bottlenecks(cfg), progress)


def architectures(cfg: StudyConfig) -> list[str]:
    """The architectures a study's rows name, fixed chips first."""
    return list(cfg.targets) + (list(ARCHITECTURES) if cfg.sized else [])


def label(arch: str) -> str:
    return ARCHITECTURES.get(arch, arch)


SHORT = {"sram": "sized SRAM", "rram_sram": "sized RRAM+SRAM", "rram_sram_fixed": "sized RRAM+SRAM, fixed tasks"}


def short(arch: str) -> str:
    return SHORT.get(arch, arch)


def ratios(rows: list[dict], policy: str, tasks: int) -> list[tuple[str, dict, dict]]:
    """adapter-ALBERT against ALBERT per baseline: (baseline, adapter row, ALBERT row) - the same architecture
    for each, the paper's (adapter-ALBERT on RRAM + SRAM against ALBERT with every copy in SRAM), and each on
    its lowest-energy architecture."""
    sel = [r for r in rows if r["policy"] == policy and r["tasks"] == tasks]
    by = {(r["family"], r["architecture"]): r for r in sel}
    out = []
    for arch in dict.fromkeys(r["architecture"] for r in sel):
        a, b = by.get(("adapter-albert", arch)), by.get(("albert", arch))
        if a and b:
            out.append((f"same chip: {label(arch)}", a, b))
    a = by.get(("adapter-albert", "rram_sram")) or by.get(("adapter-albert", "rram_sram_fixed"))
    b = by.get(("albert", "sram"))
    if a and b:
        out.append(("the paper's: adapter-ALBERT on sized RRAM + SRAM, ALBERT on sized all-SRAM", a, b))
    best = {f: min((r for r in sel if r["family"] == f), key=lambda r: r["energy_mj"], default=None)
            for f in ("adapter-albert", "albert")}
    if all(best.values()):
        out.append(("each on its lowest-energy chip", best["adapter-albert"], best["albert"]))
    return out
