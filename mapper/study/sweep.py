"""Design-space sweeps: the cross product of parameters, each point evaluated once, cached, in parallel.

A sweep file:

    [sweep]                       # the fixed part (defaults shown)
    target = "edge_accel"
    family = "adapter-albert"
    tasks = 8
    size = "base"
    seq_len = 128
    policy = "edgebert"
    requests = 20

    [parameters]                  # each a non-empty list; the sweep is their cross product
    "memory.rram.capacity_bytes" = [4194304, 8388608]
    "memory.sram.capacity_bytes" = [2097152, 4194304]
    "compute.array" = [16, 32]                         # an N x N array; area and leakage per MAC kept
    "model.bottleneck" = [32, 64, 128]
    "compression.policy" = ["edgebert", "none"]
    "compression.format" = ["afloat8", "int8"]
    "workload.switch_rate" = [0.1, 1.0]

Parameters are target numbers (`<table>.<key>`, `memory.<level>.<key>`,
`compute.array`), model choices (`model.bottleneck`, `model.tasks`,
`model.family`, `model.adapter_placement`, `model.seq_len`), compression
(`compression.policy`, `compression.format`) and workload
(`workload.switch_rate`, `workload.inferences_per_wakeup`). Every point's
result is cached in a JSON file named by the hash of everything that
determines it (the fixed part, the point and the compiler's own sources), so
an interrupted sweep resumes with the missing points. A point that cannot be
mapped (say, activations larger than every memory) is recorded as infeasible
with the reason and left out of the Pareto front.
Points run on local processes (`jobs`), or on a Dask cluster. The Pareto
front minimizes energy per inference, area and latency together.

A cache entry is checked as it is read (`cached`): JSON holding this point
and its metrics, every number finite and not negative, the figures the
tables print present, strings and flags where they belong. An entry that
fails is computed again and overwritten, and the sweep says so in one line
naming the entry and what was wrong with it (`docs/sweeps.md`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aalbert.caches import cache_dir, code_hash
from aalbert.errors import AalbertError
from aalbert.ir.fileio import atomic_writer, read_toml
from aalbert.limits import check_bytes, open_regular
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, example_bytes
from aalbert.mapper.study.evaluate import ModelSpec, evaluate, override_target, prepared
from aalbert.mapper.study.workers import Workers
from aalbert.targets.sim.requests import REQUEST_BYTES
from aalbert.targets.sim.workload import default_workload


def default_cache_dir() -> Path:
    """Where points are cached unless told otherwise: the user's cache folder, never the output folder (which
    may be committed docs). Keys include the compiler's source hash, so sweeps may share it safely."""
    return cache_dir("sweep")


class SweepError(AalbertError):
    """A sweep file that cannot be run."""


BASE_KEYS = {"target": str, "family": str, "tasks": int, "size": str, "seq_len": int, "policy": str,
             "requests": int}
MODEL_KEYS = {"bottleneck": int, "tasks": int, "family": str, "adapter_placement": str, "seq_len": int}
COMPRESSION_KEYS = {"policy": str, "format": str}
WORKLOAD_KEYS = {"switch_rate": float, "inferences_per_wakeup": float}
METRICS = ("energy_mj", "area_mm2", "latency_ms")


POINT_BYTES = 4096  # what one point holds in the sweep, at least: its parameters, its metrics and its cache key


@dataclass(frozen=True)
class Sweep:
    path: str
    base: dict
    parameters: dict[str, list]
    points: list[dict] = field(default_factory=list)
    point_bytes: int = 0  # what evaluating one point takes at most, about (its model and its request stream)


def load_sweep(path: str) -> Sweep:
    data = read_toml(path, SweepError, "no such sweep file", "not valid TOML", "a sweep")
    extra = set(data) - {"sweep", "parameters"}
    if extra:
        raise SweepError(f"{path}: unknown table '{sorted(extra)[0]}' (a sweep has [sweep] and [parameters])")
    base = {"target": "edge_accel", "family": "adapter-albert", "tasks": 8, "size": "base", "seq_len": 128,
            "policy": "edgebert", "requests": 20}
    fixed = data.get("sweep", {})
    if not isinstance(fixed, dict):
        raise SweepError(f"{path}: 'sweep' must be a table ([sweep])")
    for key, value in fixed.items():
        if key not in BASE_KEYS:
            raise SweepError(f"{path}: [sweep]: unknown key '{key}' (keys: {', '.join(sorted(BASE_KEYS))})")
        _check_type(path, f"[sweep] {key}", value, BASE_KEYS[key])
        if BASE_KEYS[key] is int and value < 1:
            raise SweepError(f"{path}: [sweep] {key}: must be at least 1, got {value}")
        base[key] = value
    params = data.get("parameters")
    if not isinstance(params, dict) or not params:
        raise SweepError(f"{path}: no [parameters] to sweep")
    for key, values in params.items():
        kind = _kind(path, key, base)
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: [parameters] '{key}': expected a non-empty list of values")
        if key.startswith("workload."):  # as the workload file bounds them
            lo, hi = (0.0, 1.0) if key == "workload.switch_rate" else (1.0, 1e15)
            bad = [v for v in values if isinstance(v, (int, float)) and not lo <= v <= hi]
            if bad:
                raise SweepError(f"{path}: [parameters] '{key}': values must be in [{lo:g}, {hi:g}], got {bad[0]}")
        for v in values:
            _check_type(path, f"[parameters] '{key}'", v, kind)
            if key.startswith("model.") and kind is int and v < 1:
                raise SweepError(f"{path}: [parameters] '{key}': values must be at least 1, got {v}")
    names = sorted(params)
    count = math.prod(len(params[n]) for n in names)
    check_bytes(POINT_BYTES * count, f"{path}: a sweep of {count:,} points")
    each = point_bytes(base, params)
    check_bytes(each, f"{path}: each point of the sweep")
    points = [dict(zip(names, combo)) for combo in itertools.product(*(params[n] for n in names))]
    sweep = Sweep(str(path), base, {n: params[n] for n in names}, points, each)
    for point in points:  # every target override must make a valid target (errors name the file and key)
        try:
            override_target(str(base["target"]), _target_part(point))  # a str, as checked above
        except AalbertError as e:
            raise SweepError(f"{path}: [parameters]: {e}") from None
    return sweep


def point_bytes(base: dict, params: dict[str, list]) -> int:
    """What evaluating the sweep's largest point takes, about: the model made from the largest value of each
    model parameter, and the request stream."""
    def most(key: str, default):
        values = params.get(f"model.{key}", [default])
        return max((v for v in values if v is not None), default=None) if key != "family" else (
            "albert" if "albert" in values else values[0])
    spec = ExampleSpec(most("family", base["family"]), most("tasks", base["tasks"]), base["size"],
                       most("bottleneck", None), "per_layer" if "per_layer" in params.get("model.adapter_placement", [])
                       else "shared")
    return example_bytes(spec, DimSpec(1, most("seq_len", base["seq_len"]))) + REQUEST_BYTES * base["requests"]


def _check_type(path, where, value, kind) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)) \
        if kind is float else (isinstance(value, kind) and not isinstance(value, bool)) if kind is int \
        else isinstance(value, kind)
    if not ok:
        raise SweepError(f"{path}: {where}: {value!r} is not "
                         f"{'a finite number' if kind is float else kind.__name__}")


def _kind(path: str, key: str, base: dict):
    head, _, rest = key.partition(".")
    if head == "model" and rest in MODEL_KEYS:
        return MODEL_KEYS[rest]
    if head == "compression" and rest in COMPRESSION_KEYS:
        return COMPRESSION_KEYS[rest]
    if head == "workload" and rest in WORKLOAD_KEYS:
        return WORKLOAD_KEYS[rest]
    if head in ("model", "compression", "workload") or not rest:
        raise SweepError(f"{path}: [parameters]: unknown parameter '{key}'")
    if key == "compute.array" or key.endswith(("capacity_bytes", "rows", "cols", "macs_per_cycle", "banks",
                                                "activation_bits", "input_buffer_bytes", "elements_per_cycle",
                                                "word_bits")):
        return int
    if key.endswith(("dataflow", "zero_skipping", "model", "technology", "matmul_format")):
        return str
    return float


def _target_part(point: dict) -> dict:
    return {k: v for k, v in point.items() if k.split(".")[0] not in ("model", "compression", "workload")}


def point_key(sweep: Sweep, point: dict) -> str:
    blob = json.dumps({"base": sweep.base, "point": point, "code": code_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def evaluate_point(base: dict, point: dict) -> dict:
    """One point's metrics. A point that cannot be mapped, or whose evaluation fails in any way, is recorded
    with its one-line reason, not fatal to the sweep; so is one whose figures are not all finite."""
    try:
        metrics = _evaluate_point(base, point)
    except AalbertError as e:
        return {"feasible": False, "reason": str(e)}
    except Exception as e:  # noqa: BLE001 (one point must not stop the others)
        first = str(e).splitlines()[0] if str(e) else ""
        return {"feasible": False, "reason": f"{type(e).__name__}: {first}"}
    bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
    if bad:
        return {"feasible": False, "reason": f"the point's {bad[0]} is not finite ({metrics[bad[0]]})"}
    return {"feasible": True, **metrics}


REQUIRED = METRICS + ("dram_bytes_per_inference", "dram_bytes_per_switch")  # what sweep.md prints of a point
TEXT_METRICS = ("memory_models",)          # and metrics ending in _points: the rest are numbers or flags
FLAG_METRICS = ("feasible", "spilled", "fits_on_chip")
OPTIONAL_METRICS = ("latency_target_ms",)  # null when the workload states none
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")


class InvalidEntry(Exception):
    """A cache entry that is not a valid record of its point (it is computed again)."""


def cached(path: Path, point: dict) -> dict | None:
    """A point's metrics from its cache entry, or None if there is none or it is not valid."""
    try:
        return read_entry(path, point)
    except InvalidEntry:
        return None


def read_entry(path: Path, point: dict) -> dict | None:
    """A point's metrics from its cache entry, or None if there is none; `InvalidEntry` (saying what is wrong)
    if the entry is truncated, not this point's, or holds a metric of the wrong type, not finite or negative."""
    if not path.exists():
        return None
    try:
        with open_regular(path, "a cache entry") as f:  # a FIFO planted in the cache would block the sweep
            text = f.read(1 << 20).decode("utf-8")  # an entry is a few hundred bytes
    except (AalbertError, OSError, UnicodeDecodeError) as e:
        raise InvalidEntry(f"unreadable ({getattr(e, 'strerror', None) or e})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidEntry("not JSON (truncated?)") from None
    if not isinstance(data, dict) or data.get("point") != point:
        raise InvalidEntry("not a record of this point")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise InvalidEntry("no metrics")
    _check_metrics(metrics)
    return metrics


def _check_metrics(metrics: dict) -> None:
    feasible = metrics.get("feasible")
    if feasible is False:
        if not isinstance(metrics.get("reason"), str) or set(metrics) != {"feasible", "reason"}:
            raise InvalidEntry("an infeasible point holds its reason and nothing else")
        return
    if feasible is not True:
        raise InvalidEntry(f"feasible is {feasible!r}, not true or false")
    missing = [m for m in REQUIRED if m not in metrics]
    if missing:
        raise InvalidEntry(f"no {missing[0]}")
    for key, value in metrics.items():
        if not isinstance(key, str) or not METRIC_NAME.fullmatch(key):
            raise InvalidEntry(f"unknown metric {key!r}")
        if key in FLAG_METRICS:
            if not isinstance(value, bool):
                raise InvalidEntry(f"{key} is {value!r}, not true or false")
        elif key in TEXT_METRICS or key.endswith("_points"):
            if not isinstance(value, str):
                raise InvalidEntry(f"{key} is {value!r}, not a string")
        elif value is None and key in OPTIONAL_METRICS:
            continue
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < 0:
            raise InvalidEntry(f"{key} is {value!r}, not a finite number >= 0")


def _evaluate_point(base: dict, point: dict) -> dict:
    model = {k.split(".", 1)[1]: v for k, v in point.items() if k.startswith("model.")}
    comp = {k.split(".", 1)[1]: v for k, v in point.items() if k.startswith("compression.")}
    spec = ModelSpec(family=model.get("family", base["family"]), tasks=model.get("tasks", base["tasks"]),
                     size=base["size"], bottleneck=model.get("bottleneck"),
                     adapter_placement=model.get("adapter_placement", "shared"),
                     policy=comp.get("policy", base["policy"]), format=comp.get("format"),
                     seq_len=model.get("seq_len", base["seq_len"]))
    module = prepared(spec)
    target = override_target(base["target"], _target_part(point))
    wl = default_workload(module.graphs)
    for k, v in point.items():
        if k.startswith("workload."):
            wl = dataclasses.replace(wl, **{k.split(".", 1)[1]: v})
    return evaluate(module, target, wl, base["requests"])


def run_sweep(sweep: Sweep, cache: Path, jobs: int = 1, cluster=None, progress=None,
              warn: Callable[[str], None] | None = None) -> tuple[list[dict], int]:
    """Evaluate every point not cached yet; returns (rows, points computed now).

    `cluster` is a Dask scheduler address or a connected `distributed.Client`. `warn` is told, in one line
    each, of the cache entries that are not valid (those points are computed again).
    """
    todo = [(point_key(sweep, p), p) for p in sweep.points]
    found: dict[str, dict | None] = {}
    for k, p in todo:
        try:
            found[k] = read_entry(cache / f"{k}.json", p)
        except InvalidEntry as e:
            found[k] = None
            if warn is not None:
                warn(f"cache entry {cache / f'{k}.json'}: {e}; computing the point again")
    missing = [(k, p) for k, p in todo if found[k] is None]
    client = connect(cluster) if isinstance(cluster, str) else cluster
    if client is not None and not missing:
        client.close()
        client = None
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SweepError(f"{cache}: cannot use as the sweep's cache folder ({e.strerror})") from None
    if progress is not None:
        progress.update(len(todo) - len(missing))

    def done(key: str, point: dict, metrics: dict) -> None:
        found[key] = metrics
        with atomic_writer(cache / f"{key}.json", durable=True) as f:  # kept if the sweep stops later
            f.write((json.dumps({"point": point, "metrics": metrics}, sort_keys=True) + "\n").encode())
        if progress is not None:
            progress.update(1)

    if client is not None:
        from distributed import as_completed

        with client:
            futures = {client.submit(evaluate_point, sweep.base, p, pure=False): (k, p) for k, p in missing}
            for fut in as_completed(futures):
                k, p = futures[fut]
                done(k, p, fut.result())
    else:
        with Workers(jobs, sweep.point_bytes) as workers:
            workers.each(_evaluate_job, [(sweep.base, p) for _, p in missing],
                         lambda i, metrics: done(*missing[i], metrics), group=lambda job: _model_part(job[1]))
    return [{**p, **found[k]} for k, p in todo], len(missing)


def _evaluate_job(job: tuple[dict, dict]) -> dict:
    return evaluate_point(*job)


def _model_part(point: dict) -> tuple:
    """What a point's prepared model depends on (points alike here share it, in one worker)."""
    return tuple(sorted((k, v) for k, v in point.items() if k.startswith(("model.", "compression."))))


def connect(address: str, timeout: float = 10.0):
    """A Dask client for the scheduler at `address`, or one clear error."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, ValueError, TimeoutError) as e:
        raise SweepError(f"--cluster {address}: cannot reach a Dask scheduler ({e})") from None


def pareto(rows: list[dict], metrics=METRICS) -> list[dict]:
    """The feasible points no other point beats or matches in every metric while beating it in one."""
    rows = [r for r in rows if r.get("feasible", True)]
    front = []
    for r in rows:
        dominated = any(all(q[m] <= r[m] for m in metrics) and any(q[m] < r[m] for m in metrics)
                        for q in rows if q is not r)
        if not dominated:
            front.append(r)
    return front
