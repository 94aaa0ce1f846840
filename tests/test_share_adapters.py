"""`share` on freshly initialised AdapterHub and PEFT LoRA models: adapters and LoRA pairs are each task's own
even where their bytes are equal (fresh adapters start from zeros), the backbone is shared.

On such models equal bytes are everywhere: every bias is zero, every LayerNorm scale one, every LoRA B matrix
zero. Content alone made one weight of them all (the mnli adapter read the sst2 adapter's bias, which was then
"shared"); kind and position tell them apart.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aalbert.ir.module import Module  # noqa: E402
from aalbert.mapper.frontends import DimSpec, import_onnx  # noqa: E402
from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch  # noqa: E402
from aalbert.passes.base import PassManager, parse_pipeline  # noqa: E402

from .hf_models import DIMS, SEQ, export_onnx, hf_inputs, input_names  # noqa: E402

TASKS = ("sst2", "mnli")


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _feeds(family: str) -> dict:
    return {k: torch.from_numpy(v) for k, v in hf_inputs(input_names(family)).items()}


def _adapterhub(identical: bool = False):
    """A fresh tiny ALBERT with one bottleneck adapter per task (with `identical`, the second a copy of the
    first)."""
    adapters = pytest.importorskip("adapters")
    torch.manual_seed(0)
    model = transformers.AlbertModel(transformers.AlbertConfig(embedding_size=16, num_hidden_layers=2, **DIMS))
    adapters.init(model)
    with _quiet():
        for task in TASKS:
            model.add_adapter(task, config="seq_bn")
    if identical:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, p in params.items():
                if f".{TASKS[1]}." in name:
                    p.copy_(params[name.replace(f".{TASKS[1]}.", f".{TASKS[0]}.")])
    return model.eval(), "adapters."


def _peft():
    """A fresh tiny BERT with a LoRA adapter (rank 4, on query and value) per task."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    base = transformers.BertModel(transformers.BertConfig(num_hidden_layers=2, **DIMS))
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    with _quiet():
        model = peft.get_peft_model(base, config, adapter_name=TASKS[0])
        for task in TASKS[1:]:
            model.add_adapter(task, config)
    return model.eval(), "lora_"


def _activate(model, task: str) -> None:
    if hasattr(model, "set_active_adapters"):
        model.set_active_adapters(task)
    else:
        model.set_adapter(task)


def _from_torch(model, family: str, tasks=TASKS) -> Module:
    module, seen = Module(), {}
    with _quiet():
        for task in tasks:
            _activate(model, task)
            import_torch(model, _feeds(family), module, task, ImportOptions(tracer="export", seen=seen))
    return PassManager(parse_pipeline("canonicalize,share")).run(module)


def _expected(model, marker: str) -> tuple[int, dict[str, int]]:
    """(backbone parameters, {task: its adapter's parameters}), from the model's parameter names."""
    backbone = sum(p.numel() for n, p in model.named_parameters() if marker not in n)
    own = {t: sum(p.numel() for n, p in model.named_parameters() if marker in n and f".{t}." in n + ".")
           for t in TASKS}
    return backbone, own


def _roles(module: Module) -> tuple[int, dict[str, int], Counter]:
    """(shared parameters, {task: own parameters}, {kind: own parameters}) of a shared module."""
    shared = sum(w.numel for w in module.weights.values() if w.role.shared)
    own = {t: sum(w.numel for w in module.weights.values() if not w.role.shared and t in w.role.tasks)
           for t in module.graphs}
    kinds = Counter()
    for w in module.weights.values():
        if not w.role.shared:
            assert len(w.role.tasks) == 1, w  # nothing is shared by some tasks only
            kinds[w.role.kind] += w.numel
    return shared, own, kinds


def _shared_by_kind(module: Module) -> Counter:
    counts = Counter()
    for w in module.weights.values():
        if w.role.shared:
            counts[w.role.kind] += w.numel
    return counts


@pytest.mark.parametrize("identical", [False, True], ids=["own-adapters", "identical-adapters"])
def test_fresh_adapterhub_adapters_are_each_tasks_own(identical):
    model, marker = _adapterhub(identical)
    module = _from_torch(model, "albert")
    backbone, own = _expected(model, marker)
    shared, mine, kinds = _roles(module)
    assert shared == backbone
    assert mine == own
    assert set(kinds) == {"adapter"}
    assert not any(w.role.shared for w in module.weights.values() if w.role.kind in ("adapter", "lora"))


def test_fresh_peft_lora_pairs_are_each_tasks_own_from_torch_and_from_onnx(tmp_path):
    model, marker = _peft()
    module = _from_torch(model, "bert")
    backbone, own = _expected(model, marker)
    shared, mine, kinds = _roles(module)
    assert (shared, mine, set(kinds)) == (backbone, own, {"lora"})
    assert _roles(_from_torch(model, "bert", tuple(reversed(TASKS)))) == _roles(module)  # whatever the order
    # from ONNX files, where names are gone (and the tasks come the other way round)
    onnx_module = Module()
    with _quiet():
        for task in reversed(TASKS):
            _activate(model, task)
            path = export_onnx(model, tmp_path / f"{task}.onnx", input_names("bert"),
                               ("last_hidden_state", "pooler_output"), "torchscript")
            import_onnx(path, onnx_module, task, DimSpec(1, SEQ))
    onnx_module = PassManager(parse_pipeline("canonicalize,share")).run(onnx_module)
    shared, mine, kinds = _roles(onnx_module)
    assert (mine, set(kinds)) == (own, {"lora"})
    # every bias has its own weight again, although the TorchScript exporter stored all the zero vectors of
    # one size as one initializer; the LayerNorms' scales and shifts stay one weight per value (nothing beside
    # them tells them apart), and every one of them is shared
    by_kind, want = _shared_by_kind(onnx_module), _shared_by_kind(module)
    assert by_kind.pop("layernorm") and want.pop("layernorm")
    assert by_kind == want
