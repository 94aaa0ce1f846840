"""Compression: magnitude pruning, quantization, and policies that say which weights get what.

A policy is an ordered list of rules; a rule selects weights by role
(`shared`, `task` or `any`) and kind (embedding, attention, ffn, ...) and
says how to store them: a number format (`f32`, `f16`, `int8`, `int4`,
`int<b>`, `afloat<n,e>`, `afloat8` = `afloat<8,3>`), int scales per `tensor`
or per `channel`, a target sparsity reached by magnitude pruning (of single
elements, or of `block`s aligned to the PE array), and dense or `bitmask`
storage. The first rule that matches a weight applies; unmatched weights
stay as they are. Pruning applies to matrices only (biases and LayerNorm
vectors stay dense).

Policy files are TOML:

    [[rule]]
    kinds = ["attention", "ffn"]   # default: every kind
    role = "shared"                # default: any
    format = "afloat<8,3>"
    sparsity = 0.5
    block = [16, 16]               # default: unstructured
    storage = "bitmask"            # default: bitmask if sparsity > 0, else dense

The built-in `edgebert` policy follows EdgeBERT: AdaptivFloat<8,3>
everywhere, embeddings 60 % and encoder (attention, FFN) 50 % sparse with a
bit mask, everything else (projection, LayerNorms, adapters, heads) dense.
Passes never change data in place: each compressed weight is a new `Weight`
whose data are the codes, whose encoding records the format and whose bytes
are counted exactly (`ir.encoding`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aalbert.errors import OptionError
from aalbert.ir.encoding import KINDS, Encoding
from aalbert.ir.fileio import read_toml
from aalbert.ir.formats import (
    AFLOAT8,
    F16,
    F32,
    NumberFormat,
    afloat_bias,
    afloat_encode,
    int_encode,
    int_scales,
    parse_format,
)
from aalbert.ir.module import Module, Weight
from aalbert.passes.base import Analyses, Pass, register_pass

ROLES = ("any", "shared", "task")


@dataclass(frozen=True)
class Rule:
    kinds: tuple[str, ...] = KINDS
    role: str = "any"
    format: NumberFormat | None = None  # None: keep the number format
    granularity: str = "tensor"
    sparsity: float = 0.0
    block: tuple[int, int] | None = None
    storage: str | None = None         # None: bitmask if pruned, else dense

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if not self.kinds:
            raise ValueError(f"kinds: names no weight class (known: {', '.join(KINDS)})")
        if unknown:
            raise ValueError(f"kinds: unknown weight class {unknown[0]!r} (known: {', '.join(KINDS)})")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.granularity not in ("tensor", "channel"):
            raise ValueError(f"granularity must be tensor or channel, got {self.granularity!r}")
        if self.block is not None and (len(self.block) != 2 or min(self.block) < 1):
            raise ValueError(f"block must be two positive sizes, got {list(self.block)}")
        if self.storage not in (None, "dense", "bitmask"):
            raise ValueError(f"storage must be dense or bitmask, got {self.storage!r}")

    def matches(self, w: Weight) -> bool:
        role = w.role
        kind = role.kind if role is not None else "other"
        if kind not in self.kinds:
            return False
        if self.role == "any":
            return True
        if role is None:
            return False
        return role.shared == (self.role == "shared")


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[Rule, ...]

    def rule_for(self, w: Weight) -> Rule | None:
        return next((r for r in self.rules if r.matches(w)), None)


BUILTIN_POLICIES = {
    "edgebert": Policy("edgebert", (
        Rule(kinds=("embedding",), format=AFLOAT8, sparsity=0.6, storage="bitmask"),
        Rule(kinds=("attention", "ffn"), format=AFLOAT8, sparsity=0.5, storage="bitmask"),
        Rule(format=AFLOAT8),
    )),
    "none": Policy("none", ()),
}

_RULE_KEYS = {"kinds", "role", "format", "granularity", "sparsity", "block", "storage"}


def load_policy(spec: str | Policy) -> Policy:
    """A built-in policy by name, or a TOML policy file; errors name the file, rule and key (a `Policy` given in
    Python is itself)."""
    if isinstance(spec, Policy):
        return spec
    if spec in BUILTIN_POLICIES:
        return BUILTIN_POLICIES[spec]
    data = read_toml(spec, OptionError, f"no such policy file (built-in policies: {', '.join(BUILTIN_POLICIES)})",
                     "not a readable TOML policy", "a policy")
    extra = set(data) - {"rule"}
    if extra:
        raise OptionError(f"{spec}: unknown key '{sorted(extra)[0]}' (a policy holds [[rule]] tables)")
    rules = data.get("rule")
    if not isinstance(rules, list) or not rules:
        raise OptionError(f"{spec}: no [[rule]] tables")
    return Policy(Path(spec).stem, tuple(_rule(spec, i, r) for i, r in enumerate(rules, start=1)))


def _rule(spec: str, i: int, table) -> Rule:
    where = f"{spec}: rule {i}"
    if not isinstance(table, dict):
        raise OptionError(f"{where}: expected a table")
    unknown = set(table) - _RULE_KEYS
    if unknown:
        raise OptionError(f"{where}: unknown key '{sorted(unknown)[0]}' (keys: {', '.join(sorted(_RULE_KEYS))})")
    kw: dict[str, Any] = {}  # Rule's keyword arguments, each checked below and by Rule itself
    try:
        if "kinds" in table:
            kinds = table["kinds"]
            kw["kinds"] = tuple(kinds) if isinstance(kinds, list) else (kinds,)
            if not all(isinstance(k, str) for k in kw["kinds"]):
                raise ValueError("kinds must be names")
        for key in ("role", "granularity", "storage"):
            if key in table:
                if not isinstance(table[key], str):
                    raise ValueError(f"{key} must be a string")
                kw[key] = table[key]
        if "format" in table:
            if not isinstance(table["format"], str):
                raise ValueError("format must be a string")
            kw["format"] = parse_format(table["format"])
        if "sparsity" in table:
            if not isinstance(table["sparsity"], (int, float)) or isinstance(table["sparsity"], bool):
                raise ValueError("sparsity must be a number")
            kw["sparsity"] = float(table["sparsity"])
        if "block" in table:
            b = table["block"]
            if not (isinstance(b, list) and all(isinstance(x, int) for x in b)):
                raise ValueError("block must be a list of two integers")
            kw["block"] = tuple(b)
        return Rule(**kw)
    except ValueError as e:
        raise OptionError(f"{where}: {e}") from None


# -- the work on one weight ------------------------------------------------------------------------
def prune_array(w: np.ndarray, sparsity: float, block: tuple[int, int] | None) -> np.ndarray:
    """Zero the smallest-magnitude elements (or 2-D blocks, by RMS) to reach `sparsity`.

    Blocks tile the weight as a matrix [rows, last axis]; a fraction `sparsity`
    of the blocks (rounded down) goes.
    """
    out = np.array(w, copy=True)
    if sparsity <= 0 or w.ndim < 2 or w.size == 0:
        return out
    if block is None:
        k = int(math.floor(sparsity * w.size))
        if k:
            smallest = np.argpartition(np.abs(w).reshape(-1), k - 1)[:k]
            out.reshape(-1)[smallest] = 0
        return out
    rows, cols = w.reshape(-1, w.shape[-1]).shape
    bh, bw = min(block[0], rows), min(block[1], cols)  # a block beyond the matrix covers all of it
    gh, gw = -(-rows // bh), -(-cols // bw)
    padded = np.zeros((gh * bh, gw * bw), dtype=np.float64)
    padded[:rows, :cols] = w.reshape(rows, cols)
    real = np.zeros_like(padded)
    real[:rows, :cols] = 1
    # root mean square per block, so partial blocks at the edges compete fairly
    energy = (padded.reshape(gh, bh, gw, bw) ** 2).sum(axis=(1, 3))
    counts = real.reshape(gh, bh, gw, bw).sum(axis=(1, 3))
    norms = np.sqrt(energy / counts).reshape(-1)
    k = int(math.floor(sparsity * norms.size))
    keep = np.ones(norms.size, dtype=bool)
    if k:
        keep[np.argsort(norms, kind="stable")[:k]] = False
    mask = np.repeat(np.repeat(keep.reshape(gh, gw), bh, axis=0), bw, axis=1)[:rows, :cols]
    out.reshape(rows, cols)[~mask] = 0
    return out


def compress_weight(w: Weight, rule: Rule) -> Weight:
    """A new weight: `w` pruned and encoded as the rule says (plain weights only)."""
    if w.encoding.format != "plain":
        raise OptionError(f"weight @{w.name} is already encoded as {w.encoding.label}; compress it once")
    if w.data is None:
        raise OptionError(f"weight @{w.name} has no data: compression needs the .npz sidecar")
    if w.type.dtype.is_float and not np.isfinite(w.data).all():
        raise OptionError(f"weight @{w.name} holds NaN or infinite values; it cannot be compressed")
    prior = w.encoding  # a plain weight may already be pruned and stored as a bit mask
    values = prune_array(w.data, rule.sparsity, rule.block)
    fmt = rule.format or F32
    enc = Encoding.plain(w.type.dtype)
    scales = None
    if fmt == F16:
        codes = values.astype(np.float16)
        enc = dataclasses.replace(enc, format="f16", bits=16)
    elif fmt.family == "int":
        per_channel = rule.granularity == "channel" and values.ndim >= 1
        s = int_scales(values, fmt.bits, per_channel)
        codes = int_encode(values, fmt.bits, s)
        enc = dataclasses.replace(enc, format="int", bits=fmt.bits, granularity="channel" if per_channel else "tensor",
                                  scale=0.0 if per_channel else float(s))
        scales = s if per_channel else None
    elif fmt.family == "afloat":
        bias = afloat_bias(values, fmt.exp_bits)
        codes = afloat_encode(values, fmt.bits, fmt.exp_bits, bias)
        enc = dataclasses.replace(enc, format="afloat", bits=fmt.bits, exp_bits=fmt.exp_bits, exp_bias=bias)
    else:
        codes = values.astype(w.type.dtype.np)
    matrix = w.type.rank >= 2  # pruning and bit masks are for matrices; vectors keep their storage
    pruned = rule.sparsity > 0 and matrix
    if matrix:
        storage = rule.storage or ("bitmask" if pruned or prior.storage == "bitmask" else "dense")
    else:
        storage = prior.storage
    if storage == "bitmask":
        enc = dataclasses.replace(enc, storage="bitmask", nnz=int(np.count_nonzero(codes)))
    block = tuple(rule.block) if pruned and rule.block is not None else prior.block
    if block:
        enc = dataclasses.replace(enc, block=block)
    new = Weight(w.name, w.type, "", codes, w.role, enc, scales, w.placement)
    new.hash = new.expected_hash()
    return new


def apply_policy(module: Module, policy: Policy) -> Module:
    for w in list(module.weights.values()):
        rule = policy.rule_for(w)
        if rule is not None:
            module.replace_weight(compress_weight(w, rule))
    return module


# -- passes ---------------------------------------------------------------------------------------------
def _kinds(text: str) -> tuple[str, ...]:
    return KINDS if text in ("", "all") else tuple(k for k in text.split("+") if k)


def _block(text: str) -> tuple[int, int] | None:
    if text in ("", "none"):
        return None
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise ValueError(f"block must look like 16x16, got {text!r}")
    return int(m.group(1)), int(m.group(2))


@register_pass
@dataclass(frozen=True)
class Compress(Pass):
    name = "compress"
    summary = "prune and quantize weights by a policy (built-in name or TOML file)"
    needs_data = True
    policy: str | Policy = "edgebert"

    def __post_init__(self) -> None:
        load_policy(self.policy)

    def run(self, module: Module, analyses: Analyses) -> Module:
        return apply_policy(module, load_policy(self.policy))


@register_pass
@dataclass(frozen=True)
class Quantize(Pass):
    name = "quantize"
    summary = "encode weights in a number format (f16, int<b>, afloat<n,e>)"
    needs_data = True
    format: str = "afloat8"
    granularity: str = "tensor"
    kinds: str = "all"
    role: str = "any"

    def __post_init__(self) -> None:
        self.rule()

    def rule(self) -> Rule:
        return Rule(kinds=_kinds(self.kinds), role=self.role, format=parse_format(self.format),
                    granularity=self.granularity)

    def run(self, module: Module, analyses: Analyses) -> Module:
        return apply_policy(module, Policy(self.spec(), (self.rule(),)))


@register_pass
@dataclass(frozen=True)
class Prune(Pass):
    name = "prune"
    summary = "magnitude-prune matrices to a sparsity, by element or block, stored as a bit mask"
    needs_data = True
    sparsity: float = 0.5
    block: str = "none"
    kinds: str = "all"
    role: str = "any"
    storage: str = "bitmask"

    def __post_init__(self) -> None:
        self.rule()

    def rule(self) -> Rule:
        return Rule(kinds=_kinds(self.kinds), role=self.role, sparsity=self.sparsity, block=_block(self.block),
                    storage=self.storage)

    def run(self, module: Module, analyses: Analyses) -> Module:
        return apply_policy(module, Policy(self.spec(), (self.rule(),)))
