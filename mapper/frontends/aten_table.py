"""The ATen operator table the torch.export walk dispatches on: overload name (`add.Tensor`) -> handler.

`aten_ops` fills it with the Core ATen operators a decomposed program
calls, and `aten_composite` with the composite ones torch.export records
before decomposition; `aten_ops` is the table's public face (`ATEN_OPS`,
and the generated `docs/aten_ops.md`).
"""

from __future__ import annotations

from collections.abc import Callable

ATEN_OPS: dict[str, Callable] = {}
NOTES: dict[str, str] = {}  # what a handler supports of its operator, for the generated list


def aten(*names: str, note: str = ""):
    """Register the decorated handler for the overloads `names`."""
    def deco(fn):
        for n in names:
            ATEN_OPS[n] = fn
            if note:
                NOTES[n] = note
        return fn
    return deco
