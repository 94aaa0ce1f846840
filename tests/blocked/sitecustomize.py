"""Blocks torch, onnx and the libraries built on them from import, when AALBERT_TEST_BLOCK is set.

`tests/conftest.py` installs this in the test process and puts this folder on
PYTHONPATH, so that the Python processes the tests start (the command-line
tools, the benchmark scripts) load it as their `sitecustomize` and are blocked
too. An import of a blocked name raises ModuleNotFoundError, as when the
library is not installed, so that `pytest.importorskip` skips what needs it:

    AALBERT_TEST_BLOCK=1 python -m pytest

The built-in example is built in PyTorch; a compile that finds it in the user's
cache reads its IR snapshot and imports no torch. A blocked process stands for
that user: `aalbert.mapper.loading` builds the example in a process of its own
that may import torch, and reads the snapshot that process writes.
"""

from __future__ import annotations

import importlib.abc
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

VARIABLE = "AALBERT_TEST_BLOCK"
BLOCKED = frozenset({"torch", "onnx", "onnxruntime", "onnxscript", "transformers", "peft", "adapters"})
LOADING = "aalbert.mapper.loading"
HERE = str(Path(__file__).resolve().parent)

# builds one example family in PyTorch and writes its snapshot; (family, dims, seed, path) pickled on stdin
_BUILD = """
import pickle, sys
from aalbert.ir.snapshot import save_snapshot
from aalbert.mapper.loading import _build_example
family, dims, seed, path = pickle.load(sys.stdin.buffer)
save_snapshot(_build_example(family, dims, seed), path)
"""


def _build_apart(family, dims, seed):
    """`loading._build_example`, run in an unblocked process; the module read back from its snapshot."""
    from aalbert.ir.snapshot import load_snapshot

    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != HERE)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "example.json"
        done = subprocess.run([sys.executable, "-c", _BUILD], input=pickle.dumps((family, dims, seed, path)),
                              env=env, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"building the example apart failed:\n{done.stderr.decode()[-3000:]}")
        return load_snapshot(path)


class _BuildsApart(importlib.abc.Loader):
    """Loads `aalbert.mapper.loading` with its own loader, then has it build the example apart."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_source, get_filename, ...: the wrapped loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module._build_example = _build_apart


class Blocker(importlib.abc.MetaPathFinder):
    """Refuses the top-level names in BLOCKED and everything under them."""

    blocks = BLOCKED  # marks the finder, whichever module name loaded this file

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} ({VARIABLE} blocks it)", name=fullname)
        if fullname != LOADING:
            return None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1:]:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _BuildsApart(spec.loader)
                return spec
        return None


def install() -> None:
    """Put the blocker first on sys.meta_path (once); a blocked library imported already is an error."""
    if any(getattr(f, "blocks", None) == BLOCKED for f in sys.meta_path):
        return
    loaded = sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED)
    if loaded:
        raise RuntimeError(f"{VARIABLE}: {', '.join(loaded[:3])} imported before the blocker was installed")
    sys.meta_path.insert(0, Blocker())
    if LOADING in sys.modules:
        sys.modules[LOADING]._build_example = _build_apart


if os.environ.get(VARIABLE):
    install()
