"""Re-solving the joint sensitivity's decisions at sampled prices: what re-pricing the compiled counts misses.

`mapper.study.joint` evaluates every sample of its Saltelli design from the counts of programs compiled at the
built-in prices: placement, mapping and the banks' power instructions are the compiled ones, which the compiler
might have taken otherwise at the sample's prices. Here, for a few samples of that design, every configuration
the sample uses (those at its task count) is compiled again on its chip retargeted to the sample's prices
(`joint.sampled_prices` -> `prices.retarget`), with the sample's workload given to the allocator, the compiler's
one reader of the workload (inferences per power-up, request rate, switch rate), so placement, mapping and power
instructions are solved again. The new counts are evaluated exactly as joint.py evaluates the compiled ones (the
same sampled prices and stream, the clock's stretch, the DVFS point and LDO), so what differs is the decisions
alone. Per sample and configuration: the energy re-solved and re-priced, and whether placement or mapping and the
power instructions changed; per sample: each conclusion's verdict both ways (`verdicts`).

Which samples: the first N rows of the design's base matrix A (every (2D + 2)-th row of SALib's Saltelli
layout) whose task count the study compiled. They are the first points of a scrambled Sobol' sequence, so even a
few of them spread over every input's range (for N a power of two, each input's range cut into N equal parts
holds one), and each is a sample the joint analysis itself evaluated, so its re-priced figures are the ones the
fractions count.

Not solved again: the chip (a sized chip keeps the size its built-in compile gave it; the RRAM density changes
its area alone) and the clock (the recompile keeps the compiled clock; the sampled one stretches its time as in
joint.py, memory latencies the same number of cycles).

If the compiler's decisions were optimal for the energy the simulator charges, re-pricing would be an upper bound
of re-solving: the compiled program is one the recompile could have chosen. The allocator optimises its own
model of the energy and the power plan is planned bank by bank, so a re-solved energy may come out higher; the
summary says where.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import numpy as np

from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.study import joint
from aalbert.mapper.study.chips import workload_for
from aalbert.mapper.study.configuration import Configuration, workload
from aalbert.mapper.study.evaluate import decisions, place_or_spill, prepared
from aalbert.mapper.study.grid import FAMILY_LABEL, RESOLVE_N, label
from aalbert.mapper.study.workers import Workers
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.counts import TaskCounts, backend_counts
from aalbert.targets.sim.prices import retarget

SAME = 1e-9        # a relative difference this small is no difference
GAP_DIGITS = 6     # an allocation gap below 5e-7 is written as 0


@dataclass(frozen=True)
class Job:
    """One configuration to compile again: its setup, its chip at the sample's prices, the sample's workload."""

    config: Configuration
    target: Target
    per_wakeup: float
    rate: float
    switch: float


def resolved_counts(job: Job) -> tuple[dict[str, TaskCounts], tuple[str, str], float]:
    """The configuration compiled again on `job.target` under the job's workload: every task's counts, the
    digests of its decisions (`evaluate.decisions`) and the allocator's optimality gap (0: its placement is
    proven optimal for its own energy model), rounded to `GAP_DIGITS` decimals: the solver's last digits of a
    gap near 0 differ from run to run, which the outputs must not. No request stream runs: the counts are what
    is priced."""
    c = job.config
    module = prepared(c.spec, all_tasks=c.most)
    wl = workload(module, c.fixed_tasks)
    wl = dataclasses.replace(wl, inferences_per_wakeup=job.per_wakeup, inferences_per_second=job.rate,
                             switch_rate=job.switch if len(wl.mix) > 1 else 0.0)
    if c.sized:
        wl = workload_for(c.chip, wl)
    placed, allocation, _ = place_or_spill(module, job.target, wl)
    backend = run_backend(placed, job.target, wl, Stream(0))
    return backend_counts(backend), decisions(backend), round(float(allocation.solution.gap), GAP_DIGITS)


def job_for(c: joint.Compiled, setup: Configuration, x: dict[str, np.ndarray]) -> Job:
    """The job that compiles `c` again at the one sample `x` (name -> an array of one value)."""
    prices = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in joint.sampled_prices(c, x).items()}
    return Job(setup, retarget(c.target, prices), float(10.0 ** x["per_wakeup"][0]), float(x["rate"][0]),
               float(x["switch"][0]))


def design_rows(o: joint.Outcome, configs: list[joint.Compiled], n: int) -> list[int]:
    """The rows of the design re-solved: the first `n` of its base matrix A whose task count the study has."""
    stride = 2 * len(o.params) + 2
    have = {c.tasks for c in configs}
    return [i for i in range(0, len(o.x["tasks"]), stride) if int(o.x["tasks"][i]) in have][:n]


@dataclass
class Sample:
    """One re-solved sample: its row in the design, its inputs, both outcomes, and per configuration whether the
    recompile changed (placement or mapping, power instructions) and the recompile's allocation gap."""

    row: int
    x: dict[str, np.ndarray]
    repriced: joint.Outcome
    resolved: joint.Outcome
    changed: dict[tuple[str, str], tuple[bool, bool]]
    gap: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)


def one(x: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: v[i:i + 1] for k, v in x.items()}


def run(configs: list[joint.Compiled], setups: list[Configuration], o: joint.Outcome, n: int = RESOLVE_N,
        workers: Workers | None = None, progress=None) -> list[Sample]:
    """Re-solve `n` samples of the joint outcome `o` (`design_rows`): every configuration of `configs` (each
    built by the setup beside it in `setups`) at the sample's task count, compiled again on `workers`."""
    pending: list[tuple[int, int]] = []     # (design row, index into configs)
    jobs = []
    for i in design_rows(o, configs, n):
        x = one(o.x, i)
        for k, (c, setup) in enumerate(zip(configs, setups)):
            if c.tasks == x["tasks"][0]:
                pending.append((i, k))
                jobs.append(job_for(c, setup, x))
    with contextlib.ExitStack() as stack:
        if workers is None:
            workers = stack.enter_context(Workers(1))
        done = workers.map(resolved_counts, jobs, progress, group=lambda j: j.config.family)
    out: list[Sample] = []
    for i in dict.fromkeys(i for i, _ in pending):
        x = one(o.x, i)
        mine = [(configs[k], r) for (row, k), r in zip(pending, done) if row == i]
        before = [c for c, _ in mine]
        after = [dataclasses.replace(c, counts=counts) for c, (counts, _, _) in mine]
        changed = {(c.family, c.arch): (c.decisions is not None and d[0] != c.decisions[0],
                                        c.decisions is not None and d[1] != c.decisions[1]) for c, (_, d, _) in mine}
        out.append(Sample(i, x, joint.evaluate_samples(before, o.params, x),
                          joint.evaluate_samples(after, o.params, x), changed,
                          {(c.family, c.arch): gap for c, (_, _, gap) in mine}))
    return out


def verdicts(o: joint.Outcome, margin: float) -> dict[str, str]:
    """Each conclusion's verdict in the one sample of `o`: a claim -> holds, fails or within the noise band; a
    family's lowest-energy chip -> the chip."""
    out = {}
    for c in joint.conclusions(o, margin):
        if c.output is None:   # "<family>'s lowest-energy chip is <chip>": only the chip that wins is listed
            key, _, chip = c.claim.partition(" is ")
            out[key] = chip
        else:
            out[c.claim] = "holds" if c.holds == 1.0 else "within the noise band" if c.within == 1.0 else "fails"
    return out


def changes(samples: list[Sample], margin: float) -> dict[str, list[tuple[int, str, str]]]:
    """Per conclusion, the samples in which re-solving changed its verdict: (design row, re-priced, re-solved)."""
    out: dict[str, list[tuple[int, str, str]]] = {}
    for s in samples:
        a, b = verdicts(s.repriced, margin), verdicts(s.resolved, margin)
        for key in a:
            if a[key] != b.get(key):
                out.setdefault(key, []).append((s.row, a[key], b.get(key, "-")))
    return out


def _mj(o: joint.Outcome, key: tuple[str, str]) -> float:
    return float(o.energy[key][0]) / 1e9


def pairs(samples: list[Sample]) -> list[tuple[Sample, tuple[str, str], float, float]]:
    """Every (sample, configuration) re-solved: its re-priced and re-solved energy (mJ per inference)."""
    out = []
    for s in samples:
        for key in s.changed:
            out.append((s, key, _mj(s.repriced, key), _mj(s.resolved, key)))
    return out


def rows(samples: list[Sample], margin: float) -> list[dict]:
    """sensitivity_resolved.csv: a row per (sample, configuration), with the sample's inputs and the conclusions
    re-solving changed in it."""
    changed = changes(samples, margin)
    out = []
    for n, s in enumerate(samples):
        moved = "; ".join(k for k, v in changed.items() if any(row == s.row for row, _, _ in v))
        inputs = {k: float(v[0]) for k, v in s.x.items() if k != "tasks"}
        for (family, arch), (layout, power) in s.changed.items():
            before, after = _mj(s.repriced, (family, arch)), _mj(s.resolved, (family, arch))
            out.append({"sample": n, "design_row": s.row, "tasks": int(s.x["tasks"][0]), "family": family,
                        "architecture": arch, "repriced_mj": before, "resolved_mj": after,
                        "difference": after / before - 1.0, "placement_changed": layout, "power_changed": power,
                        "allocation_gap": s.gap.get((family, arch), ""), **inputs, "conclusions_changed": moved})
    return out


def caveats(samples: list[Sample], margin: float) -> dict[str, str]:
    """What the joint analysis's line of each conclusion re-solving changed adds: a claim -> its caveat (a
    family's lowest-energy chip: every claim of that family's)."""
    out = {}
    for key, where in changes(samples, margin).items():
        text = (f"; re-solving the decisions changed it in {len(where)} of {len(samples)} re-solved samples (below): "
                "this fraction is that of the decisions compiled at the built-in prices")
        out[key] = text
    return out


def caveat(claim: str, notes: dict[str, str]) -> str:
    """The caveat of `claim` in `notes` (`caveats`), if any."""
    return next((v for k, v in notes.items() if claim == k or claim.startswith(f"{k} is ")), "")


def with_caveats(lines: list[str], concl: list[joint.Conclusion], notes: dict[str, str]) -> list[str]:
    """The joint analysis's study.md `lines` with each conclusion's caveat (`caveats`) at the end of its line."""
    heads = {f"- {c.claim}: holds in ": caveat(c.claim, notes) for c in concl}
    out = []
    for line in lines:
        note = next((v for k, v in heads.items() if line.startswith(k)), "")
        out.append(line[:-1] + note + "." if note and line.endswith(".") else line)
    return out


def _gap(s: Sample, key: tuple[str, str]) -> str:
    """The recompile's allocation gap, where its placement is not proven optimal for the allocator's model."""
    gap = s.gap.get(key, 0.0)
    return f", allocation gap {gap:.2g}" if gap > SAME else ""


def _pct(v: float) -> str:
    """A relative difference in percent, to three significant digits (most are far below a percent)."""
    return f"{v * 100:+.3g}%" if abs(v) >= SAME else "0"


def lines(samples: list[Sample], margin: float, n: int, csv_name: str) -> list[str]:
    """study.md's paragraph: what re-solving `n` samples found, against re-pricing."""
    got = pairs(samples)
    head = (f"### Re-solved at sampled prices\n\nThe fractions above hold the compiled decisions fixed. To measure "
            f"what that misses, `--resolve {n}` compiles every configuration of {len(samples)} samples of the design "
            f"again ({len(got)} compiles): on its chip retargeted to the sample's prices, with the sample's "
            "workload given to the allocator, so placement, mapping and the banks' power instructions are solved "
            "again, then priced as above (`mapper/study/resolve.py`; every sample and configuration in "
            f"`{csv_name}`). The samples are the first rows of the Saltelli base matrix, the first points of its "
            "scrambled Sobol' sequence, spread over every input's range; the chip and the clock are not solved "
            "again.")
    if not got:
        return [head, ""]
    diff = np.array([b / a - 1.0 for _, _, a, b in got])
    layout = sum(s.changed[k][0] for s, k, _, _ in got)
    power = sum(s.changed[k][1] for s, k, _, _ in got)
    lower, higher = int((diff < -SAME).sum()), int((diff > SAME).sum())
    text = [head + f" The recompile changed the placement or mapping in {layout} of them and the power "
            f"instructions in {power}; it lowered the energy in {lower} and raised it in {higher}."]
    if higher:
        worst = sorted(range(len(got)), key=lambda j: -diff[j])[:3]
        where = "; ".join(f"{FAMILY_LABEL[got[j][1][0]]} on {label(got[j][1][1])}, design row {got[j][0].row} "
                          f"({_pct(diff[j])}{_gap(got[j][0], got[j][1])})" for j in worst if diff[j] > SAME)
        text.append(f"Re-pricing is an upper bound of re-solving only where the compiler's decisions are optimal for "
                    f"the energy the simulator charges; they are not in {higher} compiles, which re-solving made "
                    f"dearer (the allocator optimises its own model of the energy, and the power instructions are "
                    f"planned bank by bank): {where}.")
    else:
        text.append("Re-pricing was an upper bound in every one, as it is when the compiler's decisions are optimal.")
    moved = changes(samples, margin)
    if moved:
        text.append("Conclusions re-solving changed: " + "; ".join(
            f"{key}: in {len(where)} of {len(samples)} samples ("
            + ", ".join(f"design row {row}: {a} -> {b}" for row, a, b in where) + ")" for key, where in moved.items())
            + ". Their fractions above carry this caveat: they are those of the compiled decisions.")
    else:
        text.append(f"Every conclusion came out the same in all {len(samples)} samples.")
    out = [" ".join(text), "", "| model | memory | samples | placement / power changed | median difference | "
           "largest difference |", "|---|---|---:|---:|---:|---:|"]
    keys = list(dict.fromkeys(k for _, k, _, _ in got))
    for key in keys:
        mine = [j for j, (_, k, _, _) in enumerate(got) if k == key]
        d = diff[mine]
        big = d[np.argmax(np.abs(d))]
        ch = f"{sum(got[j][0].changed[key][0] for j in mine)} / {sum(got[j][0].changed[key][1] for j in mine)}"
        out.append(f"| {FAMILY_LABEL[key[0]]} | {label(key[1])} | {len(mine)} | {ch} | {_pct(float(np.median(d)))} | "
                   f"{_pct(float(big))} |")
    return out + [""]
