"""aalbert-compile: import models (one ONNX or .pt2 file per task, or the
built-in example), run the pass pipeline and print the summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aalbert.errors import OptionError
from aalbert.ir.fileio import save_module
from aalbert.mapper.cli.common import (
    ArgumentParser,
    add_budget_arg,
    add_dim_args,
    add_quiet_arg,
    at_least_one,
    check_output_path,
    declare_files,
    dims_from_args,
    fraction,
    main_wrapper,
    not_finite,
    positive_int,
    progress_bar,
    settle_heap,
    sparsity,
)
from aalbert.mapper.driver import Compiled, Fidelity, Placement, Plan, Stream, Watch, compile_module
from aalbert.mapper.loading import ExampleSpec, load_example, load_files, parse_task_arg
from aalbert.mapper.reports.summary import count, shapes_compiled
from aalbert.outputs import atomic_writer, make_dir
from aalbert.passes.lora import MODES
from aalbert.passes.pipelines import DEFAULT, with_lora

if TYPE_CHECKING:
    from aalbert.passes.allocation.record import Allocation

EXAMPLE_DEFAULTS = {"example": "adapter-albert", "tasks": 8, "size": "base", "bottleneck": None, "layers": None,
                    "adapter_placement": "shared", "off_ramps": None, "task_specific": "adapters,layernorm,head"}

DESCRIPTION = """\
Compile transformer models for a heterogeneous-memory edge accelerator.

Give one ONNX file or torch.export program (.pt2, from torch.export.save)
per task (the task is named after the file, or use --task NAME=PATH); weights
that several files share are stored once.
Without files, the built-in example is compiled: adapter-ALBERT (or ALBERT
fine-tuned per task) with seeded random weights; its options (--example,
--tasks, --size, ...) are refused next to files.
--list-targets and --list-policies name what is built in; with --target,
--explain WEIGHT says why a weight is where the allocator put it.
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="aalbert-compile", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter, results=True)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="ONNX (.onnx), torch.export (.pt2) or IR (.ir) files; one task per .onnx or .pt2 file")
    p.add_argument("--task", action="append", default=[], metavar="NAME=PATH",
                   help="an .onnx or .pt2 file for task NAME")
    p.add_argument("--list-targets", action="store_true", help="list the built-in targets, then exit")
    p.add_argument("--list-policies", action="store_true", help="list the built-in compression policies, then exit")
    _add_example_args(p)
    add_dim_args(p)
    p.add_argument("-p", "--passes", default=DEFAULT, metavar="PIPELINE",
                   help=f"pass pipeline, e.g. 'fold-transposes,dce' (default: {DEFAULT})")
    p.add_argument("--lora", choices=MODES,
                   help="how LoRA pairs run: unmerged (two low-rank products beside the shared projection, as "
                        "imported), merged (each task its own copy W + B A of every adapted projection) or "
                        "merge-on-switch (one writable active copy per projection, rewritten from W, A and B "
                        "at a task switch; the summary gives what a switch costs); runs the lora pass after "
                        "the pipeline. A module without LoRA pairs is compiled unchanged, as the summary says "
                        "(default: as imported)")
    _add_compression_args(p)
    _add_target_args(p)
    p.add_argument("--dump-ir", metavar="DIR",
                   help="write the imported IR (00-input.ir), the IR after each pass (NN-<pass>.ir) "
                        "and the compiled module with its weights (module.ir + module.npz)")
    p.add_argument("--verify-each", action="store_true",
                   help="verify the IR after every pass, naming the pass that broke it (default: once, at the end)")
    add_quiet_arg(p)
    add_budget_arg(p)
    return p


def _add_example_args(p: ArgumentParser) -> None:
    ex = p.add_argument_group("built-in example (used when no models are given; refused with them)")
    ex.add_argument("--example", choices=("adapter-albert", "albert"), help="model family (default: adapter-albert)")
    ex.add_argument("--tasks", type=positive_int, help="number of GLUE tasks (default: 8)")
    ex.add_argument("--size", choices=("base", "tiny", "xxlarge"), help="model size (default: base)")
    ex.add_argument("--bottleneck", type=positive_int, help="adapter bottleneck (default: 64; 8 for tiny)")
    ex.add_argument("--layers", type=positive_int,
                    help="times ALBERT applies its shared layer (default: 12; 3 for tiny)")
    ex.add_argument("--adapter-placement", choices=("shared", "per_layer"),
                    help="one adapter pair for the repeated layer, or one per layer position (default: shared)")
    ex.add_argument("--off-ramps", nargs="?", const="classifier", choices=("classifier", "highway"),
                    help="an exit classifier after every layer but the last, for early exit: on the model's pooler "
                         "(classifier, the default) or with its own pooler, as EdgeBERT's highways (highway)")
    ex.add_argument("--task-specific", metavar="GROUPS",
                    help="adapter-ALBERT: parameter groups each task owns, from adapters, layernorm, head, "
                         "pooler, embeddings (default: adapters,layernorm,head)")


def _add_compression_args(p: ArgumentParser) -> None:
    c = p.add_argument_group("compression")
    c.add_argument("--compress", metavar="POLICY",
                   help="prune and quantize by a policy: 'edgebert' or a TOML policy file")
    c.add_argument("--quantize", metavar="FORMAT",
                   help="encode every weight in FORMAT (f16, int8, int4, afloat8, afloat<n,e>)")
    c.add_argument("--sparsity", type=sparsity, metavar="S",
                   help="magnitude-prune every matrix to sparsity S in [0, 1), stored as a bit mask")
    c.add_argument("--block", metavar="HxW", default="none",
                   help="with --sparsity: prune blocks of HxW (e.g. 16x16) instead of single elements")
    c.add_argument("--fidelity", action="store_true",
                   help="compare every task's outputs before and after compression on seeded inputs")
    c.add_argument("--samples", type=positive_int, default=8, help="inputs per task for --fidelity (default: 8)")
    c.add_argument("--activations", choices=("f32", "fixed16"), default="f32",
                   help="with --fidelity: run the compressed model's activations in f32 or EdgeBERT's "
                        "16-bit fixed point with 10 fraction bits (default: f32)")


def _add_target_args(p: ArgumentParser) -> None:
    t = p.add_argument_group("placement on a target")
    t.add_argument("--target", metavar="NAME|FILE",
                   help="place weights and activations on a target: a built-in name (edge_accel, edge_accel_sram, "
                        "edge_accel_dram, tpu_like) or a TOML file")
    t.add_argument("--workload", metavar="FILE", help="task mix, switch rate and power-ups ([workload] TOML)")
    t.add_argument("--switch-rate", type=fraction, metavar="R",
                   help="probability that an inference runs another task than the last (default: 1)")
    t.add_argument("--wakeup", type=at_least_one, metavar="N",
                   help="inferences per power-up; volatile memories start empty at each (default: 1)")
    t.add_argument("--spill", action="store_true", help="allow weights in off-chip memory when they do not fit")
    t.add_argument("--solver", choices=("auto", "ilp", "greedy"), default="auto",
                   help="integer program, greedy, or ILP unless the instance is huge (default: auto)")
    t.add_argument("--mapping", choices=("search", "fixed"), default="search",
                   help="search: map every matrix product onto the PE array by a search over dataflows, tiles, "
                        "loop orders, buffers and staging; fixed: cut every weight into column chunks of a "
                        "weight-buffer slot, as aalbert did before it searched (default: search)")
    t.add_argument("--objective", choices=("balanced", "energy", "latency", "edp"), default="balanced",
                   help="what the mapping search minimizes: energy (dynamic plus leakage), latency (cycles), "
                        "edp (their product), or balanced: the least energy among the mappings within 2 %% of "
                        "the fewest cycles (default: balanced)")
    t.add_argument("--report-json", metavar="FILE", help="write the memory map and allocation as JSON")
    t.add_argument("--emit", choices=("asm", "json"), help="write the instruction programs (with -o FILE)")
    t.add_argument("-o", "--output", metavar="FILE", help="where --emit writes")
    t.add_argument("--trace", metavar="FILE",
                   help="write a Chrome/Perfetto trace of every task's program (one process per task)")
    t.add_argument("--sim-json", metavar="FILE", help="write the simulation results as JSON")
    t.add_argument("--requests", type=int, default=100, metavar="N",
                   help="simulate a stream of N requests over the tasks (default: 100; 0: none)")
    t.add_argument("--pattern", default="round-robin", metavar="PATTERN",
                   help="round-robin, random (with the workload's mix), bursts, or a trace file of "
                        "'task [arrival seconds]' lines (default: round-robin)")
    t.add_argument("--burst", type=positive_int, default=8, help="requests per burst for --pattern bursts")
    t.add_argument("--prompt", type=positive_int, metavar="P",
                   help="decoders: prompt tokens per request (default: the prefill graph's tokens; a longer "
                        "prompt runs in chunks of them)")
    t.add_argument("--generate", type=positive_int, metavar="T",
                   help="decoders: tokens generated per request, one decode step each (default: 128, or what "
                        "the KV cache leaves after the prompt)")
    t.add_argument("--memory-map", metavar="FILE", help="draw the memory map (.png or .svg)")
    t.add_argument("--roofline", metavar="FILE",
                   help="draw the first task's roofline, per layer (.png or .svg)")
    t.add_argument("--explain", action="append", default=[], metavar="WEIGHT",
                   help="say why WEIGHT is where it is: its kind, layers, tasks, place, and what every other place "
                        "would cost per inference; WEIGHT is a symbol (@backbone.layer.query.weight), words of its "
                        "kind, layer and task ('ffn layer 2 cola'), or part of a symbol (repeatable)")


def _main(argv) -> int:
    from aalbert.passes.base import parse_pipeline

    args = build_parser().parse_args(argv)
    if args.list_targets or args.list_policies:
        sys.stdout.write(_listing(args))
        return 0
    args.passes = with_lora(args.passes, args.lora)
    dims = dims_from_args(args)
    compression = _compression(args)
    placement = _placement(args)
    # a bad pipeline fails before any import
    stages = parse_pipeline(args.passes) + compression + (placement.passes() if placement else [])
    outputs = [o for o in (args.report_json, args.memory_map, args.output, args.trace, args.sim_json,
                           args.roofline) if o]
    reads = [m for m in args.models] + [t.partition("=")[2] for t in args.task] + [
        f for f in (args.target, args.workload, args.compress, args.pattern) if f and Path(f).is_file()]
    for o in outputs:
        check_output_path(o, reads, "report")
    if len(set(outputs)) != len(outputs):
        raise OptionError("two outputs would go to the same file")
    needs_target = [f for f in ("report_json", "memory_map", "emit", "trace", "sim_json", "roofline", "explain")
                    if getattr(args, f)]
    if needs_target and not args.target:
        raise OptionError(f"--{needs_target[0].replace('_', '-')} needs --target")
    if bool(args.emit) != bool(args.output):
        raise OptionError("--emit and -o go together")
    if args.requests < 0:
        raise OptionError(f"--requests must be >= 0, got {args.requests}")
    for flag in ("memory_map", "roofline"):
        path = getattr(args, flag)
        if path and Path(path).suffix.lower() not in (".png", ".svg"):
            raise OptionError(f"--{flag.replace('_', '-')} {path}: the picture must be a .png or .svg file")
    dump_dir = Path(args.dump_ir) if args.dump_ir else None
    if dump_dir is not None:
        if dump_dir.exists() and not dump_dir.is_dir():
            raise OptionError(f"--dump-ir {dump_dir}: exists and is not a directory")
        declare_files(reads, [dump_dir / n for n in ["00-input.ir", "module.ir", "module.npz"]
                              + [f"{i:02d}-{p.name}.ir" for i, p in enumerate(stages, start=1)]], "IR dump")
    named = [(None, m) for m in args.models] + [parse_task_arg(t) for t in args.task]
    steps = 1 + len(stages) + bool(args.fidelity) + bool(placement)
    settle_heap()  # the libraries' objects; the import itself makes one object after another
    with progress_bar(steps, "importing", "step", args.quiet) as bar:
        module, title = _load(args, named, dims)
        settle_heap()

        def stage(name: str) -> None:
            bar.update(1)
            bar.set_description(name)

        plan = Plan(args.passes, compression, placement, Stream(args.requests, args.pattern, args.burst),
                    Fidelity(args.samples, args.activations) if args.fidelity else None)
        compiled = compile_module(module, title, plan, Watch(dump_dir is not None, args.verify_each, stage))
        if dump_dir is not None:
            make_dir(dump_dir)
            with atomic_writer(dump_dir / "00-input.ir") as f:
                f.write(compiled.input_text.encode())
            save_module(compiled.module, dump_dir / "module.ir")
            for name, text in compiled.dumps:
                with atomic_writer(dump_dir / name) as f:
                    f.write(text.encode())
        explained = compiled.explain(*args.explain) if args.explain else ""
        if placement is not None:
            _write_target_outputs(args, compiled)
    print(compiled.report, end="")
    if explained:
        print("\n" + explained, end="")
    if compiled.not_finite:
        return not_finite("aalbert-compile", compiled.not_finite)
    return 0


def _listing(args) -> str:
    """The built-in targets and compression policies, a line each."""
    from aalbert.mapper.reports.summary import table
    from aalbert.passes.compress import BUILTIN_POLICIES
    from aalbert.targets.hardware.spec import builtin_targets, load_target

    if args.models or args.task:
        raise OptionError("--list-targets and --list-policies take no model files")
    lines = []
    if args.list_targets:
        lines += table(["target", "description"], [[n, load_target(n).description] for n in builtin_targets()],
                       "ll")
    if args.list_policies:
        lines += [""] if lines else []
        lines += table(["policy", "what it does"], [[n, _describe(p)] for n, p in BUILTIN_POLICIES.items()], "ll")
    return "\n".join(lines) + "\n"


def _describe(policy) -> str:
    """A policy's rules in one line: 'embedding: afloat<8,3>, 60 % sparse (bitmask); ...'."""
    from aalbert.ir.encoding import KINDS

    if not policy.rules:
        return "no compression: every weight stays as it is"
    parts = []
    for r in policy.rules:
        what = "every other weight" if set(r.kinds) == set(KINDS) else ", ".join(r.kinds)
        if r.role != "any":
            what += f" ({r.role})"
        how = [str(r.format) if r.format is not None else "format kept"]
        if r.format is not None and str(r.format).startswith("int"):
            how[-1] += f" per {r.granularity}"
        if r.sparsity:
            block = f" in {r.block[0]}x{r.block[1]} blocks" if r.block else ""
            how.append(f"{100 * r.sparsity:g} % pruned{block} ({r.storage or 'bitmask'})")
        parts.append(f"{what}: {', '.join(how)}")
    return "; ".join(parts)


def _load(args, named, dims):
    """The module to compile and the summary's title line (with the shapes the graphs were compiled at)."""
    given = [k for k in EXAMPLE_DEFAULTS if getattr(args, k) is not None]
    if named:
        if args.off_ramps:
            raise OptionError("--off-ramps adds off-ramps to the built-in example; a model file brings its own "
                              "(outputs named exit_logits_<k>)")
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise OptionError(f"{flag} shapes the built-in example, which is not compiled when model files are "
                              f"given; drop {flag} (or the files)")
        module = load_files(named, dims)
        title = f"aalbert-compile: {count(len(module.graphs), 'task')} from {count(len(named), 'file')}, " \
                f"{shapes_compiled(module)}"
    else:
        if dims.named:
            raise OptionError("--dim fixes dimensions of model files; the built-in example takes --batch and "
                              "--seq-len")
        # the options as given (argparse's values are untyped) or their defaults
        opts: dict[str, Any] = {k: getattr(args, k) if getattr(args, k) is not None else v
                                for k, v in EXAMPLE_DEFAULTS.items()}
        groups = tuple(g.strip() for g in opts["task_specific"].split(",") if g.strip())
        spec = ExampleSpec(opts["example"], opts["tasks"], opts["size"], opts["bottleneck"],
                           opts["adapter_placement"], groups, layers=opts["layers"], off_ramps=opts["off_ramps"])
        module = load_example(spec, dims)
        layers = f", {spec.layers} layers" if spec.layers is not None else ""
        layers += f", {spec.off_ramps} off-ramps" if spec.off_ramps else ""
        title = f"aalbert-compile: example {spec.family} ({spec.size}{layers}, {count(spec.tasks, 'task')}), " \
                f"{shapes_compiled(module)}"
    return module, title


def _write_target_outputs(args, compiled: Compiled) -> None:
    from aalbert.mapper.reports.memory import memory_json, plot_memory_map
    from aalbert.mapper.reports.simulation import roofline_figure, sim_json
    from aalbert.targets.codegen.program import programs_asm, programs_json
    from aalbert.targets.sim.trace import traces_json

    module, target, backend = compiled.module, compiled.target, compiled.backend
    first = next(iter(module.graphs))
    if args.emit:
        body = programs_asm(backend.programs()) if args.emit == "asm" else programs_json(backend.programs())
        body = _with_stop(body, args.emit, compiled.allocation)
        with atomic_writer(args.output) as f:
            f.write(body.encode())
    if args.trace:
        with atomic_writer(args.trace) as f:
            f.write(traces_json([(backend.program(t), backend.traced(t)) for t in module.graphs]).encode())
    extra = {}
    if backend.exits is not None:
        from aalbert.mapper.reports.early_exit import exit_json
        wl = compiled.allocation.workload
        extra["early_exit"] = exit_json(backend, first, wl.inferences_per_wakeup <= 1, wl.latency_target_ms)
    if backend.generation is not None:
        from aalbert.mapper.reports.generation import generation_json
        extra["generation"] = generation_json(backend.generation, module)
    if args.sim_json:
        with atomic_writer(args.sim_json) as f:
            f.write(_with(sim_json(backend.results, backend.stream), extra, 1).encode())
    if args.report_json:
        with atomic_writer(args.report_json) as f:
            f.write(_with(memory_json(module, target, compiled.allocation), extra, 2).encode())
    if args.memory_map:
        with atomic_writer(Path(args.memory_map)) as f:
            plot_memory_map(module, target, f, Path(args.memory_map).suffix.lower()[1:])
    if args.roofline:
        with atomic_writer(Path(args.roofline)) as f:
            roofline_figure(compiled.roofline, target, f, f"roofline of one '{first}' inference on {target.name}",
                            Path(args.roofline).suffix.lower()[1:])


def _with_stop(body: str, emit: str, allocation: Allocation | None) -> str:
    """Emitted programs whose placement the allocator's integer program did not prove optimal, because it
    stopped at a limit, say which limit (a first comment line, a key of the JSON); others are left as they are."""
    if allocation is None or not allocation.solution.limit:
        return body
    s = allocation.solution
    if emit == "asm":
        return f"; placement not proven optimal: the allocator's integer program stopped at its {s.limit}, " \
               f"gap {100 * s.gap:.3g} %\n" + body
    return _with(body, {"allocation_stopped_at": s.limit}, 1)


def _with(text: str, extra: dict, indent: int) -> str:
    """A JSON report with `extra`'s sections added (the text as it is when there are none)."""
    if not extra:
        return text
    import json
    return json.dumps({**json.loads(text), **extra}, indent=indent, sort_keys=True) + "\n"


def _placement(args) -> Placement | None:
    """plan-activations and allocate, when --target is given."""
    if not args.target:
        for flag in ("workload", "switch_rate", "wakeup", "prompt", "generate"):
            if getattr(args, flag) is not None:
                raise OptionError(f"--{flag.replace('_', '-')} needs --target")
        for flag, default in (("mapping", "search"), ("objective", "balanced")):
            if getattr(args, flag) != default:
                raise OptionError(f"--{flag} needs --target")
        if args.spill:
            raise OptionError("--spill needs --target")
        return None
    switch = args.switch_rate
    if switch is None and args.pattern == "bursts" and not args.workload:  # bursts of N switch task at 1 / N
        switch = 1 / args.burst
    return Placement(args.target, args.workload, switch, args.wakeup, args.spill, args.solver, args.mapping,
                     args.objective, args.prompt, args.generate)


def _compression(args) -> list:
    """The passes that --compress, --sparsity and --quantize ask for."""
    from aalbert.passes.base import parse_pipeline

    extra = []
    if args.compress and (args.quantize or args.sparsity is not None):
        raise OptionError("--compress takes a whole policy; do not combine it with --quantize or --sparsity")
    if args.compress:
        extra.append(f"compress{{policy={args.compress}}}")
    if args.sparsity is not None:
        extra.append(f"prune{{sparsity={args.sparsity},block={args.block}}}")
    if args.quantize:
        extra.append(f"quantize{{format={args.quantize}}}")
    return parse_pipeline(",".join(extra)) if extra else []


main = main_wrapper("aalbert-compile", _main)


if __name__ == "__main__":
    sys.exit(main())
