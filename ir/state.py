"""State: values a graph carries from one step to the next (a decoder's KV cache).

A graph input and a graph output with the same name are one state buffer:
the input is its contents before the step, the output after it. A decoder's
KV cache is state: frontends name its tensors `cache.key.<layer>` and
`cache.value.<layer>`, shaped [batch, heads, capacity, head_dim]. The cache
is static: `capacity` (the size along `CACHE_AXIS`) is the most tokens it
holds, and a decode step's cost depends on how many of them are valid,
which the graph does not say (the step's position does).
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.errors import AalbertError
from aalbert.ir.graph import Graph, Value

CACHE_AXIS = 2          # [batch, heads, capacity, head_dim]
CACHE_PREFIX = "cache."


class StateError(AalbertError):
    """A state input and output that disagree."""


@dataclass(frozen=True)
class StatePair:
    """One state buffer of a graph: the value read at the step's start and the one written at its end."""

    name: str
    input: Value
    output: Value

    @property
    def nbytes(self) -> int:
        return self.input.type.nbytes

    @property
    def is_cache(self) -> bool:
        return self.name.startswith(CACHE_PREFIX) and self.input.type.rank == 4

    @property
    def capacity(self) -> int:
        """Tokens a cache holds (its size along `CACHE_AXIS`)."""
        return self.input.type.shape[CACHE_AXIS]


def state_pairs(graph: Graph) -> list[StatePair]:
    """The graph's state buffers in input order; one `StateError` when an input and output of one name differ
    in type."""
    outputs = dict(graph.outputs)
    pairs = []
    for value in graph.inputs:
        out = outputs.get(value.name)
        if out is None:
            continue
        if out.type != value.type:
            raise StateError(f"graph @{graph.name}: state '{value.name}' is read as {value.type} but written as "
                             f"{out.type}")
        pairs.append(StatePair(value.name, value, out))
    return pairs


def state_bytes(graph: Graph) -> int:
    return sum(p.nbytes for p in state_pairs(graph))
