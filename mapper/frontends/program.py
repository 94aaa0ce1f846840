"""What the ATen walk reads of an exported program, whoever read it.

A `Program` holds the graph, the signature, the weights and constants, the
outputs' structure and the dynamic dimensions' ranges: an `ExportedProgram`
gives them (`Program.of`), and so does a `.pt2` file read without
torch.export.load (`pt2_reader`). Each node's recorded value is read as a
`TensorMeta`: a dtype and a shape whose dynamic dimensions are the names of
their symbols (`s0`), or the text of their expressions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import torch.utils._pytree as pytree
from torch.export import ExportedProgram
from torch.export.graph_signature import InputSpec, OutputSpec


@dataclass(frozen=True)
class TensorMeta:
    """A value's dtype and shape as torch recorded them."""

    dtype: torch.dtype
    shape: tuple[int | str, ...]

    @classmethod
    def of(cls, val: Any) -> TensorMeta | None:
        """A node's recorded value (`meta["val"]`) as a TensorMeta; None for anything but a tensor."""
        if isinstance(val, TensorMeta):
            return val
        if isinstance(val, torch.Tensor):  # a fake tensor, whose dynamic dimensions are symbolic ints
            return cls(val.dtype, tuple(d if isinstance(d, int) else str(d) for d in val.shape))
        return None


@dataclass(frozen=True)
class Program:
    """An exported program as the walk reads it; `ranges` maps a dimension's symbol to its (lowest, highest)
    size, None where unbounded."""

    graph: torch.fx.Graph
    input_specs: Sequence[InputSpec]
    output_specs: Sequence[OutputSpec]
    state_dict: Mapping[str, torch.Tensor]
    constants: Mapping[str, Any]
    out_spec: pytree.TreeSpec | None
    ranges: Mapping[str, tuple[int | None, int | None]]

    @classmethod
    def of(cls, ep: ExportedProgram) -> Program:
        sig = ep.graph_signature
        return cls(ep.graph, sig.input_specs, sig.output_specs, ep.state_dict, ep.constants, ep.call_spec.out_spec,
                   {str(k): (_bound(v.lower), _bound(v.upper)) for k, v in ep.range_constraints.items()})


def _bound(v) -> int | None:
    """A range bound as an int; None when unbounded (torch and sympy spell infinity several ways)."""
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return None
