"""The compile report's section on a decoder: prefill and decode, the token figures, where the KV cache lives."""

from __future__ import annotations

import numpy as np

from aalbert.ir.module import Module
from aalbert.mapper.reports.summary import table
from aalbert.targets.sim.generation import GenerationResult


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def _uj(pj: float) -> str:
    return f"{pj / 1e6:.3f} uJ"


def cache_place(module: Module) -> tuple[str, int, int]:
    """The state region's level, offset and bytes, as the graphs record them (`Arena.state_level`)."""
    a = next(g.arena for g in module.graphs.values() if g.arena is not None and g.arena.state)
    return a.state_level or "-", a.state_offset or 0, a.state


def generation_lines(g: GenerationResult, module: Module, clock_mhz: float) -> list[str]:
    n, s = g.lengths, g.stream
    level, offset, nbytes = cache_place(module)
    lines = [f"generation: prompt {n.prompt} tokens, {n.generate} generated per request (--prompt, --generate); "
             f"KV cache {nbytes:,} bytes in {level} at {offset:#x}"]
    rows = []
    for task, t in g.tasks.items():
        cycles = clock_mhz * 1e6
        rows.append([task, f"{t.prefill_seconds * cycles / 1e6:.3f} M", _uj(t.prefill_pj),
                     f"{t.decode[0].seconds * cycles / 1e6:.3f} M", f"{t.decode[-1].seconds * cycles / 1e6:.3f} M",
                     _uj(t.decode_pj / len(t.decode)), f"{g.switch_bytes.get(task, 0):,}"])
    lines += table(["task", "prefill cycles", "prefill energy", "first decode cycles", "last decode cycles",
                    "decode energy/step", "switch bytes"], rows, "lrrrrrr")
    lines.append(f"over {s.requests} requests: TTFT mean {_ms(g.ttft.mean())}, p99 {_ms(_p99(g.ttft))}; "
                 f"TPOT mean {_ms(g.tpot.mean())}; {g.tokens_per_second:,.1f} tokens/s; "
                 f"energy {_uj(g.energy_per_token_pj)} per token; request latency p99 {_ms(s.percentile(99))}; "
                 f"{s.switches} task switches")
    if g.waits.size and g.waits.mean() > 0.5 * g.ttft.mean():
        lines.append(f"TTFT is mostly queueing: requests wait {_ms(g.waits.mean())} on average for the chip to "
                     "finish earlier ones; they arrive faster than it serves them (inferences_per_second in "
                     "--workload)")
    return lines


def _p99(values) -> float:
    return float(np.percentile(values, 99))


def generation_json(g: GenerationResult, module: Module) -> dict:
    level, offset, nbytes = cache_place(module)
    return {"prompt": g.lengths.prompt, "generate": g.lengths.generate,
            "kv_cache": {"level": level, "offset": offset, "bytes": nbytes},
            "ttft_s": {"mean": float(g.ttft.mean()), "p99": _p99(g.ttft),
                       "queueing_mean": float(g.waits.mean()) if g.waits.size else 0.0},
            "tpot_s": float(g.tpot.mean()),
            "tokens_per_second": g.tokens_per_second, "energy_per_token_pj": g.energy_per_token_pj,
            "tasks": {t: {"prefill_s": v.prefill_seconds, "prefill_pj": v.prefill_pj, "tpot_s": v.tpot,
                          "decode_pj": v.decode_pj} for t, v in g.tasks.items()}}
