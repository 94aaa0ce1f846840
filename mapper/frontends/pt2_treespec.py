"""What a program's input and output structures (pytree treespecs) may say, checked before torch reads them.

torch.export writes the structure of a program's inputs and outputs as a
treespec: JSON text naming a container type per level, with a context (a
dict's keys, a namedtuple's registered name). torch's reader
(`torch.utils._pytree.treespec_loads`) imports Python modules that a
treespec names: the module of a `collections.defaultdict`'s factory, and the
module of any enum written in a context (`{"__enum__": ..., "fqn":
"module:Class"}`). Importing a module runs its code, so `treespec_problem`
refuses both; everything else a treespec says is looked up in torch's
registry of container types, or fails there in one line.
"""

from __future__ import annotations

import json

# Types whose context torch hands to their own reader rather than to json.loads: a namedtuple's is a name
# looked up in torch's registry; a defaultdict's names a module to import.
_OWN_READER = frozenset(("collections.namedtuple",))
_REFUSED_TYPES = {"collections.defaultdict": "a defaultdict, whose factory torch would import by name"}
_NODE_KEYS = frozenset(("type", "context", "children_spec"))


def treespec_problem(text: str) -> str | None:
    """Why torch must not read the treespec `text`; None when it may."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return "is not valid JSON"
    if not isinstance(doc, list) or len(doc) != 2 or type(doc[0]) is not int:
        return "is not a [protocol, structure] pair"
    stack = [doc[1]]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or not set(node) <= _NODE_KEYS:
            return "has a level that is not a {type, context, children_spec} table"
        kind, context, children = node.get("type"), node.get("context"), node.get("children_spec")
        if kind in _REFUSED_TYPES:
            return f"holds {_REFUSED_TYPES[kind]}"
        if kind not in _OWN_READER and isinstance(context, str):
            problem = _context_problem(context)
            if problem:
                return problem
        if not isinstance(children, list):
            return "has a level without a list of children"
        stack.extend(children)
    return None


def _context_problem(context: str) -> str | None:
    """Why torch must not read a context with json.loads and its enum hook, which runs on each table as the
    parser completes it (so also on those before a syntax error)."""
    try:
        doc = json.loads(context)
    except (ValueError, RecursionError):
        return "has a context that is not valid JSON"
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__enum__" in item:
                return "names an enum, whose module torch would import"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
