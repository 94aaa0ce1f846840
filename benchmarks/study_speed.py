"""Speed of the study, of an infeasible placement and of the base compile's mapping and placement: an older
install of the code against this one, as whole processes, interleaved (old, new, old, new, ...), medians.

    python benchmarks/study_speed.py --old OLD_VENV/bin [--new NEW_VENV/bin] [--runs 3] [--only NAME,...]

OLD_VENV/bin is the bin folder of a venv that has the older code installed (say, a detached worktree of the
commit before, with `pip install -e .`); --new defaults to the venv running this script. Every run gets a fresh
cache folder (XDG_CACHE_HOME: no mapping, placement or sweep result is warm) and a fresh output folder; the
built-in examples' cached IR, made once per build before the runs, is copied into it (code that has no such
cache ignores it), except for `first compile`. The figures (NAME):

- `study`: `aalbert-study --quiet` (112 configurations; 96 before the STT-MRAM chip), wall seconds;
- `sensitivity`: `aalbert-study --sensitivity --early-exit --quiet`, wall seconds;
- `tight`: the tutorial's placement error (`docs/tutorial.md`: `my_chip.toml` with an SRAM as large as the
  activations, `aalbert-compile --tasks 2 --target tight.toml --spill`), wall seconds to the error;
- `compile`: `aalbert-compile --example adapter-albert --tasks 8 --size base --compress edgebert --target
  edge_accel`, wall seconds; `first compile`, the same with no cached IR (the example is traced with torch,
  then cached); and `compile phases`: in one process, the seconds of the `allocate` pass (the
  mapping search, the pricing of every placement option, the solver) and of lowering and simulating every task
  (`run_backend`: the mapped products' costs are the mapping model's), the build of the example excluded.

Timings only: the outputs are compared elsewhere (`tests/test_readme.py`, `diff -r` of the study's outputs).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILE = ["aalbert-compile", "--example", "adapter-albert", "--tasks", "8", "--size", "base", "--compress", "edgebert",
           "--target", "edge_accel"]
PHASES = """
import json, time
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.passes.base import PassManager
from aalbert.passes.pipelines import Placement, compile_passes
from aalbert.targets.hardware.spec import load_target
module = load_example(ExampleSpec("adapter-albert", 8, "base"), DimSpec(1, 128))
out = {}
for p in compile_passes(module, compression="edgebert", placement=Placement("edge_accel")):
    t = time.perf_counter()
    module = PassManager([p]).run(module)
    if p.name == "allocate":
        out["allocate"] = time.perf_counter() - t
t = time.perf_counter()
run_backend(module, load_target("edge_accel"), stream=Stream(50))
out["lower + simulate"] = time.perf_counter() - t
print(json.dumps(out))
"""


def tutorial_files(folder: Path) -> None:
    """my_chip.toml from the tutorial, and tight.toml made from it as the tutorial does."""
    text = (ROOT / "docs" / "tutorial.md").read_text()
    (toml,) = [body for lang, body in re.findall(r"^```(\w*)\n(.*?)^```\n", text, flags=re.S | re.M)
               if lang == "toml"]
    (folder / "my_chip.toml").write_text(toml)
    (folder / "tight.toml").write_text(toml.replace("capacity_bytes = 2097152\n", "capacity_bytes = 1769728\n"))


def warm_examples(bin_dir: Path, into: Path) -> None:
    """The built-in examples' cached IR, as `bin_dir`'s code writes it (code without that cache writes none):
    the study's families and the compile's model, traced once."""
    env = {"XDG_CACHE_HOME": str(into), "PATH": f"{bin_dir}:/usr/bin:/bin", "MPLBACKEND": "Agg"}
    for family in ("adapter-albert", "albert"):
        for tasks in ("8", "1"):
            subprocess.run([str(bin_dir / "aalbert-compile"), "--example", family, "--tasks", tasks, "--size", "base"],
                           env=env, capture_output=True, check=True)


def run(bin_dir: Path, name: str, examples: Path | None) -> float | dict:
    """One whole-process run of figure `name` with the tools in `bin_dir`: wall seconds (or the phases). The
    cache folder is fresh, holding only the built-in examples' IR from `examples` when given."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {"XDG_CACHE_HOME": str(work / "cache"), "PATH": f"{bin_dir}:/usr/bin:/bin", "MPLBACKEND": "Agg"}
        if examples is not None and (examples / "aalbert" / "examples").is_dir():
            shutil.copytree(examples / "aalbert" / "examples", work / "cache" / "aalbert" / "examples")
        if name == "compile phases":
            r = subprocess.run([str(bin_dir / "python"), "-c", PHASES], cwd=work, env=env, capture_output=True,
                               text=True, check=True)
            return json.loads(r.stdout.splitlines()[-1])
        expect = 0
        if name == "study":
            cmd = ["aalbert-study", "--quiet", "--out", "out"]
        elif name == "sensitivity":
            cmd = ["aalbert-study", "--sensitivity", "--early-exit", "--quiet", "--out", "out"]
        elif name == "tight":
            tutorial_files(work)
            cmd, expect = ["aalbert-compile", "--tasks", "2", "--target", "tight.toml", "--spill"], 2
        else:  # compile, or its first run (the example traced, then cached)
            cmd = COMPILE
        start = time.perf_counter()
        r = subprocess.run([str(bin_dir / cmd[0])] + cmd[1:], cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if r.returncode != expect:
            sys.exit(f"{bin_dir / cmd[0]}: exit status {r.returncode}, expected {expect}\n{r.stderr[-2000:]}")
        return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="bin folder of the older install")
    p.add_argument("--new", type=Path, default=Path(sys.executable).parent, help="bin folder of this install")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", default="tight,compile,first compile,compile phases,study,sensitivity")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as warm:
        caches = {which: Path(warm) / which for which in ("old", "new")}
        for which, folder in caches.items():
            warm_examples(getattr(args, which), folder)
        for name in args.only.split(","):
            measure(args, name, caches)


def measure(args, name: str, caches: dict[str, Path]) -> None:
    results: dict[str, list] = {"old": [], "new": []}
    for _ in range(args.runs):
        for which in ("old", "new"):
            results[which].append(run(getattr(args, which), name, None if name == "first compile" else caches[which]))
    for which, values in results.items():
        if isinstance(values[0], dict):
            cells = ", ".join(f"{k} {statistics.median(v[k] for v in values):.2f} s" for k in values[0])
            print(f"{name:13s} {which}: {cells} (medians of {len(values)})", flush=True)
        else:
            print(f"{name:13s} {which}: {statistics.median(values):7.1f} s median of {len(values)} "
                  f"({', '.join(f'{v:.1f}' for v in values)})", flush=True)


if __name__ == "__main__":
    main()
