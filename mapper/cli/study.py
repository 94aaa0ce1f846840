"""aalbert-study: ALBERT vs adapter-ALBERT across task counts and memory architectures."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from aalbert.errors import OptionError
from aalbert.limits import check_bytes
from aalbert.mapper.cli.common import (
    ArgumentParser,
    add_budget_arg,
    add_quiet_arg,
    declare_files,
    main_wrapper,
    positive_int,
    progress_bar,
)
from aalbert.mapper.study.grid import (
    RESOLVE_N,
    StudyConfig,
    accounting_rows,
    accounting_steps,
    configurations,
    exit_configurations,
    model_bytes,
    run_exits,
    run_study,
    stated_exits,
)
from aalbert.mapper.study.workers import Workers, default_jobs

DESCRIPTION = """\
Compile, place and simulate ALBERT fine-tuned per task and adapter-ALBERT for
1..N tasks on each memory architecture (the fixed chips, and chips sized to
each configuration), and write the comparison: study.csv, study.md (tables)
and figures (PNG and SVG) into the output directory. --sensitivity also
samples every uncertain input together by re-pricing the compiled
configurations (Sobol indices with their intervals and the fraction of the
joint distribution in which each conclusion holds: sensitivity_joint.csv,
sensitivity_holds.csv), with --resolve N compiles every configuration of
N of those samples again at their prices and workload to measure what
re-pricing misses (sensitivity_resolved.csv; docs/study's run uses 16),
draws the deployment map (deployment_map.csv and figure: the winning chips
and the energy ratio over inferences per power-up and task count), and
reruns the most-tasks configurations with each structural input varied alone
(sensitivity.csv, the tornado figure).
--early-exit adds early exit and DVFS as a dimension: the most-tasks
configurations again with an exit classifier after every layer, where
sentences leave as a workload file states (--exits; by default EdgeBERT's
SST-2 exits and a 100 ms latency target), under every policy (study.md's
early-exit tables, study_early_exit.png).

--family lora-decoder runs the decoder study instead: a Llama-style decoder
(int8, examples/llama_ir.py) with 1..N LoRA adapters (--adapters), each
LoRA mode (--lora), on the fixed chips with a DRAM and the sized
architectures with the KV cache sized on chip and left off it: energy per
token, TPOT, TTFT, area, where the KV cache and the adapters live
(study_decoder.csv, study_decoder.md, study_decoder.png and .svg); with
--sensitivity, also its joint sensitivity (prices and the decoder's workload
sampled together, --sensitivity-base: the Saltelli base) and deployment map
(LoRA mode and chip over generated tokens and adapters), re-priced from each
configuration's counts.
"""

ENCODER_ONLY = ("--tasks", "--families", "--policies", "--size", "--seq-len", "--fixed-tasks", "--resolve",
                "--no-accounting", "--early-exit", "--exits", "--exit-requests")
DECODER_ONLY = ("--adapters", "--lora", "--decoder-size", "--sensitivity-base")


SENSITIVITY_FILES = ("sensitivity.csv", "sensitivity_joint.csv", "sensitivity_holds.csv", "deployment_map.csv")
DECODER_SENSITIVITY_FILES = SENSITIVITY_FILES[1:]
RESOLVED_FILE = "sensitivity_resolved.csv"
TASK_COUNT_BYTES = 4096  # what one task count holds in a study, at least: its number and its table cells


def _tasks(text: str) -> list[int]:
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            check_bytes(TASK_COUNT_BYTES * (hi - lo + 1), f"--tasks {text}: a study of {hi - lo + 1:,} task counts")
            values = list(range(lo, hi + 1))
        else:
            values = sorted({int(x) for x in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a range like 1-8 or a list like 1,2,8, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"task counts must be >= 1, got {text!r}")
    return values


def _resolve(text: str) -> int:
    from aalbert.mapper.study.joint import BASE_N

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of samples, got {text!r}") from None
    if not 0 <= n <= BASE_N:
        raise argparse.ArgumentTypeError(f"expected 0 to {BASE_N} samples (the joint design's base), got {n}")
    return n


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return names


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="aalbert-study", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d = StudyConfig()
    p.add_argument("--tasks", type=_tasks, default=d.tasks, help="task counts, e.g. 1-8 or 1,4,8 (default: 1-8)")
    p.add_argument("--families", type=_names, default=d.families, help="adapter-albert,albert (default: both)")
    p.add_argument("--targets", type=_names, default=d.targets,
                   help="fixed chips (default: edge_accel,edge_accel_sram,edge_accel_dram)")
    p.add_argument("--policies", type=_names, default=d.policies, help="compression policies (default: edgebert)")
    p.add_argument("--size", choices=("base", "tiny"), default=d.size, help="model size (default: base)")
    p.add_argument("--seq-len", type=positive_int, default=d.seq_len, help="sequence length (default: 128)")
    p.add_argument("--requests", type=positive_int, default=d.requests,
                   help="requests in each configuration's stream (default: 50)")
    p.add_argument("--fixed-tasks", action="store_true",
                   help="task-specific weights never change after deployment (may then live in RRAM)")
    p.add_argument("--no-sized", action="store_true", help="skip the chips sized to each configuration")
    p.add_argument("--sensitivity", action="store_true",
                   help="also vary every uncertain input over its sourced range (slower)")
    p.add_argument("--resolve", type=_resolve, metavar="N",
                   help=f"with --sensitivity: compile every configuration of N samples of the joint design again at "
                        f"the sample's prices and workload, against re-pricing ({RESOLVED_FILE}; default: 0, "
                        f"none; {RESOLVE_N} doubles the run's time)")
    p.add_argument("--no-accounting", action="store_true", help="skip the model-side parameter table")
    p.add_argument("--early-exit", action="store_true",
                   help="also the most-tasks configurations with off-ramps, under every early-exit and DVFS policy")
    p.add_argument("--exits", metavar="FILE",
                   help="with --early-exit: a workload file ([exits] and latency_target_ms) stating where sentences "
                        "leave (default: EdgeBERT's SST-2 exits, examples/workloads/edgebert_sst2.toml)")
    p.add_argument("--exit-requests", type=positive_int, default=d.exit_requests, metavar="N",
                   help=f"with --early-exit: requests in each early-exit stream (default: {d.exit_requests:,}; "
                        "fewer make its percentiles coarser)")
    p.add_argument("--out", type=Path, default=Path("study"), help="output directory (default: study)")
    p.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help="worker processes for the configurations (default: the cores available; fewer when the "
                        "memory budget cannot hold that many models at once); the outputs do not depend on it")
    p.add_argument("--family", choices=("encoders", "lora-decoder"), default="encoders",
                   help="encoders: ALBERT and adapter-ALBERT (default); lora-decoder: the decoder study")
    p.add_argument("--adapters", type=_tasks, help="lora-decoder: numbers of LoRA adapters (default: 1-8)")
    p.add_argument("--lora", type=_names, help="lora-decoder: LoRA modes (default: unmerged,merged,merge-on-switch)")
    p.add_argument("--decoder-size", choices=("study", "small"),
                   help="lora-decoder: study (8 layers, hidden 192; the default) or small (2 layers, hidden 64)")
    p.add_argument("--sensitivity-base", type=positive_int,
                   help="lora-decoder with --sensitivity: the Saltelli base sample, a power of two (default: 512)")
    add_quiet_arg(p)
    add_budget_arg(p)
    return p


def _given(argv: list[str], options: tuple[str, ...]) -> str | None:
    """The first of `options` the command line gives, if any."""
    for a in argv:
        name = a.split("=", 1)[0]
        if name in options:
            return name
    return None


def command(argv: list[str]) -> str:
    """The command line a study's outputs name, without what does not change them: the output directory,
    --quiet, --max-memory and --jobs."""
    args, skip = [], False
    for a in map(str, argv):
        if skip:
            skip = False
            continue
        if a in ("--out", "--max-memory", "--jobs"):
            skip = True
            continue
        if not a.startswith(("--out=", "--max-memory=", "--jobs=")) and a != "--quiet":
            args.append(a)
    return " ".join(["aalbert-study"] + args)


def _check(args, argv: list[str]) -> None:
    """The encoder study's options, each alone and together (OptionError names the first that is wrong)."""
    from aalbert.examples.config import FAMILIES
    from aalbert.passes.compress import load_policy
    from aalbert.targets.hardware.spec import load_target

    for f in args.families:
        if f not in FAMILIES:
            raise OptionError(f"unknown family '{f}' (known: {', '.join(FAMILIES)})")
    for t in args.targets:
        load_target(t)
    for p in args.policies:
        load_policy(p)
    if args.out.exists() and not args.out.is_dir():
        raise OptionError(f"--out {args.out}: exists and is not a directory")
    if args.exits and not args.early_exit:
        raise OptionError("--exits states where sentences leave for the early-exit configurations: add --early-exit")
    if _given(argv, ("--exit-requests",)) and not args.early_exit:
        raise OptionError("--exit-requests sets the length of the early-exit streams: add --early-exit")
    if args.resolve is not None and not args.sensitivity:
        raise OptionError("--resolve compiles samples of the joint sensitivity again: add --sensitivity")


def _main(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    wrong = _given(argv, ENCODER_ONLY if args.family == "lora-decoder" else DECODER_ONLY)
    if wrong is not None:
        raise OptionError(f"{wrong} does not apply to --family {args.family}")
    if args.family == "lora-decoder":
        return _decoder(args, argv)
    _check(args, argv)
    resolve = (args.resolve or 0) if args.sensitivity else 0
    outputs = ("study.csv", "study.md") + (SENSITIVITY_FILES if args.sensitivity else ()) + (
        (RESOLVED_FILE,) if resolve else ())
    declare_files([p for p in args.targets + args.policies + [args.exits or ""] if Path(p).suffix == ".toml"],
                  [args.out / name for name in outputs], "study")
    sized = not args.no_sized
    if args.sensitivity and not (sized and set(args.families) == {"adapter-albert", "albert"}):
        raise OptionError("--sensitivity compares both families on every chip: drop --no-sized and --families")
    cfg = StudyConfig(args.tasks, args.families, args.targets, args.policies, args.size, args.seq_len,
                      args.requests, args.fixed_tasks, not args.no_accounting, sized, sensitivity=args.sensitivity,
                      resolve=resolve, early_exit=args.early_exit, exits=args.exits, exit_requests=args.exit_requests)
    if cfg.early_exit:
        stated_exits(cfg)
    start = time.perf_counter()
    from aalbert.mapper.study.early_exit import exit_headline
    from aalbert.mapper.study.report import Findings, headline, write_outputs
    from aalbert.mapper.study.sensitivity import VARIATIONS

    per_task_count = configurations(cfg) // len(cfg.tasks)
    steps = configurations(cfg) + exit_configurations(cfg) + (
        (len(VARIATIONS) + cfg.resolve) * per_task_count + 1 if cfg.sensitivity else 0)
    with progress_bar(steps + accounting_steps(cfg) + 1, "configurations", "step", args.quiet) as bar, \
            Workers(args.jobs, model_bytes(cfg)) as workers:
        extra: list[str] | None = None
        paths: list[Path] = []
        srows: list[dict] = []
        if cfg.sensitivity:
            rows, srows, extra, paths = _sensitivity(cfg, bar, workers, args.out)
        else:
            rows = run_study(cfg, bar, workers=workers)
        if cfg.early_exit:
            bar.set_description("early exit and DVFS")
        exit_rows = run_exits(cfg, bar, workers) if cfg.early_exit else []
        bar.set_description("parameter accounting")
        accounting = accounting_rows(cfg, bar, workers)
        bar.set_description("tables and figures")
        paths = write_outputs(Findings(rows, accounting, extra, exit_rows), cfg, args.out, command(argv)) + paths
        bar.update(1)
    print("\n".join(headline(rows, cfg, cfg.policies[0])).rstrip())
    if exit_rows:
        print()
        print("\n".join(exit_headline(rows, exit_rows, cfg, cfg.policies[0])).rstrip())
    if extra:
        print()
        print("\n".join(line for line in extra if line.startswith("- ")))
    print()
    configs = len(rows) + len(exit_rows) + (
        len(srows) - sum(r["tasks"] == max(cfg.tasks) for r in rows) if cfg.sensitivity else 0)
    print(f"{configs} configurations in {time.perf_counter() - start:.0f} s; wrote "
          + ", ".join(str(p) for p in paths))
    return 0


def _decoder(args, argv: list[str]) -> int:
    """The decoder study: its grid on the workers, its CSV, markdown and figure."""
    from aalbert.mapper.study import decoder
    from aalbert.mapper.study.joint import BASE_N
    from aalbert.passes.lora import MODES
    from aalbert.targets.hardware.spec import load_target

    modes = args.lora or list(MODES)
    for m in modes:
        if m not in MODES:
            raise OptionError(f"--lora: unknown mode '{m}' (known: {', '.join(MODES)})")
    targets = args.targets if _given(argv, ("--targets",)) else list(decoder.FIXED)
    for t in targets:
        load_target(t)
    if args.out.exists() and not args.out.is_dir():
        raise OptionError(f"--out {args.out}: exists and is not a directory")
    base = args.sensitivity_base or BASE_N
    if args.sensitivity_base and not args.sensitivity:
        raise OptionError("--sensitivity-base sets the joint sensitivity's sample: add --sensitivity")
    if base < 2 or base & (base - 1):
        raise OptionError(f"--sensitivity-base {base}: the Saltelli base must be a power of two, at least 2")
    if args.sensitivity and args.no_sized:
        raise OptionError("--sensitivity compares the KV cache on and off the sized chips: drop --no-sized")
    if args.sensitivity and not {"unmerged", "merged"} <= set(modes):
        raise OptionError("--sensitivity compares unmerged with merged LoRA: give both to --lora")
    cfg = decoder.DecoderStudyConfig(args.adapters or list(range(1, 9)), targets, modes, args.decoder_size or "study",
                                     args.requests if _given(argv, ("--requests",)) else 20, not args.no_sized)
    outputs = ("study_decoder.csv", "study_decoder.md") + (DECODER_SENSITIVITY_FILES if args.sensitivity else ())
    declare_files([t for t in targets if Path(t).suffix == ".toml"], [args.out / n for n in outputs], "study")
    start = time.perf_counter()
    configs = decoder.configurations(cfg)
    extra: list[str] = []
    with progress_bar(len(configs) + 1 + args.sensitivity, "configurations", "step", args.quiet) as bar, \
            Workers(args.jobs, 0) as workers:
        paths: list[Path] = []
        if args.sensitivity:
            pairs = decoder.run(cfg, bar, workers, decoder.counted_row)
            rows = [r for r, _ in pairs]
            bar.set_description("joint sensitivity")
            extra, paths = decoder_joint_outputs(rows, [c for _, c in pairs], cfg, args.out, base)
            del pairs
            bar.update(1)
        else:
            rows = decoder.run(cfg, bar, workers)
        bar.set_description("tables and figures")
        paths = decoder.write_outputs(rows, cfg, args.out, command(argv), extra) + paths
        bar.update(1)
    print("\n".join(decoder.headline(rows, cfg)))
    if extra:
        print()
        print("\n".join(line for line in extra if line.startswith("- ")))
    print()
    print(f"{len(rows)} configurations in {time.perf_counter() - start:.0f} s; wrote "
          + ", ".join(str(p) for p in paths))
    return 0


def _sensitivity(cfg, bar, workers, out: Path) -> tuple[list[dict], list[dict], list[str], list[Path]]:
    """The study's rows with every configuration's counts, the joint analysis and deployment map from them, then
    the structural variations one at a time: (rows, variation rows, study.md lines, files written)."""
    from aalbert.mapper.study.configuration import counted_row
    from aalbert.mapper.study.report import csv_text, layout_noise
    from aalbert.mapper.study.sensitivity import run_sensitivity, sensitivity_lines, summary, tornado
    from aalbert.outputs import atomic_writer

    pairs = run_study(cfg, bar, workers=workers, job=counted_row)
    rows = [r for r, _ in pairs]
    bar.set_description("joint sensitivity")
    extra, paths = joint_outputs(rows, [c for _, c in pairs], cfg, out, workers, bar)
    del pairs
    bar.update(1)
    bar.set_description("sensitivity")  # the same models as the study's most tasks, which the workers hold
    srows = run_sensitivity(cfg, rows, bar, workers)
    entries = summary(srows, cfg.policies[0])
    paths += tornado(entries, out / "sensitivity_tornado")
    with atomic_writer(out / "sensitivity.csv") as f:
        f.write(csv_text(srows).encode())
    paths.append(out / "sensitivity.csv")
    margin = layout_noise(rows, cfg, cfg.policies[0])
    return rows, srows, extra + sensitivity_lines(entries, "sensitivity_tornado.png", margin), paths


def decoder_joint_outputs(rows: list[dict], counted: list[dict], cfg, out: Path,
                          base: int) -> tuple[list[str], list[Path]]:
    """The decoder study's joint analysis (Saltelli base `base`) and deployment map: their study_decoder.md
    sections, and the files written (CSVs, the map's figure)."""
    from aalbert.mapper.study import decoder_joint, decoder_map
    from aalbert.mapper.study.report import csv_text
    from aalbert.mapper.study.sensitivity import JOINT_COLUMNS, holds_rows, joint_rows
    from aalbert.outputs import atomic_writer, make_dir

    configs = decoder_joint.compiled(rows, counted)
    if not configs:
        raise OptionError("--sensitivity: no configuration of the decoder study was placed")
    params = decoder_joint.parameters(configs, cfg.shape.prompt, cfg.shape.generated)
    outcome, found = decoder_joint.run(configs, params, base)
    concl = decoder_joint.conclusions(outcome)
    builtin = decoder_joint.builtin_quantities(configs, params)
    cells = decoder_map.decoder_map(configs, params)
    make_dir(out)
    paths = decoder_map.map_figure(cells, out / "deployment_map")
    tables = (("sensitivity_joint.csv", joint_rows(found)), ("sensitivity_holds.csv", holds_rows(concl, builtin)),
              ("deployment_map.csv", decoder_map.map_rows(cells)))
    for name, data in tables:
        with atomic_writer(out / name) as f:
            f.write(csv_text(data, JOINT_COLUMNS if name == "sensitivity_joint.csv" else ()).encode())
        paths.append(out / name)
    lines = decoder_joint.lines(params, found, concl, builtin, (base, len(outcome.x["adapters"])),
                                decoder_joint.deviation(configs, params))
    return lines + decoder_map.map_lines(cells, "deployment_map.png"), paths


def joint_outputs(rows: list[dict], counted: list[dict], cfg, out: Path, workers=None,
                  progress=None) -> tuple[list[str], list[Path]]:
    """The joint analysis, its re-solved samples (`cfg.resolve` of them, compiled again on `workers`) and the
    deployment map of the study's compiled configurations: their study.md lines, and the files written (CSVs, the
    map's figure)."""
    from aalbert.mapper.study import deployment, joint, resolve
    from aalbert.mapper.study.grid import configurations_of
    from aalbert.mapper.study.report import csv_text, layout_noise
    from aalbert.mapper.study.sensitivity import JOINT_COLUMNS, holds_rows, joint_lines, joint_rows
    from aalbert.outputs import atomic_writer, make_dir

    policy = cfg.policies[0]
    keep = [(r, c, s) for r, c, s in zip(rows, counted, configurations_of(cfg)) if r["policy"] == policy]
    configs = joint.compiled([r for r, _, _ in keep], [c for _, c, _ in keep])
    outcome, found = joint.run(configs)
    params = outcome.params
    margin = layout_noise(rows, cfg, policy)
    concl = joint.conclusions(outcome, margin)
    samples = resolve.run(configs, [s for _, _, s in keep], outcome, cfg.resolve, workers, progress) \
        if cfg.resolve else []
    builtin = joint.builtin_quantities(configs, params)
    exclude = () if cfg.fixed_tasks else ("rram_sram_fixed",)  # task weights change in the field
    cells = deployment.deployment_map(configs, params, exclude)
    make_dir(out)
    paths = deployment.map_figure(cells, out / "deployment_map")
    tables = [("sensitivity_joint.csv", joint_rows(found)), ("sensitivity_holds.csv", holds_rows(concl, builtin)),
              ("deployment_map.csv", deployment.map_rows(cells))]
    if cfg.resolve:
        tables.append((RESOLVED_FILE, resolve.rows(samples, margin)))
    for name, data in tables:
        with atomic_writer(out / name) as f:
            f.write(csv_text(data, JOINT_COLUMNS if name == "sensitivity_joint.csv" else ()).encode())
        paths.append(out / name)
    lines = joint_lines(params, found, concl, builtin, (joint.BASE_N, len(outcome.x["tasks"])), margin)
    if cfg.resolve:
        notes = resolve.caveats(samples, margin)
        lines = resolve.with_caveats(lines, concl, notes) + resolve.lines(samples, margin, cfg.resolve, RESOLVED_FILE)
    return lines + deployment.map_lines(cells, "deployment_map.png", exclude), paths


main = main_wrapper("aalbert-study", _main)


if __name__ == "__main__":
    sys.exit(main())
