"""Start-up and small jobs: an older install of the code against this one, as whole processes, interleaved (old,
new, old, new, ...), medians of wall seconds.

    python benchmarks/startup.py --old OLD_VENV/bin [--new NEW_VENV/bin] [--runs 5]

Each build gets its own cache folder, warmed once before the runs with the built-in tiny example's IR (code
that has no such cache ignores it). The commands:

- `help`: `aalbert-compile --help` (the start-up of a command: its imports);
- `tiny`: `aalbert-compile --example adapter-albert --size tiny --tasks 1`;
- `opt`: `aalbert-opt module.ir -p canonicalize,share -o out.ir` on the tiny two-task module that
  `aalbert-compile --size tiny --tasks 2 --dump-ir` writes (made once by the new build);
- `opt placed`: `aalbert-opt` with `plan-activations{target=edge_accel},allocate{target=edge_accel}` on the
  same module.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--example", "adapter-albert", "--size", "tiny", "--tasks", "1"]
COMMANDS = {
    "help": ["aalbert-compile", "--help"],
    "tiny": ["aalbert-compile", *TINY],
    "opt": ["aalbert-opt", "{ir}", "-p", "canonicalize,share", "-o", "{out}"],
    "opt placed": ["aalbert-opt", "{ir}", "-p", "plan-activations{target=edge_accel},allocate{target=edge_accel}",
                   "-o", "{out}"],
}


def run(bin_dir: Path, command: list[str], cache: Path, work: Path) -> float:
    env = {"XDG_CACHE_HOME": str(cache), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    paths = {"{ir}": str(work / "d" / "module.ir"), "{out}": str(work / "out.ir")}
    args = [paths.get(a, a) for a in command]
    start = time.perf_counter()
    r = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)}: exit status {r.returncode}\n{r.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="bin folder of the older install")
    p.add_argument("--new", type=Path, default=Path(sys.executable).parent, help="bin folder of this install")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        builds = {"old": args.old, "new": args.new}
        for which, bin_dir in builds.items():
            run(bin_dir, ["aalbert-compile", *TINY], work / which, work)  # warms the example's IR
        run(args.new, ["aalbert-compile", "--size", "tiny", "--tasks", "2", "--dump-ir", "d"], work / "new", work)
        for name, command in COMMANDS.items():
            times: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(args.runs):
                for which, bin_dir in builds.items():
                    times[which].append(run(bin_dir, command, work / which, work))
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            print(f"{name:11s} old {old:6.2f} s  new {new:6.2f} s  new/old {new / old:5.2f}  "
                  f"(medians of {args.runs})", flush=True)


if __name__ == "__main__":
    main()
