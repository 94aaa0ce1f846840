"""Mixed-precision predication: a target as it runs when early exit's first entropy switches its products to a
narrower format.

EdgeBERT's 12 nm chip (Tambe et al., ISSCC 2023) decides from the entropy
after the first encoder layer not only where a sentence will leave and at
which operating point the rest runs, but also whether the rest runs its MACs
in FP4 (4-bit AdaptivFloat without mantissa, twice the 8-bit throughput) or
in FP8. A target names that format in `[compute] predicated_format`; it must
be one of its `[compute.formats]`, whose `throughput` says how many MACs per
cycle it runs in units of `macs_per_cycle`.

`predicated(target)` is the target as it runs in that mode: every product on
the array, whatever format its weights are stored in, costs the predicated
format's energy per MAC and runs at its throughput; the memories, the SFU and
everything static are the target's. The simulator runs the same program on
it, as it runs one on an operating point (`spec.at_point`).
"""

from __future__ import annotations

import dataclasses

from aalbert.targets.hardware.spec import Target


def predicated(target: Target) -> Target:
    """`target` with every product in its predicated format (itself when it names none)."""
    c = target.compute
    if not c.predicated_format:
        return target
    mode = c.formats[c.predicated_format]
    formats = {k: dataclasses.replace(mode, name=f.name) for k, f in c.formats.items()}
    return dataclasses.replace(target, compute=dataclasses.replace(c, formats=formats))
