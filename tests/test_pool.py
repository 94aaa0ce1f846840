"""The weight pool: stored once by content, yet two tensors of one import stay two weights."""

from __future__ import annotations

import numpy as np

from aalbert.ir.graph import Graph
from aalbert.ir.module import Module


def test_an_import_keeps_its_tensors_apart_but_stores_equal_bytes_once():
    module = Module()
    zeros = np.zeros(4, np.float32)
    a = module.add_weight(zeros, "q.bias")
    assert module.add_weight(zeros.copy(), "x") is a  # another import's tensor with these bytes: the same weight
    b = module.add_weight(zeros.copy(), "k.bias", taken={a.name})  # this import's second zero bias
    assert b is not a and b.name == "k.bias" and b.hash == a.hash
    assert b.data is a.data  # one array
    c = module.add_weight(zeros.copy(), "v.bias", taken={a.name, b.name})
    assert c.name == "v.bias" and module.with_hash(a.hash) == ["q.bias", "k.bias", "v.bias"]
    assert module.add_weight(zeros.copy(), "x", taken={a.name}) is b  # the first this import has not used
    module.remove_weight("k.bias")
    assert module.with_hash(a.hash) == ["q.bias", "v.bias"]
    assert module.add_weight(zeros.copy(), "x", taken={"q.bias"}) is c


def test_merge_never_makes_two_weights_of_the_other_module_one():
    zeros = np.zeros(4, np.float32)
    mine, other = Module(), Module()
    mine.add_weight(zeros, "z")
    for name in ("z1", "z2"):  # two tensors of one file
        other.add_weight(zeros.copy(), name, taken=set(other.weights))
    graph = Graph("u")
    other.add_graph(graph)
    mine.merge(other)
    assert list(mine.weights) == ["z", "z2"]  # z1 is z; z2 stays its own
    assert mine.with_hash(mine.weights["z"].hash) == ["z", "z2"]
