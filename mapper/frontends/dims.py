"""Fixing dynamic dimensions: the user chooses batch and sequence length.

Shapes in aalbert are static. A model's dynamic input dimensions are fixed by
name (`--dim NAME=N`), else by position (dimension 0 is the batch, dimension
1 the sequence), else the import fails and says which `--dim` to pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aalbert.ir.errors import FrontendError


@dataclass(frozen=True)
class DimSpec:
    batch: int = 1
    seq_len: int = 128
    named: dict[str, int] = field(default_factory=dict)

    def resolve(self, where: str, input_name: str, dims: list[tuple[int | None, str | None]],
                seen: dict[str, int]) -> tuple[int, ...]:
        """Static shape for one input; `dims` holds (value or None, symbolic name or None).

        `seen` collects symbolic names already fixed, so every input agrees.
        """
        shape = []
        for i, (value, param) in enumerate(dims):
            if value is not None and value <= 0:
                raise FrontendError(f"{where}: input '{input_name}' dimension {i} is declared {value}; a static "
                                    "dimension must be positive (leave it symbolic to fix it at compile time)")
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
        return tuple(shape)
