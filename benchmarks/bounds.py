"""Bounded work: inputs that are small to write and were once slow or huge to compile, inputs that ask for
more memory than the budget allows, and the estimates the budget is checked with.

    python benchmarks/bounds.py                      # every table
    python benchmarks/bounds.py --only timing --repeat 1 --chain 20000
    python benchmarks/bounds.py --only refusals      # or estimates
    python benchmarks/bounds.py --markdown FILE      # the tables, for docs/scaling.md

Each case is one command (or one step, for the estimates), run in a fresh
process. Three tables:

- timing: wall time and CPU time (user + system; medians) and peak resident
  set of commands that once were slow or huge: a chain of N negations
  (default 100,000 nodes) on a [1, 128] tensor, as an ONNX file and as IR
  text, compiled with `--target edge_accel` (activation planning and the
  placement check were quadratic in nodes); one transpose of a
  [1, 8192, 16384] tensor canonicalized by `aalbert-opt` (canonicalize built
  an int64 index map of every element); a 64 M-element splat constant in IR
  text (`dense<1.0>`), verified by `aalbert-opt` (the parser listed every
  element).
- refusals: hostile inputs under a `--max-memory` budget, each a command as a
  user runs it: its exit status, its last line on stderr, its wall time and
  its peak resident set, which must stay within the budget (marked `OVER`
  otherwise).
- estimates: what aalbert estimates before a step (building the example,
  parsing IR text, an interpreter run, reading a TOML file or an ONNX file)
  against what the step took: the peak resident set above the process's own
  just before it (Linux: /proc/self/clear_refs resets the peak). An
  estimate below what the step took is marked `UNDER`.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def chain_onnx(path: Path, n: int) -> None:
    import onnx
    from onnx import TensorProto, helper

    nodes, prev = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("Neg", [prev], [f"v{i}"]))
        prev = f"v{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 128])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def chain_ir(path: Path, n: int) -> None:
    lines = ["module {", '  graph @t(%x: tensor<1x128xf32>) -> ("y": tensor<1x128xf32>) {']
    lines += [f"    %{i} = neg(%{i - 1 if i else 'x'}) : tensor<1x128xf32>" for i in range(n)]
    lines += [f"    return %{n - 1}", "  }", "}"]
    path.write_text("\n".join(lines) + "\n")


def transpose_ir(path: Path) -> None:
    path.write_text('module {\n  graph @t(%x: tensor<1x8192x16384xf32>) -> ("y": tensor<1x16384x8192xf32>) {\n'
                    '    %0 = transpose(%x) {perm = [0, 2, 1]} : tensor<1x16384x8192xf32>\n    return %0\n  }\n}\n')


def splat_ir(path: Path, n: int = 1 << 26, count: int = 1) -> None:
    lines = ["module {", f'  graph @t(%x: tensor<{n}xf32>) -> ("y": tensor<{n}xf32>) {{']
    prev = "%x"
    for i in range(count):
        lines += [f"    %c{i} = constant {{value = dense<1.0> : tensor<{n}xf32>}} : tensor<{n}xf32>",
                  f"    %a{i} = add({prev}, %c{i}) : tensor<{n}xf32>"]
        prev = f"%a{i}"
    path.write_text("\n".join(lines + [f"    return {prev}", "  }", "}"]) + "\n")


def dense_list_ir(path: Path, n: int, sep: str = ",") -> None:
    """A one-line IR file: a dense list literal of n elements."""
    path.write_text(f'module {{ graph @t(%x: tensor<{n}xi32>) -> ("y": tensor<{n}xi32>) {{ %0 = constant '
                    f'{{value = dense<[{sep.join(["1"] * n)}]> : tensor<{n}xi32>}} : tensor<{n}xi32> '
                    f'%1 = add(%x, %0) : tensor<{n}xi32> return %1 }} }}\n')


def attribute_list_ir(path: Path, n: int) -> None:
    path.write_text('module { graph @t(%x: tensor<1x128xf32>) -> ("y": tensor<1x128xf32>) { %0 = neg(%x) '
                    f'{{a = [{", ".join(["1"] * n)}]}} : tensor<1x128xf32> return %0 }} }}\n')


def external_onnx(path: Path, data_bytes: int) -> None:
    """A ~100-byte model whose one weight is `data_bytes` of external data (a sparse file: no disk used)."""
    import onnx
    from onnx import helper

    cols = data_bytes // 16
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4, cols],
                         data_location=onnx.TensorProto.EXTERNAL)
    w.external_data.add(key="location", value=path.stem + ".data")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, cols])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    with open(path.with_suffix(".data"), "wb") as f:
        f.truncate(data_bytes)


def wide_onnx(path: Path, batch: int, width: int = 32768) -> None:
    """x [batch, 64] through a [64, width] layer, a relu and back, with its inputs as path.npz."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((64, width)).astype(np.float32), "a"),
             numpy_helper.from_array(rng.standard_normal((width, 64)).astype(np.float32), "b")]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "a"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                               helper.make_node("MatMul", ["r", "b"], ["y"])], "wide",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 64])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    np.savez(path.with_suffix(".npz"), x=np.ones((batch, 64), np.float32))


def huge_sweep(path: Path) -> None:
    """30^6 x 10 = 7.29e9 points in a few hundred bytes."""
    lines = ["[parameters]"] + [f'"{k}" = [{", ".join(str(1000 + i) for i in range(30))}]' for k in (
        "memory.rram.capacity_bytes", "memory.sram.capacity_bytes", "compute.array", "model.bottleneck",
        "model.tasks", "model.seq_len")]
    lines.append('"workload.inferences_per_wakeup" = [' + ", ".join(f"{i}.0" for i in range(1, 11)) + "]")
    path.write_text("\n".join(lines) + "\n")


def measure(argv: list[str], check: bool = True, cwd: str | None = None) -> tuple[float, float, float, int, str]:
    """(wall seconds, CPU seconds, peak resident MB, exit status, last stderr line) of one command, run as
    this process's only child."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    last = (done.stderr.strip().splitlines() or [""])[-1]
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {last}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, done.returncode, last  # KB on Linux


def _isolated(cmd: list[str], check: bool = True, cwd: Path | None = None) -> tuple:
    """Run `measure` in a child Python, so that each run's peak is its own (a process's ru_maxrss of its
    children is the largest of them all)."""
    where = None if cwd is None else str(cwd)
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bounds; " \
           f"print(json.dumps(bounds.measure({cmd!r}, {check!r}, {where!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return tuple(json.loads(out))


def timing(d: Path, bin_dir: Path, repeat: int, chain: int) -> list[str]:
    chain_onnx(d / "chain.onnx", chain)
    chain_ir(d / "chain.ir", chain)
    transpose_ir(d / "transpose.ir")
    splat_ir(d / "splat.ir")
    compile_, opt = str(bin_dir / "aalbert-compile"), str(bin_dir / "aalbert-opt")
    cases = [
        (f"chain of {chain:,} nodes (ONNX), --target edge_accel",
         [compile_, str(d / "chain.onnx"), "--target", "edge_accel", "-q"]),
        (f"chain of {chain:,} nodes (IR text), --target edge_accel",
         [compile_, str(d / "chain.ir"), "--target", "edge_accel", "-q"]),
        ("transpose of [1, 8192, 16384], canonicalize", [opt, str(d / "transpose.ir"), "-p", "canonicalize"]),
        ("splat constant of 64 M elements, verify", [opt, str(d / "splat.ir"), "-p", "verify"]),
    ]
    rows = []
    for name, cmd in cases:
        runs = [_isolated(cmd) for _ in range(repeat)]  # each in its own process: the peak is that run's
        seconds = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        peak = max(r[2] for r in runs)
        rows.append((name, seconds, cpu, peak))
        print(f"{name}: {seconds:.2f} s (median of {len(runs)}; runs {', '.join(f'{r[0]:.2f}' for r in runs)}), "
              f"CPU {cpu:.2f} s, peak {peak:.0f} MB", flush=True)
    # on a shared machine the wall time also holds what other guests took: the CPU time is the program's own
    table = ["| case | wall time (median) | CPU time (median) | peak memory |", "|---|---:|---:|---:|"]
    return table + [f"| {name} | {seconds:.2f} s | {cpu:.2f} s | {peak:.0f} MB |" for name, seconds, cpu, peak in rows]


def refusals(d: Path, bin_dir: Path) -> list[str]:
    external_onnx(d / "ext2g.onnx", 2 ** 31)
    external_onnx(d / "ext3g.onnx", 3 * 2 ** 30)
    splat_ir(d / "splats.ir", 2 ** 27, 10)
    dense_list_ir(d / "line.ir", 2_500_000)
    wide_onnx(d / "wide.onnx", 3000)
    huge_sweep(d / "huge.toml")
    (d / "tasks.toml").write_text('[sweep]\nsize = "tiny"\ntasks = 100000\n[parameters]\n"model.bottleneck" = [8]\n')
    tool = {name: str(bin_dir / f"aalbert-{name}") for name in ("compile", "opt", "run", "study", "sweep")}
    tiny = ["--size", "tiny", "--tasks", "1"]
    cases = [
        ("ONNX model naming 2 GiB of external data", [tool["compile"], "ext2g.onnx"], "1G"),
        ("ONNX model naming 3 GiB of external data", [tool["compile"], "ext3g.onnx"], "1G"),
        ("ten 512 MiB splats in 1.4 KB of IR", [tool["opt"], "splats.ir"], "1G"),
        ("5 MB one-line IR (a dense list)", [tool["opt"], "line.ir"], "100M"),
        ("aalbert-run of a batch-3000 input", [tool["run"], "wide.onnx", "--inputs", "wide.npz", "-o", "out.npz"],
         "1G"),
        ("--tasks 100000", [tool["compile"], "--tasks", "100000"], "1G"),
        ("--layers 10000000", [tool["compile"], "--layers", "10000000"], "1G"),
        ("--bottleneck 1000000000", [tool["compile"], "--bottleneck", "1000000000"], "1G"),
        ("--batch 20000 --fidelity", [tool["compile"], *tiny, "--batch", "20000", "--sparsity", "0.5", "--fidelity"],
         "1G"),
        ("--samples 1000000000", [tool["compile"], *tiny, "--sparsity", "0.5", "--fidelity", "--samples",
                                  "1000000000"], "1G"),
        ("--burst 100000000 (runs)", [tool["compile"], *tiny, "--target", "edge_accel", "--pattern", "bursts",
                                      "--burst", "100000000", "-q"], "1G"),
        ("aalbert-study --tasks 1-100000000", [tool["study"], "--tasks", "1-100000000", "--out", "st"], "1G"),
        ("a sweep of 7.29e9 points", [tool["sweep"], "huge.toml", "--out", "s1"], "1G"),
        ("[sweep] tasks = 100000", [tool["sweep"], "tasks.toml", "--out", "s2"], "1G"),
    ]
    table = ["| case | budget | exit | peak memory | wall time | what it says |", "|---|---:|---:|---:|---:|---|"]
    for name, cmd, limit in cases:
        seconds, _, peak, code, last = _isolated(cmd + ["--max-memory", limit], check=False, cwd=d)
        budget = int(limit[:-1]) * {"M": 1, "G": 1024}[limit[-1]]
        flag = "" if peak < budget else " OVER"
        said = last.split(": error: ", 1)[-1].replace("|", "\\|") if code else ""
        print(f"{name} (--max-memory {limit}): exit {code}, peak {peak:.0f} MB{flag}, {seconds:.1f} s; {said}",
              flush=True)
        table.append(f"| {name} | {limit} | {code} | {peak:.0f} MB{flag} | {seconds:.1f} s | {said} |")
    return table


# each estimate case: (name, setup code, the estimate's expression, the step) run in a child Python
ESTIMATES = [
    ("example: tiny, 1 task, 1,000 layers",
     "from aalbert.mapper.loading import ExampleSpec, example_bytes, load_example\n"
     "from aalbert.mapper.frontends import DimSpec\nspec, dims = ExampleSpec(size='tiny', tasks=1, layers=1000), "
     "DimSpec(1, 128)\nimport torch", "example_bytes(spec, dims)", "load_example(spec, dims)"),
    ("example: tiny, 300 tasks",
     "from aalbert.mapper.loading import ExampleSpec, example_bytes, load_example\n"
     "from aalbert.mapper.frontends import DimSpec\nspec, dims = ExampleSpec(size='tiny', tasks=300), DimSpec(1, 128)\n"
     "import torch", "example_bytes(spec, dims)", "load_example(spec, dims)"),
    ("example: base, 8 tasks",
     "from aalbert.mapper.loading import ExampleSpec, example_bytes, load_example\n"
     "from aalbert.mapper.frontends import DimSpec\nspec, dims = ExampleSpec(tasks=8), DimSpec(1, 128)\nimport torch",
     "example_bytes(spec, dims)", "load_example(spec, dims)"),
    ("example: ALBERT fine-tuned per task, base, 8 tasks",
     "from aalbert.mapper.loading import ExampleSpec, example_bytes, load_example\n"
     "from aalbert.mapper.frontends import DimSpec\nspec, dims = ExampleSpec('albert', 8), DimSpec(1, 128)\n"
     "import torch", "example_bytes(spec, dims)", "load_example(spec, dims)"),
    ("parse: chain of 20,000 nodes",
     "from aalbert.ir.parser import parse_estimate, parse_module\ntext = open('chain20k.ir').read()",
     "parse_estimate(text)", "parse_module(text)"),
    ("parse: dense list of 200,000 elements (\"1,1,...\")",
     "from aalbert.ir.parser import parse_estimate, parse_module\ntext = open('list.ir').read()",
     "parse_estimate(text) + 4 * 200000", "parse_module(text)"),
    ("parse: attribute list of 200,000 elements (\"1, 1, ...\")",
     "from aalbert.ir.parser import parse_estimate, parse_module\ntext = open('attrs.ir').read()",
     "parse_estimate(text)", "parse_module(text)"),
    ("interpreter: batch 300 through a 32,768-wide layer",
     "import numpy as np\nfrom aalbert.ir.interpreter import peak_bytes, run\nfrom aalbert.ir.module import Module\n"
     "from aalbert.mapper.frontends import DimSpec, import_onnx\nm = Module()\n"
     "import_onnx('wide300.onnx', m, 't', DimSpec())\nx = dict(np.load('wide300.npz'))",
     "peak_bytes(m, m.graphs['t'])", "run(m, 't', x)"),
    ("TOML: 200,000 one-key tables",
     "import tomllib\nfrom aalbert.ir.fileio import TOML_BYTES_PER_CHAR\ntext = open('tables.toml').read()",
     "TOML_BYTES_PER_CHAR * len(text)", "tomllib.loads(text)"),
    ("ONNX file of 16 MB (two weights)",
     "from aalbert.ir.module import Module\nfrom aalbert.mapper.frontends import DimSpec, import_onnx\n"
     "from aalbert.mapper.frontends.onnx_import import ONNX_BYTES_PER_BYTE\nimport os\n"
     "size = os.path.getsize('wide300.onnx')", "ONNX_BYTES_PER_BYTE * size",
     "import_onnx('wide300.onnx', Module(), 't', DimSpec())"),
]

_STEP = """
import json
{setup}
estimate = {estimate}
def status(key):
    return int(open('/proc/self/status').read().split(key + ':')[1].split()[0]) * 1024
open('/proc/self/clear_refs', 'w').write('5')  # the peak resident set starts again from here
before = status('VmRSS')
result = {step}
print(json.dumps([estimate, status('VmHWM') - before]))
"""


def estimates(d: Path) -> list[str]:
    chain_ir(d / "chain20k.ir", 20_000)
    dense_list_ir(d / "list.ir", 200_000)
    attribute_list_ir(d / "attrs.ir", 200_000)
    wide_onnx(d / "wide300.onnx", 300)
    (d / "tables.toml").write_text("\n".join(f"[t{i}]" for i in range(200_000)) + "\n")
    table = ["| step | estimate | measured | ratio |", "|---|---:|---:|---:|"]
    for name, setup, estimate, step in ESTIMATES:
        code = _STEP.format(setup=setup, estimate=estimate, step=step)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=d)
        if done.returncode != 0:
            raise SystemExit(f"{name}: {(done.stderr.strip().splitlines() or [''])[-1]}")
        guess, took = json.loads(done.stdout.strip().splitlines()[-1])
        flag = "" if guess >= took else " UNDER"
        print(f"{name}: estimate {guess / 2 ** 20:.1f} MiB, took {took / 2 ** 20:.1f} MiB{flag}", flush=True)
        table.append(f"| {name} | {guess / 2 ** 20:.1f} MiB | {took / 2 ** 20:.1f} MiB | {guess / max(took, 1):.2f}"
                     f"{flag} |")
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="runs per timing case; the median is reported (default: 3)")
    p.add_argument("--chain", type=int, default=100_000, help="nodes in the chain cases (default: 100000)")
    p.add_argument("--only", choices=("timing", "refusals", "estimates"), help="one table only")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown to FILE")
    args = p.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.only in (None, "timing"):
            tables.append(timing(d, bin_dir, args.repeat, args.chain))
        if args.only in (None, "refusals"):
            tables.append(refusals(d, bin_dir))
        if args.only in (None, "estimates"):
            tables.append(estimates(d))
    text = "\n\n".join("\n".join(t) for t in tables) + "\n"
    if args.markdown:
        Path(args.markdown).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
