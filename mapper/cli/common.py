"""What the command-line tools share: one-line errors with exit status 2, outputs written together at
the end and never over an input (`aalbert.outputs`), the memory budget, and argument helpers.

Every tool's parser (`ArgumentParser`) has `--version`, refuses an option that takes one value when it is
given twice (argparse would keep the last), suggests the nearest option or choice for a mistyped one, and
states the exit statuses in its `--help`: 0 done, 2 bad input (one line on stderr), 3 a result that is not a
finite number (one line on stderr says where it arose; the outputs are still written), 130 and 143
interrupted."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import gc
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from aalbert import signals
from aalbert.errors import AalbertError, OptionError
from aalbert.limits import DEFAULT_RULE, DEFAULT_SHARE, budget, parse_size
from aalbert.mapper.frontends import DimSpec
from aalbert.outputs import command_outputs, note_read, refuse_overlap

EXIT_USAGE = 2
EXIT_NOT_FINITE = 3

EXIT_STATUS = """\
exit status: 0 done; 2 bad input (files, options, targets: one line on stderr
naming what is wrong, nothing written); 130 or 143 interrupted."""
EXIT_STATUS_RESULTS = """\
exit status: 0 done; 2 bad input (files, options, targets: one line on stderr
naming what is wrong, nothing written); 3 a result, comparison or fidelity
figure is NaN or infinite (printed as such, the outputs written, and one line
on stderr per case saying where it arose); 130 or 143 interrupted."""


def version() -> str:
    """The installed package's version (the source tree's when it is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("aalbert")
    except PackageNotFoundError:
        from aalbert import __version__
        return __version__


def _given_once(base: type[argparse.Action]) -> type[argparse.Action]:
    """`base`, refusing a second occurrence of its option on one command line."""
    class Once(base):  # type: ignore[valid-type, misc]
        def __call__(self, parser, namespace, values, option_string=None):
            given = parser.__dict__.setdefault("_given", set())
            if self.dest in given:
                parser.error(f"argument {'/'.join(self.option_strings)}: given twice (it takes one value; "
                             "give it once)")
            given.add(self.dest)
            super().__call__(parser, namespace, values, option_string)
    Once.__name__ = f"Once{base.__name__}"
    return Once


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised, printed by `main`) with the nearest option or choice
    when one was mistyped, an option that takes one value is refused when given twice, and every tool has
    `--version`. `results=True`: the tool can exit with status 3 (a result that is not finite), as its
    `--help` says."""

    def __init__(self, *args, results: bool = False, **kwargs):
        kwargs.setdefault("epilog", EXIT_STATUS_RESULTS if results else EXIT_STATUS)
        super().__init__(*args, **kwargs)
        for name, base in ((None, argparse._StoreAction), ("store", argparse._StoreAction),
                           ("store_const", argparse._StoreConstAction),
                           ("store_true", argparse._StoreTrueAction), ("store_false", argparse._StoreFalseAction)):
            self.register("action", name, _given_once(base))
        self.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                          help="print the version and exit")

    def parse_known_args(self, args=None, namespace=None):
        self._given: set[str] = set()
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        raise OptionError(f"{message}{self._suggestion(message)} (see --help)")

    def _suggestion(self, message: str) -> str:
        """'; did you mean ...?' for a mistyped option or choice, else ''."""
        options = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            for word in m.group(1).split():
                if word.startswith("-"):
                    near = difflib.get_close_matches(word.split("=", 1)[0], options, n=1, cutoff=0.6)
                    if near:
                        return f"; did you mean {near[0]}?"
            return ""
        m = re.match(r"argument (\S+): invalid choice: '(.*?)'", message)
        if m:
            action = next((a for a in self._actions if m.group(1) in a.option_strings or a.dest == m.group(1)
                           or a.metavar == m.group(1)), None)
            if action is not None and action.choices:
                near = difflib.get_close_matches(m.group(2), [str(c) for c in action.choices], n=1, cutoff=0.6)
                if near:
                    return f"; did you mean '{near[0]}'?"
        return ""


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that it leaves as SIGINT does: outputs as they were."""


def main_wrapper(prog: str, body: Callable[[Sequence[str] | None], int | None]):
    """A tool's `main`: its files staged and committed together at the end (`command_outputs`), a memory
    budget (`--max-memory`), and every failure one line on stderr with exit status 2 (130 and 143 for
    SIGINT and SIGTERM)."""
    def main(argv: Sequence[str] | None = None) -> int:
        try:
            with _sigterm_raises(), budget(_max_memory(argv)), command_outputs():
                return body(argv) or 0
        except AalbertError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except SystemExit as e:  # --help and --version
            return e.code if isinstance(e.code, int) else 0
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except Terminated:
            print(f"{prog}: terminated", file=sys.stderr)
            return 143
    return main


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    def raise_terminated(signum, frame):
        raise Terminated()
    try:
        old = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _max_memory(argv: Sequence[str] | None) -> int | None:
    """The value of --max-memory, None if not given (the tools' parsers declare it for --help; it applies to the
    whole run)."""
    args = list(sys.argv[1:] if argv is None else argv)
    for i, a in enumerate(args):
        if a == "--max-memory" and i + 1 < len(args):
            return parse_size(args[i + 1])
        if a.startswith("--max-memory="):
            return parse_size(a.split("=", 1)[1])
    return None


def settle_heap() -> None:
    """Before and after the models are loaded: collect once, keep what survives out of the cyclic
    collector's way, and let it wait for 100,000 new objects rather than 700. Its passes over torch's and
    onnx's million objects otherwise cost more than the compile itself (the built-in example with
    --target: 4.3 s -> 2.4 s here, the same peak memory; a 100,000-node graph: 19 s -> 14 s, and 10.2 s ->
    9.3 s once the import of its nodes ran with it too). A compile keeps what it builds until it exits, so
    the older generations are collected rarely (after 5 M and 500 M new objects); a cycle that dies young
    is still found by the next young collection. On the 100,000-node graph the collector's time went from
    1.1 s (a wait of 10,000 and the older generations ten times as often) to 0.8 s, the peak memory of the
    built-in examples within run-to-run noise."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def add_budget_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", metavar="SIZE", default=None,
                   help=(f"the memory the whole run may use, e.g. 2G or 512MiB: a step that would take more is "
                         f"refused before it starts (default: {DEFAULT_RULE}, what /proc/meminfo calls "
                         f"MemAvailable; the other {1 - DEFAULT_SHARE:.0%} is left as a margin)").replace("%", "%%"))


def declare_files(reads: Iterable[str | os.PathLike | None], writes: Iterable[str | os.PathLike | None],
                  what: str = "output") -> None:
    """Before any work: the files the command reads (an IR file's weight sidecar with it) and refuses to
    write over, and the files it will write, each checked against them."""
    for r in reads:
        if r is not None:
            note_read(r)
            if Path(r).suffix.lower() == ".ir":
                note_read(Path(r).with_suffix(".npz"))
    refuse_overlap(writes, what)


def progress_bar(total: int, desc: str, unit: str, quiet: bool = False):
    """A tqdm bar on stderr, shown only when stderr is a terminal and `quiet` is off: stdout and the files
    written never change."""
    from tqdm import tqdm

    with signals.blocked():  # its monitor thread must not take the signals that stop the command
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                    disable=quiet or not sys.stderr.isatty())


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (none is shown when stderr is not a "
                                                              "terminal either)")


def not_finite(prog: str, notes: Iterable[str]) -> int:
    """One line on stderr per result that is NaN or infinite, saying where it arose; the exit status."""
    for note in notes:
        print(f"{prog}: not finite: {note}", file=sys.stderr)
    return EXIT_NOT_FINITE


def finite(text: str, lo: float = -math.inf, hi: float = math.inf, what: str = "a number") -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not (math.isfinite(x) and lo <= x <= hi):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return x


def fraction(text: str) -> float:
    return finite(text, 0.0, 1.0, "a number in [0, 1]")


def at_least_one(text: str) -> float:
    return finite(text, 1.0, math.inf, "a finite number >= 1")


def sparsity(text: str) -> float:
    x = finite(text, 0.0, 1.0, "a sparsity in [0, 1)")
    if x == 1.0:
        raise argparse.ArgumentTypeError(f"expected a sparsity in [0, 1), got {text!r}")
    return x


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def add_dim_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("shapes (models with dynamic dimensions are fixed at compile time; a shape asked for "
                             "that a static model cannot take is an error)")
    g.add_argument("--batch", type=positive_int, help="batch size (default: 1)")
    g.add_argument("--seq-len", type=positive_int, help="sequence length (default: 128)")
    g.add_argument("--dim", action="append", default=[], metavar="NAME=N",
                   help="fix the named dynamic dimension NAME to N (repeatable)")


def dims_from_args(args: argparse.Namespace) -> DimSpec:
    named: dict[str, int] = {}
    for item in args.dim:
        name, eq, value = item.partition("=")
        try:
            n = int(value)
        except ValueError:
            n = 0
        if not eq or not name or n < 1:
            raise OptionError(f"--dim expects NAME=N with N >= 1, got {item!r}")
        if name in named and named[name] != n:
            raise OptionError(f"--dim {name} given twice ({named[name]} and {n})")
        named[name] = n
    given = frozenset(k for k in ("batch", "seq_len") if getattr(args, k) is not None)
    return DimSpec(1 if args.batch is None else args.batch, 128 if args.seq_len is None else args.seq_len, named,
                   given)


def check_output_path(path: str | os.PathLike, inputs: Sequence[str | os.PathLike], what: str) -> Path:
    """Refuse to write over an input (or a file it reads with it), into a missing directory or onto a
    directory."""
    out = Path(path)
    declare_files(inputs, [out], what)
    if out.is_dir():
        raise OptionError(f"{path}: is a directory (expected a file for the {what})")
    if not out.parent.exists():
        raise OptionError(f"{path}: directory {out.parent} does not exist")
    return out
