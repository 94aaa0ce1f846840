"""Parse the IR text form (grammar: `ir/ir.lark`) back into a `Module`.

`parse_module` checks syntax and name resolution and records each node's
position; it does not type-check (use `ir.verifier.verify`, which reports
type errors at the same positions). Errors read `file:line:col: message`.

What parsing will take is checked against the memory budget before it
starts: the syntax tree (estimated from the text's length and its commas,
since every list element is a token and a tree node) and then every dense
literal of the file together, before the first is made.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import lark
import numpy as np

from aalbert.errors import IRParseError, Loc
from aalbert.ir.encoding import Encoding, Role
from aalbert.ir.facts import FactError, fact_keys, fact_record
from aalbert.ir.graph import Graph, Sym, Value
from aalbert.ir.mapping import Mapping
from aalbert.ir.module import Module, Weight
from aalbert.ir.placement import Arena, Placement
from aalbert.ir.types import DType, TensorType, parse_tensor_type
from aalbert.limits import LimitError, check_bytes, in_use, max_bytes

_TERMINAL_WORDS = {
    "TYPE": "a type (tensor<...>)", "SYMBOL": "a symbol (@name)", "VALUE": "a value (%name)",
    "OPNAME": "an op name", "KEY": "an attribute name", "FLOAT": "a number", "INT": "a number",
    "STRING": "a string", "TRUE": "true", "FALSE": "false", "$END": "end of input",
}


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files("aalbert.ir").joinpath("ir.lark").read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe(names) -> str:
    parser = _parser()
    words = set()
    for name in names:
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
            words.add(f"'{pattern.value}'" if pattern.type == "str" else name)
        except KeyError:
            words.add(name)
    return ", ".join(sorted(words))


def _end(text: str, filename: str) -> Loc:
    return Loc(filename, text.count("\n") + 1, len(text) - text.rfind("\n"))


def _shown(text: str) -> str:
    """A token as it can appear in a one-line message."""
    if len(text) > 40:
        text = text[:37] + "..."
    return text if text.isprintable() and text.strip() else repr(text)[1:-1]


def _syntax_error(e: lark.exceptions.LarkError, text: str, filename: str) -> IRParseError:
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        loc = Loc(filename, e.line, e.column)
        return IRParseError(f"unexpected character '{_shown(e.char)}'; expected {_describe(e.allowed)}", loc)
    if isinstance(e, lark.exceptions.UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            return IRParseError(f"unexpected end of input; expected {_describe(e.expected)}", _end(text, filename))
        return IRParseError(f"unexpected '{_shown(tok.value)}'; expected {_describe(e.expected)}",
                            Loc(filename, tok.line, tok.column))
    if isinstance(e, lark.exceptions.UnexpectedEOF):
        return IRParseError(f"unexpected end of input; expected {_describe(e.expected)}", _end(text, filename))
    return IRParseError(str(e).splitlines()[0], Loc(filename, 1, 1))


def _string(token, filename: str, text: str | None = None) -> str:
    """The value of a quoted string (`text`, default the token's); the grammar admits escapes JSON does not."""
    text = str(token) if text is None else text
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise IRParseError(f"bad string {text[:40]!r} ({e.msg})",
                           Loc(filename, getattr(token, "line", 1), getattr(token, "column", 1))) from None


def _name(token, filename: str) -> str:
    """A symbol's name without its sigil (`@`, `%`), unquoted if quoted."""
    body = token[1:]
    return _string(token, filename, body) if body.startswith('"') else body


# What lark's tree and the module built from it hold, at most, per character of text and per comma (a list
# element: a token, a tree node and the element itself), measured on dense lists, attribute lists and long
# chains of nodes (benchmarks/bounds.py checks these against what parsing takes).
TREE_BYTES_PER_CHAR = 160
TREE_BYTES_PER_COMMA = 1024


def parse_estimate(text: str) -> int:
    """Bytes that parsing `text` may hold at once, about (the dense literals apart)."""
    return TREE_BYTES_PER_CHAR * len(text) + TREE_BYTES_PER_COMMA * text.count(",")


def parse_module(text: str, filename: str = "<input>") -> Module:
    try:
        check_bytes(parse_estimate(text), f"parsing {filename} ({len(text):,} characters)")
    except LimitError as e:
        raise IRParseError(e.message, Loc(filename, 1, 1)) from None
    try:
        tree = _parser().parse(text)
    except lark.exceptions.LarkError as e:
        raise _syntax_error(e, text, filename) from None
    builder = _Builder(filename)
    builder.check_literals(tree)
    return builder.module(tree)


class _Builder:
    def __init__(self, filename: str):
        self.filename = filename

    def loc(self, item) -> Loc:
        line = getattr(item, "line", None) or getattr(getattr(item, "meta", None), "line", 1)
        col = getattr(item, "column", None) or getattr(getattr(item, "meta", None), "column", 1)
        return Loc(self.filename, line, col)

    def error(self, message: str, item) -> IRParseError:
        return IRParseError(message, self.loc(item))

    def check_literals(self, tree) -> None:
        """Every dense literal of the file together against the budget, before any is made; an error points
        at the literal that goes over."""
        literals = [(self.type(item.children[1]), item.children[1]) for item in tree.find_data("dense")]
        total = sum(t.nbytes for t, _ in literals)
        room = max_bytes() - in_use()
        if total <= room:
            return
        running = 0
        for k, (t, tok) in enumerate(literals):
            running += t.nbytes
            if running > room or k == len(literals) - 1:
                what = f"the dense literal {t}" if k == 0 else f"the dense literal {t}, with the {k} before it,"
                try:
                    check_bytes(running, what)
                except LimitError as e:
                    raise self.error(e.message, tok) from None

    def type(self, token) -> TensorType:
        try:
            return parse_tensor_type(str(token))
        except ValueError as e:
            raise self.error(str(e), token) from None

    def module(self, tree) -> Module:
        module = Module()
        for item in tree.children:
            if item.data == "weight_decl":
                sym, type_tok, hash_tok, facts = item.children
                name = _name(sym, self.filename)
                if name in module.weights:
                    raise self.error(f"weight @{name} declared twice", sym)
                weight = Weight(name, self.type(type_tok), _string(hash_tok, self.filename))
                if facts is not None:
                    self.weight_facts(weight, self.attr_dict(facts), sym)
                module.insert_weight(weight)
            else:
                graph = self.graph(item, module)
                if graph.name in module.graphs:
                    raise self.error(f"graph @{graph.name} defined twice", item.children[0])
                module.add_graph(graph)
        return module

    def graph(self, tree, module: Module) -> Graph:
        sym, *rest = tree.children
        graph = Graph(_name(sym, self.filename))
        scope: dict[str, Value] = {}
        results: list[tuple[str, TensorType, object]] = []
        for item in rest:
            if item is None:
                continue
            if item.data == "arg":
                vtok, typed = item.children
                name = _name(vtok, self.filename)
                if name in scope:
                    raise self.error(f"%{name} defined twice", vtok)
                t, offset = self.typed(typed)
                scope[name] = graph.add_input(name, t)
                scope[name].offset = offset
            elif item.data == "arena":
                graph.arena = self.arena(item)
            elif item.data == "result":
                stok, ttok = item.children
                results.append((_string(stok, self.filename), self.type(ttok), stok))
            elif item.data == "node":
                self.node(item, graph, scope)
            elif item.data == "ret":
                values = [self.use(t, scope) for t in item.children if t is not None]
                if len(values) != len(results):
                    raise self.error(f"return has {len(values)} values but the signature "
                                     f"declares {len(results)} results", item)
                for (rname, rtype, rtok), v in zip(results, values):
                    if v.type != rtype:
                        raise self.error(f"result \"{rname}\" is declared {rtype} but "
                                         f"%{v.name} is {v.type}", rtok)
                graph.set_outputs((rname, v) for (rname, _, _), v in zip(results, values))
        return graph

    def use(self, token, scope: dict[str, Value]) -> Value:
        name = _name(token, self.filename)
        try:
            return scope[name]
        except KeyError:
            raise self.error(f"use of undefined value %{name}", token) from None

    def node(self, tree, graph: Graph, scope: dict[str, Value]) -> None:
        kids = tree.children
        i = 0
        out_tokens = []
        while kids[i].type == "VALUE":
            out_tokens.append(kids[i])
            i += 1
        op_tok, operands, attrs = kids[i], kids[i + 1], kids[i + 2]
        mapping = kids[-1]
        typed = [self.typed(t) for t in kids[i + 3:-1]]
        if len(typed) != len(out_tokens):
            raise self.error(f"{len(out_tokens)} results but {len(typed)} types", op_tok)
        inputs = [self.use(t, scope) for t in (operands.children if operands else []) if t is not None]
        attr_map = self.attr_dict(attrs) if attrs else {}
        names = []
        for t in out_tokens:
            name = _name(t, self.filename)
            if name in scope or name in names:
                raise self.error(f"%{name} defined twice", t)
            names.append(name)
        node = graph.create_node(str(op_tok), inputs, attr_map, [t for t, _ in typed],
                                 names, loc=self.loc(out_tokens[0]))
        if mapping is not None:
            node.mapping = self.mapping(mapping.children[0])
        graph.append(node)
        for v, (_, offset) in zip(node.outputs, typed):
            v.offset = offset
            scope[v.name] = v

    def typed(self, tree) -> tuple[TensorType, int | None]:
        type_tok, offset = tree.children
        if offset is not None and int(offset) < 0:
            raise self.error(f"negative offset {offset}", offset)
        return self.type(type_tok), None if offset is None else int(offset)

    def mapping(self, token) -> Mapping:
        try:
            return Mapping.parse(_string(token, self.filename))
        except FactError as e:
            raise self.error(f"mapping: {e}", token) from None

    def arena(self, tree) -> Arena:
        try:
            return fact_record(Arena, self.attr_dict(tree.children[0]))
        except FactError as e:
            raise self.error(f"arena: {e}", tree.children[0]) from None

    def attr_dict(self, tree) -> dict:
        result = {}
        for attr in tree.children:
            if attr is None:
                continue
            key, val = attr.children
            if str(key) in result:
                raise self.error(f"attribute '{key}' given twice", key)
            result[str(key)] = self.attr(val)
        return result

    def weight_facts(self, weight: Weight, facts: dict, where) -> None:
        """Fill role, encoding and placement from a weight's attribute dict (`ir.facts` checks each)."""
        groups: dict[type, dict] = {Role: {}, Encoding: {}, Placement: {}}
        for key, value in facts.items():
            owner = next((cls for cls in groups if key in fact_keys(cls)), None)
            if owner is None:
                raise self.error(f"weight @{weight.name}: unknown fact '{key}'", where)
            groups[owner][key] = value
        try:
            if groups[Role]:
                weight.role = fact_record(Role, groups[Role])
            if groups[Encoding]:
                weight.encoding = fact_record(Encoding, groups[Encoding], Encoding.plain(weight.type.dtype))
            if groups[Placement]:
                weight.placement = fact_record(Placement, groups[Placement])
        except FactError as e:
            raise self.error(f"weight @{weight.name}: {e}", where) from None

    def attr(self, item):
        if isinstance(item, lark.Token):  # SYMBOL
            return Sym(_name(item, self.filename))
        if item.data == "scalar":
            return self.scalar(item.children[0])
        if item.data == "list":
            values = tuple(self.scalar(s.children[0]) for s in item.children if s is not None)
            kinds = {type(v) for v in values}
            if len(kinds) > 1 or kinds - {int, float, str}:
                raise self.error("a list attribute holds only ints, only floats or only strings", item)
            return values
        return self.dense(item)

    def scalar(self, tok):
        match tok.type:
            case "INT":
                return int(tok)
            case "FLOAT":
                return float(tok)
            case "STRING":
                return _string(tok, self.filename)
            case "TRUE":
                return True
            case "FALSE":
                return False
        raise self.error(f"unexpected {tok}", tok)

    def dense(self, item) -> np.ndarray:
        body, type_tok = item.children
        t = self.type(type_tok)  # its bytes are checked with the file's other literals (check_literals)
        try:
            if body.data == "list":
                tokens = [s.children[0] for s in body.children if s is not None]
                if len(tokens) != t.numel:
                    raise self.error(f"dense literal has {len(tokens)} elements, {t} needs {t.numel}", type_tok)
                array = np.array([self.element(tok, t.dtype) for tok in tokens], dtype=t.dtype.np).reshape(t.shape)
            else:  # a splat: one value, filled in without a list of every element
                array = np.full(t.shape, self.element(body.children[0], t.dtype), dtype=t.dtype.np)
        except (ValueError, OverflowError) as e:
            raise self.error(f"bad dense element for {t}: {e}", type_tok) from None
        array.setflags(write=False)  # made here, so frozen in place rather than copied by constant_array
        return array

    def element(self, tok, dtype: DType):
        if dtype is DType.BOOL:
            if tok.type not in ("TRUE", "FALSE"):
                raise ValueError(f"'{tok}' is not true or false")
            return tok.type == "TRUE"
        if tok.type in ("TRUE", "FALSE", "STRING"):
            raise ValueError(f"'{tok}' is not a number")
        if dtype.is_int:
            if tok.type != "INT":
                raise ValueError(f"'{tok}' is not an integer")
            value = int(tok)
            info = np.iinfo(dtype.np)
            if not info.min <= value <= info.max:
                raise ValueError(f"{value} does not fit {dtype}")
            return value
        return float(tok)
