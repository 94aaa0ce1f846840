"""Mapping matrix products onto the PE array: the space, one analytic cost model, the search, its cache.

- `problem`: what the mapper sees, one product (`Gemm`) and the hardware (`Arch`);
- `cost`: access counts per operand and level, energy, latency with compute /
  transfer overlap and ports shared by the transfers of a step;
- `space`: the candidate mappings (dataflow, tiles, loop order, buffers, staging);
- `search`: the best mapping under `energy`, `latency`, `edp` or the default
  (`balanced`), cached per product signature.

The mapping itself is an IR fact, `aalbert.ir.mapping.Mapping`; the lowering
of a mapped product is `targets.codegen.mapped`'s.
"""

from aalbert.targets.mapping.problem import Arch, Gemm, arch_of, gemm_of
from aalbert.targets.mapping.search import OBJECTIVES, GemmCost, MappingError, cost_of, exhaustive, search

__all__ = ["Arch", "Gemm", "arch_of", "gemm_of", "OBJECTIVES", "GemmCost", "MappingError", "cost_of", "exhaustive",
           "search"]
