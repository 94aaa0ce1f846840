"""`lora`: how a task's LoRA pairs run: beside the shared base, merged into a copy per task, or merged on a switch.

A LoRA pair adds `s B(A x)` to a base projection `W x` (`s` a fixed scale,
PEFT's alpha / r). The pairs are found by structure, as the `share` pass
finds `lora` weights (`weight_kinds.low_rank_updates`), never by names. Modes:

- `unmerged` (the default): the graphs as they are, two low-rank products
  beside the shared base projection;
- `merged`: each task reads its own copy `W + s A B` of every projection it
  adapts, the low-rank products gone: the decoder analogue of a fine-tuned
  copy per task. Its copies are its own whatever their bytes (two tasks with
  equal adapters keep one copy each, as the `share` pass keeps their pairs);
  a base no task reads any more leaves the module;
- `merge-on-switch`: every task reads one *active* copy per adapted
  projection (one per distinct pair a task applies to it), shared by the
  tasks and rewritten when the task changes (`ir.switch`): its role names
  the base and each task's A (with `s` folded in) and B, which stay in the
  module, read by switches rather than inferences. The active copy is stored
  holding the first task's merge; `ir.switch.switch_costs` gives what a
  switch to each task costs. With one task the pair is shared like every
  weight and merged once, at the first request.

A pair whose update is not a fixed scale of `B(A x)` added to the base's
own result (a bias on A or B, a scale computed at run time, a scaled base)
stays unmerged. The pass runs after `share` (it keeps its roles and gives
the weights it makes theirs); a prefill and decode graph of one task read the
same copies. It records what it did as a `LoraRewrite` analysis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from aalbert.errors import OptionError
from aalbert.ir.builder import const_value
from aalbert.ir.encoding import Role
from aalbert.ir.graph import Graph, Node, Sym, Value
from aalbert.ir.module import Module, Weight
from aalbert.ir.phases import task_of
from aalbert.ir.phases import tasks as task_names
from aalbert.ir.registry import get_op
from aalbert.ir.switch import actives, merged_values
from aalbert.passes.base import Analyses, Pass, register_pass
from aalbert.passes.positions import weight_symbol
from aalbert.passes.weight_kinds import LowRank, low_rank_updates

Mode = Literal["unmerged", "merged", "merge-on-switch"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class LoraRewrite:
    """What the pass found and did: the mode, the distinct pairs (a task's pair read by its prefill and decode
    counts once), those merged, and the copies it made (per task, or active ones)."""

    mode: str
    pairs: int
    merged: int
    copies: int


@dataclass(frozen=True)
class _Pair:
    """A mergeable low-rank update as one graph applies it."""

    graph: str
    found: LowRank
    base: str      # W's symbol
    a: str
    b: str
    scale: float

    @property
    def key(self) -> tuple[str, str, str, str, float]:
        return task_of(self.graph), self.base, self.a, self.b, self.scale


def _factor(node: Node, v: Value) -> float | None:
    """The fixed number `node` multiplies `v` by, if it is one number (the detection knows it scales)."""
    args = []
    for u in node.inputs:
        if u is v:
            args.append(np.ones(v.type.shape, v.type.dtype.np))
            continue
        c = const_value(u)
        if c is None:
            return None  # a factor known only at run time
        args.append(c)
    with np.errstate(all="ignore"):
        y = np.asarray(get_op(node.op).eval(args, node.attrs)[0], dtype=np.float64)
    first = y.reshape(-1)[0] if y.size else 0.0
    return float(first) if y.size and np.isfinite(first) and bool(np.all(y == first)) else None


def _scale_between(start: Value, end: Value) -> float | None:
    """The product of the fixed factors that scale `start` into `end` (1 when they are one value)."""
    scale, v = 1.0, end
    while v is not start:
        node = v.producer
        data = [u for u in node.inputs if const_value(u) is None and u.type.numel != 1] if node else []
        if node is None or len(data) != 1:
            return None
        f = _factor(node, data[0])
        if f is None:
            return None
        scale, v = scale * f, data[0]
    return scale


def _mergeable(graph: Graph, found: LowRank) -> _Pair | None:
    down, up, base = found.down, found.up, found.base
    if len(down.inputs) != 2 or len(up.inputs) != 2 or found.kept is not base.output:
        return None
    inner, outer = _scale_between(down.output, up.inputs[0]), _scale_between(up.output, found.update)
    names = [weight_symbol(n.inputs[1].producer) for n in (base, down, up)]
    if inner is None or outer is None or None in names:
        return None
    w, a, b = names
    return _Pair(graph.name, found, w, a, b, inner * outer)


def find_pairs(module: Module) -> tuple[list[_Pair], int]:
    """The mergeable pairs of every graph, and the number of distinct pairs (mergeable or not)."""
    pairs, distinct = [], set()
    for name, graph in module.graphs.items():
        for found in low_rank_updates(graph):
            distinct.add((task_of(name), *(weight_symbol(n.inputs[1].producer) for n in (found.down, found.up))))
            pair = _mergeable(graph, found)
            if pair is not None:
                pairs.append(pair)
    return pairs, len(distinct)


def _read_through(graph: Graph, pair: _Pair, symbol: str, w: Weight) -> None:
    """Make the graph compute the pair's sum as one linear of `w` (the base's bias kept)."""
    base, add = pair.found.base, pair.found.add
    at = graph.nodes.index(add)
    weight = graph.insert(at, graph.create_node("weight", [], {"name": Sym(symbol)}, [w.type]))
    operands = [base.inputs[0], weight.output, *base.inputs[2:]]
    linear = graph.insert(at + 1, graph.create_node("linear", operands, dict(base.attrs), [add.output.type]))
    graph.replace_uses(add.output, linear.output)


def _reads(module: Module) -> dict[str, dict[str, int]]:
    """Weight symbol -> task -> nodes reading it in one inference (the most of any of its weight nodes)."""
    reads: dict[str, dict[str, int]] = {}
    for name, graph in module.graphs.items():
        users = graph.users()
        for node in graph.nodes:
            s = weight_symbol(node)
            if s is not None:
                mine = reads.setdefault(s, {})
                mine[task_of(name)] = max(mine.get(task_of(name), 0), len(users.get(node.output, [])))
    return reads


def _new_weight(module: Module, data: np.ndarray, hint: str, role: Role) -> Weight:
    """A weight of its own (never another with the same bytes, whose array it shares), with `role`."""
    w = module.add_weight(data, hint, taken=set(module.weights))
    w.role = role
    return w


def _merge_per_task(module: Module, pairs: list[_Pair]) -> int:
    """`merged`: each task reads its own W + s A B. Returns the copies made."""
    copies: dict[tuple, str] = {}
    for pair in pairs:
        if pair.key not in copies:
            base, a, b = (module.weights[s] for s in (pair.base, pair.a, pair.b))
            data = merged_values(base.values(), pair.scale * a.values().astype(np.float64), b.values())
            task = task_of(pair.graph)
            role = Role.of(False, (task,), 0, base.role.kind if base.role else "other")
            copies[pair.key] = _new_weight(module, data, f"{task}/{pair.base}", role).name
        symbol = copies[pair.key]
        _read_through(module.graphs[pair.graph], pair, symbol, module.weights[symbol])
    return len(copies)


def _merge_on_switch(module: Module, pairs: list[_Pair]) -> int:
    """`merge-on-switch`: one active copy per base and place (a task's k-th distinct pair on that base), with
    each task's A (scaled) and B as its merge sources. Returns the active copies made."""
    order = {t: i for i, t in enumerate(task_names(module.graphs))}
    places: dict[tuple[str, int], dict[str, tuple[str, str]]] = {}  # (base, place) -> task -> (A, B)
    place_of: dict[tuple, tuple[str, int]] = {}
    for pair in sorted(pairs, key=lambda p: order[task_of(p.graph)]):
        if pair.key in place_of:
            continue
        task = task_of(pair.graph)
        k = sum(1 for key in place_of if key[0] == task and key[1] == pair.base)
        a = pair.a
        if pair.scale != 1.0:
            src = module.weights[pair.a]
            a = _new_weight(module, (src.values() * np.float32(pair.scale)).astype(src.type.dtype.np),
                            f"{pair.a}.scaled", src.role).name
        place_of[pair.key] = (pair.base, k)
        places.setdefault((pair.base, k), {})[task] = (a, pair.b)
    symbols = {}
    for (base_name, k), per_task in places.items():
        base = module.weights[base_name]
        a, b = next(iter(per_task.values()))
        data = merged_values(base.values(), module.weights[a].values(), module.weights[b].values())
        merges = (base_name, *(s for pair in per_task.values() for s in pair))
        role = Role(scope="task", tasks=tuple(per_task), uses=0, kind=base.role.kind if base.role else "other",
                    merges=merges)
        symbols[base_name, k] = _new_weight(module, data, f"{base_name}.active", role).name
    for pair in pairs:
        symbol = symbols[place_of[pair.key]]
        _read_through(module.graphs[pair.graph], pair, symbol, module.weights[symbol])
    return len(symbols)


def _settle_roles(module: Module, touched: set[str]) -> None:
    """Drop the touched weights nothing reads any more, and give the rest the tasks that read them (a graph
    or a switch) and their reads per inference."""
    for graph in module.graphs.values():
        graph.remove_dead()
        graph.renumber()
    reads = _reads(module)
    switched: dict[str, set[str]] = {}
    for m in actives(module):  # a switch to a task reads the base and that task's pair
        switched.setdefault(m.base.name, set()).update(m.pairs)
        for task, pair in m.pairs.items():
            for w in pair:
                switched.setdefault(w.name, set()).add(task)
    everyone = task_names(module.graphs)
    for s in sorted(touched):
        w = module.weights[s]
        readers = set(reads.get(s, {})) | switched.get(s, set())
        if not readers:
            module.remove_weight(s)
            continue
        tasks = tuple(t for t in everyone if t in readers)
        w.role = dataclasses.replace(w.role, scope="shared" if len(tasks) == len(everyone) else "task",
                                     tasks=() if len(tasks) == len(everyone) else tasks,
                                     uses=max(reads.get(s, {}).values(), default=0))


@register_pass
@dataclass(frozen=True)
class Lora(Pass):
    name = "lora"
    summary = ("how LoRA pairs run: unmerged (low-rank products beside the shared base), merged (a copy W + B A "
               "per task) or merge-on-switch (one active copy per projection, rewritten at a task switch)")
    needs_data = True
    mode: Mode = "unmerged"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def run(self, module: Module, analyses: Analyses) -> Module:
        if any(w.role is None for w in module.weights.values()):
            raise OptionError("lora needs weight roles: run 'share' first")
        pairs, distinct = find_pairs(module)
        copies = 0
        if self.mode != "unmerged" and pairs:
            touched = {s for p in pairs for s in (p.base, p.a, p.b)}
            before = set(module.weights)
            rewrite = _merge_per_task if self.mode == "merged" else _merge_on_switch
            copies = rewrite(module, pairs)
            _settle_roles(module, touched | (set(module.weights) - before))
        merged = len({p.key for p in pairs}) if self.mode != "unmerged" else 0
        analyses.put(LoraRewrite(self.mode, distinct, merged, copies))
        return module
