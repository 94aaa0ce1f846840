"""The decoder study's deployment map: which LoRA mode and chip win, over how the decoder is used.

Over the tokens generated per request and the number of adapters, every other input at its built-in value
(the study's prompt, one request per power-up, its rate and switches), every configuration re-priced from its
kept counts (`mapper.study.decoder_joint`): the lowest-energy-per-token (LoRA mode, chip, KV placement), the
energy per token of the best unmerged configuration over the best merged one, and the areas of the three.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.mapper.study.decoder_joint import (
    CompiledDecoder,
    DecoderOutcome,
    Key,
    adapter_counts,
    builtin_inputs,
    evaluate,
    lowest,
    of_mode,
)
from aalbert.mapper.study.grid import short
from aalbert.mapper.study.joint import Parameter
from aalbert.mapper.study.plots import _pyplot, save

MODE_SHORT = {"unmerged": "U", "merged": "M", "merge-on-switch": "MoS"}
CHIP_SHORT = {"edge_accel": "EA", "edge_accel_dram": "EA-D", "phone_npu": "NPU", "sram": "S", "rram_sram": "RS",
              "mram_sram": "MS"}
KV_SHORT = {"on-chip": "kv-on", "off-chip": "kv-off", "allocator": ""}


@dataclass(frozen=True)
class DecoderCell:
    generated: int
    adapters: int
    winner: Key
    winner_uj: float              # energy per token
    winner_area: float
    unmerged: Key                 # the best configuration of each mode
    unmerged_uj: float
    unmerged_area: float
    merged: Key
    merged_uj: float
    merged_area: float

    @property
    def ratio(self) -> float:
        """Energy per token of the best unmerged configuration over the best merged one."""
        return self.unmerged_uj / self.merged_uj


def generated_axis(params: list[Parameter]) -> list[int]:
    """Generated tokens per request: powers of two up to what the cache leaves, and that."""
    most = int(next(p for p in params if p.name == "generated").high - 1)
    return sorted({2 ** k for k in range(most.bit_length()) if 2 ** k <= most} | {most})


def label(k: Key) -> str:
    """A configuration in a few letters: mode/chip, and the KV placement on a sized chip."""
    mode, chip, kv = k
    return f"{MODE_SHORT.get(mode, mode)}/{CHIP_SHORT.get(chip, chip)}" + (f" {KV_SHORT[kv]}" if KV_SHORT.get(kv)
                                                                          else "")


def decoder_map(configs: list[CompiledDecoder], params: list[Parameter]) -> list[DecoderCell]:
    cells = [(t, n) for t in generated_axis(params) for n in adapter_counts(configs)]
    xs = [builtin_inputs(configs, params, generated=t, adapters=n) for t, n in cells]
    o = evaluate(configs, params, {k: np.concatenate([x[k] for x in xs]) for k in xs[0]})
    every = list(o.energy)
    out = []
    for j, (t, n) in enumerate(cells):
        best = [_best(o, every, j)]
        for mode in ("unmerged", "merged"):
            best.append(_best(o, of_mode(o, mode), j))
        (w, we, wa), (u, ue, ua), (m, me, ma) = best
        out.append(DecoderCell(t, n, w, we, wa, u, ue, ua, m, me, ma))
    return out


def _best(o: DecoderOutcome, keys: list[Key], j: int) -> tuple[Key, float, float]:
    e, i = lowest(o, keys)
    k = keys[i[j]]
    return k, float(e[j]) / 1e6, float(o.area[k][j])


def map_rows(cells: list[DecoderCell]) -> list[dict]:
    rows = []
    for c in cells:
        row: dict = {"generated_tokens": c.generated, "adapters": c.adapters}
        for name, (k, uj, area) in (("best", (c.winner, c.winner_uj, c.winner_area)),
                                    ("unmerged", (c.unmerged, c.unmerged_uj, c.unmerged_area)),
                                    ("merged", (c.merged, c.merged_uj, c.merged_area))):
            row.update({f"{name}_lora": k[0], f"{name}_chip": k[1], f"{name}_kv": k[2],
                        f"{name}_uj_per_token": uj, f"{name}_area_mm2": area})
        row["ratio_unmerged_merged"] = c.ratio
        rows.append(row)
    return rows


def map_figure(cells: list[DecoderCell], stem) -> list:
    """Two panels over generated tokens x adapters: the best unmerged / best merged energy per token (colour,
    log2) with the winning configuration written in, and the winner's area."""
    plt = _pyplot()
    ts = sorted({c.generated for c in cells})
    ns = sorted({c.adapters for c in cells})
    by = {(c.generated, c.adapters): c for c in cells}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.2))
    ratio = np.log2([[by[t, n].ratio for n in ns] for t in ts])
    area = np.array([[by[t, n].winner_area for n in ns] for t in ts])
    lim = max(float(np.abs(ratio).max()), 0.05)
    shown = left.imshow(ratio, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ticks = np.linspace(-lim, lim, 5)
    fig.colorbar(shown, ax=left, fraction=0.046).set_ticks(ticks, labels=[f"{2 ** v:.2f}" for v in ticks])
    fig.colorbar(right.imshow(area, origin="lower", aspect="auto", cmap="viridis"), ax=right, fraction=0.046,
                 label="mm²")
    for ax, title in ((left, "energy per token: best unmerged / best merged"),
                      (right, "area of the lowest-energy configuration (mm²)")):
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_yticks(range(len(ts)), [str(t) for t in ts])
        ax.set_xlabel("LoRA adapters")
        ax.set_ylabel("generated tokens per request")
        ax.set_title(title, fontsize=9)
    for i, t in enumerate(ts):
        for j, n in enumerate(ns):
            c = by[t, n]
            left.text(j, i, f"{c.ratio:.2f}\n{label(c.winner)}", ha="center", va="center", fontsize=6)
            right.text(j, i, f"{c.winner_area:.2f}", ha="center", va="center", fontsize=6.5, color="w")
    fig.text(0.01, 0.01, "in each cell: the ratio, and the lowest-energy configuration, LoRA mode/chip (" +
             ", ".join(f"{v} = {k}" for k, v in {**MODE_SHORT, **CHIP_SHORT}.items()) + ")", fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out = save(fig, stem)
    plt.close(fig)
    return out


def map_lines(cells: list[DecoderCell], figure: str) -> list[str]:
    """study_decoder.md's section of the map: its table, and what wins where."""
    ts = sorted({c.generated for c in cells})
    ns = sorted({c.adapters for c in cells})
    by = {(c.generated, c.adapters): c for c in cells}
    out = ["## Deployment map", "",
           "Every configuration re-priced over the tokens generated per request and the number of adapters, every "
           "other input at its built-in value (`mapper/study/decoder_map.py`, `deployment_map.csv`). A cell: the "
           "energy per token of the best unmerged configuration over the best merged one, and the lowest-energy "
           "configuration of all (LoRA mode/chip, and where a sized chip keeps the KV cache).", "",
           "| generated tokens | " + " | ".join(f"{n} adapter{'s' if n > 1 else ''}" for n in ns) + " |",
           "|---:|" + "---|" * len(ns)]
    for t in ts:
        out.append(f"| {t} | " + " | ".join(f"{by[t, n].ratio:.2f} {label(by[t, n].winner)}" for n in ns) + " |")
    out += ["", "Modes: " + ", ".join(f"{v} = {k}" for k, v in MODE_SHORT.items()) + "; chips: "
            + ", ".join(f"{v} = {short(k)}" for k, v in CHIP_SHORT.items()) + ".", "",
            f"![the decoder deployment map]({figure})", ""]
    wins = [c for c in cells if c.ratio < 1]
    out.append(f"- The best unmerged configuration needs less energy per token than the best merged one in "
               f"{len(wins)} of {len(cells)} cells (ratio {min(c.ratio for c in cells):.2f} to "
               f"{max(c.ratio for c in cells):.2f}).")
    for t in (ts[0], ts[-1]):
        c = by[t, ns[-1]]
        out.append(f"- {t} generated token{'s' if t > 1 else ''}, {ns[-1]} adapters: lowest {c.winner_uj:.3g} uJ per "
                   f"token on {label(c.winner)} ({c.winner_area:.2f} mm²); best unmerged {c.unmerged_uj:.3g} uJ on "
                   f"{label(c.unmerged)} ({c.unmerged_area:.2f} mm²), best merged {c.merged_uj:.3g} uJ on "
                   f"{label(c.merged)} ({c.merged_area:.2f} mm²).")
    return out + [""]
