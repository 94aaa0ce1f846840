"""Where data lives: weight placements and activation arenas.

`Placement` says where a weight is kept: `resident` in a level for good,
`staged` (kept in off-chip memory at `home`, copied into an on-chip level
when its task becomes active; the tasks' staged weights share one region), or
`streamed` (read from where it lives every time it is used). `Arena` is the
region of one task graph's activations; each activation value carries its
byte offset inside it (`Value.offset`), found by liveness (`plan-activations`).
A graph with state (`ir.state`: a decoder's KV cache) keeps it in a region of
its own beside the arena, which the allocator places like the arena: the
arena records its size, level and offset, and each state value's
`Value.offset` is its offset inside that region.
Both are fact records (`ir.facts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Residency = Literal["resident", "staged", "streamed"]
RESIDENCIES: tuple[str, ...] = get_args(Residency)


@dataclass(frozen=True)
class Placement:
    level: str
    residency: Residency
    offset: int = field(metadata={"min": 0})
    home: str | None = None                                     # where a staged weight is kept between uses
    home_offset: int | None = field(default=None, metadata={"min": 0})

    def check(self) -> None:
        if (self.residency == "staged") != (self.home is not None and self.home_offset is not None):
            raise ValueError("a staged placement has a home and a home_offset; others have neither")


@dataclass(frozen=True)
class Arena:
    size: int = field(metadata={"min": 0})             # bytes: the peak of the planned offsets
    total: int = field(metadata={"min": 0})            # bytes if every activation had its own buffer
    activation_bits: int = field(metadata={"min": 1})  # the bits of a floating-point activation
    align: int = field(metadata={"min": 1})            # every buffer starts on a multiple of this
    level: str | None = None                           # set by allocate
    offset: int | None = field(default=None, metadata={"min": 0})
    state: int = field(default=0, metadata={"min": 0})  # bytes of the state region (a decoder's KV cache)
    state_level: str | None = None                     # where allocate put it
    state_offset: int | None = field(default=None, metadata={"min": 0})
