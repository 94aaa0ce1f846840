"""Cross-check with peer tools: ZigZag and SCALE-Sim on the same hardware as aalbert.

    python benchmarks/peers.py                                   # aalbert, and peers importable here
    python benchmarks/peers.py --peer-python /path/to/venv/bin/python --markdown docs/peers-figures.md

The peers are optional extras, not dependencies of aalbert: they may live in
their own environment (SCALE-Sim wants numpy < 2.3), which `--peer-python`
names. This script runs them there in a child process that imports nothing of
aalbert, and runs aalbert here.

Workloads, 8-bit operands (rows x in x out): one 128x768x768 GEMM, the four
weight GEMMs of one BERT-base encoder layer at sequence 128 (QKV 768->2304,
attention output 768->768, FFN 768->3072 and 3072->768), and three GEMMs of
other aspect ratios that fit the 2 MB SRAM: 256x2048x1024, 64x4096x1024,
128x128x3072.

Hardware: ZigZag's `tpu_like` (a 32x32 weight-stationary array, 128-byte
weight register files and 2-byte output registers per PE, 2 MB SRAM, DRAM at
64 bit/cycle), which is aalbert's built-in `tpu_like`. ZigZag's file keeps
weights only in DRAM and the register files, so aalbert runs with its SRAM
restricted to activations, and ZigZag with a variant whose activations live in
the SRAM as aalbert's do (`resident`); its stock file, where every layer also
loads its input from DRAM and stores its output there, runs once more for
reference. Both tools search their mappings for least energy and for least
latency. SCALE-Sim gives the array's compute cycles for each dataflow (ideal
bandwidth), against aalbert's array model of the same dataflow.
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
LAYER = [("qkv", SEQ, 768, 2304), ("attn_out", SEQ, 768, 768), ("ffn_in", SEQ, 768, 3072),
         ("ffn_out", SEQ, 3072, 768)]
WORKLOADS = {"128x768x768 GEMM": [("gemm", SEQ, 768, 768)], "BERT-base layer (4 GEMMs)": LAYER,
             "256x2048x1024 GEMM": [("gemm", 256, 2048, 1024)], "64x4096x1024 GEMM": [("gemm", 64, 4096, 1024)],
             "128x128x3072 GEMM": [("gemm", 128, 128, 3072)]}
SCALESIM_WORKLOADS = ("128x768x768 GEMM", "BERT-base layer (4 GEMMs)")
OBJECTIVES = ("energy", "latency")
LEVELS = ("MAC", "register files", "SRAM", "DRAM", "total")


# ---------------------------------------------------------------- peer children (no aalbert imports)

def zigzag_child(gemms: list, variant: str, opt: str) -> dict:
    """ZigZag on tpu_like: cycles and energy per memory level, summed over the GEMMs, and its mappings."""
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
                                                     opt=opt, dump_folder=str(Path(tmp) / "out"),
                                                     loma_show_progress_bar=False)
        seconds = time.perf_counter() - t0
    layers = [c for c, _ in cmes[0][1]]
    energy: dict[str, float] = {"mac": sum(c.mac_energy for c in layers)}
    for c in layers:
        for op, per_level in c.mem_energy_breakdown.items():
            mem_op = c.memory_operand_links.layer_to_mem_op(op)
            levels = c.accelerator.memory_hierarchy.get_memory_levels(mem_op=mem_op)
            for level, pj in zip(levels, per_level):
                energy[level.name] = energy.get(level.name, 0.0) + pj
    return {"cycles": sum(c.latency_total2 for c in layers), "energy_pj": energy, "seconds": seconds,
            "mappings": [str(c.temporal_mapping) for c in layers], "version": _version("zigzag-dse")}


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


def run_peer(python: str, args: list[str], timeout: float) -> dict:
    """One peer run in a child process; {"error": ...} when the tool is missing or fails."""
    try:
        done = subprocess.run([python, __file__, "--child", *args], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- aalbert

def aalbert(gemms: list, objective: str) -> dict:
    """aalbert on tpu_like with weights in DRAM and activations in SRAM, summed over the GEMMs: the searched
    mappings' cycles and energy as simulated, and the search's own time (uncached)."""
    import numpy as np

    from aalbert.examples.gemm import gemm_ir
    from aalbert.ir.module import content_hash
    from aalbert.ir.parser import parse_module
    from aalbert.mapper.study.evaluate import override_target
    from aalbert.passes.allocate import allocate
    from aalbert.passes.allocation.problem import AllocatorOptions
    from aalbert.passes.base import PassManager, parse_pipeline
    from aalbert.passes.plan_activations import plan_module
    from aalbert.targets.codegen.lower import lower
    from aalbert.targets.mapping import arch_of, gemm_of, search
    from aalbert.targets.mapping.search import clear_cache
    from aalbert.targets.sim.timing import simulate
    from aalbert.targets.sim.workload import default_workload

    target = override_target("tpu_like", {"memory.sram.holds": ["activations"]})
    out = {"cycles": 0.0, "energy_pj": {}, "seconds": 0.0, "search_seconds": 0.0, "mappings": []}
    for i, (_, m, k, n) in enumerate(gemms):
        module = parse_module(gemm_ir(m, k, n))
        w = module.weights["w"]
        w.data = np.random.default_rng(i).standard_normal(w.type.shape).astype(np.float32)
        w.hash = content_hash(w.data)
        t0 = time.perf_counter()
        PassManager(parse_pipeline("share,quantize{format=int8}")).run(module)
        plan_module(module, target)
        allocate(module, target, default_workload(module.graphs), AllocatorOptions(spill=True, objective=objective))
        sim = simulate(lower(module, target, "t"), target)
        out["seconds"] += time.perf_counter() - t0
        node = module.graphs["t"].nodes[1]
        out["mappings"].append(node.mapping.text())
        g = gemm_of(module, node, target, module.graphs["t"].arena.level)
        clear_cache()
        t0 = time.perf_counter()
        search(g, arch_of(target), objective)
        out["search_seconds"] += time.perf_counter() - t0
        out["cycles"] += sim.cycles
        for comp, pj in sim.energy.items():
            out["energy_pj"][comp] = out["energy_pj"].get(comp, 0.0) + pj
    return out


def array_cycles(gemms: list, dataflow: str) -> float:
    """aalbert's array model of a dataflow on a 32x32 array, one tile at a time, memory ideal."""
    from aalbert.targets.codegen.program import Instr
    from aalbert.targets.hardware.spec import load_target
    from aalbert.targets.sim.timing import mapped_cycles

    target = load_target("tpu_like")
    return sum(mapped_cycles(Instr(0, "gemm", "pe", (), 0, "linear", "", m=m, k=k, n=n, role=f"{dataflow}.buf"),
                             target) + 64 for _, m, k, n in gemms)


# ---------------------------------------------------------------- report

def _diff(ours: float, theirs: float) -> str:
    return f"{(ours - theirs) / theirs * 100:+.1f} %" if theirs else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + \
        ["| " + " | ".join(r) + " |" for r in rows]


def level_energy(energy: dict[str, float]) -> dict[str, float]:
    """Dynamic energy of either tool in the same columns (pJ)."""
    out = {k: 0.0 for k in LEVELS[:-1]}
    for comp, pj in energy.items():
        if ":" in comp:  # static energy (leakage, wake-ups, DRAM background)
            continue
        key = {"pe": "MAC", "mac": "MAC", "pe_regs": "register files", "acc": "register files"}.get(comp)
        if key is None:
            key = "register files" if comp.startswith("rf_") else "SRAM" if comp.startswith("sram") else \
                "DRAM" if comp == "dram" else comp
        out[key] = out.get(key, 0.0) + pj
    out["total"] = sum(out.values())
    return out


def report(results: dict) -> list[str]:
    lines = ["### Energy, each tool's least-energy mapping (nJ, dynamic)", ""]
    rows = []
    for wl in WORKLOADS:
        ours, z = results[wl]["aalbert:energy"], results[wl].get("zigzag:resident:energy", {})
        e_ours = level_energy(ours["energy_pj"])["total"]
        e_z = level_energy(z["energy_pj"])["total"] if "energy_pj" in z else 0.0
        rows.append([wl, f"{e_ours / 1e3:,.1f}", f"{e_z / 1e3:,.1f}" if e_z else z.get("error", "-"),
                     _diff(e_ours, e_z), "yes" if e_z and e_ours <= e_z * (1 + 1e-9) else "no"])
    lines += _table(["workload", "aalbert", "ZigZag", "aalbert vs it", "at or below"], rows)
    lines += ["", "### Cycles, each tool's least-latency mapping", ""]
    rows = []
    for wl in WORKLOADS:
        ours, z = results[wl]["aalbert:latency"], results[wl].get("zigzag:resident:latency", {})
        zs = results[wl].get("zigzag:stock:latency", {})
        c_z = z.get("cycles", 0)
        rows.append([wl, f"{ours['cycles']:,.0f}", f"{c_z:,.0f}" if c_z else z.get("error", "-"),
                     _diff(ours["cycles"], c_z), "yes" if c_z and abs(ours["cycles"] - c_z) <= 0.03 * c_z else "no",
                     f"{zs['cycles']:,.0f}" if "cycles" in zs else zs.get("error", "-")])
    lines += _table(["workload", "aalbert", "ZigZag", "aalbert vs it", "within 3 %",
                     "ZigZag stock (activations via DRAM)"], rows)
    lines += ["", "### Energy by level, least-energy mappings (nJ, dynamic)", ""]
    rows = []
    for wl in WORKLOADS:
        ours = level_energy(results[wl]["aalbert:energy"]["energy_pj"])
        z = results[wl].get("zigzag:resident:energy", {})
        theirs = level_energy(z["energy_pj"]) if "energy_pj" in z else None
        rows.append([wl, "aalbert"] + [f"{ours[k] / 1e3:,.1f}" for k in LEVELS])
        if theirs:
            rows.append([wl, "ZigZag"] + [f"{theirs[k] / 1e3:,.1f}" for k in LEVELS])
            rows.append([wl, "aalbert vs it"] + [_diff(ours[k], theirs[k]) for k in LEVELS])
    lines += _table(["workload", "tool"] + list(LEVELS), rows)
    lines += ["", "### The mappings each tool chose", ""]
    rows = []
    for wl in WORKLOADS:
        for obj in OBJECTIVES:
            ours = results[wl][f"aalbert:{obj}"]["mappings"]
            z = results[wl].get(f"zigzag:resident:{obj}", {}).get("mappings", [])
            for i, mp in enumerate(ours):
                rows.append([wl if len(ours) == 1 else f"{wl}, {WORKLOADS[wl][i][0]}", obj, f"`{mp}`",
                             f"`{z[i]}`" if i < len(z) else "-"])
    lines += _table(["GEMM", "objective", "aalbert", "ZigZag (temporal mapping, innermost first)"], rows)
    lines += ["", "### Array cycles per dataflow (ideal memory) against SCALE-Sim", ""]
    rows = []
    for wl in SCALESIM_WORKLOADS:
        for df in ("ws", "os", "is"):
            s = results[wl].get(f"scalesim:{df}", {})
            ours = results[wl][f"array:{df}"]
            rows.append([wl, df, f"{ours:,.0f}", f"{s['cycles']:,.0f}" if "cycles" in s else s.get("error", "-"),
                         _diff(ours, s["cycles"]) if "cycles" in s else "-"])
    lines += _table(["workload", "dataflow", "aalbert", "SCALE-Sim", "aalbert vs it"], rows)
    lines += ["", "### Time to map (s, this machine; aalbert's search alone, uncached, against ZigZag's run)", ""]
    rows = []
    for wl in WORKLOADS:
        for obj in OBJECTIVES:
            ours = results[wl][f"aalbert:{obj}"]
            z = results[wl].get(f"zigzag:resident:{obj}", {})
            ratio = f"{z['seconds'] / ours['search_seconds']:,.0f}x" if "seconds" in z else "-"
            rows.append([wl, obj, f"{ours['search_seconds']:.3f}", f"{ours['seconds']:.2f}",
                         f"{z['seconds']:.2f}" if "seconds" in z else "-", ratio])
    lines += _table(["workload", "objective", "aalbert search", "aalbert whole flow", "ZigZag", "ZigZag / search"],
                    rows)
    versions = sorted({f"{tool.split(':')[0]} {r['version']}" for wl in WORKLOADS
                       for tool, r in results[wl].items() if isinstance(r, dict) and "version" in r})
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
    ap.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        tool, wl, *rest = args.child
        fn = {"zigzag": zigzag_child, "scalesim": scalesim_child}[tool]
        print(json.dumps(fn(WORKLOADS[wl], *rest)))
        return 0

    problem = missing_peers(args.peer_python, [t for t in ("zigzag", "scalesim") if t not in args.skip])
    if problem:
        print(f"benchmarks/peers.py: error: {problem}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    results: dict[str, dict] = {}
    for wl, gemms in WORKLOADS.items():
        r = results[wl] = {}
        for obj in OBJECTIVES:
            r[f"aalbert:{obj}"] = aalbert(gemms, obj)
        for df in ("ws", "os", "is"):
            r[f"array:{df}"] = array_cycles(gemms, df)
        print(f"{wl}: aalbert {r['aalbert:latency']['cycles']:,.0f} cycles", file=sys.stderr)
        runs = []
        if "zigzag" not in args.skip:
            runs += [(f"zigzag:resident:{obj}", ["zigzag", wl, "resident", obj]) for obj in OBJECTIVES]
            runs += [("zigzag:stock:latency", ["zigzag", wl, "stock", "latency"])]
        if "scalesim" not in args.skip and wl in SCALESIM_WORKLOADS:
            runs += [(f"scalesim:{df}", ["scalesim", wl, df]) for df in ("ws", "os", "is")]
        for key, child_args in runs:
            r[key] = out = run_peer(args.peer_python, child_args, args.timeout)
            shown = f"{out['cycles']:,.0f} cycles in {out['seconds']:.1f} s" if "cycles" in out else out["error"]
            print(f"{wl}: {key}: {shown}", file=sys.stderr)
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
