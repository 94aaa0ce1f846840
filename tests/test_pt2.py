""".pt2 files (torch.export.save) on the command line: compile, run, mixed with ONNX, and bad files."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aalbert.examples import export as export_cli  # noqa: E402
from aalbert.examples.export import export_pt2  # noqa: E402
from aalbert.ir.fileio import write_npz  # noqa: E402
from aalbert.mapper.cli import compile as compile_cli  # noqa: E402
from aalbert.mapper.cli import run as run_cli  # noqa: E402

from .conftest import SEQ  # noqa: E402
from .test_cli import assert_clean_error, call  # noqa: E402


@pytest.fixture(scope="session")
def tiny_pt2(tmp_path_factory, tiny_models):
    """{task: path}: the tiny adapter-ALBERT's tasks saved as .pt2 files, once per session."""
    out = tmp_path_factory.mktemp("pt2")
    return {task: export_pt2(m, out / f"{task}.pt2", seq_len=SEQ)
            for task, m in tiny_models["adapter-albert"].items()}


def test_compile_pt2_files_like_their_onnx_exports(capsys, tiny_pt2, tiny_exports):
    onnx = tiny_exports["adapter-albert", "torchscript"]
    code, from_pt2, err = call(compile_cli.main, [*tiny_pt2.values(), "--seq-len", SEQ], capsys)
    assert code == 0, err
    code, from_onnx, err = call(compile_cli.main, [*onnx.values(), "--seq-len", SEQ], capsys)
    assert code == 0, err
    assert from_pt2 == from_onnx
    assert "shared by all 2 tasks" in from_pt2


def test_task_options_mix_pt2_and_onnx(capsys, tiny_pt2, tiny_exports):
    onnx = tiny_exports["adapter-albert", "dynamo"]
    code, out, err = call(compile_cli.main, ["--task", f"a={tiny_pt2['cola']}", "--task", f"b={onnx['stsb']}",
                                             "--seq-len", SEQ, "--batch", 2], capsys)
    assert code == 0, err
    assert "2 tasks from 2 files, batch 2, sequence 16" in out
    assert "\na " in out and "\nb " in out and "shared by all 2 tasks" in out


def test_run_pt2_keys_inputs_and_outputs_by_the_programs_names(tmp_path, capsys, tiny_pt2, tiny_models, tiny_inputs):
    feeds = {k: np.repeat(v[:, :9], 3, axis=0) for k, v in tiny_inputs.items()}  # other batch and sequence
    write_npz(tmp_path / "in.npz", feeds)
    code, out, err = call(run_cli.main, [tiny_pt2["stsb"], "--inputs", tmp_path / "in.npz", "-o",
                                         tmp_path / "out.npz"], capsys)
    assert code == 0, err
    got = dict(np.load(tmp_path / "out.npz"))
    assert list(got) == ["logits"]
    with torch.no_grad():
        want = tiny_models["adapter-albert"]["stsb"](**{k: torch.from_numpy(v) for k, v in feeds.items()})
    np.testing.assert_allclose(got["logits"], want.numpy(), atol=1e-5)


def test_export_script_writes_pt2_files_the_compiler_takes(tmp_path, capsys):
    code, out, err = call(export_cli.main, ["--format", "pt2", "--tasks", 1, "--out", tmp_path / "m", "--quiet"],
                          capsys)
    assert code == 0, err
    path = tmp_path / "m" / "cola.pt2"
    assert out == f"cola: {path}\n" and sorted((tmp_path / "m").iterdir()) == [path]
    code, out, err = call(compile_cli.main, [path, "--seq-len", SEQ], capsys)
    assert code == 0, err
    assert "1 task from 1 file, batch 1, sequence 16" in out


def test_a_family_is_traced_once_per_architecture(tmp_path, tiny_models):
    """A task whose weights fit an earlier task's program takes its graph with its own weights (`rebound`; at
    base size the files are byte for byte those of a trace); another head, or a forward that computes
    something else, is traced again."""
    import copy

    from aalbert.examples.export import INPUT_NAMES, NamedOutput, program, rebound
    from aalbert.examples.zoo import example_inputs

    models = tiny_models["adapter-albert"]
    traced = program(models["cola"], SEQ)
    inputs = example_inputs(models["cola"].config, 2, SEQ)
    args = tuple(inputs[n] for n in INPUT_NAMES)
    same = rebound(traced, NamedOutput(models["cola"]).eval(), args)
    assert same is not None
    for name, ep in (("traced", traced), ("rebound", same)):
        (tmp_path / name).mkdir()
        torch.export.save(ep, str(tmp_path / name / "cola.pt2"))  # the archive's folder is the file's stem
    assert (tmp_path / "rebound" / "cola.pt2").read_bytes() == (tmp_path / "traced" / "cola.pt2").read_bytes()
    other = NamedOutput(copy.deepcopy(models["cola"])).eval()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    moved = rebound(traced, other, args)
    assert moved is not None and set(moved.state_dict) == set(other.state_dict())
    assert all(moved.state_dict[k] is v for k, v in other.state_dict(keep_vars=True).items())
    assert rebound(traced, NamedOutput(models["stsb"]).eval(), args) is None  # a one-label head

    class Shifted(NamedOutput):
        def forward(self, input_ids, attention_mask, token_type_ids):
            return {k: v + 1 for k, v in super().forward(input_ids, attention_mask, token_type_ids).items()}

    assert rebound(traced, Shifted(models["cola"]).eval(), args) is None


def _refuse(*args, **kwargs):
    raise AssertionError("torch read or decomposed the program")


def test_a_pt2_is_read_and_walked_without_torch_export_load(monkeypatch, tiny_pt2):
    """The example's program is read from the archive and walked as recorded: no torch.export.load, no
    decomposition, and the same module as torch's reading of it, decomposed."""
    from aalbert.ir.module import Module
    from aalbert.ir.printer import print_module
    from aalbert.mapper.frontends import DimSpec, aten_import, torch_import

    direct = Module()
    with monkeypatch.context() as m:
        m.setattr(torch.export, "load", _refuse)
        m.setattr(torch_import, "decompose", _refuse)
        for task, path in tiny_pt2.items():
            torch_import.import_pt2(path, direct, task, DimSpec(2, SEQ))
    through_torch = Module()
    monkeypatch.setattr(aten_import, "read_program", lambda f: None)
    for task, path in tiny_pt2.items():
        torch_import.import_pt2(path, through_torch, task, DimSpec(2, SEQ))
    assert print_module(direct) == print_module(through_torch)


def test_the_reader_itself_calls_only_what_the_archive_check_allows(tmp_path, tiny_pt2):
    """Read without the check, a program naming another function is left to torch (behind the check)."""
    from aalbert.mapper.frontends.pt2_reader import read_program

    def change(name, data):
        if not name.endswith("models/model.json"):
            return data
        doc = json.loads(data)
        doc["graph_module"]["graph"]["nodes"][0]["target"] = "torch.load"
        return json.dumps(doc).encode()

    path = tmp_path / "other.pt2"
    _rewrite(tiny_pt2["cola"], path, change)
    with open(tiny_pt2["cola"], "rb") as f:
        assert read_program(f) is not None
    with open(path, "rb") as f:
        assert read_program(f) is None


def test_a_pt2_holding_an_infinity_is_read_without_torch_export_load(tmp_path, monkeypatch):
    """JSON has no infinities: torch.export.save writes -inf as "-Infinity", and the reader takes it as torch
    does."""
    from aalbert.ir.interpreter import run
    from aalbert.ir.module import Module
    from aalbert.mapper.frontends import DimSpec, torch_import

    class Masked(torch.nn.Module):
        def forward(self, x, keep):
            return x.masked_fill(~keep, float("-inf")).softmax(-1)

    x, keep = torch.randn(2, 4), torch.tensor([[True, True, False, True], [False, True, True, True]])
    path = tmp_path / "masked.pt2"
    torch.export.save(torch.export.export(Masked(), (x, keep), strict=False), str(path))
    with zipfile.ZipFile(path) as z:
        assert b'"-Infinity"' in z.read(next(n for n in z.namelist() if n.endswith("models/model.json")))
    monkeypatch.setattr(torch.export, "load", _refuse)
    monkeypatch.setattr(torch_import, "decompose", _refuse)
    module = Module()
    torch_import.import_pt2(path, module, "t", DimSpec(2, 4))
    got = run(module, "t", {"x": x.numpy(), "keep": keep.numpy()})["output"]
    np.testing.assert_allclose(got, Masked()(x, keep).numpy(), atol=1e-6)


def test_a_pt2_the_table_cannot_walk_as_recorded_goes_through_torch(tmp_path, monkeypatch):
    """hardswish is not in the table, its decomposition is: torch reads and decomposes the file after all."""
    from aalbert.ir.interpreter import run
    from aalbert.ir.module import Module
    from aalbert.mapper.frontends import DimSpec, torch_import

    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return torch.nn.functional.hardswish(self.lin(x))

    model, x = Gated().eval(), torch.randn(3, 4)
    path = tmp_path / "gated.pt2"
    torch.export.save(torch.export.export(model, (x,), strict=False), str(path))
    loads = []
    load = torch.export.load
    monkeypatch.setattr(torch.export, "load", lambda *args, **kwargs: loads.append(1) or load(*args, **kwargs))
    module = Module()
    torch_import.import_pt2(path, module, "t", DimSpec(3, 4))
    assert loads == [1]
    with torch.no_grad():
        np.testing.assert_allclose(run(module, "t", {"x": x.numpy()})["output"], model(x).numpy(), atol=1e-6)


def _rewrite(src, dst, change) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change(info.filename, zin.read(info.filename)))


@pytest.mark.parametrize("kind, match", [
    ("truncated", "not a readable torch.export program (BadZipFile"),
    ("version", "does not match our current archive version"),
    ("state_dict", "bad.pt2: is a torch.save file, not a torch.export program"),
    ("saved_module", "bad.pt2: is a torch.save file, not a torch.export program"),
    ("not_a_program", "bad.pt2: holds a dict, not a torch.export program"),
    ("missing", "no such file"),
    ("pickled", "'c' is a pickled Python object (opaque_obj_0), not a tensor"),
    ("outside_range", "dimension 1 is 1, but the program accepts 2"),
    ("call_graph", "not a consistent torch.export program (AssertionError: expected first module_call_graph"),
])
def test_bad_pt2_files_are_one_line_exit_2(tmp_path, capsys, monkeypatch, tiny_pt2, kind, match):
    path = tmp_path / "bad.pt2"
    argv = [path]
    if kind == "truncated":
        path.write_bytes(tiny_pt2["cola"].read_bytes()[:50_000])
    elif kind == "version":
        _rewrite(tiny_pt2["cola"], path, lambda name, data: b"7" if name.endswith("archive_version") else data)
    elif kind == "pickled":  # a constant torch.export.load would unpickle: refused before torch reads anything
        from torch.export.pt2_archive.constants import OPAQUE_OBJ_FILENAME_PREFIX

        table = json.dumps({"config": {"c": {"path_name": f"{OPAQUE_OBJ_FILENAME_PREFIX}0", "is_param": False,
                                             "use_pickle": True, "tensor_meta": None}}}).encode()
        _rewrite(tiny_pt2["cola"], path, lambda name, data: table if name.endswith("constants_config.json") else data)
    elif kind == "call_graph":  # torch loads it, then its own assert fails when the program is read
        def change(name, data):
            if not name.endswith("models/model.json"):
                return data
            doc = json.loads(data)
            doc["graph_module"]["module_call_graph"][0]["fqn"] = "planted"
            doc["schema_version"]["minor"] = doc["schema_version"]["minor"] + 1  # a form only torch reads
            return json.dumps(doc).encode()

        _rewrite(tiny_pt2["cola"], path, change)
    elif kind == "state_dict":  # a torch file, but not an ExportedProgram
        torch.save({"weight": torch.ones(3)}, path)
    elif kind == "saved_module":
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "not_a_program":  # torch.export.load returns a program or raises: a stand-in reaches the check
        from aalbert.mapper.frontends import aten_import

        path.write_bytes(tiny_pt2["cola"].read_bytes())
        monkeypatch.setattr(aten_import, "read_program", lambda f: None)  # a form the direct reader leaves to torch
        monkeypatch.setattr(torch.export, "load", lambda *args, **kwargs: {"weight": torch.ones(3)})
    elif kind == "outside_range":  # the program was exported for sequences of 2 or more
        path = tiny_pt2["cola"]
        argv = [path, "--seq-len", 1]
    report = tmp_path / "report.json"
    assert_clean_error(compile_cli.main, argv + ["--target", "edge_accel", "--report-json", report], capsys, match,
                       must_not_exist=[report])
    if kind != "outside_range":
        write_npz(tmp_path / "in.npz", {"input_ids": np.zeros((1, 4), np.int64)})
        assert_clean_error(run_cli.main, [path, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "o.npz"], capsys,
                           match, must_not_exist=[tmp_path / "o.npz"])


# ---------------------------------------------------------------- files crafted to run code while they load

class _Payload:
    """Pickled, it calls os.system: the marker file appears if anything unpickles it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def _craft(src, dst, kind: str, marker) -> None:
    """`src` rewritten so that loading it with torch.export.load would run `touch marker` (or refuse)."""
    import pickle

    with zipfile.ZipFile(src) as z:
        entries = {info.filename: z.read(info) for info in z.infolist()}
    root = next(iter(entries)).split("/")[0]
    program, constants = f"{root}/models/model.json", f"{root}/data/constants/model_constants_config.json"
    shell = f"__import__('os').system('touch {marker}')"

    def edit_json(name, change):
        doc = json.loads(entries[name])
        change(doc)
        entries[name] = json.dumps(doc).encode()

    def add_object(prefix):
        def change(doc):
            doc["config"]["evil"] = {"path_name": f"{prefix}0", "is_param": False, "use_pickle": True,
                                     "tensor_meta": None}
        edit_json(constants, change)
        entries[f"{root}/data/constants/{prefix}0"] = pickle.dumps(_Payload(marker))

    if kind == "object_behind_a_broken_table":  # the table check gave up on the broken one, and torch unpickled
        add_object("opaque_obj_")
        entries[f"{root}/data/constants/other_constants_config.json"] = b"{not json"
    elif kind == "object_behind_a_16MiB_table":  # the table check skipped tables of 16 MiB or more
        add_object("opaque_obj_")
        entries[constants] += b" " * (1 << 24)
    elif kind == "script_object":
        add_object("custom_obj_")
    elif kind == "pickled_weight":
        def change(doc):
            doc["config"][next(iter(doc["config"]))]["use_pickle"] = True
        edit_json(f"{root}/data/weights/model_weights_config.json", change)
    elif kind == "guard":  # torch compiles guards into Python that runs when the program is decomposed
        edit_json(program, lambda doc: doc.__setitem__("guards_code", [f"{shell} == 0"]))
    elif kind == "shape_expression":  # sympify evaluates shape expressions with eval
        def change(doc):
            values = doc["graph_module"]["graph"]["tensor_values"]
            values[next(iter(values))]["sizes"][0] = {"as_expr": {"expr_str": f"{shell} + 1",
                                                                  "hint": {"as_int": 1}}}
        edit_json(program, change)
    elif kind == "huge_power":  # evaluating it would not end
        def change(doc):
            values = doc["graph_module"]["graph"]["tensor_values"]
            values[next(iter(values))]["sizes"][0] = {"as_expr": {
                "expr_str": "Pow(Integer(10), Integer(1000000000000))", "hint": {"as_int": 1}}}
        edit_json(program, change)
    elif kind == "operator":  # a target resolves to any attribute path under torch
        def change(doc):
            doc["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
        edit_json(program, change)
    elif kind == "compiled_library":  # torch loads AOTInductor libraries it finds in the archive
        entries[f"{root}/data/aotinductor/model/model.so"] = b"\x7fELF"
    elif kind == "sample_inputs":
        entries[f"{root}/data/sample_inputs/model.pt"] = pickle.dumps(_Payload(marker))
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


@pytest.mark.parametrize("kind, match", [
    ("object_behind_a_broken_table", "entry data/constants/opaque_obj_0 is not part of a torch.export program"),
    ("object_behind_a_16MiB_table", "entry data/constants/opaque_obj_0 is not part of a torch.export program"),
    ("script_object", "entry data/constants/custom_obj_0 is not part of a torch.export program"),
    ("pickled_weight", "is a pickled Python object (weight_0), not a tensor"),
    ("guard", "guard \"__import__('os').system("),
    ("shape_expression", "shape expression \"__import__('os').system("),
    ("huge_power", "shape expression 'Pow(Integer(10), Integer(1000000000000))' uses a call of 'Pow'"),
    ("operator", "calls 'torch.os.system', which is not an ATen or prims operator"),
    ("compiled_library", "entry data/aotinductor/model/model.so is not part of a torch.export program"),
    ("sample_inputs", "entry data/sample_inputs/model.pt is not tensors only"),
])
def test_a_pt2_crafted_to_run_code_runs_none_and_is_refused(tmp_path, capsys, tiny_pt2, kind, match):
    marker = tmp_path / "marker"
    path = tmp_path / "crafted.pt2"
    _craft(tiny_pt2["cola"], path, kind, marker)
    line = assert_clean_error(compile_cli.main, [path, "--seq-len", SEQ], capsys, match)
    assert line.startswith(f"aalbert-compile: error: {path}: refused: ")
    assert not marker.exists()


def _out_spec(kind: str, module: str) -> list:
    """The example's output structure ({"logits": tensor}) rewritten to name `module`, as `kind` does."""
    leaf = {"type": None, "context": None, "children_spec": []}
    enum = {"__enum__": True, "fqn": f"{module}:E", "name": "A"}
    if kind == "defaultdict":  # torch imports the factory's module
        context = {"default_factory_module": module, "default_factory_name": "E", "dict_context": ["logits"]}
        return [1, {"type": "collections.defaultdict", "context": context, "children_spec": [leaf]}]
    text = json.dumps([enum]) + ("" if kind == "enum" else ", }")  # the hook runs before the parser fails
    return [1, {"type": "builtins.dict", "context": text, "children_spec": [leaf]}]


@pytest.mark.parametrize("kind, match", [
    ("enum", "the output structure (treespec) names an enum, whose module torch would import"),
    ("enum_before_a_syntax_error", "the output structure (treespec) has a context that is not valid JSON"),
    ("defaultdict", "the output structure (treespec) holds a defaultdict, whose factory torch would import by name"),
])
def test_a_pt2_whose_output_structure_names_a_module_imports_none_and_is_refused(tmp_path, capsys, monkeypatch,
                                                                                 tiny_pt2, kind, match):
    """torch.export.load imports the modules a treespec names (an enum's, a defaultdict factory's), and importing
    a module runs its code: here, a module on the path that creates the marker file."""
    module, marker = f"pt2_marker_{kind}", tmp_path / "marker"
    (tmp_path / f"{module}.py").write_text(f"import enum, pathlib\npathlib.Path({str(marker)!r}).touch()\n\n\n"
                                           "class E(enum.Enum):\n    A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def change(name, data):
        if not name.endswith("models/model.json"):
            return data
        doc = json.loads(data)
        (entry,) = (e for e in doc["graph_module"]["module_call_graph"] if e["fqn"] == "")
        entry["signature"]["out_spec"] = json.dumps(_out_spec(kind, module))
        return json.dumps(doc).encode()

    path = tmp_path / "crafted.pt2"
    _rewrite(tiny_pt2["cola"], path, change)
    line = assert_clean_error(compile_cli.main, [path, "--seq-len", SEQ], capsys, match)
    assert line.startswith(f"aalbert-compile: error: {path}: refused: ")
    assert not marker.exists()


def test_a_pt2_reading_a_file_through_an_operator_reads_none(tmp_path, capsys):
    """aten.from_file is an ATen operator: the check lets it through, and its arguments are all known, so a
    walk would run it on the spot and put the file's bytes in the IR. A program calling an operator outside
    the table is decomposed first, as before, and torch cannot trace this one: refused in one line."""
    secret, dump = tmp_path / "secret", tmp_path / "dump"
    secret.write_bytes(b"do not read me!!")

    class Add(torch.nn.Module):
        def forward(self, x):
            return x + torch.ones(16, dtype=torch.uint8)

    def change(name, data):
        if not name.endswith("models/model.json"):
            return data
        doc = json.loads(data)
        (node,) = (n for n in doc["graph_module"]["graph"]["nodes"] if n["target"] == "torch.ops.aten.ones.default")
        node["target"] = "torch.ops.aten.from_file.default"
        node["inputs"] = [{"name": "filename", "arg": {"as_string": str(secret)}, "kind": 1},
                          {"name": "shared", "arg": {"as_none": True}, "kind": 1},
                          {"name": "size", "arg": {"as_int": 16}, "kind": 1},
                          {"name": "dtype", "arg": {"as_scalar_type": 1}, "kind": 2}]
        return json.dumps(doc).encode()

    plain, path = tmp_path / "add.pt2", tmp_path / "reads.pt2"
    torch.export.save(torch.export.export(Add(), (torch.zeros(16, dtype=torch.uint8),), strict=False), str(plain))
    _rewrite(plain, path, change)
    assert_clean_error(compile_cli.main, [path, "--dump-ir", dump], capsys,
                       "reads.pt2: torch cannot decompose the program to Core ATen (NotImplementedError: "
                       "aten::from_file", must_not_exist=[dump])


def test_saved_programs_pass_the_archive_check_and_load(tmp_path, tiny_pt2):
    """The check's lists cover what torch.export.save writes: the example's tasks, and a Hugging Face encoder
    exported with dynamic batch and sequence (its guards and shape expressions are checked, then it loads)."""
    from aalbert.ir.module import Module
    from aalbert.mapper.frontends import DimSpec
    from aalbert.mapper.frontends.pt2_archive import check_archive
    from aalbert.mapper.frontends.torch_import import import_pt2

    from .hf_models import hf_encoder, hf_inputs, input_names, positional

    names = input_names("bert")
    feeds = hf_inputs(names, batch=2)
    batch, seq = torch.export.Dim("batch", max=64), torch.export.Dim("seq", min=2, max=64)
    ep = torch.export.export(positional(hf_encoder("bert", "sdpa"), names, ("last_hidden_state",)),
                             tuple(torch.from_numpy(feeds[n]) for n in names),
                             dynamic_shapes={n: {0: batch, 1: seq} for n in names})
    bert = tmp_path / "bert.pt2"
    torch.export.save(ep, bert)
    with zipfile.ZipFile(bert) as z:
        program = z.read(next(n for n in z.namelist() if n.endswith("models/model.json"))).decode()
    assert '"expr_str"' in program and '"guards_code": []' not in program  # both checks have work to do
    for path in (*tiny_pt2.values(), bert):
        with open(path, "rb") as f:
            check_archive(f, str(path))
    graph = import_pt2(bert, Module(), "bert", DimSpec(2, 12))
    assert [v.type.shape for v in graph.inputs] == [(2, 12)] * 3


def test_a_pt2_declaring_more_than_the_budget_is_refused_before_anything_is_read(tmp_path, capsys, tiny_pt2):
    """A deflated 2 GiB weight makes a small file: its declared size is counted against --max-memory first."""
    import struct

    path = tmp_path / "big.pt2"
    data = bytearray(tiny_pt2["cola"].read_bytes())
    with zipfile.ZipFile(tiny_pt2["cola"]) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data/weights/weight_0"))
    # the uncompressed size, in the entry's local header (offset 22) and its central directory record (offset 24)
    struct.pack_into("<I", data, info.header_offset + 22, 2 ** 31)
    central = data.index(info.filename.encode(), data.index(b"PK\x01\x02")) - 46
    struct.pack_into("<I", data, central + 24, 2 ** 31)
    path.write_bytes(bytes(data))
    assert_clean_error(compile_cli.main, [path, "--seq-len", SEQ, "--max-memory", "1G"], capsys,
                       "big.pt2: the archive needs 4 GiB, more than the memory budget of 1 GiB")


@pytest.fixture(scope="session")
def static_pt2(tmp_path_factory, tiny_models):
    """The tiny cola model exported with static shapes: batch 2, sequence SEQ."""
    from aalbert.examples.export import INPUT_NAMES, NamedOutput
    from aalbert.examples.zoo import example_inputs

    model = tiny_models["adapter-albert"]["cola"]
    inputs = example_inputs(model.config, 2, SEQ)
    ep = torch.export.export(NamedOutput(model).eval(), tuple(inputs[n] for n in INPUT_NAMES), strict=False)
    path = tmp_path_factory.mktemp("static") / "static.pt2"
    torch.export.save(ep, str(path))
    return path


def test_a_static_program_compiles_at_its_own_shapes(capsys, static_pt2):
    code, out, err = call(compile_cli.main, [static_pt2, "--seq-len", SEQ], capsys)  # its own sequence: honoured
    assert code == 0, err
    assert out.startswith("aalbert-compile: 1 task from 1 file, batch 2, sequence 16\n")


@pytest.mark.parametrize("extra, match", [
    (["--seq-len", 8], "static.pt2: input 'input_ids' has the static shape [2, 16], so --seq-len 8 cannot apply (its "
                       "dimension 1 is 16); leave --seq-len out, or export the model with that dimension dynamic"),
    (["--batch", 1], "static.pt2: input 'input_ids' has the static shape [2, 16], so --batch 1 cannot apply (its "
                     "dimension 0 is 2)"),
    (["--dim", "seq=8"], "--dim seq=8: no model input has a dynamic dimension named 'seq' (the dynamic dimensions: "
                         "none)"),
])
def test_a_static_program_refuses_other_shapes(capsys, static_pt2, extra, match):
    assert_clean_error(compile_cli.main, [static_pt2, *extra], capsys, match)


def test_a_program_returning_a_model_output_says_to_return_a_tuple_or_dict(tmp_path, capsys):
    from transformers.modeling_outputs import BaseModelOutput

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, x):
            return BaseModelOutput(last_hidden_state=self.proj(x))

    path = tmp_path / "hf.pt2"
    torch.export.save(torch.export.export(Encoder(), (torch.ones(1, 4),), strict=False), str(path))
    # in a process that has not imported transformers (which registers its outputs with torch), as a user's
    r = subprocess.run([str(Path(sys.executable).parent / "aalbert-compile"), str(path)], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert "the program returns a transformers.modeling_outputs.BaseModelOutput, which torch.export.load cannot " \
           "rebuild: export a model that returns a tuple or a dict of tensors" in r.stderr
