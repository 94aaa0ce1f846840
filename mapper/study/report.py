"""The study's outputs: `study.csv` (every configuration), `study.md` (the tables, the ratios per baseline,
the sized chips, early exit and DVFS when they ran, the model-side accounting, the sensitivity's conclusions
when it ran, the assumptions) and figures (`study_vs_tasks`, `study_energy_breakdown`, `study_early_exit`,
PNG and SVG)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aalbert.mapper.reports.summary import num
from aalbert.mapper.study.early_exit import assumption_lines, exit_figure, exit_section
from aalbert.mapper.study.grid import FAMILY_LABEL, StudyConfig, architectures, label, ratios
from aalbert.mapper.study.plots import stacked_energy, study_figure
from aalbert.outputs import atomic_writer, make_dir
from aalbert.targets.hardware.spec import load_target


def csv_text(rows: list[dict], columns: Sequence[str] = ()) -> str:
    """The rows as CSV: `columns` first (the header of a table that may have no rows), then every other key in the
    order the rows bring them."""
    columns = list(columns)
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


def _mb(b: float) -> str:
    return f"{b / 1e6:.2f} MB"


def ratio(a: float, b: float) -> str:
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.2f}"


NO_AREA = "no area model"


def area(mm2: float) -> str:
    """A chip's area; a target that models none (its parts all 0 mm², as ZigZag's tpu_like) says so."""
    return f"{mm2:.2f} mm²" if mm2 > 0 else NO_AREA


def area_ratio(a: float, b: float) -> str:
    return ratio(a, b) if a > 0 and b > 0 else "-"


def headline(rows: list[dict], cfg: StudyConfig, policy: str) -> list[str]:
    """The table of every chip at the most tasks, and the adapter-ALBERT / ALBERT ratios per baseline."""
    most = max(cfg.tasks)
    sel = [r for r in rows if r["policy"] == policy and r["tasks"] == most]
    order = {a: i for i, a in enumerate(architectures(cfg))}
    sel.sort(key=lambda r: (r["family"] != "adapter-albert", order.get(r["architecture"], 99)))
    out = [f"## {most} tasks, `{policy}` compression", "",
           "| memory | model | on-chip memory | used | area | DRAM per inference | DRAM per task switch | "
           "DRAM per power-up | latency (one inference) | stream latency mean / p99 | energy per inference | "
           "average power |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sel:
        out.append(f"| {label(r['architecture'])} | {FAMILY_LABEL[r['family']]} | {_mb(r['on_chip_capacity_bytes'])} | "
                   f"{_mb(r['on_chip_used_bytes'])} | {area(r['area_mm2'])} | {_mb(r['dram_bytes_per_inference'])} | "
                   f"{_mb(r['dram_bytes_per_switch'])} | {_mb(r['dram_bytes_per_power_up'])} | "
                   f"{num(r['latency_ms'])} ms | {num(r['stream_latency_mean_ms'])} / "
                   f"{num(r['stream_latency_p99_ms'])} ms | {num(r['energy_mj'])} mJ | {num(r['power_mw'])} mW |")
    out += ["", f"Ratios adapter-ALBERT / ALBERT at {most} tasks, per baseline:", "",
            "| baseline | adapter-ALBERT on | ALBERT on | energy | latency | area | average power |",
            "|---|---|---|---:|---:|---:|---:|"]
    for name, a, b in ratios(rows, policy, most):
        out.append(f"| {name} | {label(a['architecture'])} | {label(b['architecture'])} | "
                   f"{ratio(a['energy_mj'], b['energy_mj'])} | {ratio(a['latency_ms'], b['latency_ms'])} | "
                   f"{area_ratio(a['area_mm2'], b['area_mm2'])} | {ratio(a['power_mw'], b['power_mw'])} |")
    return out + [""]


def markdown(rows: list[dict], cfg: StudyConfig, accounting: list[dict] | None, command: str,
             sensitivity: list[str] | None = None, exit_rows: list[dict] | None = None) -> str:
    models = next((r["memory_models"] for r in rows if r["architecture"] == cfg.template), rows[0]["memory_models"])
    out = ["# adapter-ALBERT vs ALBERT on an edge accelerator", "",
           f"Produced by `{command}`. Every configuration: {cfg.size} size, sequence {cfg.seq_len}, a request "
           f"stream of {cfg.requests} round-robin requests at 10 per second (a task switch before every inference, "
           f"the accelerator power-gated between inferences, task-specific weights "
           f"{'fixed' if cfg.fixed_tasks else 'changing in the field'}); weights go off chip only when they do not "
           f"fit. Memory technologies: {models} (the same in every chip, sized ones included, but for the STT-MRAM "
           "of the sized STT-MRAM + SRAM chip). Energy counts "
           "dynamic energy, leakage by memory bank and power state, wake-ups, and DRAM background. All "
           "configurations are in `study.csv`.", ""]
    for policy in cfg.policies:
        out += headline(rows, cfg, policy)
        out += _by_tasks(rows, cfg, policy)
        if exit_rows:
            out += exit_section(rows, exit_rows, cfg, policy, "study_early_exit.png")
    if accounting:
        out += ["## Model side: what each task owns", "",
                "| model | adapter bottleneck | adapters | task-specific | shared parameters | parameters per task | "
                "bytes per task (edgebert) |", "|---|---:|---|---|---:|---:|---:|"]
        for a in accounting:
            out.append(f"| {FAMILY_LABEL[a['family']]} | {a['bottleneck']} | {a['adapters']} | {a['task-specific']} | "
                       f"{a['shared_params']:,} | {a['task_params']:,} | {a['task_bytes_edgebert']:,} |")
        out.append("")
    out += sensitivity or ["## Sensitivity", "", "`aalbert-study --sensitivity` varies every uncertain input over "
                           "its sourced range and says which conclusions hold (not run for this output).", ""]
    out += ["## Figures", "", "![metrics against the number of tasks](study_vs_tasks.png)", "",
            "![energy per inference by component](study_energy_breakdown.png)", "", "## Assumptions", ""]
    for t in cfg.targets:
        target = load_target(t)
        out.append(f"- `{t}`: {target.description}. Sources of every number: `targets/builtin/{t}.toml`.")
    if cfg.sized:
        out.append(f"- Sized chips (`mapper/study/chips.py`): `{cfg.template}` with its on-chip memory cut to what "
                   "each configuration needs: SRAM in 256 KiB banks, RRAM and STT-MRAM in 2 MB banks (64 KiB steps); "
                   "the STT-MRAM + SRAM chip keeps every weight in field-writable STT-MRAM (NVMExplorer's 22 nm "
                   "read-energy point, `targets/hardware/technologies/stt_mram.toml`), so task weights may change in "
                   "the field there without the fixed-tasks rule.")
    template = load_target(cfg.template)
    out += [f"- Memories: {models}: NVMExplorer's 2 MB, 22 nm arrays scaled by capacity and banking "
            "(`targets/hardware/memtech.py`); power states: SRAM retention at 10 % of its leakage, gated banks at "
            "1/260, wake-up 20 ns and 450 pJ per bank; DRAM: LPDDR4-3200 from DRAMPower's memspec currents "
            "(`targets/hardware/dram.py`), in self-refresh while the accelerator sleeps.",
            f"- Compute: Horowitz's 45 nm energies and areas scaled to {template.technology.node_nm:g} nm at "
            f"{template.voltage_v} V ({template.technology.describe()}); clock {template.clock_mhz:g} MHz.",
            *(_exit_assumptions(cfg) if exit_rows else []),
            "- Energy per inference counts the dynamic energy of the PE array, the special-function unit and every "
            "memory access, the loads at task switches and power-ups, the leakage of every bank in its power state "
            "while the chip is on, and the DRAM's background while it holds what the chip needs.", ""]
    return "\n".join(out)


def _exit_assumptions(cfg: StudyConfig) -> list[str]:
    return assumption_lines(cfg)


@dataclass(frozen=True)
class NoiseBand:
    """How much a model's energy per inference on one fixed chip moves with the task count: over the study's task
    counts, the lowest and highest energy, the spread between them and the largest step between consecutive
    counts, relative to the lower figure. For a model whose tasks add only their own weights, which fit on chip,
    what moves is where data land in memory: the noise band of the layout."""

    family: str
    architecture: str
    lo_mj: float
    hi_mj: float
    spread: float
    step: float


def noise_band(rows: list[dict], policy: str, family: str, architecture: str) -> NoiseBand | None:
    """The noise band of `family` on fixed chip `architecture` over the study's task counts (None: fewer than two)."""
    sel = sorted((r["tasks"], r["energy_mj"]) for r in rows
                 if (r["policy"], r["family"], r["architecture"], r["sized"]) == (policy, family, architecture, False)
                 and r.get("early_exit", "off") == "off")
    if len(sel) < 2:
        return None
    e = [mj for _, mj in sel]
    steps = [abs(b - a) / min(a, b) for a, b in zip(e, e[1:])]
    return NoiseBand(family, architecture, min(e), max(e), (max(e) - min(e)) / min(e), max(steps))


def layout_noise(rows: list[dict], cfg: StudyConfig, policy: str) -> float:
    """The study's noise band, relative energy: the largest spread of adapter-ALBERT's energy over its task counts
    on a fixed chip, where adding a task adds only its own weights and so moves only where data land (0 when
    the study has fewer than two task counts). Conclusions within it of their threshold neither hold nor fail."""
    bands = [b for arch in cfg.targets if (b := noise_band(rows, policy, "adapter-albert", arch)) is not None]
    return max((b.spread for b in bands), default=0.0)


def noise_line(rows: list[dict], cfg: StudyConfig, policy: str) -> list[str]:
    """The study's line on the noise band of every model on every fixed chip."""
    bands = [b for family in cfg.families for arch in cfg.targets
             if (b := noise_band(rows, policy, family, arch)) is not None]
    if not bands:
        return []
    counts = f"{min(cfg.tasks)}-{max(cfg.tasks)} tasks"
    return [f"Noise band: energy per inference over {counts} on each fixed chip (lowest-highest, spread, largest "
            "step between consecutive counts): "
            + "; ".join(f"{FAMILY_LABEL[b.family]} on {b.architecture} {num(b.lo_mj)}-{num(b.hi_mj)} mJ, "
                        f"{b.spread:.2%}, {b.step:.2%}" for b in bands)
            + ". Where a model's tasks change nothing but where data land in memory (adapter-ALBERT's, while "
            "they fit on chip), this is the noise of the layout, and a difference smaller than it is not a "
            "finding; ALBERT's also moves with the copies that spill off chip.", ""]


def _by_tasks(rows: list[dict], cfg: StudyConfig, policy: str) -> list[str]:
    """Energy and area per architecture as tasks are added; DRAM traffic on the fixed chips."""
    head = "| model | memory | " + " | ".join(f"{n} task{'s' if n > 1 else ''}" for n in cfg.tasks) + " |"
    rule = "|---|---|" + "---:|" * len(cfg.tasks)

    def cell(family, arch, n, fmt):
        r = next((x for x in rows if (x["policy"], x["family"], x["architecture"], x["tasks"])
                  == (policy, family, arch, n)), None)
        return fmt(r) if r else "-"
    out = ["Energy per inference and area as tasks are added, every chip (sized chips grow with the tasks):", "",
           head, rule]
    for family in cfg.families:
        for arch in architectures(cfg):
            cells = [cell(family, arch, n, lambda r: f"{num(r['energy_mj'])} mJ, {area(r['area_mm2'])}")
                     for n in cfg.tasks]
            out.append(f"| {FAMILY_LABEL[family]} | {label(arch)} | " + " | ".join(cells) + " |")
    out += [""] + noise_line(rows, cfg, policy)
    out += ["DRAM bytes per inference (steady state) and per task switch on the fixed chips (weights spill off "
                "chip once they stop fitting):", "", head, rule]
    for family in cfg.families:
        for arch in cfg.targets:
            cells = [cell(family, arch, n, lambda r: f"{_mb(r['dram_bytes_per_inference'])} / "
                                                    f"{_mb(r['dram_bytes_per_switch'])}") for n in cfg.tasks]
            out.append(f"| {FAMILY_LABEL[family]} | {arch} | " + " | ".join(cells) + " |")
    return out + [""]


def figures(rows: list[dict], cfg: StudyConfig, out: Path) -> list[Path]:
    policy = cfg.policies[0]
    sel = [r for r in rows if r["policy"] == policy]

    def series(metric, sized):
        s: dict[str, list] = {}
        for r in sel:
            if r["sized"] == sized:
                s.setdefault(f"{FAMILY_LABEL[r['family']]} / {label(r['architecture'])}", []).append(
                    (r["tasks"], r[metric]))
        return s
    panels = [("energy per inference on the fixed chips", "mJ", series("energy_mj", False)),
              ("latency per inference on the fixed chips (stream, p99)", "ms", series("stream_latency_p99_ms", False))]
    if cfg.sized:
        panels += [("energy per inference on chips sized to each configuration", "mJ", series("energy_mj", True)),
                   ("area of the chips sized to each configuration", "mm^2", series("area_mm2", True))]
    paths = study_figure(panels, out / "study_vs_tasks")
    most = max(cfg.tasks)
    paths += stacked_energy(breakdown(rows, cfg), out / "study_energy_breakdown",
                            f"energy per inference by component, {most} tasks, {policy}")
    return paths


def breakdown(rows: list[dict], cfg: StudyConfig) -> dict[str, dict[str, float]]:
    """What `study_energy_breakdown` draws: per configuration at the most tasks (first policy), mJ per inference
    by component, every `energy_<component>_mj` column of its row, the operand, mask and auxiliary buffers of
    every chip summed as `buffers`; a bar adds up to the row's `energy_mj`."""
    policy, most = cfg.policies[0], max(cfg.tasks)
    buffers = {b.name for t in {*cfg.targets, cfg.template} for b in load_target(t).parts.buffers}
    bars: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["policy"] != policy or r["tasks"] != most:
            continue
        parts: dict[str, float] = {}
        for k, v in r.items():
            if k.startswith("energy_") and k.endswith("_mj") and k != "energy_mj":
                name = k[len("energy_"):-len("_mj")]
                name = "buffers" if name in buffers else name
                parts[name] = parts.get(name, 0.0) + v
        bars[f"{FAMILY_LABEL[r['family']]}\n{label(r['architecture']).replace('sized: ', 'sized ')}"] = parts
    return bars


@dataclass(frozen=True)
class Findings:
    """What a study found: a row per configuration, the parameter accounting, the sensitivity summary's lines and
    the early-exit rows (each optional)."""

    rows: list[dict]
    accounting: list[dict] | None = None
    sensitivity: list[str] | None = None
    exit_rows: list[dict] | None = None


def write_outputs(found: Findings, cfg: StudyConfig, out: Path, command: str) -> list[Path]:
    """study.csv, study.md and the figures, in `out`."""
    rows, accounting, sensitivity, exit_rows = found.rows, found.accounting, found.sensitivity, found.exit_rows
    make_dir(out)
    written = []
    tagged = [{**r, "early_exit": "off"} for r in rows] + exit_rows if exit_rows else rows
    for name, text in (("study.csv", csv_text(tagged)),
                       ("study.md", markdown(rows, cfg, accounting, command, sensitivity, exit_rows))):
        with atomic_writer(out / name) as f:
            f.write(text.encode())
        written.append(out / name)
    written += figures(rows, cfg, out)
    if exit_rows:
        written += exit_figure(rows, exit_rows, cfg, out)
    return written

