"""Speed of the README's functional run, `aalbert-run --target`: an older install of the code against this one, as
whole processes, interleaved (old, new, old, new, ...), medians; and whether the two print and write the same.

    python benchmarks/functional_speed.py [--old OLD_VENV/bin] [--new NEW_VENV/bin] [--runs 3]

OLD_VENV/bin is the bin folder of a venv that has the older code installed (say, a detached worktree of the
commit before, with `pip install -e .`); without it only this install is timed. --new defaults to the venv
running this script. The README's export command writes models/ and in.npz once, with the new install; every
run then gets a fresh cache folder (XDG_CACHE_HOME) and runs

    aalbert-run models/sst2.onnx --target edge_accel --compress edgebert --inputs in.npz -o chip.npz

timed from start to exit. Each install's printed report and chip.npz must be the same in every run; the last
line says whether the old install's equal the new one's, byte for byte.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPORT = ["-m", "aalbert.examples.export", "--family", "adapter-albert", "--tasks", "4", "--size", "base",
          "--out", "models/", "--sample-inputs", "in.npz"]
RUN = ["aalbert-run", "models/sst2.onnx", "--target", "edge_accel", "--compress", "edgebert", "--inputs", "in.npz",
       "-o"]


def run(bin_dir: Path, work: Path, n: int) -> tuple[float, str, bytes]:
    """One whole-process functional run with the tools in `bin_dir`: wall seconds, stdout, the output file."""
    out = work / f"chip{n}.npz"
    env = {"XDG_CACHE_HOME": str(work / f"cache{n}"), "PATH": f"{bin_dir}:/usr/bin:/bin", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    r = subprocess.run([str(bin_dir / RUN[0])] + RUN[1:] + [out.name], cwd=work, env=env, capture_output=True,
                       text=True)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{bin_dir / RUN[0]}: exit status {r.returncode}\n{r.stderr[-2000:]}")
    data = out.read_bytes()
    out.unlink()
    return seconds, r.stdout, data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, help="bin folder of the older install")
    p.add_argument("--new", type=Path, default=Path(sys.executable).parent, help="bin folder of this install")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    installs = {"old": args.old, "new": args.new} if args.old else {"new": args.new}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([str(args.new / "python")] + EXPORT, cwd=work, check=True, capture_output=True)
        times: dict[str, list[float]] = {which: [] for which in installs}
        results: dict[str, set[tuple[str, bytes]]] = {which: set() for which in installs}
        n = 0
        for _ in range(args.runs):
            for which, bin_dir in installs.items():
                seconds, stdout, data = run(bin_dir, work, n)
                n += 1
                times[which].append(seconds)
                results[which].add((stdout, data))
    for which, values in times.items():
        same = "the same" if len(results[which]) == 1 else "NOT the same"
        print(f"aalbert-run --target {which}: {statistics.median(values):7.1f} s median of {len(values)} "
              f"({', '.join(f'{v:.1f}' for v in values)}); report and chip.npz {same} in every run", flush=True)
    if args.old:
        same = results["old"] == results["new"]
        print(f"old and new reports and chip.npz byte for byte: {'equal' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
