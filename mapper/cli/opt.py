"""aalbert-opt: run passes over textual IR (like mlir-opt)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aalbert.errors import OptionError
from aalbert.ir.fileio import load_module, save_module
from aalbert.ir.printer import print_module
from aalbert.mapper.cli.common import (
    ArgumentParser,
    add_budget_arg,
    add_quiet_arg,
    check_output_path,
    declare_files,
    main_wrapper,
    progress_bar,
)
from aalbert.mapper.reports.explain import weights_named
from aalbert.outputs import atomic_writer, make_dir

DESCRIPTION = """\
Run a pass pipeline on an IR file and print (or write) the result.

The IR file's .npz sidecar, if present next to it, is loaded too; passes
that need weight data skip modules without it. A module that is already
placed (weights in memory levels: --dump-ir with --target) has its
placement verified against --target before any pass runs, and the result
after them; a placed module without --target is refused (unless the
pipeline places it anew with allocate), since nothing else says which
memories its offsets are in.
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="aalbert-opt", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", metavar="IN.ir", help="the IR file")
    p.add_argument("-p", "--passes", default="verify", metavar="PIPELINE",
                   help="comma-separated passes with options, e.g. 'fold-transposes,dce' (default: verify)")
    p.add_argument("-o", "--output", metavar="OUT.ir", help="write the result here (and OUT.npz) instead of stdout")
    p.add_argument("--dump-ir", metavar="DIR", help="write the IR after each pass as NN-<pass>.ir")
    p.add_argument("--list-passes", action="store_true", help="list the passes and their options, then exit")
    p.add_argument("--target", metavar="NAME|FILE",
                   help="the target a placed module was placed on: its placement is verified against it")
    p.add_argument("--spill", action="store_true",
                   help="with --target: the placement may keep weights off chip where the target keeps them only "
                        "when spilling")
    add_quiet_arg(p)
    add_budget_arg(p)
    return p


def _list_passes() -> str:
    import dataclasses

    from aalbert.passes.base import PASSES

    lines = []
    for name in sorted(PASSES):
        cls = PASSES[name]
        opts = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls))
        lines.append(f"{name:<18} {cls.summary}" + (f"  [{opts}]" if opts else ""))
    return "\n".join(lines) + "\n"


def _main(argv) -> int:
    from aalbert.passes.base import PassManager, parse_pipeline

    args = build_parser().parse_args(argv)
    if args.list_passes:
        sys.stdout.write(_list_passes())
        return 0
    if args.input is None:
        raise OptionError("an input IR file is required (see --help)")
    pipeline = parse_pipeline(args.passes)
    out = None
    if args.output:  # the result and its weight sidecar
        out = check_output_path(args.output, [args.input], "result")
        declare_files([], [out.with_suffix(".npz")], "result's weights")
    dump_dir = Path(args.dump_ir) if args.dump_ir else None
    if dump_dir is not None:
        if dump_dir.exists() and not dump_dir.is_dir():
            raise OptionError(f"--dump-ir {dump_dir}: exists and is not a directory")
        declare_files([], [dump_dir / f"{i:02d}-{p.name}.ir" for i, p in enumerate(pipeline, start=1)], "IR dump")
    if args.spill and not args.target:
        raise OptionError("--spill goes with --target")
    target = None
    if args.target:
        from aalbert.targets.hardware.spec import load_target
        target = load_target(args.target)
    module = load_module(args.input)
    manager = PassManager(pipeline, verify_each=True, keep_text=dump_dir is not None)
    current = [module]
    with weights_named(lambda: current[0]), progress_bar(len(pipeline), "passes", "pass", args.quiet) as bar:
        if not any(p.name == "allocate" for p in pipeline):  # allocate places anew (and verifies what it places)
            _check_placement(module, target, args, "")

        def before(p, m) -> None:
            current[0] = m
            bar.set_description(p.name)
            bar.update(1)

        module = current[0] = manager.run(module, before)
        _check_placement(module, target, args, f" after {', '.join(p.name for p in pipeline)}")
    if dump_dir is not None:
        make_dir(dump_dir)
        for name, text in manager.dumps:
            with atomic_writer(dump_dir / name) as f:
                f.write(text.encode())
    if out is not None:
        save_module(module, out)
    else:
        sys.stdout.write(print_module(module))
    return 0


def _check_placement(module, target, args, when: str) -> None:
    """A placed module's placement, verified against the target it was placed on."""
    from aalbert.errors import AalbertError

    if not any(w.placement is not None for w in module.weights.values()) and not any(
            g.arena is not None and g.arena.level is not None for g in module.graphs.values()):
        return
    if target is None:
        if when:
            return  # placed by the pipeline's own allocate, which verifies what it places
        levels = sorted({w.placement.level for w in module.weights.values() if w.placement is not None})
        raise OptionError(f"{args.input}: its weights are placed (in {', '.join(levels) or 'no level'}); name the "
                          "target it was placed on with --target, so that the placement is verified")
    from aalbert.passes.allocation.verify import verify_placement
    try:
        verify_placement(module, target, spill=args.spill)
    except AalbertError as e:
        raise OptionError(f"{args.input}{when}: {e} (checked against {target.name})") from None


main = main_wrapper("aalbert-opt", _main)


if __name__ == "__main__":
    sys.exit(main())
