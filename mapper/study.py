"""The study: ALBERT fine-tuned per task vs adapter-ALBERT, across task counts and memory architectures.

For every compression policy, model family, number of tasks and target, one
configuration is compiled, placed, simulated and run as a request stream
(`mapper.evaluate`). Outputs: `study.csv` (every configuration), `study.md`
(the 8-task table, the ratios, where ALBERT stops fitting, the smallest
chip, the model-side accounting, the assumptions) and figures
(`study_vs_tasks`, `study_energy_breakdown`, PNG and SVG).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from aalbert.ir.outputs import atomic_writer, make_dir
from aalbert.targets.workload import Workload, default_workload
from aalbert.targets.spec import load_target

from .evaluate import ModelSpec, evaluate, parameter_settings, parameter_table, prepared, smallest_chip
from .plots import stacked_energy, study_figure

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


def run_study(cfg: StudyConfig, progress=None) -> list[dict]:
    rows = []
    most = max(cfg.tasks)
    targets = {t: load_target(t) for t in cfg.targets}
    for policy in cfg.policies:
        for family in cfg.families:
            for n in cfg.tasks:
                module = prepared(ModelSpec(family, n, cfg.size, policy=policy, seq_len=cfg.seq_len), all_tasks=most)
                wl = workload(module, cfg)
                chip = smallest_chip(module, next(iter(targets.values())), wl)
                for tname, target in targets.items():
                    metrics = evaluate(module, target, wl, cfg.requests)
                    rows.append({"policy": policy, "family": family, "target": tname, **metrics, **chip})
                    if progress is not None:
                        progress.update(1)
    return rows


def workload(module, cfg: StudyConfig) -> Workload:
    wl = default_workload(module.graphs)
    return Workload(wl.mix, wl.switch_rate, wl.inferences_per_wakeup, not cfg.fixed_tasks,
                    wl.inferences_per_second, wl.lifetime_years)


def configurations(cfg: StudyConfig) -> int:
    return len(cfg.policies) * len(cfg.families) * len(cfg.tasks) * len(cfg.targets)


# -- outputs ------------------------------------------------------------------------------------------------------
def csv_text(rows: list[dict]) -> str:
    columns = list(rows[0])
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k, "")) for k in columns})
    return buf.getvalue()


def _cell(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def _num(x: float) -> str:
    """Three significant digits without exponents: 93.7, 13.39 -> 13.4, 0.00123."""
    if x == 0 or abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{max(2 - int(math.floor(math.log10(abs(x)))), 0)}f}"


def _mb(b: float) -> str:
    return f"{b / 1e6:.2f} MB"


def markdown(rows: list[dict], cfg: StudyConfig, accounting: list[dict] | None) -> str:
    most = max(cfg.tasks)
    out = ["# adapter-ALBERT vs ALBERT on an edge accelerator", "",
           f"Produced by `aalbert-study{_args(cfg)}`. Every configuration: {cfg.size} size, sequence "
           f"{cfg.seq_len}, a request stream of {cfg.requests} round-robin requests (a task switch before every "
           f"inference, the accelerator power-gated between inferences, task-specific weights "
           f"{'fixed' if cfg.fixed_tasks else 'changing in the field'}); weights go off chip only when they do "
           f"not fit. All configurations are in `study.csv`.", ""]
    for policy in cfg.policies:
        sel = [r for r in rows if r["policy"] == policy and r["tasks"] == most]
        out += [f"## {most} tasks, `{policy}` compression", "",
                "| memory | model | on-chip memory used | area | DRAM per inference | DRAM per task switch | "
                "DRAM per power-up | latency (one inference) | stream latency mean / p99 | energy per inference | "
                "average power |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sel:
            out.append(f"| {r['target']} | {FAMILY_LABEL[r['family']]} | {_mb(r['on_chip_used_bytes'])} | "
                       f"{r['area_mm2']:.2f} mm² | {_mb(r['dram_bytes_per_inference'])} | "
                       f"{_mb(r['dram_bytes_per_switch'])} | {_mb(r['dram_bytes_per_power_up'])} | "
                       f"{_num(r['latency_ms'])} ms | {_num(r['stream_latency_mean_ms'])} / "
                       f"{_num(r['stream_latency_p99_ms'])} ms | {_num(r['energy_mj'])} mJ | {_num(r['power_mw'])} mW |")
        out += ["", f"Ratios adapter-ALBERT / ALBERT at {most} tasks:", "",
                "| memory | energy | latency | on-chip memory used | DRAM per inference | DRAM per task switch |",
                "|---|---:|---:|---:|---:|---:|"]
        for target in cfg.targets:
            pair = {r["family"]: r for r in sel if r["target"] == target}
            if len(pair) == 2:
                a, b = pair["adapter-albert"], pair["albert"]
                out.append(f"| {target} | {_ratio(a['energy_mj'], b['energy_mj'])} | "
                           f"{_ratio(a['latency_ms'], b['latency_ms'])} | "
                           f"{_ratio(a['on_chip_used_bytes'], b['on_chip_used_bytes'])} | "
                           f"{_ratio(a['dram_bytes_per_inference'], b['dram_bytes_per_inference'])} | "
                           f"{_ratio(a['dram_bytes_per_switch'], b['dram_bytes_per_switch'])} |")
        out += ["", "DRAM bytes per inference (steady state) and per task switch, as tasks are added "
                    "(weights spill off chip once they stop fitting):", "",
                "| model | memory | " + " | ".join(f"{n} task{'s' if n > 1 else ''}" for n in cfg.tasks) + " |",
                "|---|---|" + "---:|" * len(cfg.tasks)]
        for family in cfg.families:
            for target in cfg.targets:
                cells = []
                for n in cfg.tasks:
                    r = next(x for x in rows if (x["policy"], x["family"], x["target"], x["tasks"])
                             == (policy, family, target, n))
                    cells.append(f"{_mb(r['dram_bytes_per_inference'])} / {_mb(r['dram_bytes_per_switch'])}")
                out.append(f"| {FAMILY_LABEL[family]} | {target} | " + " | ".join(cells) + " |")
        out += ["", "Smallest chip with no off-chip traffic (weights that never change in RRAM, the rest and the "
                    "activations in SRAM; or all SRAM), by the memory technology models:", "",
                "| model | tasks | RRAM | SRAM | area (RRAM + SRAM) | leakage | area (SRAM only) | leakage |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        first = cfg.targets[0]
        for family in cfg.families:
            for n in cfg.tasks:
                r = next(x for x in rows if (x["policy"], x["family"], x["target"], x["tasks"])
                         == (policy, family, first, n))
                out.append(f"| {FAMILY_LABEL[family]} | {n} | {_mb(r['frozen_bytes'])} | "
                           f"{_mb(r['mutable_bytes'] + r['arena_bytes'])} | {r['rram_sram_area_mm2']:.2f} mm² | "
                           f"{r['rram_sram_leakage_mw']:.0f} mW | {r['sram_only_area_mm2']:.2f} mm² | "
                           f"{r['sram_only_leakage_mw']:.0f} mW |")
        out.append("")
    if accounting:
        out += ["## Model side: what each task owns", "",
                "| model | adapter bottleneck | adapters | task-specific | shared parameters | parameters per task | "
                "bytes per task (edgebert) |", "|---|---:|---|---|---:|---:|---:|"]
        for a in accounting:
            out.append(f"| {FAMILY_LABEL[a['family']]} | {a['bottleneck']} | {a['adapters']} | {a['task-specific']} | "
                       f"{a['shared_params']:,} | {a['task_params']:,} | {a['task_bytes_edgebert']:,} |")
        out.append("")
    out += ["## Figures", "", "![metrics against the number of tasks](study_vs_tasks.png)", "",
            "![energy per inference by component](study_energy_breakdown.png)", "",
            "## Assumptions", ""]
    for t in cfg.targets:
        target = load_target(t)
        out.append(f"- `{t}`: {target.description}. Sources of every number: `targets/builtin/{t}.toml`.")
    out += ["- Memory numbers: NVMExplorer's 2 MB, 22 nm arrays scaled by capacity and banking "
            "(`docs/targets.md`); compute energies: Horowitz, ISSCC 2014 (45 nm); DRAM: ZigZag's per-access "
            "energies, LPDDR4-3200 bandwidth, background power not counted.",
            "- Energy per inference counts the dynamic energy of the PE array, the special-function unit and every "
            "memory access, the loads at task switches and power-ups, and the leakage of the whole chip while it "
            "works (it is power-gated in between).", ""]
    return "\n".join(out)


def _ratio(a: float, b: float) -> str:
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.2f}"


def _args(cfg: StudyConfig) -> str:
    default = StudyConfig()
    parts = []
    if cfg.tasks != default.tasks:
        parts.append(f" --tasks {min(cfg.tasks)}-{max(cfg.tasks)}" if cfg.tasks == list(
            range(min(cfg.tasks), max(cfg.tasks) + 1)) else f" --tasks {','.join(map(str, cfg.tasks))}")
    for key in ("families", "targets", "policies"):
        if getattr(cfg, key) != getattr(default, key):
            parts.append(f" --{key} {','.join(getattr(cfg, key))}")
    for key in ("size", "seq_len", "requests"):
        if getattr(cfg, key) != getattr(default, key):
            parts.append(f" --{key.replace('_', '-')} {getattr(cfg, key)}")
    if cfg.fixed_tasks:
        parts.append(" --fixed-tasks")
    return "".join(parts)


def figures(rows: list[dict], cfg: StudyConfig, out: Path) -> list[Path]:
    policy = cfg.policies[0]
    sel = [r for r in rows if r["policy"] == policy]

    def series(metric, scale=1.0, by_target=True):
        s: dict[str, list] = {}
        for r in sel:
            if not by_target and r["target"] != cfg.targets[0]:
                continue
            label = f"{FAMILY_LABEL[r['family']]} / {r['target']}" if by_target else FAMILY_LABEL[r["family"]]
            s.setdefault(label, []).append((r["tasks"], r[metric] * scale))
        return s

    hetero = series("rram_sram_area_mm2", by_target=False)
    sram_only = series("sram_only_area_mm2", by_target=False)
    area = {f"{k}, RRAM + SRAM": v for k, v in hetero.items()} | {f"{k}, SRAM only": v for k, v in sram_only.items()}
    memory: dict[str, list] = {}
    for r in sel:
        if r["target"] == cfg.targets[0]:
            memory.setdefault(FAMILY_LABEL[r["family"]], []).append(
                (r["tasks"], (r["frozen_bytes"] + r["mutable_bytes"] + r["arena_bytes"]) / 1e6))
    paths = study_figure([
        ("energy per inference (request stream)", "mJ", series("energy_mj")),
        ("latency per inference (stream, p99)", "ms", series("stream_latency_p99_ms")),
        ("area of the smallest chip with no off-chip traffic", "mm^2", area),
        ("on-chip memory needed (weights + activations)", "MB", memory)], out / "study_vs_tasks")
    most = max(cfg.tasks)
    bars = {}
    for r in sel:
        if r["tasks"] == most:
            bars[f"{FAMILY_LABEL[r['family']]}\n{r['target']}"] = {
                k[len("energy_"):-len("_mj")]: v for k, v in r.items()
                if k.startswith("energy_") and k.endswith("_mj") and k != "energy_mj"}
    paths += stacked_energy(bars, out / "study_energy_breakdown",
                            f"energy per inference by component, {most} tasks, {policy}")
    return paths


def write_outputs(rows: list[dict], cfg: StudyConfig, out: Path,
                  accounting: list[dict] | None) -> tuple[list[Path], str]:
    """Write study.csv, study.md and the figures; the paths, and study.md's text."""
    make_dir(out)
    written = []
    md = markdown(rows, cfg, accounting)
    for name, text in (("study.csv", csv_text(rows)), ("study.md", md)):
        with atomic_writer(out / name) as f:
            f.write(text.encode())
        written.append(out / name)
    return written + figures(rows, cfg, out), md


def _bottlenecks(cfg: StudyConfig) -> tuple[int, ...]:
    return (8, 16) if cfg.size == "tiny" else (16, 32, 64, 128, 256)


def accounting_steps(cfg: StudyConfig) -> int:
    """How many models the parameter accounting builds (for a progress bar)."""
    return len(parameter_settings(_bottlenecks(cfg))) if cfg.accounting else 0


def accounting_rows(cfg: StudyConfig, progress=None) -> list[dict] | None:
    if not cfg.accounting:
        return None
    return parameter_table(cfg.size, _bottlenecks(cfg), progress)
