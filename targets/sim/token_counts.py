"""Counts of generation requests: a decoder task's steps kept at fixed cache lengths, re-priced per token.

A generation request (`targets.sim.generation`) is one prefill and T decode steps, the cache holding L = P + i
valid tokens at step i; the simulator prices each step from its program scaled to L (`generation.at_length`),
simulated at a few lengths and interpolated linearly in between. Every step's energy is its counts times prices
(`counts.price`), and an interpolated step is a weighted sum of the simulated ones, so a request is a weighted
sum of steps at fixed lengths (`KNOTS` of them from the shortest cache to the compiled capacity), with weights
that depend on P and T alone (`knot_weights`). Keeping each knot's counts (`TokenCounts`) therefore re-prices a
request in closed form for any prompt length, number of generated tokens and price table, without a pass or a
simulation; and the stream around the requests (idle gaps, power-ups, switch copies and LoRA merges) is
`counts.expected_stream`'s, each request's energy and cycles in place of one inference's.

What this keeps from the compile and what it does not follow:

- the knots are fixed lengths, where the simulator picks `generation.SAMPLES` lengths among each request's own:
  the steps' tile rounding between knots is interpolated differently (`tests/test_token_counts.py` compares
  with the simulated stream at the study's shape);
- the cache's capacity, and so where it lives, is the compile's: P + T stay within it, and a prompt within one
  prefill chunk (the prefill graph's tokens); a longer context is another placement, not another price;
- tasks whose phases time alike share the first one's steps (`token_counts`): their programs differ only in
  where each task's weights lie, which moves a bank's wake-ups a little (the decoder study's section says by how
  much at the built-in values: `mapper.study.decoder_joint.deviation`);
- the request stream is round-robin in closed form (`counts.expected_stream`), where the simulator runs a
  finite stream: the first request's idle gap and the stream's ends differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aalbert.ir.phases import DECODE, PREFILL, tasks
from aalbert.targets.sim.counts import StreamSpec, TaskCounts, expected_stream, price_dynamic, price_static, task_counts
from aalbert.targets.sim.generation import at_length, capacity, step_tokens
from aalbert.targets.sim.power import memory_image
from aalbert.targets.sim.prices import Prices
from aalbert.targets.sim.timing import simulate

KNOTS = 9   # cache lengths kept per phase


@dataclass
class TokenCounts:
    """One decoder task: its prefill and decode steps' counts at fixed cache lengths, and the counts of its
    request as the stream sees it (idle chip, copies and merges: those of its prefill, as `run_generation`'s
    stream takes them)."""

    stream: TaskCounts
    prefill: dict[int, TaskCounts]     # cache length (= prompt tokens) -> one prefill chunk
    decode: dict[int, TaskCounts]      # cache length -> one decode step
    chunk: int                         # prompt tokens one prefill runs
    capacity: int                      # the cache's tokens


def knots(low: int, high: int, count: int = KNOTS) -> list[int]:
    """`count` lengths from `low` to `high`, evenly spread (fewer when the span is short)."""
    if high <= low:
        return [low]
    return sorted({low + round(k * (high - low) / (count - 1)) for k in range(count)})


def token_counts(backend) -> dict[str, TokenCounts]:
    """Every task's `TokenCounts` from a decoder's `mapper.backend.Backend` (its programs as compiled). Tasks
    whose phases time alike (`Backend.same_as`: the same program but for where each task's weights lie) share
    the steps of the first of them; each keeps its own stream counts (its copies and merges)."""
    module, target = backend.module, backend.target
    image = memory_image(module, target)
    out: dict[str, TokenCounts] = {}
    for task in tasks(module.graphs):
        pre, dec = f"{task}/{PREFILL}", f"{task}/{DECODE}"
        cap = capacity(module.graphs[dec])
        chunk = min(step_tokens(module.graphs[pre]), cap - 1)

        def at(key: str, length: int) -> TaskCounts:
            program = at_length(backend.program(key), module.graphs[key], length)
            return task_counts(program, simulate(program, target, image, True), image, target)

        whole = backend.program(pre)
        stream = task_counts(whole, simulate(whole, target, image, True), image, target, module, task)
        like = {backend.same_as.get(key, key).partition("/")[0] for key in (pre, dec)}
        first = out.get(like.pop()) if len(like) == 1 else None
        if first is not None:
            out[task] = TokenCounts(stream, first.prefill, first.decode, chunk, cap)
            continue
        out[task] = TokenCounts(stream, {n: at(pre, n) for n in knots(1, chunk, (KNOTS + 1) // 2)},
                                {n: at(dec, n) for n in knots(2, cap)}, chunk, cap)
    return out


def knot_weights(at: list[int], first: Any, last: Any) -> np.ndarray:
    """Per sample, the weight of each length in `at` in the sum of the steps at lengths `first` to `last`
    (inclusive; arrays of samples or numbers), each step interpolated linearly between the two lengths of `at`
    around it: shape (samples, len(at))."""
    first, last = np.atleast_1d(np.asarray(first, dtype=int)), np.atleast_1d(np.asarray(last, dtype=int))
    lengths = np.arange(int(last.max()) + 1)
    hat = np.stack([np.interp(lengths, at, np.eye(len(at))[k]) for k in range(len(at))])   # (knots, lengths)
    inside = (lengths >= first[:, None]) & (lengths <= last[:, None])
    return inside.astype(float) @ hat.T


def _energy(c: TaskCounts, p: Prices, cold: bool, scale) -> Any:
    return sum(price_dynamic(c, p).values()) + sum(price_static(c.cold if cold else c.warm, p, scale).values())


def request(g: TokenCounts, p: Prices, prompt: Any, generate: Any, scale: Any = 1.0) -> dict[bool, tuple[Any, Any]]:
    """A request's energy (pJ) and cycles, after a power-up (True) and on a powered chip (False): a prompt of
    `prompt` tokens (one prefill chunk, the first step after a power-up priced cold) and `generate` decode
    steps at cache lengths prompt + 1 .. prompt + generate."""
    prompt, generate = np.atleast_1d(prompt), np.atleast_1d(generate)
    if prompt.max() > g.chunk or (prompt + generate).max() > g.capacity or min(prompt.min(), generate.min()) < 1:
        raise ValueError(f"prompt 1 to {g.chunk} tokens and prompt + generated up to {g.capacity} (the compiled "
                         "cache) are re-priced from counts")
    pre, dec = sorted(g.prefill), sorted(g.decode)
    wp = knot_weights(pre, prompt, prompt)
    wd = knot_weights(dec, prompt + 1, prompt + generate)
    decode = sum(wd[:, k] * _energy(g.decode[n], p, False, scale) for k, n in enumerate(dec))
    cycles = (sum(wp[:, k] * g.prefill[n].cycles for k, n in enumerate(pre))
              + sum(wd[:, k] * g.decode[n].cycles for k, n in enumerate(dec)))
    return {cold: (decode + sum(wp[:, k] * _energy(g.prefill[n], p, cold, scale) for k, n in enumerate(pre)), cycles)
            for cold in (True, False)}


def energy_per_token(counts: dict[str, TokenCounts], p: Prices, s: StreamSpec, prompt: Any, generate: Any) -> Any:
    """Energy per generated token (pJ) of a long round-robin stream of generation requests over the tasks
    (`counts.expected_stream`, each request as `request` prices it)."""
    priced: dict[int, dict[bool, tuple[Any, Any]]] = {}   # tasks that share their steps are priced once
    runs = {t: priced.get(id(g.decode)) or priced.setdefault(id(g.decode), request(g, p, prompt, generate,
                                                                                     s.time_scale))
            for t, g in counts.items()}
    per_request = expected_stream({t: g.stream for t, g in counts.items()}, p, s, lambda t, cold: runs[t][cold])
    return per_request / np.asarray(generate, dtype=float)
