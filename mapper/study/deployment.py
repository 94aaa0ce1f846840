"""The deployment map: where adapter-ALBERT on heterogeneous memory wins, over how the chip is used.

Over inferences per power-up (one, as the study's workload, to always on) and the task count, every other
input at its built-in value, each family's lowest-energy chip among the study's (re-priced from the compiled
counts, `mapper.study.joint`), the adapter-ALBERT / ALBERT energy ratio of the two, the paper's ratio
(adapter-ALBERT on sized RRAM + SRAM against ALBERT on sized all-SRAM) and the areas of the winning chips;
`why` names the share of each winner's energy that is static (leakage, wake-ups, DRAM background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.mapper.study.joint import PAPER, Compiled, Outcome, Parameter, best, builtin_inputs, evaluate_samples
from aalbert.mapper.study.plots import _pyplot, save

PER_WAKEUP_LOG10 = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
STATIC = ("leak:", "bank:", "wake_pj:", "dram:")
SHORT = {"edge_accel": "EA", "edge_accel_sram": "EA-S", "edge_accel_dram": "EA-D", "sram": "S", "rram_sram": "RS",
         "rram_sram_fixed": "RSf", "mram_sram": "MS"}


@dataclass(frozen=True)
class Cell:
    per_wakeup: float
    tasks: int
    adapter_arch: str
    adapter_mj: float
    albert_arch: str
    albert_mj: float
    paper: float                  # the paper's ratio (nan when a chip is missing)
    adapter_area: float
    albert_area: float
    adapter_static: float         # share of the winner's energy that is static
    albert_static: float

    @property
    def ratio(self) -> float:
        return self.adapter_mj / self.albert_mj


def _grid(configs: list[Compiled], params: list[Parameter], static_off: bool = False) -> tuple[Outcome, list]:
    cells = [(w, n) for w in PER_WAKEUP_LOG10 for n in sorted({c.tasks for c in configs})]
    xs = [builtin_inputs(params, per_wakeup=w, tasks=n) for w, n in cells]
    x = {k: np.concatenate([v[k] for v in xs]) for k in xs[0]}
    if static_off:
        keep = [_strip(c) for c in configs]
        return evaluate_samples(keep, params, x), cells
    return evaluate_samples(configs, params, x), cells


def _strip(c: Compiled) -> Compiled:
    """The configuration with every static price zero: its dynamic energy alone."""
    from dataclasses import replace

    return replace(c, prices={k: (0.0 if k.startswith(STATIC) and not k.endswith(("sr_after_ns", "exit_pj"))
                                  else v) for k, v in c.prices.items()}, low=None)


def deployment_map(configs: list[Compiled], params: list[Parameter], exclude: tuple[str, ...] = ()) -> list[Cell]:
    """The map's cells, each family's winner chosen among the chips but `exclude` (those whose rules the
    study's premise breaks: task weights fixed, when they change in the field)."""
    o, cells = _grid(configs, params)
    dyn, _ = _grid(configs, params, static_off=True)
    a_e, a_i = best(o, "adapter-albert", exclude)
    b_e, b_i = best(o, "albert", exclude)
    out = []
    for k, (w, n) in enumerate(cells):
        a, b = o.archs[a_i[k]], o.archs[b_i[k]]
        paper = o.energy.get(("adapter-albert", PAPER[0]))
        base = o.energy.get(("albert", PAPER[1]))
        ratio = float(paper[k] / base[k]) if paper is not None and base is not None else float("nan")
        out.append(Cell(10 ** w, n, a, float(a_e[k]) / 1e9, b, float(b_e[k]) / 1e9, ratio,
                        float(o.area["adapter-albert", a][k]), float(o.area["albert", b][k]),
                        1 - float(dyn.energy["adapter-albert", a][k] / a_e[k]),
                        1 - float(dyn.energy["albert", b][k] / b_e[k])))
    return out


def _wakeups(w: float) -> str:
    return f"{w:,.0f}" if w >= 10 else f"{w:.3g}"


def map_figure(cells: list[Cell], stem) -> list:
    """Two panels over inferences per power-up x task count: the ratio of the two winners (colour, winners'
    chips written in), and the area of adapter-ALBERT's winning chip over ALBERT's."""
    plt = _pyplot()
    ws = sorted({c.per_wakeup for c in cells})
    ns = sorted({c.tasks for c in cells})
    by = {(c.per_wakeup, c.tasks): c for c in cells}
    ratio = np.array([[by[w, n].ratio for n in ns] for w in ws])
    area = np.array([[by[w, n].adapter_area / by[w, n].albert_area for n in ns] for w in ws])
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    span = max(abs(np.log2(ratio)).max(), 0.05)
    for ax, data, title, cmap in ((axes[0], np.log2(ratio), "adapter-ALBERT / ALBERT energy, each on its "
                                   "lowest-energy chip", "RdBu_r"),
                                  (axes[1], np.log2(area), "area of adapter-ALBERT's winning chip / ALBERT's",
                                   "PuOr_r")):
        lim = span if ax is axes[0] else max(abs(data).max(), 0.05)
        im = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, vmin=-lim, vmax=lim)  # colour: log2
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_yticks(range(len(ws)), [_wakeups(w) for w in ws])
        ax.set_xlabel("tasks")
        ax.set_ylabel("inferences per power-up")
        ax.set_title(title, fontsize=9)
        bar = fig.colorbar(im, ax=ax, fraction=0.046)
        ticks = np.linspace(-lim, lim, 5)
        bar.set_ticks(ticks, labels=[f"{2 ** t:.2f}" for t in ticks])
        for i, w in enumerate(ws):
            for j, n in enumerate(ns):
                c = by[w, n]
                text = (f"{c.ratio:.2f}\n{SHORT.get(c.adapter_arch, c.adapter_arch)}/"
                        f"{SHORT.get(c.albert_arch, c.albert_arch)}" if ax is axes[0]
                        else f"{c.adapter_area:.1f}\n{c.albert_area:.1f}")
                ax.text(j, i, text, ha="center", va="center", fontsize=6.5)
    fig.text(0.01, 0.01, "left, in each cell: the ratio, and adapter-ALBERT's / ALBERT's winning chip (" +
             ", ".join(f"{v} = {k}" for k, v in SHORT.items()) + ");\nright: mm² of adapter-ALBERT's winning chip "
             "over ALBERT's", fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    out = save(fig, stem)
    plt.close(fig)
    return out


def map_rows(cells: list[Cell]) -> list[dict]:
    return [{"inferences_per_power_up": c.per_wakeup, "tasks": c.tasks, "adapter_albert_chip": c.adapter_arch,
             "adapter_albert_mj": c.adapter_mj, "adapter_albert_area_mm2": c.adapter_area,
             "adapter_albert_static_share": c.adapter_static, "albert_chip": c.albert_arch,
             "albert_mj": c.albert_mj, "albert_area_mm2": c.albert_area, "albert_static_share": c.albert_static,
             "ratio_best": c.ratio, "ratio_paper": c.paper} for c in cells]


def map_lines(cells: list[Cell], figure: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """The study.md section: the map's table, and where adapter-ALBERT wins, loses, and why."""
    ws = sorted({c.per_wakeup for c in cells})
    ns = sorted({c.tasks for c in cells})
    by = {(c.per_wakeup, c.tasks): c for c in cells}
    out = ["## Deployment map", "",
           "Each family on its lowest-energy chip of the study's, over inferences per power-up and the task count, "
           "every other input at its built-in value (`mapper/study/deployment.py`, re-priced from the compiled "
           "counts; `deployment_map.csv`). A cell: the adapter-ALBERT / ALBERT energy ratio, the two winning chips "
           "(adapter-ALBERT's / ALBERT's), and in brackets the paper's ratio (adapter-ALBERT on sized RRAM + SRAM, "
           "ALBERT on sized all-SRAM)." + (f" Chips whose rules break the study's premise that task weights change in "
                                          f"the field are left out: {', '.join(exclude)}." if exclude else ""), "",
           "| inferences per power-up | " + " | ".join(f"{n} task{'s' if n > 1 else ''}" for n in ns) + " |",
           "|---:|" + "---|" * len(ns)]
    for w in ws:
        cells_w = [by[w, n] for n in ns]
        out.append(f"| {_wakeups(w)} | " + " | ".join(
            f"{c.ratio:.2f} {SHORT.get(c.adapter_arch, c.adapter_arch)}/{SHORT.get(c.albert_arch, c.albert_arch)} "
            f"({c.paper:.2f})" for c in cells_w) + " |")
    out += ["", "Chips: " + ", ".join(f"{v} = {k}" for k, v in SHORT.items()) + ".", "",
            f"![the deployment map]({figure})", ""]
    wins = [c for c in cells if c.ratio < 1]
    paper_wins = [c for c in cells if c.paper < 1]
    out.append(f"- Each on its lowest-energy chip, adapter-ALBERT needs less energy in {len(wins)} of {len(cells)} "
               f"cells (ratio {min(c.ratio for c in cells):.2f} to {max(c.ratio for c in cells):.2f}); against the "
               f"paper's baseline in {len(paper_wins)} of {len(cells)} (ratio "
               f"{min(c.paper for c in cells):.2f} to {max(c.paper for c in cells):.2f}).")
    lo, hi = by[ws[0], ns[-1]], by[ws[-1], ns[-1]]
    for c, what in ((lo, "one inference per power-up"), (hi, f"{_wakeups(ws[-1])} inferences per power-up")):
        out.append(f"- {ns[-1]} tasks, {what}: adapter-ALBERT {c.adapter_mj:.3g} mJ on {c.adapter_arch} "
                   f"({c.adapter_static:.0%} static, {c.adapter_area:.2f} mm²), ALBERT {c.albert_mj:.3g} mJ on "
                   f"{c.albert_arch} ({c.albert_static:.0%} static, {c.albert_area:.2f} mm²): ratio {c.ratio:.2f}, "
                   f"paper's {c.paper:.2f}.")
    out.append(f"- Why: what moves the ratio is static energy (leakage, wake-ups, DRAM background). At {ns[-1]} tasks "
               f"ALBERT's winner is {lo.albert_static:.0%} static at one inference per power-up and "
               f"{hi.albert_static:.0%} at {_wakeups(ws[-1])}; adapter-ALBERT's {lo.adapter_static:.0%} and "
               f"{hi.adapter_static:.0%}. After a power-up volatile memory is empty and refilled for one task; on a "
               "chip that stays powered every copy it holds leaks through the idle gaps.")
    return out + [""]
