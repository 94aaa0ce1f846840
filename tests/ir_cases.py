"""Running a pass pipeline on small IR texts (the filecheck habit): text in, text out."""

from __future__ import annotations

import numpy as np

from aalbert.ir.module import content_hash
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_module
from aalbert.ir.verifier import verify
from aalbert.passes.base import PassManager, parse_pipeline


def module_with_data(text: str, seed: int = 0):
    """Parse IR text whose weights carry placeholder hashes; give them seeded data."""
    module = parse_module(text)
    rng = np.random.default_rng(seed)
    for w in module.weights.values():
        w.data = rng.standard_normal(w.type.shape).astype(w.type.dtype.np)
        w.hash = content_hash(w.data)
    verify(module)
    return module


def run_pipeline(text: str, pipeline: str, seed: int = 0):
    module = module_with_data(text, seed)
    return PassManager(parse_pipeline(pipeline)).run(module)


def graph_text(module) -> str:
    """The printed graphs only (weight declarations carry data-dependent hashes)."""
    text = print_module(module)
    return text[text.index("  graph"):]
