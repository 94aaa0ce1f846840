"""`share`: which weights are one weight, and whom each belongs to, from the graphs and the bytes.

Every weight a task's graph reads gets a kind from the graph's structure
(`passes.kinds`) and a description of where it is read (`passes.positions`:
the reading op and operand, and the landmarks nearest to it). The evidence
that tasks share a weight is its kind, its position and its bytes, never
its name:

- a weight of a task-specific kind (adapter, LoRA pair) is its task's own,
  whatever its bytes: two tasks whose adapters are equal each keep theirs;
- other weights of several tasks are one weight when bytes and kind are
  equal and their positions agree; equal bytes never join weights of
  different kinds or positions. Where a task has one weight with given
  bytes and kind (a trained or random matrix), the bytes say which it is,
  unless the weights read beside it (a bias's matrix) disagree. Where a task
  has several (a fresh model's zero biases, its LayerNorm scales of one,
  LoRA's zero B matrices), each is matched to the weight of the other
  tasks that is read the same way next to the same landmarks: the weights
  every task reads, through one tensor each. Where nothing tells them
  apart, the order of first use does.

First, within each task, a tensor of equal elements read in places of
different kinds, beside different matrices, or after different halves of a
LoRA or adapter pair becomes one weight per such place (`split_uniform`:
files may store equal parameters as one tensor). The pass then splits weights whose tasks disagree and merges those that
agree, rewriting the graphs' weight nodes, so the result does not depend on
which import stored which tensor first. A weight keeps its symbol where it
can; a split part is named `symbol.N`. Split parts keep one array (the
bytes are stored once; they are separate weights for roles, compression and
placement). Each weight is then tagged with its role: shared when every
task reads it, else the tasks that do, its reads per inference (ALBERT's
layer weights: 12) and its kind. A decoder task's two graphs (`ir/phases.py`)
are one task: its prefill and decode read the same weights, its own
included.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from aalbert.ir.encoding import Kind, Role
from aalbert.ir.graph import Graph, Node, Sym
from aalbert.ir.module import Module, Weight
from aalbert.ir.phases import task_of
from aalbert.ir.phases import tasks as task_names
from aalbert.passes.base import Analyses, Pass, register_pass
from aalbert.passes.positions import MAX_DISTANCE, Neighbourhood, Use, beside, symbols_in_order, weight_symbol
from aalbert.passes.weight_kinds import TASK_KINDS, classify, use_kinds


@dataclass
class _Item:
    """One weight as one task reads it."""

    task: int                 # the graph's index in the module (a task's phases are graphs of their own)
    symbol: str
    hash: str
    kind: Kind
    first: int                # order of its first use in the task
    reads: int                # nodes reading it in one inference
    uses: frozenset[Use] = field(default_factory=frozenset)

    @property
    def key(self) -> tuple[str, str]:
        return self.hash, self.kind

    @property
    def placed(self) -> frozenset[Use]:
        return frozenset(u for u in self.uses if u.placed)

    @property
    def beside(self) -> frozenset[Use]:
        """Its reads next to landmarks the reading node itself reads (distance 0)."""
        return frozenset(u for u in self.uses if u.distance == 0)


def _disagree(a: _Item, b: _Item) -> bool:
    """Two reads beside landmarks, and never beside the same ones: not one weight."""
    return bool(a.beside and b.beside and not (a.beside & b.beside))


class _Groups:
    """Union-find over items, where a group holds at most one item per task and no disagreeing pair."""

    def __init__(self, items: list[_Item]):
        self.items = items
        self.parent = list(range(len(items)))
        self.members = {i: [i] for i in range(len(items))}

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> bool:
        a, b = self.find(i), self.find(j)
        if a == b:
            return True
        ma, mb = self.members[a], self.members[b]
        if {self.items[k].task for k in ma} & {self.items[k].task for k in mb}:
            return False
        if any(_disagree(self.items[x], self.items[y]) for x in ma for y in mb):
            return False
        a, b = min(a, b), max(a, b)
        self.parent[b] = a
        self.members[a] = sorted(ma + mb)
        del self.members[b]
        return True


def _uniform(w: Weight) -> bool:
    """All elements equal (zeros, ones): bytes that do not say which parameter a tensor is."""
    if w.data is None or w.encoding.format != "plain" or w.data.size < 2:
        return False
    flat = w.data.reshape(-1)
    if flat[-1] != flat[0] or flat[flat.size // 2] != flat[0]:  # most tensors differ at once
        return False
    return bool(np.all(flat == flat[0]))


def split_uniform(module: Module, graph: Graph) -> int:
    """One weight per parameter where a file stored equal parameters as one tensor (the TorchScript ONNX
    exporter keeps one initializer per value, so a fresh model's zero biases arrive as one): a tensor of
    equal elements that the graph reads as different kinds, beside different matrices, or after different
    LoRA or adapter halves becomes one weight per such place. Returns how many weights were added."""
    if not any(n.op == "linear" or n.op == "layernorm" or n.op == "embedding" for n in graph.nodes):
        return 0
    reads: dict[str, list[tuple[Node, int]]] = {}
    for node in graph.nodes:
        for i, v in enumerate(node.inputs):
            s = weight_symbol(v.producer) if v.producer is not None else None
            if s is not None:
                reads.setdefault(s, []).append((node, i))
    candidates = [s for s, r in reads.items() if len(r) > 1 and _uniform(module.weights[s])]
    if not candidates:
        return 0
    kinds, users = use_kinds(graph), graph.users()
    count = Counter(module.weights[s].hash for s in reads)
    landmark = lambda h: count[h] == 1  # noqa: E731
    taken = set(reads)
    added = 0
    for s in candidates:
        places: dict[tuple, list[tuple[Node, int]]] = {}
        for node, i in reads[s]:
            kind = kinds.get((id(node), i), "other")
            place = (kind, node.op, i, beside(module, node, i, landmark, users, pairs=kind in TASK_KINDS))
            places.setdefault(place, []).append((node, i))
        w = module.weights[s]
        for group in list(places.values())[1:]:
            new = module.add_weight(w.data, s, digest=w.hash, taken=taken)
            taken.add(new.name)
            source = group[0][0].inputs[group[0][1]].producer
            node = graph.create_node("weight", [], {"name": Sym(new.name)}, [new.type])
            graph.insert(graph.nodes.index(source) + 1, node)
            for reader, i in group:
                graph.set_inputs(reader, [node.output if k == i else v for k, v in enumerate(reader.inputs)])
            added += 1
    if added:
        graph.renumber()
    return added


def _reads(graph: Graph) -> dict[str, int]:
    """Weight symbol -> nodes reading it (the most of any of its weight nodes)."""
    users = graph.users()
    reads: dict[str, int] = {}
    for node in graph.nodes:
        s = weight_symbol(node)
        if s is not None:
            reads[s] = max(reads.get(s, 0), len(users.get(node.output, [])))
    return reads


def _items(module: Module) -> list[_Item]:
    graphs = list(module.graphs.values())
    order = {t: symbols_in_order(g) for t, g in enumerate(graphs)}
    counts = [Counter(module.weights[s].hash for s in order[t]) for t in range(len(graphs))]
    landmarks = {h for h in counts[0] if all(c.get(h) == 1 for c in counts)} if counts else set()
    items = []
    for t, graph in enumerate(graphs):
        kinds, reads = classify(graph), _reads(graph)
        for i, s in enumerate(order[t]):
            items.append(_Item(t, s, module.weights[s].hash, kinds.get(s, "other"), i, reads.get(s, 0)))
    per_task = Counter((item.task, item.key) for item in items)
    ambiguous = {key for (_, key), n in per_task.items() if n > 1}
    for t, graph in enumerate(graphs):  # where each is read: in full where its bytes are ambiguous
        around = Neighbourhood(module, graph, landmarks.__contains__)
        for item in items:
            if item.task == t:
                item.uses = frozenset(around.uses(item.symbol, MAX_DISTANCE if item.key in ambiguous else 0))
    return items


def group_weights(module: Module) -> list[list[_Item]]:
    """The module's weights as the tasks read them, grouped into logical weights (in task, then use order)."""
    items = _items(module)
    groups = _Groups(items)
    by_key: dict[tuple[str, str], list[int]] = {}
    for k, item in enumerate(items):
        by_key.setdefault(item.key, []).append(k)
    owner = [task_of(name) for name in module.graphs]
    for key, ks in by_key.items():
        if key[1] in TASK_KINDS:  # a task's own, which its phases read as one weight
            for x in ks:
                for y in ks:
                    if x < y and items[x].symbol == items[y].symbol and owner[items[x].task] == owner[items[y].task]:
                        groups.join(x, y)
            continue
        per_task: dict[int, list[int]] = {}
        for k in ks:
            per_task.setdefault(items[k].task, []).append(k)
        if all(len(v) == 1 for v in per_task.values()):  # the bytes say which weight it is
            for x in ks:
                for y in ks:
                    if items[x].task < items[y].task:
                        groups.join(x, y)
            continue
        for x in ks:  # several weights with these bytes in some task: match by where they are read
            for y in ks:
                if items[x].task < items[y].task and items[x].placed & items[y].placed:
                    groups.join(x, y)
        unplaced = [[k for k in v if not items[k].placed] for _, v in sorted(per_task.items())]
        for rank in range(max(map(len, unplaced), default=0)):  # nothing near: the order of first use
            ranked = [v[rank] for v in unplaced if rank < len(v)]
            for y in ranked[1:]:
                groups.join(ranked[0], y)
    result: dict[int, list[_Item]] = {}
    for k in range(len(items)):
        result.setdefault(groups.find(k), []).append(items[k])
    return sorted(result.values(), key=lambda g: (g[0].task, g[0].first))


def _names(module: Module, groups: list[list[_Item]], unused: list[str]) -> list[str]:
    """A symbol per group: its first weight's where that is free, else `symbol.N`."""
    names: list[str | None] = [None] * len(groups)
    claimed = set(unused)
    for i, group in enumerate(groups):
        if group[0].symbol not in claimed:
            names[i] = group[0].symbol
            claimed.add(group[0].symbol)
    for i, group in enumerate(groups):
        if names[i] is None:
            n = 1
            while f"{group[0].symbol}.{n}" in claimed or f"{group[0].symbol}.{n}" in module.weights:
                n += 1
            names[i] = f"{group[0].symbol}.{n}"
            claimed.add(names[i])
    return names


@register_pass
@dataclass(frozen=True)
class Share(Pass):
    name = "share"
    summary = ("find which weights are one (kind, position, bytes) and tag each shared (read by every task) or "
               "task-specific, with reads per inference and kind")

    def run(self, module: Module, analyses: Analyses) -> Module:
        tasks = task_names(module.graphs)
        owner = [task_of(name) for name in module.graphs]
        for graph in module.graphs.values():
            split_uniform(module, graph)
        groups = group_weights(module)
        read = {item.symbol for group in groups for item in group}
        unused = [s for s in module.weights if s not in read]
        names = _names(module, groups, unused)
        symbol_of: dict[tuple[int, str], str] = {}
        parts: dict[str, list[str]] = {}  # old symbol -> the weights it became, in group order
        for name, group in zip(names, groups):
            for item in group:
                symbol_of[item.task, item.symbol] = name
                if name not in parts.setdefault(item.symbol, []):
                    parts[item.symbol].append(name)
        new: dict[str, Weight] = {}
        for name, group in zip(names, groups):
            old = module.weights[group[0].symbol]
            owners = tuple(dict.fromkeys(owner[i.task] for i in group))
            role = Role.of(len(owners) == len(tasks), owners, max(i.reads for i in group), group[0].kind)
            unchanged = all(i.symbol == old.name for i in group) and parts[old.name] == [name]
            new[name] = Weight(name, old.type, old.hash, old.data, role, old.encoding, old.scales,
                               old.placement if unchanged else None)
        for t, graph in enumerate(module.graphs.values()):
            for node in graph.nodes:
                s = weight_symbol(node)
                if s is not None and symbol_of[t, s] != s:
                    node.attrs = {"name": Sym(symbol_of[t, s])}
        pool: list[Weight] = []
        emitted: set[str] = set()
        for s, w in list(module.weights.items()):
            if s not in parts:  # read by no task
                w.role = Role.of(not tasks, (), 0, "other")
                pool.append(w)
            for name in parts.get(s, ()):
                if name not in emitted:
                    emitted.add(name)
                    pool.append(new[name])
        for s in list(module.weights):
            module.remove_weight(s)
        for w in pool:
            module.insert_weight(w)
        return module
