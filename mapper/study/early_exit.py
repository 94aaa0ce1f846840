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

POLICY_KEYS = (("none", "every layer"), ("early_exit", "early exit"), ("predict_scale", "predict, then scale"),
               ("predict_run_on", "predict, scale, run on"))
SWEEP_FIGURE = "study_exit_targets"
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
    n = r0.get("exit_requests", cfg.exit_requests)
    out = [f"## Early exit and DVFS, {most} tasks, `{policy}` compression", "",
           f"The same configurations with an exit classifier after every layer but the last, and each sentence "
           f"leaving where the exit histogram says (mean exit layer {r0['early_exit_layers']:.2f} over the stream's "
           f"{n} requests), predicted where the predictor's confusion says (of {r0.get('exit_predictions', 0)} "
           f"sentences predicted, {r0.get('exit_predicted_early', 0)} too early and "
           f"{r0.get('exit_predicted_late', 0)} too late), under a {r0['latency_target_ms']:g} ms latency target. "
           "Predict, then scale stops a sentence predicted too early at the predicted layer (a forced exit: the "
           "earlier off-ramp answers); predict, scale, run on lets it run on to its own off-ramp at the point "
           "chosen for fewer layers (a run-on, which may miss the deadline). Energy per inference:",
           "", "| memory | model | no off-ramps | " + " | ".join(name for _, name in POLICY_KEYS)
           + " | every layer / predict, then scale | early exit / predict, then scale |",
           "|---|---|---:|" + "---:|" * len(POLICY_KEYS) + "---:|---:|"]
    for arch, family, off, on in _pairs(rows, exit_rows, cfg, policy):
        e = [on[f"{k}_energy_mj"] for k, _ in POLICY_KEYS]
        out.append(f"| {label(arch)} | {FAMILY_LABEL[family]} | {_mj(off['energy_mj']) if off else '-'} | "
                   + " | ".join(_mj(x) for x in e) + f" | {e[0] / e[2]:.2f} | {e[1] / e[2]:.2f} |")
    out += ["", "Latency per request, mean / p99 (arrival to result), deadline misses of the "
            f"{n} requests, and the predictions' cost (the no-off-ramps column is the study's "
            f"{cfg.requests}-request stream):", "",
            "| memory | model | no off-ramps | " + " | ".join(name for _, name in POLICY_KEYS)
            + " | misses: " + " / ".join(name for _, name in POLICY_KEYS)
            + " | forced exits / run-ons | predict, then scale: sentences per point |",
            "|---|---|---:|" + "---:|" * len(POLICY_KEYS) + "---|---|---|"]
    for arch, family, off, on in _pairs(rows, exit_rows, cfg, policy):
        plain = f"{num(off['stream_latency_mean_ms'])} / {num(off['stream_latency_p99_ms'])} ms" if off else "-"
        misses = " / ".join(str(on[f"{k}_deadline_misses"]) for k, _ in POLICY_KEYS)
        out.append(f"| {label(arch)} | {FAMILY_LABEL[family]} | {plain} | "
                   + " | ".join(_ms(on, k) for k, _ in POLICY_KEYS) + f" | {misses} | "
                   f"{on['predict_scale_forced_exits']} / {on['predict_run_on_run_ons']} | "
                   f"{on['predict_scale_points']} |")
    return out + [""]


def sweep_targets(row: dict) -> list[float]:
    """The latency targets a row's policies were rerun at (ms), lowest first."""
    text = str(row.get("exit_sweep_ms", "") or "")
    return sorted(float(x) for x in text.split(";") if x)


def _sweep_rows(exit_rows: list[dict], cfg: StudyConfig, policy: str) -> list[tuple[str, str, dict]]:
    """(chip, family, row) of the template chip (or the first chip) with a target sweep, per family."""
    on = [r for r in exit_rows if r["policy"] == policy and sweep_targets(r)]
    chips = [a for a in architectures(cfg) if any(r["architecture"] == a for r in on)]
    if not chips:
        return []
    chip = cfg.template if cfg.template in chips else chips[0]
    return [(chip, r["family"], r) for family in cfg.families for r in on
            if r["family"] == family and r["architecture"] == chip]


def sweep_section(exit_rows: list[dict], cfg: StudyConfig, policy: str, figure: str) -> list[str]:
    """Deadline misses, forced exits, run-ons and energy of every policy against the latency target."""
    picked = _sweep_rows(exit_rows, cfg, policy)
    if not picked:
        return []
    chip, _, r0 = picked[0]
    n = r0.get("exit_requests", cfg.exit_requests)
    full = max(r["none_latency_mean_ms"] for _, _, r in picked)
    out = ["### The latency target swept", "",
           f"The same {n} requests and sentences on {label(chip)}, the target moved from below a full inference "
           f"(every layer takes {num(full)} ms on average here, arrival to result) to above it. Every layer and early "
           "exit run each sentence the same way whatever the target; the predicting policies choose their points "
           "for it. Deadline misses (of "
           f"{n}), forced exits and run-ons, and energy per inference:", "",
           "| model | target | misses: " + " / ".join(name for _, name in POLICY_KEYS)
           + " | forced exits / run-ons | energy: " + " / ".join(name for _, name in POLICY_KEYS) + " |",
           "|---|---:|---|---|---|"]
    for _, family, r in picked:
        for ms in sweep_targets(r):
            key = f"target_{ms:g}ms"
            misses = " / ".join(str(r[f"{key}_{k}_deadline_misses"]) for k, _ in POLICY_KEYS)
            energy = " / ".join(num(r[f"{key}_{k}_energy_mj"]) for k, _ in POLICY_KEYS)
            out.append(f"| {FAMILY_LABEL[family]} | {ms:g} ms | {misses} | {r[f'{key}_predict_scale_forced_exits']} / "
                       f"{r[f'{key}_predict_run_on_run_ons']} | {energy} mJ |")
    return out + ["", f"![deadline misses and energy against the latency target]({figure})", ""]


def _mj(x: float) -> str:
    return f"{num(x)} mJ"


def exit_section(rows: list[dict], exit_rows: list[dict], cfg: StudyConfig, policy: str,
                 figure: str) -> list[str]:
    """study.md's early-exit section: the tables, EdgeBERT's ratios beside aalbert's, why they differ."""
    out = exit_headline(rows, exit_rows, cfg, policy)
    out += [f"![energy per inference by early-exit policy]({figure})", ""]
    out += sweep_section(exit_rows, cfg, policy, f"{SWEEP_FIGURE}.png")
    out += ["### Against what EdgeBERT reports", "",
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
            "and those whose predicted layers do not fit the target at a lower point stay at the top); of that, "
            f"{ee / on['predict_run_on_energy_mj']:.2f}x is the lower points (predict, scale, run on runs the layers "
            f"early exit runs), the rest the layers its {on['predict_scale_forced_exits']} forced exits skip "
            f"({on['predict_scale_layers']:.2f} layers run on average, not {layers:.2f}). EdgeBERT's "
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
    lines.append(f"- Not modelled: accuracy. The histogram is EdgeBERT's ALBERT's on SST-2 at its threshold, and "
                 "every task shares it (EdgeBERT publishes no other task's exits); the example's off-ramps have "
                 f"random weights. Forced exits are counted ({on['predict_scale_forced_exits']} of the stream's "
                 f"{on.get('exit_requests', cfg.exit_requests)} sentences on {where}), but whether their earlier "
                 "off-ramp answers wrongly is not.")
    return lines


def exit_figure(rows: list[dict], exit_rows: list[dict], cfg: StudyConfig, out: Path) -> list[Path]:
    policy = cfg.policies[0]
    groups = {}
    for arch, family, off, on in _pairs(rows, exit_rows, cfg, policy):
        bars = {"no off-ramps": off["energy_mj"] if off else 0.0}
        bars.update({name: on[f"{k}_energy_mj"] for k, name in POLICY_KEYS})
        groups[f"{FAMILY_LABEL[family]}\n{label(arch).replace('sized: ', 'sized ')}"] = bars
    paths = grouped_bars(groups, out / "study_early_exit", f"energy per inference by early-exit policy, "
                         f"{max(cfg.tasks)} tasks, {policy}", "energy per inference (mJ)")
    return paths + sweep_figure(exit_rows, cfg, out / SWEEP_FIGURE)


def sweep_figure(exit_rows: list[dict], cfg: StudyConfig, stem: Path) -> list[Path]:
    """Deadline misses (left) and energy per inference (right) of every policy against the latency target, for
    each family on the sweep's chip."""
    from aalbert.mapper.study.plots import _pyplot, save

    picked = _sweep_rows(exit_rows, cfg, cfg.policies[0])
    if not picked:
        return []
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    styles = {"adapter-albert": "-", "albert": "--"}
    for _, family, r in picked:
        targets = sweep_targets(r)
        for i, (k, name) in enumerate(POLICY_KEYS):
            # each policy its own marker, larger first, so that lines on top of each other stay visible
            style = dict(linestyle=styles.get(family, "-"), color=f"C{i}", marker="osv^"[i], markersize=7 - 1.2 * i,
                         fillstyle="none", label=f"{FAMILY_LABEL[family]}: {name}")
            left.plot(targets, [r[f"target_{ms:g}ms_{k}_deadline_misses"] for ms in targets], **style)
            right.plot(targets, [r[f"target_{ms:g}ms_{k}_energy_mj"] for ms in targets], **style)
    chip = label(picked[0][0])
    left.set(xlabel="latency target (ms)", ylabel=f"deadline misses (of {picked[0][2].get('exit_requests', '')})",
             title=f"deadline misses, {chip}")
    right.set(xlabel="latency target (ms)", ylabel="energy per inference (mJ)", title=f"energy, {chip}")
    right.set_ylim(bottom=0)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(10)
    left.legend(fontsize=7)
    fig.tight_layout()
    paths = save(fig, stem)
    plt.close(fig)
    return paths


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
