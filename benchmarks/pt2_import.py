"""`.pt2` against ONNX: `aalbert-compile` on the same model in both formats, `import torch` outside the clock.

    python benchmarks/pt2_import.py --models models/             # the README's exported models
    python benchmarks/pt2_import.py --models models/ --baseline /tmp/old-site --site /tmp/new-site --repeat 3
    python benchmarks/pt2_import.py --in-process --baseline /tmp/old-site

`--models` names a folder holding `cola.onnx` and `cola.pt2`, as the README's
export commands write them (`python -m aalbert.examples.export --format pt2
--tasks 4 --size base --out models/` and the same with `--family
adapter-albert` for ONNX); without it, both are exported to a scratch folder
first. Each run is a fresh Python process: it imports torch, then starts its
clock and runs `aalbert-compile FILE` to the end (the package's own imports,
reading the file, compiling and printing the report are all inside the
clock). It also times its `import torch` and the parent times the whole
process. `--baseline DIR` runs another build of the package the same way,
from DIR put first on the path (one made with `pip install --no-deps
--target DIR <checkout>`), each repeat running every build and format in
turn, so old and new code are measured in the same minutes. `--site DIR`
runs this build from such a folder too (an editable install finds its
modules more slowly, about 0.2 s per process). Prints the median of each,
the ratio of `.pt2` to ONNX, and whether every run printed the same report.

`--in-process` times instead what `aalbert.compile` does with a program
exported in the same process: the example's first task (base size) is
exported by torch.export.export as the export script does it, outside the
clock, and `import_exported` of it is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import contextlib, hashlib, io, json, sys, time
t0 = time.perf_counter()
import torch  # noqa: F401
t1 = time.perf_counter()
from aalbert.mapper.cli.compile import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main([sys.argv[1]])
t2 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "clock": t2 - t1, "code": code,
                  "report": hashlib.sha256(out.getvalue().encode()).hexdigest()}))
"""


IN_PROCESS = """
import hashlib, json, time
import torch
from aalbert.examples.export import INPUT_NAMES, NamedOutput
from aalbert.examples.zoo import FamilySpec, build_family, example_inputs, task_names
from aalbert.ir.module import Module
from aalbert.ir.printer import print_module
from aalbert.mapper.frontends.torch_import import import_exported
model = build_family(FamilySpec("adapter-albert", "base", tuple(task_names(1))))["cola"]
inputs = example_inputs(model.config, 2, 16)
dims = {n: {0: torch.export.Dim("batch", max=1024), 1: torch.export.Dim("seq", min=2, max=512)} for n in INPUT_NAMES}
ep = torch.export.export(NamedOutput(model).eval(), tuple(inputs[n] for n in INPUT_NAMES), dynamic_shapes=dims,
                         strict=False)
t = time.perf_counter()
module = Module()
import_exported(ep, module, "cola")
clock = time.perf_counter() - t
print(json.dumps({"clock": clock, "report": hashlib.sha256(print_module(module).encode()).hexdigest()}))
"""


def run_in_process(site: str | None) -> dict:
    done = subprocess.run([sys.executable, "-c", IN_PROCESS], capture_output=True, text=True, env=_env(site),
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])


def _env(site: str | None) -> dict:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = os.pathsep.join([site] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def run(path: Path, site: str | None) -> dict:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=_env(site),
                          check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    result["process"] = time.perf_counter() - t
    if result["code"] != 0:
        raise SystemExit(f"aalbert-compile {path} failed: {done.stderr.strip()}")
    return result


def export(folder: Path) -> None:
    for extra in (["--format", "pt2"], ["--family", "adapter-albert"]):
        subprocess.run([sys.executable, "-m", "aalbert.examples.export", *extra, "--tasks", "1", "--size", "base",
                        "--out", str(folder), "--quiet"], check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, help="a folder with cola.onnx and cola.pt2 (default: export them)")
    p.add_argument("--baseline", help="a folder holding another build of the package, run the same way")
    p.add_argument("--site", help="a folder holding this build (default: the installed package)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--in-process", action="store_true", help="time import_exported of a program exported in-process")
    args = p.parse_args(argv)
    builds = {"this": args.site} | ({"baseline": args.baseline} if args.baseline else {})
    if args.in_process:
        return in_process(builds, args.repeat)
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models
        if models is None:
            models = Path(scratch)
            export(models)
        runs: dict[tuple[str, str], list[dict]] = {(b, f): [] for b in builds for f in ("onnx", "pt2")}
        for _ in range(args.repeat):
            for build, site in builds.items():
                for fmt in ("onnx", "pt2"):
                    runs[build, fmt].append(run(models / f"cola.{fmt}", site))
    print(f"aalbert-compile {models}/cola.{{onnx,pt2}}: medians of {args.repeat} runs, builds and formats "
          "interleaved\n")
    print(f"{'build':<9} {'file':<10} {'import torch':>13} {'after import torch':>19} {'whole process':>14}")
    for (build, fmt), rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("torch", "clock", "process")}
        print(f"{build:<9} cola.{fmt:<5} {med['torch']:>11.2f} s {med['clock']:>17.2f} s {med['process']:>12.2f} s")
    print()
    for build in builds:
        pt2, onnx = (statistics.median(r["clock"] for r in runs[build, f]) for f in ("pt2", "onnx"))
        print(f"{build}: .pt2 / ONNX after import torch: {pt2 / onnx:.2f}x")
    _same(runs)
    return 0


def in_process(builds: dict, repeat: int) -> int:
    runs: dict[str, list[dict]] = {b: [] for b in builds}
    for _ in range(repeat):
        for build, site in builds.items():
            runs[build].append(run_in_process(site))
    print(f"import_exported of the example's first task (base), exported in the same process: medians of {repeat} "
          "runs, builds interleaved\n")
    for build, rs in runs.items():
        print(f"{build:<9} {statistics.median(r['clock'] for r in rs):6.2f} s")
    _same(runs)
    return 0


def _same(runs: dict) -> None:
    """Whether every run made the same output (the compile report, or the imported module's text)."""
    outputs = {r["report"] for rs in runs.values() for r in rs}
    print(f"outputs: {'all identical' if len(outputs) == 1 else f'{len(outputs)} different'}")


if __name__ == "__main__":
    sys.exit(main())
