"""share: roles from use alone, across graphs and across separately exported files (small IR: tests/passes/share.ir)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from aalbert.examples.export import export_model  # noqa: E402
from aalbert.examples.zoo import FamilySpec, build_family, task_names  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.mapper.frontends import DimSpec, import_onnx  # noqa: E402
from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch  # noqa: E402
from aalbert.mapper.reports.summary import sharing_lines  # noqa: E402
from aalbert.passes.base import PassManager, parse_pipeline  # noqa: E402

from .helpers import SEQ  # noqa: E402


def _torch_counts(models):
    """(shared parameters, {task: own parameters}) of a family, from torch itself."""
    per_task = {t: {id(p): p.numel() for p in m.parameters()} for t, m in models.items()}
    common = set.intersection(*(set(d) for d in per_task.values()))
    any_task = next(iter(per_task.values()))
    shared = sum(any_task[i] for i in common)
    own = {t: sum(n for i, n in d.items() if i not in common) for t, d in per_task.items()}
    return shared, own


def _module_counts(module):
    shared = sum(w.numel for w in module.weights.values() if w.role.shared)
    own = {t: sum(w.numel for w in module.weights.values() if not w.role.shared and t in w.role.tasks)
           for t in module.graphs}
    return shared, own


def _fx_module(models, inputs):
    module = Module()
    for task, model in models.items():
        import_torch(model, {k: torch.from_numpy(v) for k, v in inputs.items()},
                     module, task, ImportOptions(("logits",)))
    return PassManager(parse_pipeline("canonicalize,share")).run(module)


def test_adapter_albert_roles_and_kinds(tiny_models, tiny_inputs):
    models = tiny_models["adapter-albert"]
    module = _fx_module(models, tiny_inputs)
    assert _module_counts(module) == _torch_counts(models)
    layers = models["cola"].config.num_layers
    by_name = {w.name: w.role for w in module.weights.values()}
    assert by_name["backbone.layer.query.weight"].uses == layers
    assert by_name["backbone.layer.query.weight"].kind == "attention"
    assert by_name["backbone.layer.attn_out.weight"].kind == "attention"
    assert by_name["backbone.layer.ffn.weight"].kind == "ffn"
    assert by_name["backbone.layer.ffn_out.weight"].kind == "ffn"
    assert by_name["backbone.embeddings.word.weight"].kind == "embedding"
    assert by_name["backbone.projection.weight"].kind == "projection"
    assert by_name["backbone.pooler.weight"].kind == "head"
    assert by_name["classifier.weight"].kind == "head"
    assert by_name["adapters.0.attention.down.weight"].kind == "adapter"
    assert by_name["adapters.0.ffn.up.weight"].kind == "adapter"
    assert by_name["layernorms.attention.weight"].kind == "layernorm"
    assert not by_name["classifier.weight"].shared and by_name["classifier.weight"].tasks == ("cola",)


def test_finetuned_albert_shares_nothing_unless_frozen(tiny_inputs):
    tasks = tuple(task_names(8))
    models = build_family(FamilySpec("albert", "tiny", tasks))
    module = _fx_module(models, tiny_inputs)
    assert _module_counts(module)[0] == 0
    frozen = build_family(FamilySpec("albert", "tiny", tasks, frozen=frozenset({"embeddings"})))
    module = _fx_module(frozen, tiny_inputs)
    shared = [w for w in module.weights.values() if w.role.shared]
    assert {w.role.kind for w in shared} == {"embedding"}
    assert sum(w.numel for w in shared) == sum(p.numel() for p in frozen["cola"].backbone.embeddings.parameters())


def test_adapter_albert_base_eight_onnx_files(tmp_path):
    """The acceptance case: 8 per-task ONNX files of adapter-ALBERT base; counts exactly torch's."""
    tasks = tuple(task_names(8))
    models = build_family(FamilySpec("adapter-albert", "base", tasks))
    module = Module()
    for task, model in models.items():
        import_onnx(export_model(model, tmp_path / f"{task}.onnx", seq_len=8), module, task, DimSpec(1, SEQ))
    PassManager(parse_pipeline("canonicalize,share")).run(module)
    shared, own = _module_counts(module)
    assert (shared, own) == _torch_counts(models)
    assert shared == 11_680_256  # ALBERT-base without its LayerNorms, which every task owns
    assert own["cola"] == 198_272 + 3_328 + 1_538  # adapters + LayerNorms + a 2-label head
    report = "\n".join(sharing_lines(module))
    assert "shared by all 8 tasks: 11,680,256 parameters" in report
