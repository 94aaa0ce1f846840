"""aalbert-sweep: a design-space sweep from a TOML file; cached, resumable, parallel, Dask-ready."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aalbert.errors import OptionError
from aalbert.mapper.cli.common import (
    ArgumentParser,
    add_budget_arg,
    add_quiet_arg,
    declare_files,
    main_wrapper,
    positive_int,
    progress_bar,
)
from aalbert.mapper.reports.summary import count
from aalbert.mapper.study.report import csv_text
from aalbert.mapper.study.sweep import METRICS, connect, default_cache_dir, load_sweep, pareto, run_sweep
from aalbert.mapper.study.workers import default_jobs
from aalbert.outputs import atomic_writer, make_dir

DESCRIPTION = """\
Evaluate every point of a design space (target numbers, compression, model and
workload choices; docs/sweeps.md describes the file format) and list the
Pareto front of energy, area and latency. Points are cached in the cache
directory by a hash of their inputs: run the same command again to resume an
interrupted sweep. A cache entry that is not valid (truncated, edited, a
number negative or not finite) is computed again, with a line on stderr
naming it. Writes sweep.csv, sweep.md and pareto.png/.svg into the output
directory.
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="aalbert-sweep", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="SWEEP.toml", help="the sweep file")
    p.add_argument("--out", type=Path, help="output directory (default: <config name>_sweep)")
    p.add_argument("--cache", type=Path, help=f"cache directory (default: {default_cache_dir()}, from "
                                              "$XDG_CACHE_HOME or ~/.cache)")
    p.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help="local worker processes (default: the cores available; fewer when the memory budget cannot "
                        "hold that many points at once)")
    p.add_argument("--cluster", metavar="ADDRESS", help="run the points on a Dask scheduler, e.g. tcp://host:8786")
    add_quiet_arg(p)
    add_budget_arg(p)
    return p


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    sweep = load_sweep(args.config)
    out = args.out or Path(args.config).with_suffix("").with_name(Path(args.config).stem + "_sweep")
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out}: exists and is not a directory")
    declare_files([args.config], [out / n for n in ("sweep.csv", "sweep.md", "pareto.png", "pareto.svg")], "sweep")
    cache = args.cache or default_cache_dir()
    client = connect(args.cluster) if args.cluster else None
    with progress_bar(len(sweep.points), "points", "pt", args.quiet) as bar:
        rows, computed = run_sweep(sweep, cache, args.jobs, client, bar,
                                   warn=lambda line: bar.write(f"aalbert-sweep: {line}", file=sys.stderr))
    front = pareto(rows)
    feasible = [r for r in rows if r["feasible"]]
    if not feasible:
        raise OptionError(f"{args.config}: no point of the sweep can be mapped; first reason: {rows[0]['reason']}")
    make_dir(out)
    with atomic_writer(out / "sweep.csv") as f:
        f.write(csv_text(rows).encode())
    names = list(sweep.parameters)
    lines = [f"# Sweep `{args.config}`", "", f"{len(rows)} points; Pareto front of {', '.join(METRICS)} "
             f"(all minimized): {len(front)} points."
             + (f" {count(len(rows) - len(feasible), 'point')} cannot be mapped "
                "(see the reason column of sweep.csv)." if len(feasible) < len(rows) else ""), "",
             "| " + " | ".join(names + ["energy (mJ)", "area (mm²)", "latency (ms)", "DRAM per inference (MB)",
                                         "DRAM per task switch (MB)"]) + " |",
             "|" + "---|" * len(names) + "---:|---:|---:|---:|---:|"]
    for r in sorted(front, key=lambda r: (r["energy_mj"], r["area_mm2"], r["latency_ms"])):
        lines.append("| " + " | ".join(str(r[n]) for n in names)
                     + f" | {r['energy_mj']:.3f} | {_area(r['area_mm2'])} | "
                     f"{r['latency_ms']:.2f} | {r['dram_bytes_per_inference'] / 1e6:.2f} | "
                     f"{r['dram_bytes_per_switch'] / 1e6:.2f} |")
    with atomic_writer(out / "sweep.md") as f:
        f.write(("\n".join(lines) + "\n").encode())
    from aalbert.mapper.study.plots import pareto_figure
    pareto_figure(feasible, front, out / "pareto")
    print("\n".join(lines))
    print(f"\n{count(computed, 'point')} computed, {len(rows) - computed} from the cache; wrote {out}/sweep.csv, "
          f"{out}/sweep.md, {out}/pareto.png, {out}/pareto.svg")
    return 0


def _area(mm2: float) -> str:
    return f"{mm2:.2f}" if mm2 > 0 else "no area model"


main = main_wrapper("aalbert-sweep", _main)

if __name__ == "__main__":
    sys.exit(main())
