"""aalbert-run: execute a model on inputs from an .npz (the reference interpreter)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from aalbert.errors import AalbertError, OptionError
from aalbert.ir.fileio import load_module, read_npz, write_npz
from aalbert.ir.interpreter import not_finite_origin, run, what_non_finite
from aalbert.ir.module import Module
from aalbert.mapper.cli.common import (
    ArgumentParser,
    add_budget_arg,
    add_quiet_arg,
    check_output_path,
    main_wrapper,
    not_finite,
    progress_bar,
)
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import graph_key
from aalbert.mapper.reports.explain import labelled, weights_named

DESCRIPTION = """\
Run one task of a model on numpy with aalbert's reference interpreter.

MODEL is an ONNX file or a torch.export program saved as .pt2 (one task;
its dynamic dimensions are fixed from the shapes of the inputs given), or an
IR file with its .npz sidecar of weights.
Inputs and outputs are .npz files keyed by the model's own input and output
names. Outputs that hold NaN or inf are written and printed as such, with a
line on stderr saying where the first arose (exit status 3).
With --target, a module that is already placed (an IR file from --dump-ir)
has its placement verified against the target before it runs.
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="aalbert-run", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter, results=True)
    p.add_argument("model", metavar="MODEL", help="an .onnx or .pt2 file, or an .ir file with its .npz sidecar")
    p.add_argument("--task", help="the task to run (needed when an IR file holds several)")
    p.add_argument("--inputs", required=True, metavar="IN.npz", help="input arrays by input name")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write the outputs")
    p.add_argument("--target", metavar="NAME|FILE",
                   help="run the compiled program on the target's functional simulator instead of the interpreter "
                        "(the module is canonicalized, shared and placed first unless it already is) and print its "
                        "largest difference from the interpreter on the same compiled module")
    p.add_argument("--compress", metavar="POLICY", help="with --target: compress by a policy first (e.g. edgebert)")
    p.add_argument("--spill", action="store_true", help="with --target: allow weights off chip")
    add_quiet_arg(p)
    add_budget_arg(p)
    return p


def _load(model: str, task: str | None, inputs: dict[str, np.ndarray]) -> tuple[Module, str]:
    suffix = Path(model).suffix.lower()
    if suffix == ".ir":
        module = load_module(model, require_data=True)
        if task is None:
            if len(module.graphs) != 1:
                raise OptionError(f"{model} holds tasks {', '.join(module.graphs)}; choose one with --task")
            task = next(iter(module.graphs))
        elif task not in module.graphs:
            raise OptionError(f"{model} has no task {task!r} (tasks: {', '.join(module.graphs)})")
        return module, task
    if suffix not in (".onnx", ".pt2", ""):
        raise AalbertError(f"{model}: unknown file type '{suffix}' (expected .onnx, .pt2 or .ir)")
    module = Module()
    name = task or graph_key(model)
    shapes = {k: tuple(v.shape) for k, v in inputs.items()}
    if suffix == ".pt2":
        from aalbert.mapper.frontends.torch_import import import_pt2

        import_pt2(model, module, name, DimSpec(), input_shapes=shapes)
    else:
        from aalbert.mapper.frontends.onnx_import import import_onnx

        import_onnx(model, module, name, DimSpec(), input_shapes=shapes)
    return module, name


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    reads = [args.model, args.inputs] + [x for x in (args.target, args.compress) if x and Path(x).suffix == ".toml"]
    out = check_output_path(args.output, reads, "outputs")
    if Path(args.output).suffix.lower() != ".npz":
        raise OptionError(f"{args.output}: the output file must end in .npz")
    if (args.compress or args.spill) and not args.target:
        raise OptionError("--compress and --spill go with --target")
    inputs = read_npz(args.inputs, "inputs")
    with progress_bar(5 if args.target else 2, "importing", "step", args.quiet) as bar:
        module, task = _load(args.model, args.task, inputs)
        bar.update(1)
        if args.target:
            outputs, notes = _on_target(module, task, inputs, args, bar)
        else:
            bar.set_description("interpreting")
            outputs = run(module, task, inputs)
            notes = _not_finite(module, task, inputs, outputs)
        bar.update(1)
    write_npz(out, outputs)
    for name, value in outputs.items():
        held = what_non_finite(value)
        print(f"{name}: {list(value.shape)} {value.dtype}" + (f" (holds {held})" if held else ""))
    return not_finite("aalbert-run", notes) if notes else 0


def _not_finite(module: Module, task: str, inputs, outputs: dict[str, np.ndarray]) -> list[str]:
    """Where the interpreter's first output holding NaN or inf got it (a line), or nothing."""
    if not any(what_non_finite(v) for v in outputs.values()):
        return []
    return [labelled(module, not_finite_origin(module, task, inputs) or f"an output of task '{task}' holds NaN or inf")]


def _on_target(module: Module, task: str, inputs, args, bar) -> tuple[dict[str, np.ndarray], list[str]]:
    from aalbert.passes.allocation.verify import verify_placement
    from aalbert.passes.base import PassManager
    from aalbert.passes.pipelines import Placement, compress, prepare
    from aalbert.targets.codegen.lower import lower
    from aalbert.targets.hardware.spec import load_target
    from aalbert.targets.sim.functional import execute

    target = load_target(args.target)
    placed = all(w.placement is not None for w in module.weights.values()) and all(
        g.arena is not None and g.arena.level is not None for g in module.graphs.values())
    current = [module]
    with weights_named(lambda: current[0]):
        bar.set_description("placing")
        if not placed:
            steps = prepare() + (compress(args.compress) if args.compress else [])
            steps += Placement(args.target, spill=args.spill).passes()
            module = current[0] = PassManager(steps).run(module, lambda p, m: current.__setitem__(0, m))
        elif args.compress:
            raise OptionError(f"{args.model} is already placed; compress before placing it")
        else:  # placed elsewhere: checked against this target before anything runs on it
            try:
                verify_placement(module, target, spill=args.spill)
            except AalbertError as e:
                raise OptionError(f"{args.model}: {e} (checked against {target.name})") from None
        bar.update(1)
        bar.set_description("lowering")
        program = lower(module, target, task)
        bar.update(1)
        print(f"functional execution of task {task} on {target.name}: {len(program.instrs)} instructions")
        bar.set_description("executing")
        with progress_bar(len(program.instrs), "instructions", "instr", args.quiet) as steps:
            outputs = execute(program, module, target, inputs, steps.update)
        bar.update(1)
    # the program's GEMMs run in column chunks, which BLAS sums in another order: equal to float32 rounding
    bar.set_description("interpreting")
    reference = run(module, task, inputs)
    with np.errstate(invalid="ignore"):  # inf - inf
        diffs = {k: np.abs(outputs[k].astype(np.float64) - reference[k]) for k in outputs}
    nan = [k for k, d in diffs.items() if np.isnan(d).any()]
    worst = float("nan") if nan else max((float(np.max(d, initial=0.0)) for d in diffs.values()), default=0.0)
    print(f"largest difference from the interpreter on the same compiled module: {worst:.3g}")
    notes = _not_finite(module, task, inputs, reference)
    if not notes and (nan or not np.isfinite(worst)):
        k = nan[0] if nan else next(k for k in outputs if what_non_finite(outputs[k]))
        notes = [f"output '{k}' of task '{task}' holds {what_non_finite(outputs[k])} when run on {target.name}, "
                 "where the interpreter's is finite"]
    return outputs, notes


main = main_wrapper("aalbert-run", _main)


if __name__ == "__main__":
    sys.exit(main())
