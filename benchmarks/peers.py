"""Cross-check with peer tools: ZigZag and SCALE-Sim on the same hardware as aalbert.

    python benchmarks/peers.py                                   # aalbert, and peers importable here
    python benchmarks/peers.py --peer-python /path/to/venv/bin/python --markdown docs/peers-figures.md

The peers are optional extras, not dependencies of aalbert: they may live in
their own environment (SCALE-Sim wants numpy < 2.3), which `--peer-python`
names. This script runs them there in a child process that imports nothing of
aalbert, and runs aalbert here.

Workloads, 8-bit operands: one 128x768x768 GEMM (rows x in x out), and the four
weight GEMMs of one BERT-base encoder layer at sequence 128 (QKV 768->2304,
attention output 768->768, FFN 768->3072 and 3072->768).

Hardware: ZigZag's `tpu_like` (a 32x32 weight-stationary array, 2 MB SRAM, DRAM
at 64 bit/cycle), which is aalbert's built-in `tpu_like`. ZigZag's file keeps
weights only in DRAM and per-PE register files, so aalbert is run with its SRAM
restricted to activations (weights stream from DRAM, as in ZigZag). ZigZag runs
twice: its stock file, where every layer also loads its input from DRAM and
stores its output there, and a variant whose activations live in the SRAM as
aalbert's do. SCALE-Sim gives the array's compute cycles for each dataflow
(ideal bandwidth), against aalbert's weight- and output-stationary counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SEQ = 128
GEMM = [("gemm", SEQ, 768, 768)]
LAYER = [("qkv", SEQ, 768, 2304), ("attn_out", SEQ, 768, 768), ("ffn_in", SEQ, 768, 3072),
         ("ffn_out", SEQ, 3072, 768)]
WORKLOADS = {"128x768x768 GEMM": GEMM, "BERT-base layer (4 GEMMs)": LAYER}


# ---------------------------------------------------------------- peer children (no aalbert imports)

def zigzag_child(gemms: list, variant: str) -> dict:
    """ZigZag on tpu_like: cycles and energy per memory level, summed over the GEMMs."""
    import logging

    import yaml
    import zigzag
    from zigzag.api import get_hardware_performance_zigzag

    logging.disable(logging.CRITICAL)
    pkg = Path(zigzag.__file__).parent / "inputs"
    hw = yaml.safe_load((pkg / "hardware" / "tpu_like.yaml").read_text())
    if variant == "resident":
        # activations live in the SRAM: DRAM keeps the weights alone
        dram = hw["memories"]["dram"]
        dram["operands"] = ["I2"]
        for port in dram["ports"]:
            port["allocation"] = [a for a in port["allocation"] if a.startswith("I2")]
    workload = [{"id": i, "name": name, "operator_type": "Gemm", "equation": "O[d][k]+=I[d][c]*W[k][c]",
                 "loop_dims": ["D", "K", "C"], "loop_sizes": [m, n, k],
                 "operand_precision": {"I": 8, "W": 8, "O": 16, "O_final": 16}, "operand_source": {"I": i}}
                for i, (name, m, k, n) in enumerate(gemms)]
    with tempfile.TemporaryDirectory() as tmp:
        hw_path = Path(tmp) / "tpu_like.yaml"
        hw_path.write_text(yaml.safe_dump(hw, sort_keys=False))  # ZigZag reads the levels in order
        t0 = time.perf_counter()
        _, _, cmes = get_hardware_performance_zigzag(workload, str(hw_path), str(pkg / "mapping" / "tpu_like.yaml"),
                                                     opt="latency", dump_folder=str(Path(tmp) / "out"),
                                                     loma_show_progress_bar=False)
        seconds = time.perf_counter() - t0
    layers = [c for c, _ in cmes[0][1]]
    energy: dict[str, float] = {"mac": sum(c.mac_energy for c in layers)}
    by_operand: dict[str, float] = {}
    for c in layers:
        for op, per_level in c.mem_energy_breakdown.items():
            mem_op = c.memory_operand_links.layer_to_mem_op(op)
            levels = c.accelerator.memory_hierarchy.get_memory_levels(mem_op=mem_op)
            for level, pj in zip(levels, per_level):
                name = level.name
                energy[name] = energy.get(name, 0.0) + pj
                key = f"{name}:{op}"
                by_operand[key] = by_operand.get(key, 0.0) + pj
    return {"cycles": sum(c.latency_total2 for c in layers),
            "compute_and_stall_cycles": sum(c.latency_total0 for c in layers),
            "onload_cycles": sum(c.latency_total1 - c.latency_total0 for c in layers),
            "offload_cycles": sum(c.latency_total2 - c.latency_total1 for c in layers),
            "ideal_cycles": sum(c.ideal_temporal_cycle for c in layers),
            "energy_pj": energy, "energy_by_operand_pj": by_operand, "seconds": seconds,
            "version": _version("zigzag-dse")}


def scalesim_child(gemms: list, dataflow: str) -> dict:
    """SCALE-Sim's compute cycles of the GEMMs on a 32x32 array with ideal memory bandwidth."""
    import contextlib
    import io

    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        topo = tmp / "gemms.csv"
        topo.write_text("Layer, M, N, K,\n" + "".join(f"{name}, {m}, {n}, {k},\n" for name, m, k, n in gemms))
        layout = tmp / "layout.csv"
        layout.write_text("Layer, IfmapH, IfmapW, FilterH, FilterW, Channels, Filters, Stride,\n"
                          + "".join(f"{name}, 1, 1, 1, 1, 1, 1, 1,\n" for name, *_ in gemms))
        cfg = tmp / "tpu_like.cfg"
        cfg.write_text(f"""[general]
run_name = tpu_like_{dataflow}

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = 32
ArrayWidth = 32
IfmapSramSzkB = 1024
FilterSramSzkB = 1024
OfmapSramSzkB = 1024
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {dataflow}
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40
""")
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topo),
                           layout=str(layout), input_type_gemm=True)
            sim.run_scale(top_path=str(tmp / "out"))
        seconds = time.perf_counter() - t0
        cycles = [float(layer.total_cycles) for layer in sim.runner.single_layer_sim_object_list]
    return {"cycles": sum(cycles), "per_gemm": cycles, "seconds": seconds, "version": _version("scalesim")}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


PEER_ENV = ("python3 -m venv .peers && .peers/bin/pip install zigzag-dse==3.9.1 six scalesim==3.0.0 'numpy<2.3'; "
            "then give --peer-python .peers/bin/python")
PROBE = """import importlib.util, json
found = {m: importlib.util.find_spec(m) is not None for m in ("zigzag", "scalesim", "numpy")}
numpy = __import__("numpy").__version__ if found["numpy"] else None
print(json.dumps({"found": found, "numpy": numpy}))"""


def missing_peers(python: str, tools: list[str]) -> str | None:
    """Why the peer tools cannot run in `python` (one line saying what to install and how), or None."""
    try:
        done = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
        probe = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return f"--peer-python {python}: not a Python that runs"
    names = {"zigzag": "ZigZag (zigzag-dse)", "scalesim": "SCALE-Sim (scalesim)"}
    missing = [names[t] for t in tools if not probe["found"][t]]
    numpy = probe["numpy"] or "0"
    if missing == [names["zigzag"]] and "scalesim" not in tools:
        return (f"{missing[0]} is not installed for {python}: pip install -c constraints.txt -e '.[peers]' adds it "
                f"here (or {PEER_ENV}; --skip zigzag leaves it out)")
    if missing:
        return (f"{' and '.join(missing)} not installed for {python}; SCALE-Sim needs numpy < 2.3, so the peers get "
                f"their own environment: {PEER_ENV} (--skip zigzag or --skip scalesim leaves one out)")
    if "scalesim" in tools and tuple(int(x) for x in numpy.split(".")[:2]) >= (2, 3):
        return (f"SCALE-Sim 3.0.0 fails with numpy {numpy}, which {python} has (it needs < 2.3): {PEER_ENV} "
                "(--skip scalesim leaves it out)")
    return None


def run_peer(python: str, tool: str, workload: str, variant: str, timeout: float) -> dict:
    """One peer run in a child process; {"error": ...} when the tool is missing or fails."""
    cmd = [python, __file__, "--child", tool, workload, variant]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- aalbert

GEMM_IR = """module {
  weight @w : tensor<%(k)dx%(n)dxf32> hash "0"
  graph @t(%%x: tensor<%(m)dx%(k)dxf32>) -> ("y": tensor<%(m)dx%(n)dxf32>) {
    %%0 = weight {name = @w} : tensor<%(k)dx%(n)dxf32>
    %%1 = linear(%%x, %%0) : tensor<%(m)dx%(n)dxf32>
    return %%1
  }
}
"""


def aalbert(gemms: list, dataflow: str) -> dict:
    """aalbert on tpu_like with weights in DRAM and activations in SRAM, summed over the GEMMs."""
    import numpy as np

    from aalbert.ir.module import content_hash
    from aalbert.ir.parser import parse_module
    from aalbert.mapper.evaluate import override_target
    from aalbert.passes.allocate import allocate
    from aalbert.passes.plan import plan_module
    from aalbert.targets.workload import default_workload
    from aalbert.passes.base import PassManager, parse_pipeline
    from aalbert.targets.lower import lower
    from aalbert.targets.sim import simulate

    target = override_target("tpu_like", {"memory.sram.holds": ["activations"], "compute.dataflow": dataflow})
    cycles, pe_cycles, energy, seconds, traffic = 0.0, 0.0, {}, 0.0, {}
    for i, (_, m, k, n) in enumerate(gemms):
        module = parse_module(GEMM_IR % {"m": m, "k": k, "n": n})
        w = module.weights["w"]
        w.data = np.random.default_rng(i).standard_normal(w.type.shape).astype(np.float32)
        w.hash = content_hash(w.data)
        t0 = time.perf_counter()
        PassManager(parse_pipeline("share,quantize{format=int8}")).run(module)
        plan_module(module, target)
        allocate(module, target, default_workload(module.graphs), spill=True)
        sim = simulate(lower(module, target, "t"), target)
        seconds += time.perf_counter() - t0
        cycles += sim.cycles
        pe_cycles += sim.busy.get("pe", 0.0)
        for comp, pj in sim.energy.items():
            energy[comp] = energy.get(comp, 0.0) + pj
        for lvl, (rd, wr) in sim.traffic.items():
            r0, w0 = traffic.get(lvl, (0.0, 0.0))
            traffic[lvl] = (r0 + rd, w0 + wr)
    return {"cycles": cycles, "pe_cycles": pe_cycles, "energy_pj": energy, "traffic": traffic, "seconds": seconds}


# ---------------------------------------------------------------- report

def _diff(ours: float, theirs: float) -> str:
    return f"{(ours - theirs) / theirs * 100:+.1f} %" if theirs else "-"


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + \
        ["| " + " | ".join(r) + " |" for r in rows]


def _level_energy(energy: dict[str, float]) -> dict[str, float]:
    """Energy of either tool in the same five columns (pJ)."""
    out = {"MAC": 0.0, "register files": 0.0, "SRAM": 0.0, "DRAM": 0.0}
    for comp, pj in energy.items():
        if comp.startswith("leakage:"):
            continue
        if comp in ("pe", "mac"):
            out["MAC"] += pj
        elif comp.startswith("rf_"):
            out["register files"] += pj
        elif comp.startswith("sram"):
            out["SRAM"] += pj
        elif comp == "dram":
            out["DRAM"] += pj
        else:
            out.setdefault(comp, 0.0)
            out[comp] += pj
    out["total"] = sum(out.values())
    return out


def report(results: dict) -> list[str]:
    lines = ["### Cycles on tpu_like (weights streamed from DRAM)", ""]
    rows = []
    for wl in WORKLOADS:
        r = results[wl]
        ours = r["aalbert"]["cycles"]
        zr, zs = r.get("zigzag:resident", {}), r.get("zigzag:stock", {})
        rows.append([wl, _n(ours),
                     _n(zr["cycles"]) if "cycles" in zr else zr.get("error", "-"), _diff(ours, zr.get("cycles", 0)),
                     _n(zs["cycles"]) if "cycles" in zs else zs.get("error", "-"), _diff(ours, zs.get("cycles", 0))])
    lines += _table(["workload", "aalbert", "ZigZag, activations in SRAM", "aalbert vs it",
                     "ZigZag stock (activations via DRAM)", "aalbert vs it"], rows)
    lines += ["", "ZigZag's cycles split: compute with stalls / input onloading / output offloading.", ""]
    rows = []
    for wl in WORKLOADS:
        for variant in ("resident", "stock"):
            z = results[wl].get(f"zigzag:{variant}", {})
            if "cycles" in z:
                rows.append([wl, variant, _n(z["ideal_cycles"]), _n(z["compute_and_stall_cycles"]),
                             _n(z["onload_cycles"]), _n(z["offload_cycles"])])
    lines += _table(["workload", "ZigZag hardware", "ideal", "compute + stalls", "onloading", "offloading"], rows)
    lines += ["", "### Energy by memory level (nJ, dynamic; neither tool charges leakage here)", ""]
    rows = []
    for wl in WORKLOADS:
        for tool in ("aalbert", "zigzag:resident", "zigzag:stock"):
            r = results[wl].get(tool, {})
            if "energy_pj" not in r:
                continue
            e = _level_energy(r["energy_pj"])
            rows.append([wl, tool] + [f"{e[k] / 1e3:,.1f}" for k in ("MAC", "register files", "SRAM", "DRAM",
                                                                         "total")])
    lines += _table(["workload", "tool", "MAC", "register files", "SRAM", "DRAM", "total"], rows)
    lines += ["", "### PE-array cycles per dataflow (ideal memory) against SCALE-Sim", ""]
    rows = []
    for wl in WORKLOADS:
        for df, ours_key in (("ws", "aalbert:ws"), ("os", "aalbert:os"), ("is", None)):
            s = results[wl].get(f"scalesim:{df}", {})
            ours = results[wl][ours_key]["pe_cycles"] if ours_key else None
            theirs = s.get("cycles")
            rows.append([wl, df, _n(ours) if ours is not None else "not modelled",
                         _n(theirs) if theirs is not None else s.get("error", "-"),
                         _diff(ours, theirs) if ours is not None and theirs else "-"])
    lines += _table(["workload", "dataflow", "aalbert", "SCALE-Sim", "aalbert vs it"], rows)
    lines += ["", "### Wall time of each tool (s, this machine)", ""]
    rows = []
    for wl in WORKLOADS:
        r = results[wl]
        rows.append([wl] + [f"{r[k]['seconds']:.2f}" if "seconds" in r.get(k, {}) else "-"
                            for k in ("aalbert", "zigzag:resident", "zigzag:stock", "scalesim:ws")])
    lines += _table(["workload", "aalbert", "ZigZag (activations in SRAM)", "ZigZag stock", "SCALE-Sim ws"], rows)
    versions = sorted({f"{tool.split(':')[0]} {r['version']}" for wl in WORKLOADS
                       for tool, r in results[wl].items() if "version" in r})
    if versions:
        lines += ["", "Peer versions: " + ", ".join(versions) + "."]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", default=sys.executable,
                    help="Python of the environment where zigzag-dse and scalesim are installed (default: this one)")
    ap.add_argument("--skip", action="append", default=[], choices=["zigzag", "scalesim"],
                    help="leave a peer out (SCALE-Sim takes minutes on the encoder layer)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed to each peer run")
    ap.add_argument("--markdown", metavar="PATH", help="also write the tables to PATH (markdown)")
    ap.add_argument("--json", metavar="PATH", help="also write every figure to PATH (JSON)")
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        tool, wl, variant = args.child
        fn = {"zigzag": zigzag_child, "scalesim": scalesim_child}[tool]
        print(json.dumps(fn(WORKLOADS[wl], variant)))
        return 0

    problem = missing_peers(args.peer_python, [t for t in ("zigzag", "scalesim") if t not in args.skip])
    if problem:
        print(f"benchmarks/peers.py: error: {problem}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    results: dict[str, dict] = {}
    for wl, gemms in WORKLOADS.items():
        r = results[wl] = {}
        r["aalbert"] = r["aalbert:ws"] = aalbert(gemms, "weight_stationary")
        r["aalbert:os"] = aalbert(gemms, "output_stationary")
        print(f"{wl}: aalbert {r['aalbert']['cycles']:,.0f} cycles", file=sys.stderr)
        runs = []
        if "zigzag" not in args.skip:
            runs += [("zigzag", "resident"), ("zigzag", "stock")]
        if "scalesim" not in args.skip:
            runs += [("scalesim", df) for df in ("ws", "os", "is")]
        for tool, variant in runs:
            r[f"{tool}:{variant}"] = out = run_peer(args.peer_python, tool, wl, variant, args.timeout)
            shown = f"{out['cycles']:,.0f} cycles in {out['seconds']:.1f} s" if "cycles" in out else out["error"]
            print(f"{wl}: {tool} {variant}: {shown}", file=sys.stderr)
    lines = report(results)
    print("\n".join(lines))
    if args.markdown:
        _write(args.markdown, "\n".join(lines) + "\n")
    if args.json:
        _write(args.json, json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


def _write(path: str, text: str) -> None:
    from aalbert.ir.fileio import atomic_writer
    with atomic_writer(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
