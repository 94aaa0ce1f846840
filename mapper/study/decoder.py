"""The decoder study: a Llama-style decoder with N LoRA adapters across memory architectures, KV placements and
LoRA modes.

The model is `examples.llama_ir`'s (torch-free, int8 base, f16 LoRA pairs on
q and v), built for each number of adapters with the same seed, so the first
N tasks' weights are those of every larger study. Each configuration runs
`prepare` and the `lora` pass in its mode (unmerged, merged, merge-on-switch),
is placed (spilling only when it must, as the encoder study), lowered and
simulated as a stream of generation requests, and gives energy per token,
TPOT, TTFT, area, and where the KV cache and the task weights live.

KV placement: on a fixed chip the allocator decides (`passes.allocation.state`:
the cache's level is a variable of its integer program). On a chip sized to
the configuration (`chips.sized_target`) there are two variants: `on-chip`,
the SRAM sized to hold the cache too, where the allocator may keep it, and
`off-chip`, the SRAM sized without it, so the only level with room is the
DRAM: the cache is forced off chip by the chip's size, not by a change to the
allocator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

from aalbert.errors import IRVerifyError, OptionError
from aalbert.examples.llama_ir import SMALL, STUDY, DecoderShape, build
from aalbert.ir.module import Module
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.study.chips import ARCHITECTURES, sized_target, sizes
from aalbert.mapper.study.configuration import template_of
from aalbert.mapper.study.evaluate import place
from aalbert.mapper.study.workers import Workers
from aalbert.passes.base import PassManager
from aalbert.passes.lora import MODES
from aalbert.passes.pipelines import DEFAULT, compile_passes, with_lora
from aalbert.targets.hardware.spec import Target, load_target
from aalbert.targets.sim.workload import default_workload

FAMILY = "lora-decoder"
SHAPES = {"study": STUDY, "small": SMALL}
# fixed chips with a DRAM behind them (a decoder's cache and spilled weights need one) and the sized architectures
# whose task weights may change in the field (LoRA adapters are swapped after deployment)
FIXED = ("edge_accel", "edge_accel_dram", "phone_npu")
SIZED = ("sram", "rram_sram", "mram_sram")
KV_SIZED = ("on-chip", "off-chip")
ALLOCATOR = "allocator"


@dataclass
class DecoderStudyConfig:
    adapters: list[int] = dataclasses.field(default_factory=lambda: list(range(1, 9)))
    targets: list[str] = dataclasses.field(default_factory=lambda: list(FIXED))
    modes: list[str] = dataclasses.field(default_factory=lambda: list(MODES))
    size: str = "study"
    requests: int = 20
    sized: bool = True
    template: str = "edge_accel"

    @property
    def shape(self) -> DecoderShape:
        return SHAPES[self.size]


@dataclass(frozen=True)
class DecoderConfiguration:
    shape: DecoderShape    # tasks: the number of adapters
    mode: str              # how the LoRA pairs run (`passes.lora`)
    chip: str              # a fixed target, or a sized architecture (`chips.ARCHITECTURES`)
    sized: bool
    kv: str                # allocator (fixed chips), on-chip or off-chip (sized chips)
    template: str
    requests: int

    @property
    def model(self) -> tuple[DecoderShape, str]:
        return self.shape, self.mode


def configurations(cfg: DecoderStudyConfig) -> list[DecoderConfiguration]:
    """The grid in the order of its rows: LoRA mode, number of adapters, then the fixed chips and the sized
    architectures with each KV placement."""
    chips = [(t, False, ALLOCATOR) for t in cfg.targets]
    if cfg.sized:
        chips += [(arch, True, kv) for arch in SIZED for kv in KV_SIZED]
    return [DecoderConfiguration(dataclasses.replace(cfg.shape, tasks=n), mode, chip, sized, kv, cfg.template,
                                 cfg.requests)
            for mode in cfg.modes for n in cfg.adapters for chip, sized, kv in chips]


@functools.lru_cache(maxsize=2)
def prepared(shape: DecoderShape, mode: str) -> Module:
    """The decoder of `shape`, canonical, shared, its LoRA pairs run in `mode` (kept per process)."""
    module = build(shape)
    return PassManager(compile_passes(module, with_lora(DEFAULT, mode))).run(module)


def _level_of(w) -> str:
    p = w.placement
    return f"{p.home}->{p.level}" if p.residency == "staged" else p.level


def row(c: DecoderConfiguration, counted: dict | None = None) -> dict:
    """One configuration's figures: placement, generation stream, area (with `counted`, also its steps' counts
    at fixed cache lengths, `targets.sim.token_counts`, and its chip, for the joint sensitivity)."""
    module = prepared(c.shape, c.mode)
    if c.sized:
        template, where, base = template_of(c.template, ())
        s = sizes(module, base, False)
        if c.kv == "off-chip":
            s = dataclasses.replace(s, state=0)
        target = sized_target(template, where, s, c.chip)
        name = ARCHITECTURES[c.chip]
    else:
        target, name = load_target(c.chip), c.chip
    tags = {"lora": c.mode, "adapters": c.shape.tasks, "architecture": c.chip, "target": name, "sized": c.sized,
            "kv_placement": c.kv}
    try:
        return {**tags, **_figures(module, target, c.requests, counted), "error": ""}
    except IRVerifyError as e:
        # the placement the allocator made fails its own check: the row says so instead of ending the study
        return {**tags, **dict.fromkeys(FIGURES), "error": e.message.splitlines()[0]}


FIGURES = ("kv_level", "kv_bytes", "task_weight_level", "task_weight_bytes", "shared_bytes", "on_chip_capacity_bytes",
           "on_chip_used_bytes", "spilled", "area_mm2", "energy_per_token_uj", "tpot_ms", "ttft_ms",
           "tokens_per_second")


def counted_row(c: DecoderConfiguration) -> tuple[dict, dict]:
    """The configuration's row, and its counts and chip (`row`'s `counted`; empty when not placed)."""
    counted: dict = {}
    return row(c, counted), counted


def _figures(module: Module, target: Target, requests: int, counted: dict | None = None) -> dict:
    """Place (spilling only when the weights do not fit), lower and simulate a stream of `requests`."""
    wl = default_workload(module.graphs)
    try:
        placed, a = place(module, target, wl, spill=False)
        spilled = False
    except OptionError:
        placed, a = place(module, target, wl, spill=True)
        spilled = True
    backend = run_backend(placed, target, wl, Stream(requests))
    g = backend.generation
    assert g is not None  # a decoder's stream is one of generation requests
    if counted is not None:
        from aalbert.targets.sim.token_counts import token_counts

        counted.update(counts=token_counts(backend), target=target)
    task = [w for w in placed.weights.values() if not w.role.shared]
    arenas = [gr.arena for gr in placed.graphs.values() if gr.arena is not None]
    on_chip = {m.name for m in target.on_chip}
    figures = {
        "kv_level": "+".join(sorted({ar.state_level for ar in arenas if ar.state_level})),
        "kv_bytes": max(ar.state for ar in arenas),
        "task_weight_level": "+".join(sorted({_level_of(w) for w in task})),
        "task_weight_bytes": sum(w.nbytes for w in task),
        "shared_bytes": sum(w.nbytes for w in placed.weights.values() if w.role.shared),
        "on_chip_capacity_bytes": sum(m.capacity_bytes for m in target.on_chip),
        "on_chip_used_bytes": sum(b for lvl, b in a.usage.items() if lvl in on_chip),
        "spilled": spilled,
        "area_mm2": target.area_mm2,
        "energy_per_token_uj": g.energy_per_token_pj / 1e6,
        "tpot_ms": float(g.tpot.mean() * 1e3),
        "ttft_ms": float(g.ttft.mean() * 1e3),
        "tokens_per_second": g.tokens_per_second,
    }
    assert tuple(figures) == FIGURES
    return figures


def run(cfg: DecoderStudyConfig, progress=None, workers: Workers | None = None, job=row) -> list:
    """Every configuration's `job` (its row, or with `counted_row` its row and counts), in grid order, on
    `workers` (default: here, one at a time)."""
    with contextlib.ExitStack() as stack:
        if workers is None:
            workers = stack.enter_context(Workers(1))
        return workers.map(job, configurations(cfg), progress, group=lambda c: c.model)


def placed(rows: list[dict]) -> list[dict]:
    """The rows whose placement passed its check."""
    return [r for r in rows if not r["error"]]


def line_label(r: dict) -> str:
    arch = r["architecture"]
    from aalbert.mapper.study.grid import short
    return short(arch) + (f", KV {r['kv_placement']}" if r["sized"] else "")


def figure(rows: list[dict], cfg: DecoderStudyConfig, stem: Path) -> list[Path]:
    """Energy per token against adapters per architecture, one panel per LoRA mode (log scale: the DRAM-fed chips
    spend ten times more), and the area; a configuration not placed leaves a gap."""
    from aalbert.mapper.study.plots import lines_figure

    labels = list(dict.fromkeys(line_label(r) for r in rows))
    panels = []
    for mode in cfg.modes[:3]:
        series: dict[str, list[tuple[int, float]]] = {name: [] for name in labels}
        for r in rows:
            if r["lora"] == mode:
                series[line_label(r)].append((r["adapters"], _value(r, "energy_per_token_uj")))
        panels.append((f"energy per token, LoRA {mode}", "uJ per token (log scale)", True, series))
    area: dict[str, list[tuple[int, float]]] = {name: [] for name in labels}
    for r in rows:
        if r["lora"] == cfg.modes[0]:
            area[line_label(r)].append((r["adapters"], _value(r, "area_mm2")))
    panels.append((f"area (LoRA {cfg.modes[0]})", "mm2", False, area))
    return lines_figure(panels, stem, "LoRA adapters")


def _value(r: dict, key: str) -> float:
    """A row's figure, or NaN where it was not placed (a gap in its line)."""
    return math.nan if r["error"] else r[key]


def _f(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:,.0f}"


def table(rows: list[dict], mode: str, adapters: int) -> list[str]:
    """One markdown table: every chip at `adapters` adapters in LoRA `mode`."""
    lines = ["| chip | KV cache | energy/token (uJ) | TPOT (ms) | TTFT (ms) | area (mm2) | KV lives in | "
             "task weights live in | task weights (KB) |", "|---|---|---:|---:|---:|---:|---|---|---:|"]
    for r in rows:
        if r["lora"] == mode and r["adapters"] == adapters and r["error"]:
            lines.append(f"| {r['target']} | {r['kv_placement']} | not placed: {r['error']} |" + " |" * 6)
        elif r["lora"] == mode and r["adapters"] == adapters:
            lines.append(f"| {r['target']} | {r['kv_placement']} | {_f(r['energy_per_token_uj'])} | "
                         f"{_f(r['tpot_ms'])} | {_f(r['ttft_ms'])} | {r['area_mm2']:.2f} | {r['kv_level']} | "
                         f"{r['task_weight_level'] or '-'}{' (spilled)' if r['spilled'] else ''} | "
                         f"{r['task_weight_bytes'] / 1e3:,.1f} |")
    return lines


def headline(rows: list[dict], cfg: DecoderStudyConfig) -> list[str]:
    """The printed summary: at the most adapters, per LoRA mode, the lowest-energy chip and the smallest one."""
    most = max(cfg.adapters)
    failed = len(rows) - len(placed(rows))
    out = [f"decoder study: {describe(cfg.shape)}; {len(rows)} configurations"
           + (f", {failed} of them not placed (their placement fails its check)" if failed else "")]
    for mode in cfg.modes:
        sel = [r for r in placed(rows) if r["lora"] == mode and r["adapters"] == most]
        if not sel:
            continue
        best = min(sel, key=lambda r: r["energy_per_token_uj"])
        small = min(sel, key=lambda r: r["area_mm2"])
        out.append(f"- {most} adapters, LoRA {mode}: lowest energy per token {_f(best['energy_per_token_uj'])} uJ "
                   f"on {line_label(best)} ({best['area_mm2']:.2f} mm2, KV in {best['kv_level']}); smallest "
                   f"{small['area_mm2']:.2f} mm2 on {line_label(small)} ({_f(small['energy_per_token_uj'])} uJ)")
    return out


def describe(s: DecoderShape) -> str:
    return (f"Llama-style decoder, {s.layers} layers, hidden {s.hidden}, {s.heads} heads / {s.kv_heads} KV, FFN "
            f"{s.ffn}, vocabulary {s.vocab}, int8 base ({s.base_parameters():,} parameters), LoRA rank {s.rank} on "
            f"q and v in f16, prompt {s.prompt}, {s.generated} generated tokens")


def markdown(rows: list[dict], cfg: DecoderStudyConfig, command: str, figure_name: str,
             extra: list[str] | None = None) -> str:
    """study_decoder.md: the headline, the figure, a table per LoRA mode at the most adapters, `extra` (the joint
    sensitivity and deployment map's sections, when run) and what the study does not do."""
    most = max(cfg.adapters)
    lines = ["# The decoder study", "", f"`{command}`", "", f"Model: {describe(cfg.shape)}; "
             f"{cfg.requests} generation requests per configuration, a uniform mix over the adapters with a switch "
             "before each. Energy per token is the stream's energy (leakage and wake-ups included) over the tokens "
             "generated.", "",
             "KV placement: on a fixed chip the allocator chooses the cache's level with the weights' "
             "(`allocator`). A sized chip comes twice: `on-chip`, its SRAM sized to hold the cache too, and "
             "`off-chip`, its SRAM sized without it, so that the cache goes to DRAM unless the SRAM's rounding to "
             "whole banks leaves room for it (the `KV lives in` column says where it went).", "",
             *headline(rows, cfg)[1:], "", f"![energy per token and area against adapters]({figure_name})", ""]
    for mode in cfg.modes:
        if any(r["lora"] == mode and r["adapters"] == most for r in rows):
            lines += [f"## {most} adapters, LoRA {mode}", "", *table(rows, mode, most), ""]
    lines += [*(extra or []), "## Not yet", "",
              *([] if extra else ["- No joint sensitivity or deployment map in this run: `--sensitivity` adds them."]),
              *(["- Configurations marked `not placed`: the placement check refused what the allocator made; "
                 "their rows give the check's message and the figure leaves them out."]
                if any(r["error"] for r in rows) else []), ""]
    return "\n".join(lines)


def write_outputs(rows: list[dict], cfg: DecoderStudyConfig, out: Path, command: str,
                  extra: list[str] | None = None) -> list[Path]:
    """study_decoder.csv, study_decoder.md (with `extra`'s sections) and the figure (PNG, SVG) in `out`."""
    from aalbert.mapper.study.report import csv_text
    from aalbert.outputs import atomic_writer, make_dir

    make_dir(out)
    paths = figure(rows, cfg, out / "study_decoder")
    with atomic_writer(out / "study_decoder.csv") as f:
        f.write(csv_text(rows).encode())
    with atomic_writer(out / "study_decoder.md") as f:
        f.write(markdown(rows, cfg, command, "study_decoder.png", extra).encode())
    return [out / "study_decoder.csv", out / "study_decoder.md"] + paths
