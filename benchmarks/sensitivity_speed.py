"""Speed of the joint sensitivity: `aalbert-study --sensitivity` as one process, and what re-pricing costs.

    python benchmarks/sensitivity_speed.py [--only run,reprice] [--size base|tiny]

- `run`: `aalbert-study --sensitivity --quiet` (the study's configurations compiled once each with their counts,
  the joint Saltelli sample of base 512 re-priced, the deployment map, and the structural variations recompiled
  one at a time), wall seconds, in a fresh cache and output folder; the target is under 15 minutes;
- `reprice`: on the built-in example (adapter-ALBERT, 8 tasks, base size, `edge_accel`), milliseconds to re-price
  one task's counts at a new price table (`targets.sim.counts.price`), against the seconds of the compile that
  made them; and the largest relative difference of any energy key from the simulator's (counts x prices must
  equal it to rounding).

A full run takes minutes on two cores: run it once, not in a loop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPRICE = """
import json, time
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.study.evaluate import ModelSpec, place, prepared
from aalbert.targets.hardware.spec import load_target
from aalbert.targets.sim.counts import backend_counts, price
from aalbert.targets.sim.prices import prices_of
from aalbert.targets.sim.workload import default_workload
module = prepared(ModelSpec("adapter-albert", 8, "{size}"))
target = load_target("edge_accel")
wl = default_workload(module.graphs)
t = time.perf_counter()
placed, _ = place(module, target, wl, spill=False)
backend = run_backend(placed, target, wl, Stream(50))
compile_s = time.perf_counter() - t
t = time.perf_counter()
counts = backend_counts(backend)
count_s = time.perf_counter() - t
p = prices_of(target)
worst = 0.0
for task, sim in backend.results.items():
    for cold in (False, True):
        got = price(counts[task], p, cold)
        want = {{**sim.dynamic, **(sim.cold if cold else sim.warm).energy}}
        assert set(got) == set(want)
        worst = max([worst] + [abs(got[k] - v) / abs(v) for k, v in want.items() if v])
cheap = {{k: v * 0.9 for k, v in p.items()}}
t = time.perf_counter()
for _ in range(100):
    price(counts["cola"], cheap, False)
reprice_ms = (time.perf_counter() - t) / 100 * 1e3
print(json.dumps({{"compile_s": compile_s, "count_s": count_s, "reprice_ms": reprice_ms, "worst_rel_diff": worst}}))
"""


def run(size: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        cmd = ["aalbert-study", "--sensitivity", "--quiet", "--out", str(Path(tmp) / "out")]
        if size != "base":
            cmd += ["--size", size, "--tasks", "1,2", "--seq-len", "16", "--requests", "4"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return {"command": " ".join(cmd[:3]), "wall_s": time.perf_counter() - t}


def reprice(size: str) -> dict:
    out = subprocess.run([sys.executable, "-c", REPRICE.format(size=size)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="run,reprice")
    p.add_argument("--size", choices=("base", "tiny"), default="base")
    args = p.parse_args()
    for name in args.only.split(","):
        result = run(args.size) if name == "run" else reprice(args.size)
        print(json.dumps({name: result}))


if __name__ == "__main__":
    main()
