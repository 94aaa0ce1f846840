"""Where aalbert keeps what it may reuse, and the code's version that keys it.

Results that cost seconds to recompute (a sweep's points, the built-in
example traced into IR) are cached in the user's cache folder
(`$XDG_CACHE_HOME/aalbert/<kind>`, by default `~/.cache/aalbert/<kind>`),
never beside the outputs. Each entry is keyed by what determines it and by
`code_hash()`, a digest of the installed package's own sources and data
files, so an entry made by other code is never read. `AALBERT_CACHE=off`
turns the example cache off (a sweep's cache has its own `--cache` folder).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

PACKAGES = ("aalbert", "aalbert.ir", "aalbert.passes", "aalbert.targets", "aalbert.mapper", "aalbert.examples")
SUFFIXES = (".py", ".toml", ".lark")


def cache_enabled() -> bool:
    """Whether results may be read from and written to the cache (AALBERT_CACHE=off turns it off)."""
    return os.environ.get("AALBERT_CACHE", "on").lower() not in ("off", "0", "no", "false")


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cached result (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aalbert" / kind


@functools.cache
def code_hash() -> str:
    """A digest of every source and data file of the installed package, each named by its package."""
    h = hashlib.sha256()
    seen: set[Path] = set()
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations)))
        for f in sorted(folder.rglob("*")):
            real = f.resolve()
            if f.suffix not in SUFFIXES or "__pycache__" in f.parts or real in seen:
                continue
            seen.add(real)
            h.update(f"{package}/{f.relative_to(folder).as_posix()}".encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()
