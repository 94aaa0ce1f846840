"""What the command-line tools share: one-line errors with exit status 2,
argument parsing helpers and output-path checks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from aalbert.ir.errors import AalbertError, OptionError

from ..frontends import DimSpec

EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised, printed by `main`)."""

    def error(self, message: str):  # type: ignore[override]
        raise OptionError(f"{message} (see --help)")


def main_wrapper(prog: str, body: Callable[[Sequence[str] | None], int | None]):
    def main(argv: Sequence[str] | None = None) -> int:
        try:
            return body(argv) or 0
        except AalbertError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
    return main


def progress_bar(total: int, desc: str, unit: str, quiet: bool = False):
    """A tqdm bar on stderr, shown only when stderr is a terminal and `quiet` is off: stdout and the files
    written never change."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=quiet or not sys.stderr.isatty())


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (none is shown when stderr is not a "
                                                              "terminal either)")


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def add_dim_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("shapes (models with dynamic dimensions are fixed at compile time)")
    g.add_argument("--batch", type=positive_int, default=1, help="batch size (default: 1)")
    g.add_argument("--seq-len", type=positive_int, default=128, help="sequence length (default: 128)")
    g.add_argument("--dim", action="append", default=[], metavar="NAME=N",
                   help="fix the named dynamic dimension NAME to N (repeatable)")


def dims_from_args(args: argparse.Namespace) -> DimSpec:
    named = {}
    for item in args.dim:
        name, eq, value = item.partition("=")
        try:
            n = int(value)
        except ValueError:
            n = 0
        if not eq or not name or n < 1:
            raise OptionError(f"--dim expects NAME=N with N >= 1, got {item!r}")
        named[name] = n
    return DimSpec(args.batch, args.seq_len, named)


def check_output_path(path: str | os.PathLike, inputs: Sequence[str | os.PathLike], what: str) -> Path:
    """Refuse to write over an input, into a missing directory or onto a directory."""
    out = Path(path)
    for i in inputs:
        if Path(i).exists() and out.exists() and out.resolve() == Path(i).resolve():
            raise OptionError(f"{path}: refusing to overwrite an input file with the {what}")
    if out.is_dir():
        raise OptionError(f"{path}: is a directory (expected a file for the {what})")
    if not out.parent.exists():
        raise OptionError(f"{path}: directory {out.parent} does not exist")
    return out
