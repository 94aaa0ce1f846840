"""The torch.fx frontend against torch itself, and weights stored once."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aalbert.examples.config import AdapterConfig  # noqa: E402
from aalbert.examples.zoo import FamilySpec, build_family, distinct_parameters, example_inputs  # noqa: E402
from aalbert.ir.interpreter import run  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.ir.verifier import verify  # noqa: E402
from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch  # noqa: E402

from .helpers import TINY_TASKS  # noqa: E402


def _import(models, inputs) -> Module:
    module = Module()
    for task, model in models.items():
        # the fast path must hold for the project's own modules
        import_torch(model, {k: torch.from_numpy(v) for k, v in inputs.items()}, module, task,
                     ImportOptions(("logits",), tracer="symbolic"))
    verify(module)
    return module


@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
def test_fx_import_matches_torch(tiny_models, tiny_inputs, family):
    models = tiny_models[family]
    module = _import(models, tiny_inputs)
    for task, model in models.items():
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in tiny_inputs.items()}).numpy()
        got = run(module, task, tiny_inputs)["logits"]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_per_layer_adapters_match_torch(tiny_inputs):
    spec = FamilySpec("adapter-albert", "tiny", TINY_TASKS, AdapterConfig(8, "per_layer"))
    models = build_family(spec)
    module = _import(models, tiny_inputs)
    assert sum(w.numel for w in module.weights.values()) == distinct_parameters(models.values())
    for task, model in models.items():
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in tiny_inputs.items()}).numpy()
        np.testing.assert_allclose(run(module, task, tiny_inputs)["logits"], want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
def test_each_parameter_is_one_weight(tiny_models, tiny_inputs, family):
    models = tiny_models[family]
    module = _import(models, tiny_inputs)
    assert sum(w.numel for w in module.weights.values()) == distinct_parameters(models.values())


def test_repeated_layer_reads_one_weight_many_times(tiny_models, tiny_inputs):
    model = tiny_models["albert"]["cola"]
    module = _import({"cola": model}, tiny_inputs)
    graph = module.graphs["cola"]
    users = graph.users()
    query = next(n for n in graph.nodes if n.op == "weight" and n.attrs["name"].name.endswith("layer.query.weight"))
    # the one query weight feeds one linear per repetition of ALBERT's layer
    assert [u.op for u in users[query.output]] == ["linear"] * model.config.num_layers
    assert len([w for w in module.weights.values() if w.name.endswith("query.weight")]) == 1


def test_adapter_albert_shares_backbone_across_tasks(tiny_models, tiny_inputs):
    module = _import(tiny_models["adapter-albert"], tiny_inputs)
    cola = {w.name for w in module.used_weights("cola")}
    stsb = {w.name for w in module.used_weights("stsb")}
    shared = cola & stsb
    assert any(n.endswith("layer.ffn.weight") for n in shared)
    assert not any("adapter" in n or "classifier" in n or "layernorms" in n for n in shared)


def test_example_inputs_respect_max_position():
    with pytest.raises(ValueError, match="exceeds"):
        example_inputs(FamilySpec(size="tiny").config, seq_len=1000)
