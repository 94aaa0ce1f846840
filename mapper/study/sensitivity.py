"""The study's sensitivity: every uncertain input over its sourced range, and which conclusions survive.

The headline is the joint analysis (`mapper.study.joint`): every input sampled together (Sobol indices from
a Saltelli sample, re-priced from the compiled counts), each conclusion with the fraction of the joint
distribution in which it holds; `joint_lines` writes its study.md section, `joint_rows` and `holds_rows` its
CSVs. The deployment map (`mapper.study.deployment`) follows it.

Below it, the structural variations, recompiled one at a time (what re-pricing cannot change: the gating
policy, the write-once rule, the RRAM point's latency, a clock the mapping is searched for). Each variation
changes one input from the built-in targets' values (`VARIATIONS`: the clock, the SRAM
corner, the RRAM operating point, the DRAM background, bank power gating, the write-once rule for task
weights, the technology node) and reruns the study's most-tasks configurations on every chip, fixed and
sized (`mapper.study.grid.configurations_of`). For each it records the adapter-ALBERT / ALBERT energy ratio per baseline
and the lowest-energy chip of each family; `tornado` draws the ratios' ranges, `conclusions` says what
holds across every variation and where each conclusion flips, with numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from aalbert.mapper.study.grid import (
    FAMILY_LABEL,
    StudyConfig,
    configurations_of,
    label,
    ratios,
    run_configurations,
    short,
)
from aalbert.mapper.study.plots import _pyplot, save
from aalbert.mapper.study.workers import Workers


@dataclass(frozen=True)
class Variation:
    input: str                                   # what is uncertain
    value: str                                   # the value tried
    overrides: tuple[tuple[str, object], ...] = ()
    fixed_tasks: bool | None = None
    source: str = ""                             # why this value is in the range


BASE = Variation("(built-in values)", "as the targets say")
ZERO_DRAM = tuple((f"memory.dram.{k}", 0.0) for k in ("background_active_mw", "background_power_down_mw",
                                                      "background_self_refresh_mw", "refresh_mw"))
VARIATIONS = (
    Variation("clock", "1000 MHz", (("clock.frequency_mhz", 1000.0),),
              source="twice the HLS constraint: no silicon operating point of EdgeBERT's chip was found"),
    Variation("SRAM corner", "LSTP", (("memory.sram.model", "sram_lstp"),),
              source="CACTI 7's 22 nm low-standby-power devices"),
    Variation("SRAM corner", "HP", (("memory.sram.model", "sram_hp"),),
              source="CACTI 7's 22 nm high-performance devices"),
    Variation("RRAM point", "read EDP", (("memory.rram.model", "rram_read_edp"),), source="NVMExplorer"),
    Variation("RRAM point", "read latency", (("memory.rram.model", "rram_read_latency"),), source="NVMExplorer"),
    Variation("DRAM background", "none", ZERO_DRAM, source="the model before DRAM states"),
    Variation("DRAM background", "no self-refresh while on", (("memory.dram.self_refresh_after_ns", math.inf),),
              source="a controller that only powers down while the accelerator runs"),
    Variation("power gating", "empty banks only", (("memory.sram.power_gating", "empty"),
                                                  ("memory.rram.power_gating", "empty")),
              source="no gating of banks that hold data"),
    Variation("power gating", "none", (("memory.sram.power_gating", "none"), ("memory.rram.power_gating", "none")),
              source="every bank on: the model before power states"),
    Variation("write-once rule", "task weights fixed", fixed_tasks=True,
              source="task weights never change after deployment, so they may live in RRAM"),
    Variation("technology node", "10 nm fit", (("technology.scaling_node", 10),),
              source="Stillmaker & Baas' 10 nm fit, bracketing 12 nm from below (16 nm from above)"),
)


def run_sensitivity(cfg: StudyConfig, base_rows: list[dict], progress=None,
                    workers: Workers | None = None) -> list[dict]:
    """Rows of every variation at the most tasks (the base's taken from `base_rows`), tagged with it; every
    variation's configurations go to `workers` at once."""
    most = max(cfg.tasks)
    small = dataclasses.replace(cfg, tasks=[most], accounting=False)
    rows = [{"input": BASE.input, "value": BASE.value, **r} for r in base_rows if r["tasks"] == most]
    tagged = [(v, c) for v in VARIATIONS for c in configurations_of(small, dict(v.overrides), v.fixed_tasks)]
    results = run_configurations([c for _, c in tagged], progress, workers)
    return rows + [{"input": v.input, "value": v.value, **r} for (v, _), r in zip(tagged, results)]


def summary(rows: list[dict], policy: str) -> list[dict]:
    """Per variation: the energy ratio per baseline and each family's lowest-energy chip."""
    out = []
    for v in (BASE,) + VARIATIONS:
        sel = [r for r in rows if (r["input"], r["value"]) == (v.input, v.value) and r["policy"] == policy]
        if not sel:
            continue
        most = max(r["tasks"] for r in sel)
        entry: dict[str, object] = {"input": v.input, "value": v.value, "source": v.source}
        for name, a, b in ratios(sel, policy, most):
            entry[name] = a["energy_mj"] / b["energy_mj"]
        for family in ("adapter-albert", "albert"):
            best = min((r for r in sel if r["family"] == family), key=lambda r: r["energy_mj"])
            entry[f"best:{family}"] = (best["architecture"], best["energy_mj"])
        out.append(entry)
    return out


BASELINES = ("same chip: edge_accel", "the paper's: adapter-ALBERT on sized RRAM + SRAM, ALBERT on sized all-SRAM",
             "each on its lowest-energy chip")
TITLES = dict(zip(BASELINES, ("both on edge_accel", "the paper's (adapter-ALBERT on sized RRAM+SRAM, ALBERT on "
                              "sized all-SRAM)", "each on its lowest-energy chip")))


def tornado(entries: list[dict], stem: Path) -> list[Path]:
    """One panel per baseline: for every input, the range of the adapter-ALBERT / ALBERT energy ratio over its
    values and the built-in one; each value tried is marked with its ratio and adapter-ALBERT's best chip."""
    plt = _pyplot()
    base = entries[0]
    inputs = list(dict.fromkeys(e["input"] for e in entries[1:]))
    fig, axes = plt.subplots(len(BASELINES), 1, figsize=(10, 1.2 + 0.55 * len(inputs) * len(BASELINES)))
    for ax, name in zip(axes, BASELINES):
        spans = [(inp, [e for e in entries if e["input"] == inp]) for inp in inputs]
        spans.sort(key=lambda s: max(abs(e[name] - base[name]) for e in s[1]))
        for y, (_inp, tried) in enumerate(spans):
            values = [base[name]] + [e[name] for e in tried]
            ax.barh(y, max(values) - min(values), left=min(values), color="#4477aa", height=0.45)
            for i, e in enumerate(sorted(tried, key=lambda e: e[name])):
                right = e[name] >= base[name]
                ax.annotate(f"{e['value']}: {e[name]:.2f} [{short(e['best:adapter-albert'][0])}]", (e[name], y),
                            xytext=(4 if right else -4, 7 - 9 * (i % 2)), textcoords="offset points", fontsize=6.5,
                            ha="left" if right else "right", va="center")
        ax.axvline(base[name], color="black", linewidth=1)
        ax.axvline(1.0, color="#cc3311", linewidth=1, linestyle=":")
        ax.set_yticks(range(len(spans)), [s[0] for s in spans], fontsize=8)
        ax.set_title(f"adapter-ALBERT / ALBERT energy, baseline {TITLES[name]}: {base[name]:.2f} with the "
                     f"built-in values", fontsize=8.5)
        lo = min([1.0] + [e[name] for e in entries])
        hi = max([1.0] + [e[name] for e in entries])
        ax.set_xlim(max(0.0, lo - 0.6 * (hi - lo)), hi + 0.5 * (hi - lo))
        ax.grid(alpha=0.3, axis="x")
    axes[-1].set_xlabel("energy ratio, 8 tasks (black line: built-in values; dotted: equal energy); in brackets: "
                        "adapter-ALBERT's lowest-energy chip")
    fig.tight_layout()
    out = save(fig, stem)
    plt.close(fig)
    return out


def _name(e: dict) -> str:
    return "the built-in values" if e["input"] == BASE.input else f"{e['input']} {e['value']}"


def conclusions(entries: list[dict], margin: float = 0.0) -> list[str]:
    """What holds across every variation and where each conclusion flips, with numbers. A ratio within the noise
    band (`margin`, relative energy) of 1 neither holds nor fails: a conclusion flips only between variations on
    either side of the band."""
    lines = []
    for name in BASELINES:
        vals = [(e[name], e) for e in entries if name in e]
        if not vals:
            continue
        lo, hi = min(v for v, _ in vals), max(v for v, _ in vals)
        claim = f"adapter-ALBERT needs less energy than ALBERT, baseline {name}"
        fails = [(v, e) for v, e in vals if v > 1.0 + margin or (margin == 0 and v >= 1.0)]
        holds = [(v, e) for v, e in vals if v < 1.0 / (1.0 + margin)]
        near = [(v, e) for v, e in vals if (v, e) not in fails and (v, e) not in holds]

        def where(group):
            return "; ".join(f"{_name(e)}: {v:.3f}" for v, e in group)
        band = f"; within the noise band (±{margin:.2%}) under {where(near)}" if near else ""
        if not fails and not near:
            lines.append(f"- Holds: {claim}, in every variation (ratio {lo:.3f} to {hi:.3f}).")
        elif not fails and not holds:
            lines.append(f"- Within the noise band (±{margin:.2%}) in every variation: {claim} (ratio {lo:.3f} to "
                         f"{hi:.3f}).")
        elif not fails:
            lines.append(f"- Holds outside the noise band: {claim}. Holds under {where(holds)}{band}.")
        elif not holds:
            lines.append(f"- Never holds: {claim} (ratio {lo:.3f} to {hi:.3f}){band}.")
        else:
            lines.append(f"- Flips: {claim}. Holds under {where(holds)}; fails under {where(fails)}{band}.")
    for family in ("adapter-albert", "albert"):
        key = f"best:{family}"
        base = entries[0][key][0]
        other = [e for e in entries[1:] if e[key][0] != base]
        claim = f"{FAMILY_LABEL[family]}'s lowest-energy chip is {label(base)} ({entries[0][key][1]:.2f} mJ)"
        if not other:
            lines.append(f"- Holds: {claim}, in every variation.")
        else:
            flips = "; ".join(f"{_name(e)}: {label(e[key][0])} ({e[key][1]:.2f} mJ)" for e in other)
            lines.append(f"- Flips: {claim}, except under {flips}.")
    return lines


def sensitivity_lines(entries: list[dict], figure: str, margin: float = 0.0) -> list[str]:
    """The study.md section: the table of ratios and winners per variation, the tornado, what holds and flips."""
    out = ["## Sensitivity: what holds, what flips", "",
           "`aalbert-study --sensitivity` reruns the 8-task configurations with one uncertain input changed at a "
           "time, over the range its sources allow (`mapper/study/sensitivity.py`; every row in "
           "`sensitivity.csv`).", ""]
    out += conclusions(entries, margin) + ["", f"![the energy ratio's range per input]({figure})", ""]
    out += ["| input | value | why | " + " | ".join(f"ratio, {b}" for b in BASELINES)
            + " | adapter-ALBERT's best chip | ALBERT's best chip |", "|---|---|---|" + "---:|" * len(BASELINES)
            + "---|---|"]
    for e in entries:
        cells = [f"{e[b]:.2f}" if b in e else "-" for b in BASELINES]
        best = [f"{label(e[k][0])} ({e[k][1]:.2f} mJ)" for k in ("best:adapter-albert", "best:albert")]
        out.append(f"| {e['input']} | {e['value']} | {e['source']} | " + " | ".join(cells + best) + " |")
    return out + [""]


# -- the joint analysis ---------------------------------------------------------------------------------------
def _pct(v: float) -> str:
    return f"{v:.1%}" if 0.0005 < v < 0.9995 else f"{v:.0%}"


def joint_lines(params, found, concl, builtin: dict, sizes: tuple[int, int], margin: float = 0.0) -> list[str]:
    """The study.md section of the joint analysis: what holds in what fraction, the inputs and their ranges, the
    Sobol indices with their intervals and the strongest interactions. `builtin`: each conclusion's quantity at
    the built-in values; `sizes`: the Saltelli base and the number of evaluations; `margin`: the noise band."""
    base, samples = sizes
    out = ["## Sensitivity: every input at once", "",
           f"`aalbert-study --sensitivity` samples every uncertain input together: a Saltelli sample of base {base} "
           f"over {len(params)} inputs ({samples:,} evaluations, SALib), each evaluated by re-pricing the study's "
           "compiled counts and re-running its request stream (`mapper/study/joint.py`); no conclusion below rests "
           "on one input moved alone. A fraction is the share of the joint distribution (inputs uniform over their "
           "ranges, in the logarithm where marked) in which the conclusion holds; the range is its quantity's 5th "
           "to 95th percentile. Indices and fractions are in `sensitivity_joint.csv` and "
           "`sensitivity_holds.csv`. Decisions a price moves are taken again in every sample where the counts allow "
           "it: when the DRAM enters self-refresh, and each family's lowest-energy chip; the placement, the mapping "
           "and the banks' power instructions are those compiled at the built-in prices, not solved again "
           "(`--resolve` measures what solving them again changes). An energy "
           f"ratio within the noise band of the layout (±{margin:.2%}, above) of 1, or a DVFS saving within it of "
           "0, neither holds nor fails.", ""]
    return out + joint_body(params, found, concl, builtin)


def joint_body(params, found, concl, builtin: dict) -> list[str]:
    """What holds in what fraction, the inputs and their ranges, the Sobol indices with their intervals and the
    strongest interactions (`joint_lines` without its introduction)."""
    out = []
    for c in concl:
        q = ""
        if c.output is not None:
            at = f"; {builtin[c.output]:.3f} at the built-in values" if c.output in builtin else ""
            q = f" ({c.output.split(', ')[0]} {c.low:.3f} to {c.high:.3f}, median {c.median:.3f}{at})"
        near = f", within the noise band in {_pct(c.within)}" if c.within >= 0.0005 else ""  # not "in 0%"
        out.append(f"- {c.claim}: holds in {_pct(c.holds)} of the joint distribution{near}{q}.")
    out += ["", "| input | range | sampled | source |", "|---|---|---|---|"]
    for p in params:
        out.append(f"| {p.label} | {p.low:.3g} to {p.high:.3g} (built in: {p.builtin:.3g}) | "
                   f"{'log-uniform' if p.log else 'uniform'} | {p.source} |")
    out += ["", "Sobol indices of the conclusions' quantities (energy and area ratios in their logarithm): every input "
                "whose total-order index ST reaches 0.02, with its first-order index S1, each ± its 95 % confidence "
                "interval, and the two strongest two-way interactions (S2); every index is in `sensitivity_joint.csv`.",
            "", "| quantity | inputs (S1 / ST) | strongest interactions (S2) |", "|---|---|---|"]
    for ix in found:
        order = sorted(range(len(ix.names)), key=lambda i: -ix.st[i])
        cells = "; ".join(f"{ix.names[i]} {ix.s1[i]:.2f}±{ix.s1_conf[i]:.2f} / {ix.st[i]:.2f}±{ix.st_conf[i]:.2f}"
                          for i in order if ix.st[i] >= 0.02)
        pairs = "; ".join(f"{a} x {b} {v:.2f}±{c:.2f}" for a, b, v, c in ix.s2[:2])
        out.append(f"| {ix.output} | {cells} | {pairs} |")
    return out + [""]


JOINT_COLUMNS = ("quantity", "input", "S1", "S1_conf", "ST", "ST_conf", "S2", "S2_conf")


def joint_rows(found) -> list[dict]:
    rows = []
    for ix in found:
        for i, n in enumerate(ix.names):
            rows.append({"quantity": ix.output, "input": n, "S1": float(ix.s1[i]), "S1_conf": float(ix.s1_conf[i]),
                         "ST": float(ix.st[i]), "ST_conf": float(ix.st_conf[i]), "S2": "", "S2_conf": ""})
        for a, b, v, c in ix.s2:
            rows.append({"quantity": ix.output, "input": f"{a} x {b}", "S1": "", "S1_conf": "", "ST": "",
                         "ST_conf": "", "S2": v, "S2_conf": c})
    return rows


def holds_rows(concl, builtin: dict) -> list[dict]:
    return [{"conclusion": c.claim, "holds": c.holds, "p5": c.low, "median": c.median, "p95": c.high,
             "builtin": builtin.get(c.output, "") if c.output else ""} for c in concl]
