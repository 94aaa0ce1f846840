"""The decoder study's joint sensitivity: every uncertain input sampled together, by re-pricing kept counts.

Each configuration of the decoder study (LoRA mode x adapters x chip x KV placement) is compiled once and
keeps its generation counts (`targets.sim.token_counts`: each task's prefill and decode steps at fixed cache
lengths, and what its requests copy and merge). The generation stream can be re-priced in closed form: a
request is a weighted sum of those steps (weights from the prompt and generated tokens alone, the linear
interpolation the simulator itself uses between simulated lengths), each step its counts times prices, and
the stream around the requests `counts.expected_stream`'s. So a sample changes prices and the workload and
runs no pass and no simulation; at the compiled prices and workload this gives the simulator's energy per token
within 0.001 % on the study's configurations (`tests/test_token_counts.py`).

Inputs (`parameters`): the encoder study's technology prices where they apply (`joint.PARAMETERS`: SRAM
leakage, logic leakage, retention fraction, wake-up energy, the RRAM point and density, STT-MRAM, DRAM energy
and background, node, register and accumulator energies; the clock as a factor of each chip's own, since the
chips differ; no DVFS, which the decoder chips do not run), and the decoder's workload: prompt tokens,
generated tokens, requests per second, requests per power-up, the switch rate and the number of adapters.
The prompt stays within one prefill chunk and prompt plus generated tokens within the compiled cache: a
longer context is another placement of the cache, which a price does not re-solve. As in the encoder's,
placement, mapping and the banks' power instructions are those compiled at the built-in prices; each mode's
and the study's lowest-energy chip is taken again per sample (the minimum over the re-priced configurations).

Conclusions (`conclusions`), each with the fraction of the joint distribution in which it holds, and Sobol
first- and total-order indices with their intervals for the continuous ones (`joint.analyse`): the
lowest-energy-per-token LoRA mode at the most adapters, unmerged against merged and merge-on-switch, each
mode's winning chip, the KV cache sized on chip against left off it, and whether RRAM and STT-MRAM save area.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from aalbert.mapper.study import joint
from aalbert.mapper.study.grid import short
from aalbert.mapper.study.joint import Conclusion, Indices, Parameter, sampled_prices
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.counts import StreamSpec
from aalbert.targets.sim.prices import Prices, prices_of
from aalbert.targets.sim.token_counts import TokenCounts, energy_per_token

MARGIN = 0.01   # an energy ratio within 1 % of 1 neither holds nor fails: a difference no design would follow
SAVERS = (("rram_sram", "RRAM"), ("mram_sram", "STT-MRAM"))
TECHNOLOGY = ("sram_leakage", "logic_leakage", "retention", "wakeup", "rram_point", "rram_density", "mram",
              "dram_energy", "dram_background", "node", "registers")

Key = tuple[str, str, str]   # (LoRA mode, chip, KV placement)


@dataclass
class CompiledDecoder:
    """One compiled configuration of the decoder study: its generation counts, prices and chip."""

    mode: str
    arch: str
    kv: str
    adapters: int
    counts: dict[str, TokenCounts]
    prices: Prices
    target: Target
    simulated_uj: float = math.nan   # the row's energy per token, as the simulator ran its stream

    @property
    def key(self) -> Key:
        return self.mode, self.arch, self.kv

    @property
    def area(self) -> tuple[float, float]:
        """(area without RRAM, RRAM area) of the chip, mm^2."""
        rram = sum(m.area_mm2 for m in self.target.on_chip if m.technology == "rram")
        return self.target.area_mm2 - rram, rram


def compiled(rows: list[dict], counted: list[dict]) -> list[CompiledDecoder]:
    """The placed configurations' counts (a row not placed has none)."""
    return [CompiledDecoder(r["lora"], r["architecture"], r["kv_placement"], r["adapters"], c["counts"],
                            prices_of(c["target"]), c["target"], r["energy_per_token_uj"])
            for r, c in zip(rows, counted) if not r["error"]]


def deviation(configs: list[CompiledDecoder], params: list[Parameter]) -> tuple[float, CompiledDecoder]:
    """How far re-pricing at the built-in values lands from the simulated stream: the largest relative
    difference in energy per token over the configurations, and the configuration it is in."""
    worst: tuple[float, CompiledDecoder] = (0.0, configs[0])
    for n in adapter_counts(configs):
        o = evaluate(configs, params, builtin_inputs(configs, params, adapters=n))
        for c in configs:
            if c.adapters == n:
                d = abs(float(o.energy[c.key][0]) / 1e6 / c.simulated_uj - 1.0)
                worst = max(worst, (d, c), key=lambda t: t[0])
    return worst


def parameters(configs: list[CompiledDecoder], prompt: int, generated: int) -> list[Parameter]:
    """The sampled inputs: the encoder study's technology prices that apply, and the decoder's workload (the
    built-in prompt and generated tokens are the study's)."""
    g = next(iter(configs[0].counts.values()))
    adapters = sorted({c.adapters for c in configs})
    mram = any(m.technology == "mram" for c in configs for m in c.target.memories)
    encoder = {p.name: p for p in joint.parameters(adapters, mram)}
    wake, rate, switch = encoder["per_wakeup"], encoder["rate"], encoder["switch"]
    return [encoder[n] for n in TECHNOLOGY if n in encoder] + [
        Parameter("clock", "clock (x each chip's own)", 1.0, 2.0, False, 1.0,
                  "the encoder study's range, the HLS constraint to twice it, as a factor: the chips' clocks differ"),
        dataclasses.replace(wake, label="requests per power-up (log10)",
                            source="one per power-up (the study's workload) to always on (10,000 between power-ups)"),
        dataclasses.replace(rate, source="an occasional request to the study's 10 per second (a request that "
                                         "outlasts the period leaves no idle gap)"),
        dataclasses.replace(switch, label="adapter switch rate", source="one adapter for long stretches to a "
                            "switch at every request (the study's)"),
        Parameter("prompt", "prompt tokens", 1.0, g.chunk + 1.0, False, float(prompt),
                  f"1 to one prefill chunk ({g.chunk}), each equally likely", discrete=True),
        Parameter("generated", "generated tokens", 1.0, g.capacity - g.chunk + 1.0, False, float(generated),
                  f"1 to what the compiled cache ({g.capacity} tokens) leaves after a full prompt", discrete=True),
        Parameter("adapters", "LoRA adapters", adapters[0], adapters[-1] + 1.0, False, adapters[-1],
                  f"the study's adapter counts, {adapters[0]} to {adapters[-1]}, each equally likely", discrete=True)
        if _contiguous(adapters) else
        Parameter("adapters", "LoRA adapters (index into the study's)", 0.0, float(len(adapters)), False,
                  float(len(adapters) - 1), f"the study's adapter counts ({', '.join(map(str, adapters))}), each "
                  "equally likely", discrete=True),
    ]


def _contiguous(values: list[int]) -> bool:
    return values == list(range(values[0], values[-1] + 1))


def adapter_counts(configs: list[CompiledDecoder]) -> list[int]:
    return sorted({c.adapters for c in configs})


def inputs(configs: list[CompiledDecoder], params: list[Parameter], u: np.ndarray) -> dict[str, np.ndarray]:
    """The samples' values for uniform draws `u`, the adapters' index made their count."""
    x = joint.inputs(params, u)
    counts = adapter_counts(configs)
    if not _contiguous(counts):
        x["adapters"] = np.asarray(counts)[x["adapters"].astype(int)]
    return x


def builtin_inputs(configs: list[CompiledDecoder], params: list[Parameter], **given: float) -> dict[str, np.ndarray]:
    """One sample at the built-in values but those `given` (adapters as a count)."""
    x = joint.builtin_inputs(params, **{k: v for k, v in given.items() if k != "adapters"})
    x["adapters"] = np.array([given.get("adapters", max(adapter_counts(configs)))])
    return x


@dataclass
class DecoderOutcome:
    """Every sample's inputs and every configuration's energy per token (pJ) and area (mm^2); NaN where a
    sample's adapter count is not the configuration's."""

    params: list[Parameter]
    x: dict[str, np.ndarray]
    energy: dict[Key, np.ndarray]
    area: dict[Key, np.ndarray]
    modes: list[str]
    archs: list[str]
    most: int


def evaluate(configs: list[CompiledDecoder], params: list[Parameter], x: dict[str, np.ndarray]) -> DecoderOutcome:
    n = len(x["adapters"])
    energy = {c.key: np.full(n, np.nan) for c in configs}
    area = {c.key: np.full(n, np.nan) for c in configs}
    for c in configs:
        sel = x["adapters"] == c.adapters
        if not sel.any():
            continue
        xs = {k: v[sel] for k, v in x.items()}
        stream = StreamSpec(xs["rate"], 10.0 ** xs["per_wakeup"], xs["switch"], 1.0 / xs["clock"])
        e = energy_per_token(c.counts, sampled_prices(c, xs), stream, xs["prompt"], xs["generated"])
        energy[c.key][sel] = np.broadcast_to(e, (int(sel.sum()),))
        rest, rram = c.area
        area[c.key][sel] = rest + rram * xs["rram_density"] / joint.RRAM_MM2_PER_MB
    return DecoderOutcome(params, x, energy, area, list(dict.fromkeys(c.mode for c in configs)),
                          list(dict.fromkeys(c.arch for c in configs)), max(c.adapters for c in configs))


def lowest(o: DecoderOutcome, keys: list[Key]) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the lowest energy among `keys` and the index (into `keys`) of the configuration; inf where
    none ran."""
    n = len(o.x["adapters"])
    stack = np.stack([o.energy[k] for k in keys]) if keys else np.full((1, n), np.inf)
    stack = np.where(np.isnan(stack), np.inf, stack)
    i = stack.argmin(axis=0)
    return stack[i, np.arange(n)], i


def of_mode(o: DecoderOutcome, mode: str, arch: str | None = None, kv: str | None = None) -> list[Key]:
    return [k for k in o.energy if k[0] == mode and arch in (None, k[1]) and kv in (None, k[2])]


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where either side did not run (inf or NaN)."""
    ran = np.isfinite(a) & np.isfinite(b)
    return np.where(ran, np.divide(a, b, out=np.ones_like(a), where=ran), np.nan)


def quantities(o: DecoderOutcome) -> dict[str, tuple[str, np.ndarray]]:
    """The continuous quantities, by their name in the Sobol analysis: (claim, ratio per sample; NaN where a
    configuration it compares did not run)."""
    out = {}
    best = {m: lowest(o, of_mode(o, m))[0] for m in o.modes}
    if "unmerged" in best:
        for m in o.modes:
            if m != "unmerged":
                out[f"ratio, unmerged / {m}"] = (f"LoRA unmerged needs less energy per token than {m}, each on its "
                                                 "lowest-energy chip", _ratio(best["unmerged"], best[m]))
    for m in o.modes:
        on, off = of_mode(o, m, kv="on-chip"), of_mode(o, m, kv="off-chip")
        if on and off:
            out[f"KV on / off chip, {m}"] = (f"LoRA {m}: the KV cache on chip needs less energy per token than off "
                                             "it, each on its lowest-energy sized chip",
                                             _ratio(lowest(o, on)[0], lowest(o, off)[0]))
    for m in o.modes:
        base = o.area.get((m, "sram", "on-chip"))
        for arch, name in SAVERS:
            a = o.area.get((m, arch, "on-chip"))
            if a is not None and base is not None:
                out[f"area ratio, {name}, {m}"] = (f"{name} saves area: LoRA {m}'s sized {name} + SRAM chip is "
                                                   "smaller than its all-SRAM chip (KV on chip)", _ratio(a, base))
    return out


def conclusions(o: DecoderOutcome, margin: float = MARGIN) -> list[Conclusion]:
    """Each conclusion with the fraction in which it holds. A ratio's fraction is over the samples where both
    sides ran (merge-on-switch needs two adapters), an energy ratio within `margin` of 1 counted as neither
    holding nor failing; the mode at the most adapters over the samples at that count."""
    out = []
    at_most = o.x["adapters"] == o.most
    modes = np.stack([lowest(o, of_mode(o, m))[0] for m in o.modes])[:, at_most]
    won = np.bincount(modes.argmin(axis=0), minlength=len(o.modes)) / max(1, modes.shape[1])
    for k in np.argsort(-won, kind="stable"):
        out.append(Conclusion(f"At {o.most} adapters, LoRA {o.modes[k]} gives the lowest energy per token (each mode "
                              "on its lowest-energy chip)", float(won[k]), math.nan, math.nan, math.nan, None))
    for name, (claim, r) in quantities(o).items():
        ok = np.isfinite(r)
        if ok.any():
            near = joint.in_band(r[ok], margin) if not name.startswith("area") else None
            out.append(joint._spread(claim, r[ok] < 1, r[ok], name, near))
    for m in o.modes:
        keys = of_mode(o, m)
        _, i = lowest(o, keys)
        ran = np.isfinite(lowest(o, keys)[0])
        chips = [short(keys[j][1]) for j in i[ran]]
        for chip, count in sorted(((c, chips.count(c)) for c in dict.fromkeys(chips)), key=lambda t: -t[1]):
            out.append(Conclusion(f"LoRA {m}'s lowest-energy chip is {chip}", count / max(1, len(chips)), math.nan,
                                  math.nan, math.nan, None))
    return out


def outputs(o: DecoderOutcome) -> dict[str, np.ndarray]:
    """The quantities the Sobol analysis explains, in their logarithm (those defined in every sample)."""
    return {name: np.log(r) for name, (_, r) in quantities(o).items() if np.isfinite(r).all()}


def builtin_quantities(configs: list[CompiledDecoder], params: list[Parameter]) -> dict[str, float]:
    """Each quantity at the built-in values (the most adapters), as a ratio."""
    o = evaluate(configs, params, builtin_inputs(configs, params))
    return {name: float(r[0]) for name, (_, r) in quantities(o).items()}


def run(configs: list[CompiledDecoder], params: list[Parameter], base: int = joint.BASE_N,
        seed: int = joint.SEED) -> tuple[DecoderOutcome, list[Indices]]:
    """Sample, evaluate and analyse: the outcome and the Sobol indices of every quantity that varies."""
    u = joint.sample(params, base, seed)
    o = evaluate(configs, params, inputs(configs, params, u))
    # a quantity constant but for rounding (an area no sampled input changes) has no indices
    found = [joint.analyse(params, y, name, seed) for name, y in outputs(o).items() if np.ptp(y) > 1e-9]
    return o, found


def lines(params: list[Parameter], found: list[Indices], concl: list[Conclusion], builtin: dict,
          sizes: tuple[int, int], worst: tuple[float, CompiledDecoder]) -> list[str]:
    """study_decoder.md's section of the joint analysis (`worst`: `deviation`'s)."""
    from aalbert.mapper.study.sensitivity import joint_body

    base, samples = sizes
    off, at = worst
    return ["## Sensitivity: every input at once", "",
            f"`--sensitivity` samples every uncertain input together: a Saltelli sample of base {base} over "
            f"{len(params)} inputs ({samples:,} evaluations, SALib), each evaluated by re-pricing the configurations' "
            "kept counts, every task's prefill and decode steps at fixed cache lengths, and running the request "
            "stream around them in closed form (`mapper/study/decoder_joint.py`, `targets/sim/token_counts.py`); "
            "no pass and no simulation runs per sample. A fraction is the share of the joint distribution (inputs "
            "uniform over their ranges, in the logarithm where marked) in which the conclusion holds; the range is "
            "its quantity's 5th to 95th percentile. A ratio's fraction counts the samples where both sides run "
            "(merge-on-switch needs two adapters; such a quantity, undefined in some samples, has no Sobol "
            "indices), and an energy ratio within the noise band of 1 "
            f"(±{MARGIN:.0%}: a difference no design would follow) neither holds nor fails; the LoRA mode at the most "
            "adapters counts the samples at that count. "
            "Each mode's lowest-energy chip is taken again in every sample; the placement (and so where the cache "
            "and the adapters live), the mapping and the banks' power instructions are those compiled at the "
            "built-in prices. Tasks whose phases time alike share the first one's steps (their programs differ only in "
            "where each task's weights lie), so at the built-in values the re-priced energy per token lands within "
            f"{off:.2%} of the simulated stream's over the study's configurations (the largest: LoRA {at.mode}, "
            f"{at.adapters} adapters, {short(at.arch)}{'' if at.kv == 'allocator' else ', KV ' + at.kv}). Indices and "
            "fractions are in `sensitivity_joint.csv` and `sensitivity_holds.csv`.", "",
            *joint_body(params, found, concl, builtin)]
