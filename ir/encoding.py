"""What passes learn about a weight: its role and its stored encoding.

`Role` records which tasks read a weight, how often one inference reads it,
and what kind of parameter it is (found from the graph's structure).
`Encoding` records how the weight is stored: the number format of its codes,
the format's parameters, and dense or bit-mask storage. `storage_bytes`
counts the bytes exactly:

    dense:    ceil(n * bits / 8)                     + metadata
    bitmask:  ceil(n / 8) + ceil(nnz * bits / 8)     + metadata

where metadata is 4 bytes per scale (int formats: one per tensor or one per
output channel), 1 byte for an AdaptivFloat exponent bias, 0 otherwise.

Both are fact records (`ir.facts`): their fields are printed, parsed and
verified from their declarations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from aalbert.ir.formats import NumberFormat, afloat_decode, int_decode
from aalbert.ir.types import DType, TensorType

Kind = Literal["embedding", "projection", "attention", "ffn", "adapter", "lora", "layernorm", "head", "other"]
KINDS: tuple[str, ...] = get_args(Kind)
Format = Literal["plain", "f16", "int", "afloat"]
FORMATS: tuple[str, ...] = get_args(Format)
Storage = Literal["dense", "bitmask"]
STORAGES: tuple[str, ...] = get_args(Storage)


@dataclass(frozen=True, kw_only=True)
class Role:
    """Which tasks read a weight (`shared`: all of them), reads per inference, its kind, and, for the one active
    copy of a projection that LoRA merged on a task switch, the weights it is merged from."""

    scope: Literal["shared", "task"] = field(metadata={"key": "role"})
    tasks: tuple[str, ...] = ()                  # the tasks that read a task-specific weight
    uses: int = field(metadata={"min": 0})       # reads in one inference
    kind: Kind = field(default="other", metadata={"always": True})  # printed even when "other"
    # a weight rewritten at every task switch (`ir.switch`): its base's symbol, then each task's A and B
    merges: tuple[str, ...] = ()

    @staticmethod
    def of(shared: bool, tasks: tuple[str, ...], uses: int, kind: Kind = "other") -> Role:
        return Role(scope="shared" if shared else "task", tasks=() if shared else tuple(tasks), uses=uses,
                    kind=kind)

    @property
    def shared(self) -> bool:
        return self.scope == "shared"

    def check(self) -> None:
        if self.shared == bool(self.tasks):
            raise ValueError("a role is shared (no tasks) or task-specific (with its tasks)")
        if self.merges and len(self.merges) % 2 == 0:
            raise ValueError("merges names a base, then an A and a B per task")

    def __str__(self) -> str:
        return "shared" if self.shared else f"task({', '.join(self.tasks)})"


@dataclass(frozen=True)
class Encoding:
    format: Format = "plain"    # plain (the logical type itself) | f16 | int | afloat
    bits: int = field(default=32, metadata={"min": 1})
    exp_bits: int = 0                     # afloat
    exp_bias: int = 0                     # afloat: one per tensor
    granularity: Literal["tensor", "channel"] = "tensor"  # int: one scale per tensor, or per output channel
    scale: float = 0.0                    # int with a per-tensor scale
    storage: Storage = "dense"
    nnz: int = field(default=-1, metadata={"min": -1})   # non-zero codes (bitmask storage; -1: all)
    block: tuple[int, ...] = ()           # the pruning block, if pruned in blocks

    @staticmethod
    def plain(dtype: DType) -> Encoding:
        return Encoding(bits=dtype.itemsize * 8)

    @property
    def number_format(self) -> NumberFormat:
        """The format of the codes (a plain weight's is its own floating-point type)."""
        if self.format in ("plain", "f16"):
            return NumberFormat("float", self.bits)
        if self.format == "int":
            return NumberFormat("int", self.bits)
        return NumberFormat("afloat", self.bits, self.exp_bits)

    @property
    def label(self) -> str:
        """The number format's name (f32, f16, int8, afloat<8,3>), with '/ch' for per-channel int scales and
        '+bitmask' if so stored."""
        base = str(self.number_format)
        if self.format == "int" and self.granularity == "channel":
            base += "/ch"
        return base + ("+bitmask" if self.storage == "bitmask" else "")

    def code_dtype(self, logical: DType) -> np.dtype:
        if self.format == "plain":
            return logical.np
        if self.format == "f16":
            return np.dtype(np.float16)
        if self.format == "int":
            return np.dtype(np.int8 if self.bits <= 8 else np.int16)
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    def metadata_bytes(self, t: TensorType) -> int:
        if self.format == "int":
            return 4 * (t.shape[-1] if self.granularity == "channel" and t.rank else 1)
        if self.format == "afloat":
            return 1
        return 0

    def storage_bytes(self, t: TensorType) -> int:
        n = t.numel
        if self.storage == "bitmask":
            nnz = n if self.nnz < 0 else self.nnz
            return math.ceil(n / 8) + math.ceil(nnz * self.bits / 8) + self.metadata_bytes(t)
        return math.ceil(n * self.bits / 8) + self.metadata_bytes(t)

    def decode(self, codes: np.ndarray, logical: DType, scales: np.ndarray | None) -> np.ndarray:
        if self.format == "plain":
            return codes
        if self.format == "f16":
            return codes.astype(logical.np)
        if self.format == "int":
            s = scales if self.granularity == "channel" else np.float32(self.scale)
            return int_decode(codes, np.asarray(s)).astype(logical.np)
        return afloat_decode(codes, self.bits, self.exp_bits, self.exp_bias).astype(logical.np)

    def check(self) -> None:
        """Raise ValueError if the fields contradict each other (their types are the schema's to check)."""
        if self.format == "int" and not 2 <= self.bits <= 16:
            raise ValueError(f"int formats take 2 to 16 bits, got {self.bits}")
        if self.format == "afloat" and not (1 <= self.exp_bits and self.exp_bits + 1 < self.bits <= 16):
            raise ValueError(f"afloat<{self.bits},{self.exp_bits}> needs 1 <= exp_bits < bits - 1 <= 15")
        if self.format == "f16" and self.bits != 16:
            raise ValueError("f16 has 16 bits")
