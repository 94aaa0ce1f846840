"""The sentences of a stream on a model with off-ramps: where each leaves, and where it was predicted to.

An exit point is an index: 0 .. R-1 the off-ramps in layer order, R the
end (no off-ramp let the sentence go). Sentences come either

- from a histogram of exit points (`from_histogram`): as many sentences as
  the stream has requests of the task, split over the exit points by the
  largest remainders of their shares and put in a seeded order. Where each
  was predicted to leave follows the predictor's confusion, when given
  (for the sentences leaving at each exit point, the shares predicted at
  each: split over them by largest remainders, in a second seeded order);
  without one the prediction is exact (an upper bound of what predicting
  can save); or
- from measured entropies (`from_entropies`: every sample's entropy at
  every off-ramp, from the interpreter): a sentence leaves at the first
  off-ramp whose entropy is below the threshold, and its exit is predicted
  as EdgeBERT predicts it (Tambe et al., MICRO 2021; harvard-acc/EdgeBERT
  sw/Entropy_LUT): a lookup table from the first off-ramp's entropy, in
  steps of 0.01 nats, to the entropy expected at each later off-ramp, the
  prediction being the first below the threshold. EdgeBERT fits the table
  with a small network; here it is the mean over the samples whose first
  entropy falls in the same step (the samples are the table's data).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

LUT_STEP = 0.01  # nats: EdgeBERT's lookup table (sst2_lookup_table_opt.csv) has one row per 0.01


@dataclass(frozen=True)
class Sentence:
    exit: int        # the exit point where its entropy first falls below the threshold
    predicted: int   # the exit point predicted from its first off-ramp's entropy


def split(shares: tuple[float, ...], count: int) -> list[int]:
    """`count` whole sentences over `shares` (which sum to 1) by the largest remainders, ties to the first."""
    exact = [s * count for s in shares]
    whole = [int(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda j: (-(exact[j] - whole[j]), j))
    for j in order[:count - sum(whole)]:
        whole[j] += 1
    return whole


def from_histogram(shares: tuple[float, ...], count: int, seed: int,
                   confusion: tuple[tuple[float, ...], ...] | None = None) -> list[Sentence]:
    """`count` sentences whose exit points follow `shares` (largest remainders), in a seeded order; each one's
    predicted exit point follows row `exit` of `confusion` (shares per predicted point) over the sentences
    leaving there, or is its exit when `confusion` is None."""
    points = [j for j, n in enumerate(split(shares, count)) for _ in range(n)]
    random.Random(seed).shuffle(points)
    if confusion is None:
        return [Sentence(j, j) for j in points]
    predicted: dict[int, list[int]] = {}
    rng = random.Random(f"{seed}:predicted")
    for j in sorted(set(points)):
        guesses = [p for p, n in enumerate(split(confusion[j], points.count(j))) for _ in range(n)]
        rng.shuffle(guesses)
        predicted[j] = guesses
    return [Sentence(j, predicted[j].pop()) for j in points]


def exits_of(entropies: np.ndarray, threshold: float) -> np.ndarray:
    """Each sample's exit point: the first off-ramp (column) whose entropy is below the threshold, else the end."""
    below = entropies < threshold
    return np.where(below.any(axis=1), below.argmax(axis=1), entropies.shape[1])


def from_entropies(entropies: np.ndarray, threshold: float) -> list[Sentence]:
    """Sentences from every sample's entropy at every off-ramp (samples x off-ramps)."""
    exits = exits_of(entropies, threshold)
    ramps = entropies.shape[1]
    steps = np.rint(entropies[:, 0] / LUT_STEP).astype(np.int64)
    out = []
    for i, e in enumerate(exits):
        if e == 0 or ramps == 1:
            out.append(Sentence(int(e), int(e)))
            continue
        expected = entropies[steps == steps[i], 1:].mean(axis=0)  # the table's row for this first entropy
        below = np.nonzero(expected < threshold)[0]
        out.append(Sentence(int(e), int(below[0]) + 1 if len(below) else ramps))
    return out


def confusion_of(sentences: list[Sentence], points: int) -> list[list[int]]:
    """How many sentences leaving at each exit point (rows) were predicted to leave at each (columns)."""
    counts = [[0] * points for _ in range(points)]
    for s in sentences:
        counts[s.exit][s.predicted] += 1
    return counts


def histogram(sentences: list[Sentence], points: int) -> list[int]:
    """How many sentences leave at each exit point."""
    counts = [0] * points
    for s in sentences:
        counts[s.exit] += 1
    return counts


def for_requests(tasks: list[str], by_task: dict[str, list[Sentence]]) -> list[Sentence]:
    """One sentence per request, in order: a task's requests take its sentences in turn (cycling)."""
    seen: dict[str, int] = {}
    out = []
    for t in tasks:
        n = seen.get(t, 0)
        pool = by_task[t]
        out.append(pool[n % len(pool)])
        seen[t] = n + 1
    return out
