"""Tiny Hugging Face decoders (`examples/decoders.py`) run step by step in PyTorch and in the interpreter.

A run is a prefill of the prompt then `DECODE_STEPS` decode steps, one token
each at the next position, the cache each step writes fed to the next; the
tokens are seeded (not sampled), so both sides see the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECODE_STEPS = 8


@dataclass(frozen=True)
class Step:
    """One step's graph key suffix (its phase), its inputs (ids and positions) and its logits."""

    phase: str
    inputs: dict[str, np.ndarray]
    logits: np.ndarray


def torch_run(model, spec, task: str | None, steps: int = DECODE_STEPS) -> list[Step]:
    """The PyTorch module's logits at the prefill and each decode step, the cache fed back."""
    import torch

    from aalbert.examples.decoders import DecoderStep, cache_names, empty_cache, phase_inputs

    step = DecoderStep(model, spec, task, stateful=False).activate()
    caches = [empty_cache(spec) for _ in cache_names(spec)]
    run = []
    for i in range(steps + 1):
        phase = "prefill" if i == 0 else "decode"
        inputs = phase_inputs(spec, phase, start=0 if i == 0 else spec.prompt + i - 1, seed=i)
        with torch.no_grad():
            logits, *caches = step(inputs["input_ids"], inputs["cache_position"], *caches)
        run.append(Step(phase, {k: v.numpy() for k, v in inputs.items()}, logits.numpy()))
    return run


def ir_run(module, task: str, spec, reference: list[Step]) -> list[np.ndarray]:
    """The interpreter's logits for the steps of `reference` on `task`'s two graphs, its cache fed back."""
    from aalbert.examples.decoders import cache_names, empty_cache
    from aalbert.ir.interpreter import run

    caches = {name: empty_cache(spec).numpy() for name in cache_names(spec)}
    logits = []
    for step in reference:
        out = run(module, f"{task}/{step.phase}", {**step.inputs, **caches})
        caches = {name: out[name] for name in caches}
        logits.append(out["logits"])
    return logits


def largest_difference(reference: list[Step], logits: list[np.ndarray]) -> float:
    assert len(reference) == len(logits)
    return max(float(np.max(np.abs(s.logits.astype(np.float64) - got))) for s, got in zip(reference, logits))
