"""Energy per inference of adapter-ALBERT against the task count, and the banks an inference wakes.

    python benchmarks/task_smoothness.py [--size base] [--targets edge_accel,edge_accel_sram] [--tasks 8]
                                         [--uncalibrated]

For every target and every task count 1..N: the study's configuration (`edgebert` compression, sequence
128, a round-robin stream of 50 requests at 10 per second, power-gated between inferences; the family built
once at N tasks and cut to the first n, as `aalbert-study` does), its energy per inference (the stream's), the
largest step between consecutive task counts, the spread over all counts, and the banks (of every on-chip
level) the first task's inference accesses. `aalbert-study` prints the same spread as its noise band.
`--uncalibrated` runs the memories' values before their calibration (the named variants `sram_nvmexplorer`
and `rram_read_energy_nvmexplorer`, `docs/calibration.md`).

On the code before the bank-aware layout and the power instructions (commit 0d3f648) it printed:
edge_accel 6.251, 6.321, 6.292, 5.596, 6.339, 6.356, 6.314, 5.612 mJ (largest step 13.28 %), banks accessed
12 or 13; edge_accel_sram 14.150, 14.312, 15.494, 14.380, 14.381, 14.538, 15.705, 14.500 mJ (8.26 %).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aalbert.mapper.study.configuration import Configuration, row  # noqa: E402
from aalbert.mapper.study.evaluate import ModelSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="base")
    ap.add_argument("--targets", default="edge_accel,edge_accel_sram")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--family", default="adapter-albert")
    ap.add_argument("--uncalibrated", action="store_true", help="the memory models before calibration")
    args = ap.parse_args()
    overrides = (("memory.rram.model", "rram_read_energy_nvmexplorer"), ("memory.sram.model", "sram_nvmexplorer")) \
        if args.uncalibrated else ()
    for target in args.targets.split(","):
        energies = []
        for n in range(1, args.tasks + 1):
            t0 = time.perf_counter()
            spec = ModelSpec(args.family, n, args.size)
            r = row(Configuration(spec, args.tasks, target, False, "edge_accel", overrides))
            energies.append(r["energy_mj"])
            print(f"{target:18s} {n} tasks: {r['energy_mj']:.4f} mJ  banks accessed {r['banks_accessed']:3d}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        steps = [abs(b - a) / a * 100 for a, b in zip(energies, energies[1:])]
        spread = (max(energies) - min(energies)) / min(energies) * 100
        print(f"{target:18s} mJ: {', '.join(f'{e:.3f}' for e in energies)}")
        print(f"{target:18s} largest step {max(steps, default=0):.2f} %, spread {spread:.2f} %", flush=True)


if __name__ == "__main__":
    main()
