"""Where a stream's sentences leave: the workload's `[exits]` against the compiled model.

A histogram is checked against the task's off-ramps (one share per
off-ramp, then the end); samples (an `.npz` of inputs, one sentence per row
of every array, missing `attention_mask` and `token_type_ids` taken as
ones and zeros) are run through the reference interpreter on the compiled
module, and every sample's entropy at every off-ramp gives where it leaves
at the task's threshold and where EdgeBERT's predictor would have said it
leaves (`targets.sentences`). A batch of several sentences leaves when all
of them may. Every problem is one `ExitError` naming the workload file.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from aalbert.ir.fileio import read_npz
from aalbert.ir.graph import Graph
from aalbert.ir.interpreter import check_inputs, run
from aalbert.ir.module import Module
from aalbert.ir.offramps import ENTROPY, ExitError, OffRamp, off_ramps
from aalbert.targets.runtime.sentences import Sentence, exits_of, for_requests, from_entropies, from_histogram
from aalbert.targets.sim.requests import Request
from aalbert.targets.sim.workload import TaskExits, Workload

DEFAULTS = {"attention_mask": 1, "token_type_ids": 0}   # Hugging Face's meaning of a missing mask and types


@dataclass(frozen=True)
class ExitSource:
    """How a task's exits were found, for the report."""

    task: str
    shares: tuple[float, ...]          # of sentences per exit point
    how: str                           # "histogram of 872 sentences", "measured on 8 samples of in.npz"
    threshold: float | None
    source: str = ""


def stream_sentences(module: Module, workload: Workload, requests: list[Request],
                     seed: int = 0) -> tuple[list[Sentence], dict[str, ExitSource]]:
    """One sentence per request, and how each task's were found."""
    by_task, sources = {}, {}
    counts: dict[str, int] = {}
    for r in requests:
        counts[r.task] = counts.get(r.task, 0) + 1
    for task, graph in module.graphs.items():
        ramps = off_ramps(graph)
        exits = (workload.exits or {}).get(task)
        if not ramps or exits is None:
            continue
        _check_threshold(exits, ramps, task)
        if exits.samples is not None:
            entropies = measure(module, task, exits)
            pool = from_entropies(entropies, exits.threshold)
            shares = tuple(np.bincount(exits_of(entropies, exits.threshold), minlength=len(ramps) + 1)
                           / len(entropies))
            how = f"measured on {len(entropies)} sample{'s' if len(entropies) > 1 else ''} of {exits.samples}"
        else:
            if len(exits.histogram) != len(ramps) + 1:
                layers = ", ".join(str(r.layer) for r in ramps)
                raise ExitError(f"{exits.where}: key 'histogram' has {len(exits.histogram)} entries; task '{task}' "
                                f"has {len(ramps)} off-ramps (after layers {layers}), so it needs {len(ramps) + 1}: "
                                "one per off-ramp, then the end")
            pool = from_histogram(exits.histogram, max(1, counts.get(task, 0)), zlib.crc32(f"{seed}:{task}".encode()),
                                  exits.confusion)
            shares = exits.histogram
            how = f"histogram of {exits.counted:,} sentences" if exits.counted else "histogram of shares"
            if exits.confusion is not None:
                how += ", predicted as its 'predicted' table says"
        by_task[task] = pool
        sources[task] = ExitSource(task, tuple(shares), how, exits.threshold, exits.source)
    missing = sorted({r.task for r in requests} - set(by_task))
    if missing:
        raise ExitError(f"task '{missing[0]}' has no off-ramps or no [exits] in the workload; early exit needs both "
                        "for every task of the stream")
    return for_requests([r.task for r in requests], by_task), sources


def _check_threshold(exits: TaskExits, ramps: list[OffRamp], task: str) -> None:
    labels = min(r.labels for r in ramps)
    if exits.samples is not None:
        if exits.threshold is None:
            raise ExitError(f"{exits.where}: measuring task '{task}''s exits needs its entropy threshold "
                            "(key 'threshold')")
        if labels < 2:
            raise ExitError(f"{exits.where}: task '{task}''s off-ramps have one output (a regression): their "
                            "entropy is always 0 and says nothing; give its histogram")
    if exits.threshold is not None and labels >= 2 and exits.threshold > math.log(labels):
        raise ExitError(f"{exits.where}: threshold {exits.threshold:g} for task '{task}' is above ln {labels} = "
                        f"{math.log(labels):.3f}, the most the entropy of its {labels}-way off-ramps can be")


def measure(module: Module, task: str, exits: TaskExits) -> np.ndarray:
    """Every sample's entropy at every off-ramp (samples x off-ramps), by the reference interpreter."""
    graph = module.graphs[task]
    ramps = off_ramps(graph)
    if any(r.entropy is None for r in ramps):
        raise ExitError(f"task '{task}': its off-ramps have no entropy test: run the early-exit pass")
    feeds = sample_feeds(graph, read_npz(exits.samples, "exit samples"), exits.samples)
    rows = []
    for feed in feeds:
        out = run(module, task, feed)
        rows.append([float(np.max(out[f"{ENTROPY}{r.layer}"])) for r in ramps])
    return np.array(rows, dtype=np.float64).reshape(len(feeds), len(ramps))


def sample_feeds(graph: Graph, arrays: dict[str, np.ndarray], path: str) -> list[dict[str, np.ndarray]]:
    """The inputs of each sample: row i of every array (an array may also stack whole inputs)."""
    count, stacked = None, {}
    takes = ", ".join(v.name for v in graph.inputs)
    for v in graph.inputs:
        if v.name not in arrays:
            if v.name not in DEFAULTS:
                raise ExitError(f"{path}: no array '{v.name}' (the graph takes {takes})")
            continue
        a = np.asarray(arrays[v.name])
        shape = v.type.shape
        if a.ndim == len(shape) + 1 and a.shape[1:] == shape:
            n = a.shape[0]
        elif shape and shape[0] == 1 and a.ndim == len(shape) and a.shape[1:] == shape[1:]:
            n, a = a.shape[0], a.reshape((a.shape[0],) + shape)
        else:
            raise ExitError(f"{path}: array '{v.name}' has shape {list(a.shape)}; one sample is {list(shape)}, so "
                            f"give [N{', ' + ', '.join(map(str, shape[1:])) if len(shape) > 1 else ''}]")
        if count is not None and n != count:
            raise ExitError(f"{path}: array '{v.name}' holds {n} samples, another {count}")
        count, stacked[v.name] = n, a
    if not count:
        raise ExitError(f"{path}: no samples (give at least one row of each of {takes or 'the inputs'})")
    extra = sorted(set(arrays) - {v.name for v in graph.inputs})
    if extra:
        raise ExitError(f"{path}: unknown array '{extra[0]}' (the graph takes {takes})")
    feeds = []
    for i in range(count):
        feed = {}
        for v in graph.inputs:
            feed[v.name] = stacked[v.name][i] if v.name in stacked else np.full(v.type.shape, DEFAULTS[v.name],
                                                                                 v.type.dtype.np)
        feeds.append(check_inputs(graph, feed))
    return feeds
