"""The study's early-exit dimension: energy and latency of every policy next to the chips without off-ramps,
the ratios EdgeBERT reports beside the ones aalbert predicts, what makes them differ, and a figure.

Every number here is computed from the study's rows and the template target; EdgeBERT's are quoted with
where they are published.
"""

from __future__ import annotations

from pathlib import Path

from aalbert.mapper.reports.summary import num
from aalbert.mapper.study.grid import FAMILY_LABEL, StudyConfig, architectures, label
from aalbert.mapper.study.plots import grouped_bars
from aalbert.targets.hardware.scaling import energy_fit
from aalbert.targets.hardware.spec import load_target

POLICY_KEYS = (("none", "every layer"), ("early_exit", "early exit"), ("predict_scale", "predict, then scale"))
# what EdgeBERT reports (Tambe et al.)
EDGEBERT_MICRO = "EdgeBERT (Tambe et al., MICRO 2021), abstract"
EDGEBERT_STP = ("its 12 nm successor chip (Tambe et al., ISSCC 2023; as the first author's page "
                "thierrytambe.com/projects/chips summarizes it)")
EDGEBERT_DATA = "EdgeBERT's SST-2 entropies at 0.28 nats (benchmarks/edgebert_exits.py)"


def _pairs(rows: list[dict], exit_rows: list[dict], cfg: StudyConfig, policy: str):
    """(chip, family, row without off-ramps, row with them) at the most tasks, in the study's order."""
    most = max(cfg.tasks)
    off = {(r["family"], r["architecture"]): r for r in rows if r["policy"] == policy and r["tasks"] == most}
    on = {(r["family"], r["architecture"]): r for r in exit_rows if r["policy"] == policy}
    for family in cfg.families:
        for arch in architectures(cfg):
            if (family, arch) in on:
                yield arch, family, off.get((family, arch)), on[family, arch]


def _ms(r: dict, key: str) -> str:
    return f"{num(r[f'{key}_latency_mean_ms'])} / {num(r[f'{key}_latency_p99_ms'])} ms"


def exit_headline(rows: list[dict], exit_rows: list[dict], cfg: StudyConfig, policy: str) -> list[str]:
    """The energy and latency tables of every chip, without off-ramps and with them under every policy."""
    most = max(cfg.tasks)
    r0 = exit_rows[0]
    out = [f"## Early exit and DVFS, {most} tasks, `{policy}` compression", "",
           f"The same configurations with an exit classifier after every layer but the last, and each sentence "
           f"leaving where the exit histogram says (mean exit layer {r0['early_exit_layers']:.2f} over the stream's "
           f"{cfg.requests} requests), under a {r0['latency_target_ms']:g} ms latency target. Energy per inference:",
           "", "| memory | model | no off-ramps | " + " | ".join(name for _, name in POLICY_KEYS)
           + " | every layer / predict, then scale | early exit / predict, then scale |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for arch, family, off, on in _pairs(rows, exit_rows, cfg, policy):
        e = [on[f"{k}_energy_mj"] for k, _ in POLICY_KEYS]
        out.append(f"| {label(arch)} | {FAMILY_LABEL[family]} | {_mj(off['energy_mj']) if off else '-'} | "
                   + " | ".join(_mj(x) for x in e) + f" | {e[0] / e[2]:.2f} | {e[1] / e[2]:.2f} |")
    out += ["", "Latency per request, mean / p99 (arrival to result), and deadline misses of the "
            f"{cfg.requests} requests:", "",
            "| memory | model | no off-ramps | " + " | ".join(name for _, name in POLICY_KEYS)
            + " | misses: every layer / early exit / predict, then scale | predict, then scale: sentences per point |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
    for arch, family, off, on in _pairs(rows, exit_rows, cfg, policy):
        plain = f"{num(off['stream_latency_mean_ms'])} / {num(off['stream_latency_p99_ms'])} ms" if off else "-"
        misses = " / ".join(str(on[f"{k}_deadline_misses"]) for k, _ in POLICY_KEYS)
        out.append(f"| {label(arch)} | {FAMILY_LABEL[family]} | {plain} | "
                   + " | ".join(_ms(on, k) for k, _ in POLICY_KEYS) + f" | {misses} | {on['predict_scale_points']} |")
    return out + [""]


def _mj(x: float) -> str:
    return f"{num(x)} mJ"


def exit_section(rows: list[dict], exit_rows: list[dict], cfg: StudyConfig, policy: str,
                 figure: str) -> list[str]:
    """study.md's early-exit section: the tables, EdgeBERT's ratios beside aalbert's, why they differ."""
    out = exit_headline(rows, exit_rows, cfg, policy)
    out += [f"![energy per inference by early-exit policy]({figure})", "", "### Against what EdgeBERT reports", "",
            "| | every layer / predict, then scale | early exit / predict, then scale | mean exit layer |",
            "|---|---:|---:|---:|",
            f"| {EDGEBERT_MICRO} | up to 7 | up to 2.5 | - |",
            f"| {EDGEBERT_STP} | 7.14 on average | - | 3.90 of 12 (SST-2) |",
            f"| {EDGEBERT_DATA} | - | - | 3.94 of 12 |"]
    for arch, family, _off, on in _pairs(rows, exit_rows, cfg, policy):
        out.append(f"| aalbert: {FAMILY_LABEL[family]} on {label(arch)} | "
                   f"{on['none_energy_mj'] / on['predict_scale_energy_mj']:.2f} | "
                   f"{on['early_exit_energy_mj'] / on['predict_scale_energy_mj']:.2f} | "
                   f"{on['early_exit_layers']:.2f} of {on['layers']} |")
    return out + [""] + reasons(rows, exit_rows, cfg, policy) + [""]


def reasons(rows: list[dict], exit_rows: list[dict], cfg: StudyConfig, policy: str) -> list[str]:
    """Why aalbert's ratios differ from EdgeBERT's, with the numbers of the template chip's adapter-ALBERT (or the
    first configuration)."""
    pairs = list(_pairs(rows, exit_rows, cfg, policy))
    arch, family, off, on = next((p for p in pairs if p[0] == cfg.template), pairs[0])
    where = f"{FAMILY_LABEL[family]} on {label(arch)}"
    layers, full = on["early_exit_layers"], on["layers"]
    none, ee, ps = on["none_energy_mj"], on["early_exit_energy_mj"], on["predict_scale_energy_mj"]
    per_layer = (none - ee) / (full - layers)
    fixed = none - per_layer * full
    t = load_target(cfg.template)
    lines = ["Why the ratios differ:", "",
             f"- Early exit. Sentences run {layers:.2f} of {full} layers, {full / layers:.2f}x fewer, and on {where} "
             f"the energy falls {none / ee:.2f}x: a line through the two policies' energy against layers run puts "
             f"{fixed:.2f} of the {none:.2f} mJ of an inference that runs every layer in what any inference costs "
             "whatever it runs (refilling the task's weights after each power-up, waking the banks, the DRAM "
             "background, the embeddings and the head), the rest at "
             f"{per_layer:.3f} mJ per layer. EdgeBERT's 7x is early exit and DVFS together."]
    if t.dvfs is not None and len(t.dvfs.points) > 1:
        low, top = t.dvfs.points[-1], t.dvfs.points[0]
        logic = energy_fit(t.technology.scaling_node, low.voltage_v) / energy_fit(t.technology.scaling_node,
                                                                                  top.voltage_v)
        slower = top.frequency_mhz / low.frequency_mhz
        lines.append(
            f"- DVFS. The lowest point of {cfg.template}, {low.label()}, costs the rail's logic {logic:.2f}x and its "
            f"SRAM accesses {t.dvfs.access_factor(low.voltage_v):.2f}x the energy per operation, and its leakage "
            f"{t.dvfs.leakage_factor(low.voltage_v):.2f}x the power for {slower:.2f}x the time; the rail feeds "
            f"{', '.join(t.dvfs.rail)}, not the RRAM, the DRAM or the power-up refill, and the first layer runs at "
            f"the top point to predict. So predict, then scale saves {ee / ps:.2f}x over early exit at the top point "
            f"on {where} (sentences per point: {on['predict_scale_points']}: those that leave at the first off-ramp "
            "and those whose predicted layers do not fit the target at a lower point stay at the top). EdgeBERT's "
            f"2.5x takes a wider supply range than the {low.voltage_v:g} V assumed here (its chip's operating points "
            "were not found), and the more of the energy the scaled supply feeds, the more DVFS saves.")
    if off is not None:
        lines.append(
            f"- The off-ramps themselves. Running every layer, the model with off-ramps takes "
            f"{on['latency_ms'] / off['latency_ms']:.3f}x the latency of the one without (each exit test waits for "
            "its layer to drain, and each off-ramp reads the pooler) and "
            f"{none / off['energy_mj']:.2f}x the energy: their weights also move the activation arena, and the "
            f"inference wakes {on['banks_accessed']} banks instead of {off['banks_accessed']}. Against the model "
            f"without off-ramps, predict, then scale saves {off['energy_mj'] / ps:.2f}x.")
    lines.append("- Not modelled: accuracy. The histogram is EdgeBERT's ALBERT's on SST-2 at its threshold; the "
                 "example's off-ramps have random weights, and a forced exit at a predicted layer (none with a "
                 "histogram, whose prediction is exact) may answer wrongly.")
    return lines


def exit_figure(rows: list[dict], exit_rows: list[dict], cfg: StudyConfig, out: Path) -> list[Path]:
    policy = cfg.policies[0]
    groups = {}
    for arch, family, off, on in _pairs(rows, exit_rows, cfg, policy):
        bars = {"no off-ramps": off["energy_mj"] if off else 0.0}
        bars.update({name: on[f"{k}_energy_mj"] for k, name in POLICY_KEYS})
        groups[f"{FAMILY_LABEL[family]}\n{label(arch).replace('sized: ', 'sized ')}"] = bars
    return grouped_bars(groups, out / "study_early_exit", f"energy per inference by early-exit policy, "
                        f"{max(cfg.tasks)} tasks, {policy}", "energy per inference (mJ)")


def assumption_lines(cfg: StudyConfig) -> list[str]:
    """The Assumptions bullet of the early-exit configurations: the off-ramps, the exits, the operating points."""
    from aalbert.mapper.study.grid import OFF_RAMPS, stated_exits

    stated = stated_exits(cfg)
    e = next(iter(stated.exits.values()))
    t = load_target(cfg.template)
    name = cfg.exits or "examples/workloads/edgebert_sst2.toml"
    line = (f"- Early exit and DVFS (`targets/runtime/exit_policies.py`): {OFF_RAMPS} off-ramps after every layer "
            "but the last "
            f"(`--off-ramps`); where sentences leave and the latency target as `{name}` states "
            f"({e.source or 'no source given'}).")
    if t.dvfs is not None:
        line += (f" Operating points of `{cfg.template}`: {', '.join(p.label() for p in t.dvfs.points)} "
                 f"({t.dvfs.frequency_source}); the supply feeds {', '.join(t.dvfs.rail)}; "
                 f"{t.dvfs.source}")
    return [line]
