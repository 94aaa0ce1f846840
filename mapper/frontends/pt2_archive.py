"""What a `.pt2` file may hold, checked entry by entry before torch reads any of it.

`torch.export.load` trusts its file. Beyond the tensors, it would unpickle
`opaque_obj_*` constants (`pickle.loads`) and `custom_obj_*` ones, load
AOTInductor shared libraries found in the archive, evaluate every shape
expression with sympy (which calls `eval`), resolve a node's target as any
attribute path under `torch` (`torch.os.system` is one), import modules
its input and output structures name, and compile the program's guards
into Python that runs when the program is decomposed. So a model file is
read as untrusted input: `check_archive` accepts only what a program written
by `torch.export.save` holds, and refuses anything else before torch sees
the file:

- entries: one root folder, every name one of the archive's known kinds
  (format and version records, `models/<m>.json`, the weight and constant
  tables and their tensor records, sample inputs, `extra/` texts), no
  duplicates, no other compression than stored or deflated, and their
  declared sizes within the memory budget (tensor records twice: torch's
  copy and the IR's);
- the weight and constant tables: every entry a plain tensor (`use_pickle`
  false, a `weight_N` or `tensor_N` record that exists and is large enough
  for the tensor's sizes and strides);
- each program (JSON, read whole whatever its size): operators from ATen,
  prims, Python's `operator` and `math` modules and torch's symbolic-size
  helpers only; shape expressions and guards parsed as Python and walked
  against a list of allowed names and node types; no script objects; the
  input and output structures naming no module (`pt2_treespec`);
- sample inputs: read by torch's tensors-only unpickler, or refused.

Anything that does not parse refuses the file. The same open file is then
read (by `pt2_reader`, or by torch), so what was checked is what is read.
"""

from __future__ import annotations

import ast
import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from aalbert.errors import FrontendError
from aalbert.limits import check_bytes
from aalbert.mapper.frontends.pt2_treespec import treespec_problem

# Record names relative to the archive's root folder (torch/export/pt2_archive/constants.py).
_MODEL = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_ENTRY_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((kind, re.compile(pattern)) for kind, pattern in (
    ("format", r"archive_format"),
    ("version", r"archive_version|\.data/version|byteorder|\.data/serialization_id"),
    ("program", rf"models/({_MODEL})\.json"),
    ("weight table", rf"data/weights/({_MODEL})_weights_config\.json"),
    ("weight", r"data/weights/(weight_[0-9]+)"),
    ("constant table", rf"data/constants/({_MODEL})_constants_config\.json"),
    ("constant", r"data/constants/(tensor_[0-9]+)"),
    ("sample inputs", rf"data/sample_inputs/({_MODEL})\.pt"),
    ("extra", r"extra/[A-Za-z0-9_.-]+"),
))

# Operators a program may call: torch.ops.<namespace>.<packet>.<overload> for these namespaces, and these
# functions (what torch.export writes for size arithmetic). Any other target is refused.
_OP_NAMESPACES = ("aten", "prims")
_IDENT = r"(?!__)[A-Za-z_][A-Za-z0-9_]*"
_OP_TARGET = re.compile(rf"torch\.ops\.(?:{'|'.join(_OP_NAMESPACES)})\.{_IDENT}\.{_IDENT}")
_FUNCTION_TARGETS = frozenset(
    [f"_operator.{n}" for n in ("getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "neg",
                                "pos", "abs", "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_",
                                "invert", "lshift", "rshift")]
    + [f"math.{n}" for n in ("sqrt", "ceil", "floor", "trunc", "exp", "log", "log2", "pow", "isnan", "isinf")]
    + [f"torch.{n}" for n in ("sym_float", "sym_int", "sym_max", "sym_min", "sym_not", "sym_ite", "sym_sum",
                              "sym_sqrt", "_sym_sqrt")])

# Shape expressions are written by sympy's `srepr`; torch evaluates them with sympify (eval). Only calls of
# these sympy and torch size functions, on numbers, booleans and symbol names, are allowed.
_SYMPY_NAMES = frozenset((
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor",
    "ceiling", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan",
    "GreaterThan", "Equality", "Unequality", "And", "Or", "Not", "Xor", "true", "false", "oo", "zoo", "nan",
    "Infinity", "NegativeInfinity", "NaN", "Half", "One", "Zero", "NegativeOne", "Piecewise", "ExprCondPair",
    "BooleanTrue", "BooleanFalse", "True", "False", "None",
    # torch.utils._sympy.functions, as the deserializer names them
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor",
))
_SYMPY_KEYWORDS = frozenset(("positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite",
                             "infinite", "zero", "nonzero", "even", "odd", "commutative", "extended_real",
                             "precision", "evaluate"))
_POWERS = frozenset(("Pow", "PowByNatural", "FloatPow"))
_MAX_INT = 1 << 63
_MAX_EXPONENT = 64
_SYMBOL_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}|[-+]?[0-9.eE+-]{1,64}")

# Guards are Python comparisons over the inputs' sizes: L['x'].size()[1] >= 2, math.isnan(...), max(1, ...).
_GUARD_CALLS = frozenset(("size", "stride", "storage_offset", "dim", "numel"))
_GUARD_NAMES = frozenset(("L", "math", "max", "min", "abs", "int", "float", "bool", "True", "False", "None"))
_GUARD_MATH = frozenset(("isnan", "isinf", "inf", "nan", "floor", "ceil", "trunc", "sqrt"))
_EXPRESSION_NODES = (ast.Expression, ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name,
                     ast.Load, ast.Call, ast.keyword, ast.Subscript, ast.Attribute, ast.Tuple,
                     ast.cmpop, ast.boolop, ast.operator, ast.unaryop)

_DTYPE_BYTES = {  # torch._export.serde.schema.ScalarType -> element size
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 9: 4, 10: 8, 11: 16, 12: 1, 13: 2, 14: 2, 15: 4, 16: 1,
    17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 4, 23: 8, 24: 2, 25: 2,
}


class _Refused(Exception):
    """One reason to refuse the archive (turned into a FrontendError naming the file)."""


@dataclass
class _Archive:
    zip: zipfile.ZipFile
    root: str
    kinds: dict[str, tuple[str, str | None]]   # record name (relative) -> (kind, captured name)

    def read(self, name: str) -> bytes:
        """A record's bytes, refusing one that inflates past its declared size."""
        info = self.zip.getinfo(f"{self.root}/{name}")
        out = io.BytesIO()
        with self.zip.open(info) as f:
            while chunk := f.read(1 << 20):
                out.write(chunk)
                if out.tell() > info.file_size:
                    raise _Refused(f"entry {name} holds more than its declared {info.file_size} bytes")
        return out.getvalue()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (ValueError, RecursionError) as e:
            raise _Refused(f"entry {name} is not valid JSON ({type(e).__name__})") from None

    def size(self, name: str) -> int | None:
        try:
            return self.zip.getinfo(f"{self.root}/{name}").file_size
        except KeyError:
            return None

    def named(self, kind: str) -> list[tuple[str, str | None]]:
        return [(name, captured) for name, (k, captured) in self.kinds.items() if k == kind]


def check_archive(f: BinaryIO, path: str) -> None:
    """Refuse `f` (the open `.pt2` file at `path`) unless every entry is one a torch.export program may hold."""
    try:
        with zipfile.ZipFile(f) as z:
            archive = _entries(z, path)
            _check_tables(archive)
            for name, _ in archive.named("program"):
                _check_program(archive.json(name), name)
            for name, _ in archive.named("sample inputs"):
                _check_sample_inputs(archive.read(name), name)
    except _Refused as e:
        raise FrontendError(f"{path}: refused: {e}; only what torch.export.save writes is read") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, ValueError) as e:
        raise FrontendError(f"{path}: not a readable torch.export program ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else 'damaged archive'})") from None
    finally:
        f.seek(0)


def _entries(z: zipfile.ZipFile, path: str) -> _Archive:
    infos = z.infolist()
    names = [i.filename for i in infos]
    if any(n.endswith("/data.pkl") for n in names) and not any(n.endswith("/archive_format") for n in names):
        raise FrontendError(f"{path}: is a torch.save file, not a torch.export program (write one with "
                            "torch.export.save)")
    if not infos:
        raise _Refused("the archive is empty")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _Refused(f"entry {dup} appears twice")
    root = names[0].split("/", 1)[0]
    kinds: dict[str, tuple[str, str | None]] = {}
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        head, _, rel = info.filename.partition("/")
        if head != root or not rel:
            raise _Refused(f"entry {info.filename} is outside the archive's folder {root}/")
        kind = next(((k, m) for k, p in _ENTRY_KINDS if (m := p.fullmatch(rel))), None)
        if kind is None:
            raise _Refused(f"entry {rel} is not part of a torch.export program (compiled code, pickles and "
                           "other files are not read)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refused(f"entry {rel} is compressed with method {info.compress_type}")
        label, match = kind
        kinds[rel] = (label, match.group(1) if match.groups() else None)
        total += info.file_size * (2 if label in ("weight", "constant") else 1)
    check_bytes(total, f"{path}: the archive")
    if kinds.get("archive_format", ("",))[0] != "format":
        raise _Refused("it has no archive_format record")
    archive = _Archive(z, root, kinds)
    if archive.read("archive_format") != b"pt2":
        raise _Refused("its archive_format record is not 'pt2'")
    if "models/model.json" not in kinds:
        raise _Refused("it holds no program named 'model' (models/model.json)")
    return archive


def _check_tables(archive: _Archive) -> None:
    for kind, _record, prefix, folder in (("weight table", "weight", "weight_", "data/weights/"),
                                              ("constant table", "constant", "tensor_", "data/constants/")):
        for name, _ in archive.named(kind):
            table = archive.json(name)
            config = table.get("config") if isinstance(table, dict) else None
            if not isinstance(config, dict):
                raise _Refused(f"entry {name} has no 'config' table")
            for fqn, meta in config.items():
                _check_payload(archive, name, str(fqn), meta, prefix, folder)


def _check_payload(archive: _Archive, table: str, fqn: str, meta: Any, prefix: str, folder: str) -> None:
    where = f"{table}: '{fqn}'"
    if not isinstance(meta, dict):
        raise _Refused(f"{where} is not a table")
    path_name = meta.get("path_name")
    if meta.get("use_pickle") is not False or not isinstance(path_name, str) or \
            not re.fullmatch(rf"{prefix}[0-9]+", path_name):
        raise _Refused(f"{where} is a pickled Python object ({path_name}), not a tensor; only tensors are read")
    tm = meta.get("tensor_meta")
    if not isinstance(tm, dict) or tm.get("dtype") not in _DTYPE_BYTES:
        raise _Refused(f"{where} has no tensor type")
    sizes, strides, offset = (_ints(tm.get("sizes"), where), _ints(tm.get("strides"), where),
                              _ints([tm.get("storage_offset")], where)[0])
    if len(sizes) != len(strides):
        raise _Refused(f"{where} has {len(sizes)} sizes but {len(strides)} strides")
    size = archive.size(folder + path_name)
    if size is None:
        raise _Refused(f"{where} names the record {path_name}, which the archive does not hold")
    itemsize = _DTYPE_BYTES[tm["dtype"]]
    extent = 0 if 0 in sizes else offset + 1 + sum((n - 1) * s for n, s in zip(sizes, strides))
    if size and (size % itemsize or size < extent * itemsize):
        raise _Refused(f"{where}: record {path_name} has {size} bytes, too few for its sizes and strides")


def _ints(items: Any, where: str) -> list[int]:
    if not isinstance(items, list):
        raise _Refused(f"{where} has no sizes")
    out = []
    for item in items:
        v = item.get("as_int") if isinstance(item, dict) else None
        if type(v) is not int or not 0 <= v < _MAX_INT:
            raise _Refused(f"{where} has a size or stride that is not a non-negative integer")
        out.append(v)
    return out


def _check_program(program: Any, name: str) -> None:
    if not isinstance(program, dict):
        raise _Refused(f"entry {name} is not a program")
    for i, guard in enumerate(program.get("guards_code") or []):
        if not isinstance(guard, str):
            raise _Refused(f"entry {name}: guard {i} is not text")
        _check_expression(guard, _guard_node, f"entry {name}: guard {guard[:60]!r}")
    for key, value, parent in _walk(program):
        if key == "target" and isinstance(parent, dict) and "inputs" in parent:
            _check_target(value, name)
        elif key == "as_operator":
            _check_target(value, name)
        elif key == "expr_str":
            if not isinstance(value, str):
                raise _Refused(f"entry {name}: a shape expression is not text")
            _check_expression(value, _sympy_node, f"entry {name}: shape expression {value[:60]!r}")
        elif key in ("as_custom_obj", "custom_obj", "custom_obj_values") and value:
            raise _Refused(f"entry {name} holds a script object; only tensors are read")
        elif key in ("in_spec", "out_spec") and isinstance(value, str):  # torch reads no other kind
            problem = treespec_problem(value)
            if problem:
                raise _Refused(f"entry {name}: the {key[:-5]}put structure (treespec) {problem}")


def _walk(tree: Any) -> Iterator[tuple[str, Any, Any]]:
    """Every (key, value, containing dict) of a JSON tree, without recursion."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                yield k, v, node
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def allowed_target(target: Any) -> bool:
    """Whether a node may call `target`: an ATen or prims operator, or size arithmetic."""
    return isinstance(target, str) and bool(_OP_TARGET.fullmatch(target) or target in _FUNCTION_TARGETS)


def _check_target(target: Any, name: str) -> None:
    if not allowed_target(target):
        raise _Refused(f"entry {name} calls {str(target)[:80]!r}, which is not an ATen or prims operator or "
                       "size arithmetic")


def _check_expression(text: str, allowed, where: str) -> None:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise _Refused(f"{where} does not parse") from None
    for node in ast.walk(tree):
        if not isinstance(node, _EXPRESSION_NODES) or not allowed(node):
            raise _Refused(f"{where} uses {_describe(node)}, which a shape expression may not")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"the attribute {node.attr!r}"
    if isinstance(node, ast.Constant):
        return f"the constant {str(node.value)[:40]!r}"
    if isinstance(node, ast.Call):
        callee = node.func.id if isinstance(node.func, ast.Name) else \
            node.func.attr if isinstance(node.func, ast.Attribute) else "an expression"
        return f"a call of {callee!r}"
    return f"a {type(node).__name__} node"


def _sympy_node(node: ast.AST) -> bool:
    """srepr's vocabulary: calls of allowed functions by name, with numbers, booleans and symbol names."""
    if isinstance(node, (ast.Subscript, ast.Attribute, ast.Compare, ast.BoolOp, ast.Tuple, ast.BinOp)):
        return False  # srepr writes calls only; an infix power could take forever
    if isinstance(node, ast.Name):
        return node.id in _SYMPY_NAMES
    if isinstance(node, ast.keyword):
        return node.arg in _SYMPY_KEYWORDS
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            return False
        if node.func.id in _POWERS:  # a huge power would take forever to evaluate
            return len(node.args) == 2 and _small_exponent(node.args[1])
        return True
    return _constant(node)


def _small_exponent(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Integer" and node.args:
        node = node.args[0]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value <= _MAX_EXPONENT


def _guard_node(node: ast.AST) -> bool:
    """Comparisons over L['input'].size()[i] and friends, with math's predicates and min/max."""
    if isinstance(node, ast.Name):
        return node.id in _GUARD_NAMES
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "math":
            return node.attr in _GUARD_MATH
        return node.attr in _GUARD_CALLS
    if isinstance(node, ast.keyword):
        return False
    if isinstance(node, ast.Call):
        return isinstance(node.func, (ast.Name, ast.Attribute))
    if isinstance(node, ast.Subscript):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Pow, ast.LShift)):
        return _small_exponent(node.right)
    return _constant(node)


def _constant(node: ast.AST) -> bool:
    if not isinstance(node, ast.Constant):
        return not isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.keyword))
    v = node.value
    if isinstance(v, bool) or v is None:
        return True
    if isinstance(v, int):
        return abs(v) < _MAX_INT
    if isinstance(v, float):
        return True
    return isinstance(v, str) and bool(_SYMBOL_TEXT.fullmatch(v))


def _check_sample_inputs(data: bytes, name: str) -> None:
    """Sample inputs are a torch.save file; torch's tensors-only unpickler must read them."""
    if not data:
        return
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its note on the pickle protocol
            torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # the unpickler refuses anything but tensors and plain containers, each its own way
        raise _Refused(f"entry {name} is not tensors only ({type(e).__name__})") from None
