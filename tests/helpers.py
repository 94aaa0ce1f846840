"""Helpers shared by the test modules; numpy and aalbert only (no torch, no onnx)."""

from __future__ import annotations

import importlib.util
import signal

import numpy as np
import pytest

from aalbert.ir.graph import Graph

TINY_TASKS = ("cola", "stsb")  # two heads of different widths (2 labels, 1 output)
SEQ = 16


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # blocked (AALBERT_TEST_BLOCK)
        return False


def needs(*libraries: str) -> pytest.MarkDecorator:
    """Skips a test, or one case of it, where one of `libraries` cannot be imported (in the test's process or
    in those it starts)."""
    missing = [name for name in libraries if not importable(name)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


class LazyImport:
    """A module imported where a test first uses it, so that its test file imports without it: the test skips
    where it cannot be imported (torch, onnx: see AALBERT_TEST_BLOCK in conftest.py)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith("_"):  # pytest's probes of what a test module holds (__test__, ...): not the module's
            raise AttributeError(attr)
        return getattr(pytest.importorskip(self._name), attr)

    def function(self, name: str):
        """The module's function `name`, imported when called."""
        return lambda *args, **kwargs: getattr(self, name)(*args, **kwargs)


def call(main, argv, capsys):
    """Run a command-line tool's main; (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(main, argv, capsys, match: str, must_not_exist=()):
    """The tool fails with exit status 2 and one line holding `match`, and writes none of `must_not_exist`."""
    code, out, err = call(main, argv, capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert match in lines[0], lines[0]
    for path in must_not_exist:
        assert not path.exists(), path
    return lines[0]


def random_feeds(graph: Graph, seed: int = 0, vocab: int = 100) -> dict[str, np.ndarray]:
    """Inputs for any graph: ids in [0, vocab), masks of ones with padding, floats normal."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        shape = v.type.shape
        if "mask" in v.name:
            a = np.ones(shape, dtype=v.type.dtype.np)
            if len(shape) == 2 and shape[1] > 2:
                a[:, -2:] = 0
        elif "type" in v.name:
            a = np.zeros(shape, dtype=v.type.dtype.np)
        elif v.type.dtype.is_int:
            a = rng.integers(0, vocab, size=shape).astype(v.type.dtype.np)
        else:
            a = rng.standard_normal(shape).astype(v.type.dtype.np)
        feeds[v.name] = a
    return feeds


def sigint_as_from_a_shell() -> None:
    """SIGINT's default action, as a shell gives the command it starts in the foreground: a suite started in the
    background inherits SIGINT ignored, and a command that inherits it ignored rightly never sees Ctrl-C.
    For `subprocess.Popen(preexec_fn=...)`."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def made_once(folder, make) -> None:
    """Run `make()` to fill `folder` unless a process of this run already did: under a file lock, the first
    to ask makes it and marks it complete, the workers of `pytest -n` then read the same files."""
    from filelock import FileLock

    with FileLock(f"{folder}.lock"):
        if not (folder / "complete").exists():
            folder.mkdir(exist_ok=True)
            make()
            (folder / "complete").touch()
