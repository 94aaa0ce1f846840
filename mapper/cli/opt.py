"""aalbert-opt: run passes over textual IR (like mlir-opt)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aalbert.ir.errors import OptionError
from aalbert.ir.fileio import load_module, save_module
from aalbert.ir.outputs import atomic_writer, make_dir
from aalbert.ir.printer import print_module

from .common import ArgumentParser, add_budget_arg, check_output_path, declare_files, main_wrapper

DESCRIPTION = """\
Run a pass pipeline on an IR file and print (or write) the result.

The IR file's .npz sidecar, if present next to it, is loaded too; passes
that need weight data skip modules without it.
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
    module = load_module(args.input)
    manager = PassManager(pipeline, verify_each=True, keep_text=dump_dir is not None)
    module = manager.run(module)
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


main = main_wrapper("aalbert-opt", _main)


if __name__ == "__main__":
    sys.exit(main())
