"""Small IR texts whose weights carry placeholder hashes, given seeded data."""

from __future__ import annotations

import numpy as np

from aalbert.ir.module import Module, content_hash
from aalbert.ir.parser import parse_module
from aalbert.ir.verifier import verify


def give_data(module: Module, seed: int = 0) -> Module:
    """Seeded standard-normal data for every weight, with the hashes to match."""
    rng = np.random.default_rng(seed)
    for w in module.weights.values():
        w.data = rng.standard_normal(w.type.shape).astype(w.type.dtype.np)
        w.hash = content_hash(w.data)
    verify(module)
    return module


def module_with_data(text: str, seed: int = 0) -> Module:
    """Parse IR text whose weights carry placeholder hashes; give them seeded data."""
    return give_data(parse_module(text), seed)
