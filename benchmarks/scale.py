"""Scale: wall time and peak memory of compile + simulate, and how they grow.

    python benchmarks/scale.py                  # every case, median of 3 runs each
    python benchmarks/scale.py --repeat 1 --quick
    python benchmarks/scale.py --markdown docs/scaling.md

One case is one fresh Python process running the whole flow on the built-in
example: build adapter-ALBERT with seeded weights, import it (torch.fx),
canonicalize, share, compress (`edgebert`), plan activations, allocate on
`edge_accel` (weights spill to DRAM where they do not fit), lower, simulate
every task and a 100-request round-robin stream; the pass manager verifies
after every pass, as `aalbert-compile` does. Wall time starts after
`import torch` and scipy (about 2.5 s, paid once per process); peak memory
is the process's maximum resident set, torch included.

Cases: adapter-ALBERT base with 1, 8 and 64 tasks; ALBERT-xxlarge dimensions
(hidden 4096, FFN 16384, 64 heads, 12 layers) at sequence 512 with 1 and 64
tasks; and growth with tasks (1..64), sequence length (64..512) and layers
(3..48), each with the exponent k of a least-squares fit time ~ x^k.

Each case also prints the DRAM traffic of one inference as simulated, and the
compulsory traffic it is measured against: every read of a weight kept off
chip (ALBERT's layer twelve times) plus, when the activations do not fit on
chip, one write and one read per use of every activation.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def child(size: str, tasks: int, seq: int, layers: int) -> dict:
    """The flow in this process; phase times, peak memory and what it computed."""
    import scipy.optimize  # noqa: F401  (libraries are imported outside the timing: aalbert imports scipy
    import scipy.special  # noqa: F401   when it first solves or evaluates an activation)
    import torch  # noqa: F401

    from aalbert.mapper.backend import Stream, run_backend
    from aalbert.mapper.frontends import DimSpec
    from aalbert.mapper.loading import ExampleSpec, load_example
    from aalbert.passes.base import PassManager
    from aalbert.passes.pipelines import Placement, compile_passes
    from aalbert.targets.hardware.spec import load_target

    phases = {}
    t0 = time.perf_counter()
    module = load_example(ExampleSpec("adapter-albert", tasks, size, layers=layers), DimSpec(1, seq))
    phases["import"] = time.perf_counter() - t0
    for p in compile_passes(module, compression="edgebert", placement=Placement("edge_accel", spill=True)):
        t = time.perf_counter()
        module = PassManager([p], verify_each=True).run(module)
        phases[p.name] = time.perf_counter() - t
    t = time.perf_counter()
    target = load_target("edge_accel")
    backend = run_backend(module, target, stream=Stream(100))
    phases["lower + simulate"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    task = next(iter(module.graphs))
    first = backend.results[task]
    off = {m.name for m in target.memories if m.off_chip}
    dram = sum(rd + wr for lvl, (rd, wr) in first.traffic.items() if lvl in off)
    return {"total": total, "phases": phases, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cycles": first.cycles, "programs": len(module.graphs) - len(backend.same_as),
            "dram_bytes": dram, "compulsory_bytes": compulsory_dram(module, target, task)}


def compulsory_dram(module, target, task: str) -> float:
    """DRAM bytes an inference of `task` cannot avoid where the weights and activations are placed: every read of
    a weight kept off chip, and one write and one read per use of every activation when they are off chip."""
    from aalbert.passes.allocation.problem import activation_traffic, bytes_read

    off = {m.name for m in target.memories if m.off_chip}
    reads = bytes_read(module)
    weights = sum(reads[w.name].get(task, 0.0) for w in module.weights.values()
                  if w.placement.level in off and w.name in reads)
    arena = module.graphs[task].arena
    acts = sum(activation_traffic(module, target.compute.activation_bits)[task]) if arena.level in off else 0.0
    return weights + acts


def run_case(size: str, tasks: int, seq: int, layers: int, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", size, str(tasks), str(seq), str(layers)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    best = sorted(runs, key=lambda r: r["total"])[len(runs) // 2]  # the median run, for its phases
    return {"size": size, "tasks": tasks, "seq": seq, "layers": layers,
            "seconds": statistics.median(r["total"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs),
            "phases": best["phases"], "programs": best["programs"], "runs": len(runs),
            "dram_bytes": best["dram_bytes"], "compulsory_bytes": best["compulsory_bytes"]}


def exponent(xs, ys) -> float:
    """k of the least-squares fit log y = k log x + c."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def table(rows: list[dict]) -> list[str]:
    out = ["| model | tasks | sequence | layers | wall time (median) | peak memory | programs simulated | "
           "slowest phase | DRAM per inference | compulsory DRAM | ratio |",
           "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        phase, secs = max(r["phases"].items(), key=lambda kv: kv[1])
        ratio = f"{r['dram_bytes'] / r['compulsory_bytes']:.2f}" if r["compulsory_bytes"] else "-"
        out.append(f"| {r['size']} | {r['tasks']} | {r['seq']} | {r['layers']} | {r['seconds']:.2f} s | "
                   f"{r['peak_mb'] / 1024:.2f} GB | {r['programs']} | {phase} {secs:.2f} s | "
                   f"{r['dram_bytes'] / 1e9:.3f} GB | {r['compulsory_bytes'] / 1e9:.3f} GB | {ratio} |")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported (default: 3)")
    p.add_argument("--quick", action="store_true", help="skip the ALBERT-xxlarge cases")
    p.add_argument("--markdown", type=Path, help="also write the report to this markdown file")
    p.add_argument("--child", nargs=4, metavar=("SIZE", "TASKS", "SEQ", "LAYERS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        size, tasks, seq, layers = args.child
        print(json.dumps(child(size, int(tasks), int(seq), int(layers))))
        return 0

    def case(size, tasks, seq, layers=12):
        r = run_case(size, tasks, seq, layers, args.repeat)
        print(f"  {size} tasks={tasks} seq={seq} layers={layers}: {r['seconds']:.2f} s, "
              f"{r['peak_mb'] / 1024:.2f} GB, DRAM {r['dram_bytes'] / 1e9:.3f} GB per inference "
              f"(compulsory {r['compulsory_bytes'] / 1e9:.3f} GB)", file=sys.stderr, flush=True)
        return r

    lines = [f"Produced by `python benchmarks/scale.py{' --quick' if args.quick else ''}"
             f"{f' --repeat {args.repeat}' if args.repeat != 3 else ''}` on this machine; median of "
             f"{args.repeat} run{'s' if args.repeat > 1 else ''} per case, each a fresh process (wall time after "
             "`import torch`; peak memory is the process's maximum resident set).", ""]
    growth = {}
    by_tasks = [case("base", n, 128) for n in (1, 2, 4, 8, 16, 32, 64)]
    growth["tasks"] = by_tasks
    growth["sequence"] = [case("base", 8, s) for s in (64, 128, 256, 512)]
    growth["layers"] = [case("base", 8, 128, n) for n in (3, 6, 12, 24, 48)]
    head = [r for r in by_tasks if r["tasks"] in (1, 8, 64)]
    if not args.quick:
        head += [case("xxlarge", n, 512) for n in (1, 64)]
    lines += ["## Headline cases", ""] + table(head) + [""]
    lines += ["## Growth", "", "| growing | points | wall time | fitted exponent k (time ~ x^k) | "
              "k over the upper half | memory |", "|---|---|---|---:|---:|---|"]
    keys = {"tasks": "tasks", "sequence": "seq", "layers": "layers"}
    for name, rows in growth.items():
        xs = [r[keys[name]] for r in rows]
        ys = [r["seconds"] for r in rows]
        upper = len(xs) // 2
        times = ", ".join(f"{y:.2f}" for y in ys)
        memory = ", ".join(f"{r['peak_mb'] / 1024:.2f}" for r in rows)
        lines.append(f"| {name} | {', '.join(map(str, xs))} | {times} s | {exponent(xs, ys):.2f} | "
                     f"{exponent(xs[upper:], ys[upper:]):.2f} | {memory} GB |")
    lines += ["", "Phases of the largest case (seconds):", ""]
    big = head[-1]
    lines += ["| " + " | ".join(big["phases"]) + " |", "|" + "---:|" * len(big["phases"]),
              "| " + " | ".join(f"{v:.2f}" for v in big["phases"].values()) + " |", ""]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        from aalbert.ir.fileio import atomic_writer

        with atomic_writer(args.markdown) as f:
            f.write((text + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
