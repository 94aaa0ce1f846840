"""Where data lives: weight placements and activation arenas.

`Placement` says where a weight is kept: `resident` in a level for good,
`staged` (kept in off-chip memory at `home`, copied into an on-chip level
when its task becomes active; the tasks' staged weights share one region), or
`streamed` (read from where it lives every time it is used). `Arena` is the
region of one task graph's activations; each activation value carries its
byte offset inside it (`Value.offset`), found by liveness (`plan-activations`).
"""

from __future__ import annotations

from dataclasses import dataclass

RESIDENCIES = ("resident", "staged", "streamed")


@dataclass(frozen=True)
class Placement:
    level: str
    residency: str
    offset: int
    home: str | None = None      # where a staged weight is kept between uses
    home_offset: int | None = None


@dataclass(frozen=True)
class Arena:
    size: int                    # bytes: the peak of the planned offsets
    total: int                   # bytes if every activation had its own buffer
    level: str | None = None     # set by allocate
    offset: int | None = None
