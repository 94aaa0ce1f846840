"""aalbert-run: execute a model on inputs from an .npz (the reference interpreter)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from aalbert.ir.errors import AalbertError, OptionError
from aalbert.ir.fileio import load_module, read_npz, write_npz
from aalbert.ir.interpreter import run
from aalbert.ir.module import Module

from ..frontends import DimSpec, import_onnx
from .common import ArgumentParser, add_budget_arg, check_output_path, main_wrapper

DESCRIPTION = """\
Run one task of a model on numpy with aalbert's reference interpreter.

MODEL is an ONNX file or a torch.export program saved as .pt2 (one task;
its dynamic dimensions are fixed from the shapes of the inputs given), or an
IR file with its .npz sidecar of weights.
Inputs and outputs are .npz files keyed by the model's own input and output
names.
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="aalbert-run", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
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
    name = task or Path(model).stem
    shapes = {k: tuple(v.shape) for k, v in inputs.items()}
    if suffix == ".pt2":
        from ..frontends.torch_import import import_pt2

        import_pt2(model, module, name, DimSpec(), input_shapes=shapes)
    else:
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
    module, task = _load(args.model, args.task, inputs)
    if args.target:
        outputs = _on_target(module, task, inputs, args)
    else:
        outputs = run(module, task, inputs)
    write_npz(out, outputs)
    for name, value in outputs.items():
        print(f"{name}: {list(value.shape)} {value.dtype}")
    return 0


def _on_target(module: Module, task: str, inputs, args) -> dict[str, np.ndarray]:
    from aalbert.passes.base import PassManager, parse_pipeline
    from aalbert.targets.functional import execute
    from aalbert.targets.lower import lower
    from aalbert.targets.spec import load_target

    target = load_target(args.target)
    placed = all(w.placement is not None for w in module.weights.values()) and all(
        g.arena is not None and g.arena.level is not None for g in module.graphs.values())
    if not placed:
        steps = ["canonicalize", "share"] + ([f"compress{{policy={args.compress}}}"] if args.compress else [])
        steps += [f"plan-activations{{target={args.target}}}",
                  f"allocate{{target={args.target},spill={'true' if args.spill else 'false'}}}"]
        module = PassManager(parse_pipeline(",".join(steps))).run(module)
    elif args.compress:
        raise OptionError(f"{args.model} is already placed; compress before placing it")
    program = lower(module, target, task)
    print(f"functional execution of task {task} on {target.name}: {len(program.instrs)} instructions")
    outputs = execute(program, module, target, inputs)
    # the program's GEMMs run in column chunks, which BLAS sums in another order: equal to float32 rounding
    reference = run(module, task, inputs)
    worst = max(float(np.max(np.abs(outputs[k].astype(np.float64) - reference[k]), initial=0.0)) for k in outputs)
    print(f"largest difference from the interpreter on the same compiled module: {worst:.3g}")
    return outputs


main = main_wrapper("aalbert-run", _main)


if __name__ == "__main__":
    sys.exit(main())
