"""Bounded work: inputs that are small to write and were once slow or huge to compile.

    python benchmarks/bounds.py                      # every case, median of 3 runs each
    python benchmarks/bounds.py --repeat 1 --chain 20000
    python benchmarks/bounds.py --markdown FILE      # the table, for docs/scaling.md

Each case is one command, run as a user runs it, in a fresh process; the
figures are its wall time and CPU time (user + system; medians) and its peak
resident set. The cases:

- a chain of N negations (default 100,000 nodes) on a [1, 128] tensor, as an
  ONNX file and as IR text, compiled with `--target edge_accel` (activation
  planning and the placement check were quadratic in nodes);
- one transpose of a [1, 8192, 16384] tensor canonicalized by `aalbert-opt`
  (canonicalize built an int64 index map of every element);
- a 64 M-element splat constant in IR text (`dense<1.0>`), verified by
  `aalbert-opt` (the parser listed every element).
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


def splat_ir(path: Path) -> None:
    n = 1 << 26
    path.write_text(f'module {{\n  graph @t(%x: tensor<{n}xf32>) -> ("y": tensor<{n}xf32>) {{\n'
                    f'    %0 = constant {{value = dense<1.0> : tensor<{n}xf32>}} : tensor<{n}xf32>\n'
                    f'    %1 = add(%x, %0) : tensor<{n}xf32>\n    return %1\n  }}\n}}\n')


def measure(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak resident MB) of one command, run as this process's only child."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip().splitlines()[-1]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KB on Linux


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported (default: 3)")
    p.add_argument("--chain", type=int, default=100_000, help="nodes in the chain cases (default: 100000)")
    p.add_argument("--markdown", metavar="FILE", help="also write the table as markdown to FILE")
    args = p.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        chain_onnx(d / "chain.onnx", args.chain)
        chain_ir(d / "chain.ir", args.chain)
        transpose_ir(d / "transpose.ir")
        splat_ir(d / "splat.ir")
        compile_, opt = str(bin_dir / "aalbert-compile"), str(bin_dir / "aalbert-opt")
        cases = [
            (f"chain of {args.chain:,} nodes (ONNX), --target edge_accel",
             [compile_, str(d / "chain.onnx"), "--target", "edge_accel", "-q"]),
            (f"chain of {args.chain:,} nodes (IR text), --target edge_accel",
             [compile_, str(d / "chain.ir"), "--target", "edge_accel", "-q"]),
            ("transpose of [1, 8192, 16384], canonicalize", [opt, str(d / "transpose.ir"), "-p", "canonicalize"]),
            ("splat constant of 64 M elements, verify", [opt, str(d / "splat.ir"), "-p", "verify"]),
        ]
        rows = []
        for name, cmd in cases:
            runs = []
            for _ in range(args.repeat):  # each in its own process: the peak is that run's
                runs.append(_isolated(cmd))
            seconds = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            peak = max(r[2] for r in runs)
            rows.append((name, seconds, cpu, peak))
            print(f"{name}: {seconds:.2f} s (median of {len(runs)}; runs {', '.join(f'{r[0]:.2f}' for r in runs)}), "
                  f"CPU {cpu:.2f} s, peak {peak:.0f} MB", flush=True)
    # on a shared machine the wall time also holds what other guests took: the CPU time is the program's own
    table = ["| case | wall time (median) | CPU time (median) | peak memory |", "|---|---:|---:|---:|"]
    table += [f"| {name} | {seconds:.2f} s | {cpu:.2f} s | {peak:.0f} MB |" for name, seconds, cpu, peak in rows]
    if args.markdown:
        Path(args.markdown).write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


def _isolated(cmd: list[str]) -> tuple[float, float, float]:
    """Run `measure` in a child Python, so that each run's peak is its own (a process's ru_maxrss of its
    children is the largest of them all)."""
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bounds; " \
           f"print(json.dumps(bounds.measure({cmd!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return tuple(json.loads(out))


if __name__ == "__main__":
    sys.exit(main())
