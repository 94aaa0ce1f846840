"""Fixing dynamic dimensions: the user chooses batch and sequence length.

Shapes in aalbert are static. A model's dynamic input dimensions are fixed by
name (`--dim NAME=N`), else by position (dimension 0 is the batch, dimension
1 the sequence), else the import fails and says which `--dim` to pass.

Every shape asked for is honoured or refused: a batch or sequence length the
user gave (`given`) that a static dimension contradicts is an error naming
the file, the input and its shape, and so is a `--dim` name that no input's
dynamic dimension has (`check_names`, once every file is read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aalbert.errors import FrontendError, OptionError

FLAGS = {0: ("batch", "--batch"), 1: ("seq_len", "--seq-len")}


@dataclass(frozen=True)
class DimSpec:
    batch: int = 1
    seq_len: int = 128
    named: dict[str, int] = field(default_factory=dict)
    given: frozenset[str] = frozenset()  # of "batch", "seq_len": asked for, not defaults
    # every symbolic dimension name the inputs have had, filled in by `resolve`
    met: set[str] = field(default_factory=set, compare=False, repr=False)

    def resolve(self, where: str, input_name: str, dims: Sequence[tuple[int | None, str | None]],
                seen: dict[str, int]) -> tuple[int, ...]:
        """Static shape for one input; `dims` holds (value or None, symbolic name or None).

        `seen` collects symbolic names already fixed, so every input agrees.
        """
        shape = []
        for i, (value, param) in enumerate(dims):
            if value is not None and value <= 0:
                raise FrontendError(f"{where}: input '{input_name}' dimension {i} is declared {value}; a static "
                                    "dimension must be positive (leave it symbolic to fix it at compile time)")
            if param:
                self.met.add(param)
            if value is not None:
                shape.append(value)
                continue
            if param and param in self.named:
                n = self.named[param]
            elif param and param in seen:
                n = seen[param]
            elif i == 0:
                n = self.batch
            elif i == 1:
                n = self.seq_len
            else:
                label = f"'{param}'" if param else "unnamed"
                hint = f"--dim {param}=N" if param else "a model with a static shape there"
                raise FrontendError(f"{where}: input '{input_name}' dimension {i} ({label}) is dynamic "
                                    f"and cannot be fixed; use {hint}")
            if param:
                if seen.setdefault(param, n) != n:
                    raise FrontendError(f"{where}: dimension '{param}' of input '{input_name}' would be {n}, "
                                        f"but another input fixed it to {seen[param]}")
            shape.append(n)
        declared = [v if v is not None else (p or "?") for v, p in dims]
        self.check_static(where, input_name, [v for v, _ in dims], declared)
        return tuple(shape)

    def check_static(self, where: str, input_name: str, static: Sequence[int | None],
                     declared: Sequence[int | str] | None = None) -> None:
        """Refuse a batch or sequence length the user gave that a static dimension of this input contradicts
        (`static` holds each dimension's fixed size, None where it is dynamic)."""
        for i, (attr, flag) in FLAGS.items():
            if attr in self.given and i < len(static) and static[i] is not None and static[i] != getattr(self, attr):
                shape = list(declared if declared is not None else static)
                raise FrontendError(f"{where}: input '{input_name}' has the static shape {shape}, so {flag} "
                                    f"{getattr(self, attr)} cannot apply (its dimension {i} is {static[i]}); "
                                    f"leave {flag} out, or export the model with that dimension dynamic")

    def check_names(self) -> None:
        """Refuse a `--dim` name that no input read so far has as a dynamic dimension."""
        unknown = [n for n in self.named if n not in self.met]
        if unknown:
            have = ", ".join(sorted(self.met)) if self.met else "none"
            raise OptionError(f"--dim {unknown[0]}={self.named[unknown[0]]}: no model input has a dynamic "
                              f"dimension named '{unknown[0]}' (the dynamic dimensions: {have})")
