"""The torch.export path: Hugging Face and AdapterHub encoders against torch, and against their ONNX exports."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aalbert.errors import FrontendError, UnsupportedOpError  # noqa: E402
from aalbert.ir.interpreter import run  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.mapper.frontends import DimSpec, import_onnx  # noqa: E402
from aalbert.mapper.frontends.aten_ops import ATEN_OPS  # noqa: E402
from aalbert.mapper.frontends.torch_import import ImportOptions, TraceFallback, import_torch  # noqa: E402
from aalbert.passes.base import PassManager, parse_pipeline  # noqa: E402

from .hf_models import SEQ, adapter_albert, export_onnx, hf_encoder, hf_inputs, input_names  # noqa: E402
from .test_canonicalize import _canonical as canonical  # noqa: E402

# every family with both attentions; each case's ONNX export by one exporter, both exporters in turn
CASES = [("albert", "eager", "dynamo"), ("albert", "sdpa", "torchscript"),
         ("bert", "eager", "torchscript"), ("bert", "sdpa", "dynamo"),
         ("distilbert", "eager", "dynamo"), ("distilbert", "sdpa", "torchscript"),
         ("roberta", "eager", "torchscript"), ("roberta", "sdpa", "dynamo"),
         ("minilm", "eager", "dynamo"), ("minilm", "sdpa", "torchscript"),
         ("bert-classifier", "eager", "dynamo"), ("bert-classifier", "sdpa", "torchscript"),
         ("albert-headless", "sdpa", "dynamo")]
# each family's other heads: the classifiers (RoBERTa's and DistilBERT's have no pooler) and no pooler at all;
# by the faster exporter, as the family's attention and exporter variants are covered above
CASES += [("albert-classifier", "eager", "torchscript"), ("roberta-classifier", "sdpa", "torchscript"),
          ("distilbert-classifier", "eager", "torchscript"), ("albert-headless", "eager", "torchscript"),
          ("bert-headless", "sdpa", "torchscript")]


def _outputs(family: str) -> tuple[str, ...]:
    if family.endswith("-classifier"):
        return ("logits",)
    if family == "distilbert" or family.endswith("-headless"):
        return ("last_hidden_state",)
    return ("last_hidden_state", "pooler_output")


def _torch_feeds(feeds):
    return {k: torch.from_numpy(v) for k, v in feeds.items()}


@functools.cache
def _imported(family: str, attention: str) -> Module:
    module = Module()
    import_torch(hf_encoder(family, attention), _torch_feeds(hf_inputs(input_names(family))), module, "t",
                 ImportOptions(tracer="export"))
    return module


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))


@pytest.mark.parametrize("family, attention, exporter", CASES, ids=["-".join(c) for c in CASES])
def test_encoder_matches_torch_and_its_onnx_export(hf_exports, family, attention, exporter):
    model = hf_encoder(family, attention)
    names, outs = input_names(family), _outputs(family)
    feeds = hf_inputs(names)
    module = _imported(family, attention).copy()
    assert tuple(module.graphs["t"].inputs[i].name for i in range(len(names))) == names
    assert [n for n, _ in module.graphs["t"].outputs] == list(outs)  # named by the model's output fields
    got = run(module, "t", feeds)
    with torch.no_grad():
        want = model(**_torch_feeds(feeds))
    for k in outs:
        assert got[k].shape == tuple(want[k].shape)
        assert _relative_error(got[k], want[k].numpy()) < 1e-4, k
    onnx_module = Module()
    import_onnx(hf_exports(family, attention, exporter, outs), onnx_module, "t", DimSpec(1, SEQ))
    assert canonical(module) == canonical(onnx_module)


def test_sums_over_booleans_masks_from_comparisons_and_promotion():
    class Counting(torch.nn.Module):
        def forward(self, ids, x):
            keep = ids != 0                                   # a mask from a comparison
            n = keep.sum(dim=-1, keepdim=True)                # int64, as torch sums booleans
            scaled = x * keep.unsqueeze(-1) / n.unsqueeze(-1)  # bool * float, float / int64
            return scaled.sum(dim=1), (n + 1.5), torch.where(keep, ids, -1).cumsum(-1)

    model = Counting()
    ids = torch.tensor([[3, 0, 5, 7], [0, 0, 2, 0]])
    x = torch.randn(2, 4, 3)
    module = Module()
    import_torch(model, {"ids": ids, "x": x}, module, "t", ImportOptions(tracer="export"))
    got = run(module, "t", {"ids": ids.numpy(), "x": x.numpy()})
    want = model(ids, x)
    assert list(got) == ["output_0", "output_1", "output_2"]
    for g, w in zip(got.values(), want):
        assert g.dtype == w.numpy().dtype
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-6)


def test_scaled_dot_product_attention_with_boolean_and_causal_masks():
    class Attention(torch.nn.Module):
        def forward(self, q, k, v, mask):
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            b = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)
            return a + b

    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    mask = torch.rand(1, 1, 5, 5) > 0.4
    mask[..., 2, :] = False  # a row with every key masked: torch gives zeros there
    module = Module()
    import_torch(Attention(), {"q": q, "k": k, "v": v, "mask": mask}, module, "t")
    got = run(module, "t", {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(), "mask": mask.numpy()})["output"]
    np.testing.assert_allclose(got, Attention()(q, k, v, mask).numpy(), atol=1e-5)


def test_unsupported_operator_names_op_node_source_line_and_count():
    class Sorting(torch.nn.Module):
        def forward(self, x):
            return torch.sort(x).values * 2  # the line the error must point at

    with pytest.raises(UnsupportedOpError) as e:
        import_torch(Sorting(), {"x": torch.randn(4)}, Module(), "t", ImportOptions(tracer="export"))
    msg = str(e.value)
    assert "ATen operator sort.default is not supported" in msg and "fx node 'sort'" in msg
    assert "test_torch_export.py:" in msg and "torch.sort(x).values * 2" in msg
    assert f"{len(ATEN_OPS)} operators are" in msg and "\n" not in msg


def test_uncapturable_model_is_one_line_with_torchs_reason():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: neither tracer can capture it
                return x
            return -x

    with pytest.raises(FrontendError, match="torch.fx cannot trace Branchy"):
        import_torch(Branchy(), {"x": torch.ones(2)}, Module(), "t", ImportOptions(tracer="symbolic"))
    with pytest.warns(TraceFallback, match="importing it through torch.export"), \
            pytest.raises(FrontendError) as e:
        import_torch(Branchy(), {"x": torch.ones(2)}, Module(), "t")
    assert "torch.export cannot capture Branchy (GuardOnDataDependentSymNode" in str(e.value)
    assert "\n" not in str(e.value)


def test_model_torch_fx_cannot_trace_is_imported_through_torch_export_and_says_so():
    model = hf_encoder("bert", "sdpa")  # Hugging Face forwards branch on their inputs: torch.fx cannot trace them
    feeds = hf_inputs(input_names("bert"))
    module = Module()
    with pytest.warns(TraceFallback, match=r"^task 't': torch.fx cannot import BertModel \(.+\); "
                                           "importing it through torch.export instead$"):
        import_torch(model, _torch_feeds(feeds), module, "t")
    got = run(module, "t", feeds)
    with torch.no_grad():
        want = model(**_torch_feeds(feeds))
    for k in _outputs("bert"):
        assert _relative_error(got[k], want[k].numpy()) < 1e-4, k


# --- AdapterHub: one task per adapter, the backbone stored once --------------------------------------
ADAPTERS = ("seq_bn", "double_seq_bn", "lora")


@functools.cache
def _adapter_module(attention: str) -> Module:
    model = adapter_albert(attention)
    feeds = _torch_feeds(hf_inputs(input_names("albert")))
    module, seen = Module(), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ADAPTERS:
            model.set_active_adapters(name)
            import_torch(model, feeds, module, name, ImportOptions(tracer="export", seen=seen))
    return module


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_adapter_tasks_match_torch_and_store_the_backbone_once(attention):
    model = adapter_albert(attention)
    feeds = hf_inputs(input_names("albert"))
    module = _adapter_module(attention).copy()
    for name in ADAPTERS:
        model.set_active_adapters(name)
        with torch.no_grad():
            want = model(**_torch_feeds(feeds)).last_hidden_state.numpy()
        assert _relative_error(run(module, name, feeds)["last_hidden_state"], want) < 1e-4, name
    module = PassManager(parse_pipeline("canonicalize,share")).run(module)
    backbone = {p.data_ptr(): p for n, p in model.named_parameters() if "adapter" not in n and "lora" not in n}
    shared = [w for w in module.weights.values() if w.role is not None and w.role.shared]
    own = [w for w in module.weights.values() if w.role is not None and not w.role.shared]
    # every backbone parameter is one weight shared by all three tasks; each adapter's are its task's own
    assert sum(w.numel for w in shared) == sum(p.numel() for p in backbone.values() if p.dim() >= 1)
    assert own and all(len(w.role.tasks) == 1 for w in own)
    assert {t for w in own for t in w.role.tasks} == set(ADAPTERS)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_adapter_graphs_and_split_are_the_same_from_onnx(tmp_path, attention):
    model = adapter_albert(attention)
    names = input_names("albert")
    onnx_module = Module()
    for name in ADAPTERS:
        model.set_active_adapters(name)
        import_onnx(export_onnx(model, tmp_path / f"{name}.onnx", names, ("last_hidden_state",), "torchscript"),
                    onnx_module, name, DimSpec(1, SEQ))
    graphs, roles = [], []
    for module in (_adapter_module(attention).copy(), onnx_module):
        graphs.append(canonical(module))
        module = PassManager(parse_pipeline("share")).run(module)
        roles.append({w.hash: (w.role.shared, tuple(sorted(w.role.tasks))) for w in module.weights.values()})
    assert graphs[0] == graphs[1]
    assert roles[0] == roles[1]
    assert set(roles[0].values()) == {(True, ()), *((False, (t,)) for t in ADAPTERS)}  # the backbone, each adapter


def test_aten_operator_list_is_generated_from_the_table():
    from pathlib import Path

    from aalbert.mapper.frontends.aten_ops import markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "aten_ops.md"
    assert doc.read_text() == markdown()
    assert all(f"`aten.{name.split('.')[0]}` | `{name.split('.')[1]}`" in doc.read_text() for name in ATEN_OPS)
