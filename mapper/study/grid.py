"""The study: ALBERT fine-tuned per task vs adapter-ALBERT, across task counts and memory architectures.

For every compression policy, model family and number of tasks, one
configuration is compiled, placed, simulated and run as a request stream
(`mapper.evaluate`) on (a) each fixed chip (`targets`, the built-in edge
accelerators) and (b) chips sized to the configuration (`mapper.chips`: all
SRAM, RRAM + SRAM, RRAM + SRAM with task weights fixed, STT-MRAM + SRAM), built from the
`template` target. A variation (`overrides` on every target's numbers, fixed
task weights) is how `mapper.sensitivity` reruns it. Outputs are written by
`mapper.study_report`.

Early exit and DVFS are one more dimension, when asked for (`run_exits`): the most-tasks
configurations again, each task model with an exit classifier after every
layer but the last, under a workload that states where sentences leave and a
latency target (by default EdgeBERT's SST-2 exits, `examples/workloads/
edgebert_sst2.toml`), on every chip, over a longer stream (`exit_requests`);
each row has every policy's figures (`targets.policies`), its main ones
EdgeBERT's predict-then-scale, and, on one chip (`sweep_chip`), every
policy's again at each latency target of the sweep (`exit_sweep`, fractions
of the workload's).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, example_bytes
from aalbert.mapper.study.chips import ARCHITECTURES
from aalbert.mapper.study.configuration import Configuration, row
from aalbert.mapper.study.evaluate import FAMILIES_KEPT, ModelSpec, parameter_settings, parameter_table
from aalbert.mapper.study.workers import Workers
from aalbert.targets.sim.requests import REQUEST_BYTES
from aalbert.targets.sim.workload import Workload, load_workload

FAMILY_LABEL = {"adapter-albert": "adapter-ALBERT", "albert": "ALBERT"}
# the early-exit latency targets, as fractions of the workload's (100 ms: 40 to 120 ms, below a full inference too)
RESOLVE_N = 16  # samples of the joint design docs/study's run compiles again (--resolve; mapper.study.resolve)
EXIT_SWEEP = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)


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
    resolve: int = 0                   # with sensitivity: samples of the joint design compiled again (RESOLVE_N)
    early_exit: bool = False           # also the most-tasks configurations with off-ramps, early exit and DVFS
    exits: str | None = None           # a workload file stating where sentences leave; None: EdgeBERT's SST-2
    exit_requests: int = 1000          # requests of each early-exit stream (its p99 is not its maximum)
    exit_sweep: tuple[float, ...] = EXIT_SWEEP  # latency targets swept, as fractions of the workload's


def configurations_of(cfg: StudyConfig, overrides: dict | None = None, fixed_tasks: bool | None = None,
                      tasks: list[int] | None = None, exits: str | None = None) -> list[Configuration]:
    """The study's configurations in the order of its rows: policy, family, task count (`tasks`, default the
    config's), then the fixed chips and, with `cfg.sized`, the chips sized to each; `overrides` change every
    target's numbers (as `overridden_dict`), `fixed_tasks` the workload's rule for task weights (default: the
    config's); with `exits` (a workload file), the models have off-ramps and sentences leave as it says."""
    fixed = cfg.fixed_tasks if fixed_tasks is None else fixed_tasks
    ov = tuple(sorted((overrides or {}).items()))
    most = max(cfg.tasks)
    chips = [(t, False) for t in cfg.targets]
    if cfg.sized:
        # with task weights fixed, the RRAM + SRAM chip is the next one
        chips += [(arch, True) for arch in ARCHITECTURES if not (fixed and arch == "rram_sram")]
    out = []
    for policy in cfg.policies:
        for family in cfg.families:
            for n in tasks or cfg.tasks:
                spec = ModelSpec(family, n, cfg.size, policy=policy, seq_len=cfg.seq_len,
                                 off_ramps=OFF_RAMPS if exits else None)
                tags = (("policy", policy), ("family", family)) + ((("early_exit", "on"),) if exits else ())
                requests, sweep = (cfg.exit_requests, tuple(cfg.exit_sweep)) if exits else (cfg.requests, ())
                out += [Configuration(spec, most, chip, sized, cfg.template, ov, fixed, requests, exits, tags,
                                      sweep if chip == sweep_chip(cfg) else ())
                        for chip, sized in chips]
    return out


def run_study(cfg: StudyConfig, progress=None, overrides: dict | None = None,
              fixed_tasks: bool | None = None, workers: Workers | None = None, job=row) -> list:
    """Every configuration's metrics (`configurations_of`), on `workers` (default: here, one at a time); `job`
    `configuration.counted_row` gives each row with its counts."""
    return run_configurations(configurations_of(cfg, overrides, fixed_tasks), progress, workers, job)


def sweep_chip(cfg: StudyConfig) -> str:
    """The chip whose early-exit configurations also run the latency target sweep: the template, if the study
    has it, else its first."""
    chips = architectures(cfg)
    return cfg.template if cfg.template in chips else chips[0]


def run_configurations(configs: list[Configuration], progress=None, workers: Workers | None = None,
                       job=row) -> list:
    """`job` (default: the row) of every configuration of `configs`, in their order, on `workers` (default: here,
    one at a time)."""
    with contextlib.ExitStack() as stack:
        if workers is None:
            workers = stack.enter_context(Workers(1))
        return workers.map(job, configs, progress, group=lambda c: c.family)


OFF_RAMPS = "classifier"  # the study's off-ramps: a classifier per layer on the model's pooler


def exits_path(cfg: StudyConfig):
    """The workload file stating where sentences leave: the config's, or EdgeBERT's SST-2 (built in)."""
    if cfg.exits is not None:
        return Path(cfg.exits)
    return resources.files("aalbert.examples").joinpath("workloads", "edgebert_sst2.toml")


def run_exits(cfg: StudyConfig, progress=None, workers: Workers | None = None) -> list[dict]:
    """The most-tasks configurations with off-ramps, early exit and DVFS, on every chip (`early_exit` "on")."""
    with resources.as_file(exits_path(cfg)) as path:
        configs = configurations_of(cfg, tasks=[max(cfg.tasks)], exits=str(path))
        return run_configurations(configs, progress, workers)


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


def configurations(cfg: StudyConfig) -> int:
    per = len(cfg.targets) + (len(ARCHITECTURES) if cfg.sized else 0)
    return len(cfg.policies) * len(cfg.families) * len(cfg.tasks) * per


def _bottlenecks(cfg: StudyConfig) -> tuple[int, ...]:
    return (8, 16) if cfg.size == "tiny" else (16, 32, 64, 128, 256)


def accounting_steps(cfg: StudyConfig) -> int:
    """How many models the parameter accounting builds (for a progress bar)."""
    return len(parameter_settings(_bottlenecks(cfg))) if cfg.accounting else 0


def accounting_rows(cfg: StudyConfig, progress=None, workers: Workers | None = None) -> list[dict] | None:
    if not cfg.accounting:
        return None
    return parameter_table(cfg.size, _bottlenecks(cfg), progress, workers)


def model_bytes(cfg: StudyConfig) -> int:
    """What a worker of the study holds at most, about: the families it keeps (`FAMILIES_KEPT`), each at most
    the largest family's model, and a request stream."""
    family = "albert" if "albert" in cfg.families else cfg.families[0]
    spec = ExampleSpec(family, max(cfg.tasks), cfg.size, off_ramps=OFF_RAMPS if cfg.early_exit else None)
    requests = max(cfg.requests, cfg.exit_requests if cfg.early_exit else 0)
    return FAMILIES_KEPT * example_bytes(spec, DimSpec(1, cfg.seq_len)) + REQUEST_BYTES * requests


def architectures(cfg: StudyConfig) -> list[str]:
    """The architectures a study's rows name, fixed chips first."""
    return list(cfg.targets) + (list(ARCHITECTURES) if cfg.sized else [])


def label(arch: str) -> str:
    return ARCHITECTURES.get(arch, arch)


SHORT = {"sram": "sized SRAM", "rram_sram": "sized RRAM+SRAM", "rram_sram_fixed": "sized RRAM+SRAM, fixed tasks",
         "mram_sram": "sized STT-MRAM+SRAM"}


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
