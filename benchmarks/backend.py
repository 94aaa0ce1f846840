"""Backend figures: compile + simulate time, simulation speed, PE utilization in the FFN.

    python benchmarks/backend.py

1. adapter-ALBERT base, 8 tasks, `edgebert` compression, on edge_accel: wall
   time of the whole flow (build the example, import it, canonicalize,
   share, compress, plan, allocate, lower and simulate every task), per phase,
   median of 3 runs in this process (torch's import excluded: it happens once).
2. Lowering and simulating one base-size inference (12 layers, static energy by bank
   state included): median time.
3. How busy the PE array is during ALBERT-base's FFN GEMMs with weights on
   chip: PE cycles of the FFN GEMM instructions over the span from the start
   of each FFN linear's first weight transfer to the end of its last GEMM.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aalbert.mapper.backend import Stream, run_backend  # noqa: E402
from aalbert.mapper.frontends import DimSpec  # noqa: E402
from aalbert.mapper.loading import ExampleSpec, load_example  # noqa: E402
from aalbert.passes.base import PassManager  # noqa: E402
from aalbert.passes.pipelines import Placement, compile_passes  # noqa: E402
from aalbert.targets.codegen.lower import lower  # noqa: E402
from aalbert.targets.hardware.spec import load_target  # noqa: E402
from aalbert.targets.sim.power import memory_image  # noqa: E402
from aalbert.targets.sim.timing import simulate  # noqa: E402


def flow() -> tuple[dict[str, float], object, object]:
    phases = {}
    t0 = time.perf_counter()
    module = load_example(ExampleSpec("adapter-albert", 8, "base"), DimSpec(1, 128))
    phases["build + import (fx)"] = time.perf_counter() - t0
    for p in compile_passes(module, compression="edgebert", placement=Placement("edge_accel")):
        t = time.perf_counter()
        module = PassManager([p]).run(module)
        phases[p.name] = time.perf_counter() - t
    t = time.perf_counter()
    target = load_target("edge_accel")
    backend = run_backend(module, target, stream=Stream(100))
    phases["lower + simulate 8 tasks + 100 requests"] = time.perf_counter() - t
    phases["total"] = time.perf_counter() - t0
    return phases, module, backend


def ffn_busy(module, program, sim) -> float:
    graph = module.graphs[program.task]
    ffn_nodes = set()
    for i, node in enumerate(graph.nodes):
        if node.op == "linear":
            w = module.weights[node.inputs[1].producer.attrs["name"].name]
            if w.role.kind == "ffn":
                ffn_nodes.add(i)
    busy = span = 0.0
    for n in ffn_nodes:
        instrs = [i for i in program.instrs if i.node == n]
        span += max(sim.finish[i.id] for i in instrs) - min(sim.start[i.id] for i in instrs)
        busy += sum(sim.finish[i.id] - sim.start[i.id] for i in instrs if i.unit == "pe")
    return busy / span


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    import torch  # noqa: F401  (import once, outside the timings)

    runs = [flow() for _ in range(3)]
    names = list(runs[0][0])
    print("adapter-ALBERT base, 8 tasks, edgebert, edge_accel: wall time per phase (median of 3)")
    for name in names:
        print(f"  {name:<42} {statistics.median(r[0][name] for r in runs):6.2f} s")
    module = runs[-1][1]
    target = load_target("edge_accel")
    task = next(iter(module.graphs))
    lows, sims = [], []
    for _ in range(5):
        t = time.perf_counter()
        program = lower(module, target, task)
        lows.append(time.perf_counter() - t)
        t = time.perf_counter()
        simulate(program, target, memory_image(module, target), cold=True)
        sims.append(time.perf_counter() - t)
    print(f"one base inference ({len(program.instrs)} instructions): lower {statistics.median(lows) * 1e3:.0f} ms, "
          f"simulate {statistics.median(sims) * 1e3:.0f} ms (median of 5)")
    for line in simulated(module):
        print(line)
    return 0


def compiled():
    """adapter-ALBERT base, 8 tasks, compressed `edgebert` and placed on edge_accel (what `flow` builds, untimed)."""
    module = load_example(ExampleSpec("adapter-albert", 8, "base"), DimSpec(1, 128))
    return PassManager(compile_passes(module, compression="edgebert", placement=Placement("edge_accel"))).run(module)


def simulated(module) -> list[str]:
    """The figures of one simulated inference of the first task after a power-up (deterministic; docs/backend.md
    quotes them, tests/test_docs.py checks them)."""
    target = load_target("edge_accel")
    program = lower(module, target, next(iter(module.graphs)))
    sim = simulate(program, target, memory_image(module, target), cold=True)
    static = sum(v for k, v in sim.energy.items() if ":" in k)
    ffn_level = next(w.placement.level for w in module.weights.values() if w.role.kind == "ffn")
    return [f"simulated: {sim.cycles / 1e6:.2f} M cycles, {sim.seconds * 1e3:.1f} ms, {sim.total_pj / 1e9:.2f} mJ "
            f"({static / 1e9:.2f} mJ static, after a power-up); PE array busy {100 * sim.busy['pe'] / sim.cycles:.1f} "
            "% of the inference",
            f"PE array busy during the FFN GEMMs (weights in {ffn_level}): "
            f"{100 * ffn_busy(module, program, sim):.1f} %"]


if __name__ == "__main__":
    sys.exit(main())
