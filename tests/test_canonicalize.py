"""canonicalize on whole models from every frontend (rule by rule on small IR: tests/passes/canonicalize.ir)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from aalbert.ir.interpreter import run  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.ir.printer import print_graph  # noqa: E402
from aalbert.mapper.frontends import DimSpec, import_onnx  # noqa: E402
from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch  # noqa: E402

from .helpers import SEQ  # noqa: E402


# --- whole models --------------------------------------------------------------------------------
def _canonical(module: Module) -> list[str]:
    """Canonical graphs with weights named by content, to compare across frontends."""
    from aalbert.passes.base import PassManager
    from aalbert.passes.canonicalize import Canonicalize
    PassManager([Canonicalize()]).run(module)
    texts = []
    for graph in module.graphs.values():
        text = print_graph(graph)
        for w in module.weights.values():
            text = text.replace(f"@{w.name}}}", f"@{w.hash}}}")
        texts.append(text)
    return texts


@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
def test_three_frontends_one_canonical_graph(tiny_models, tiny_exports, tiny_inputs, family):
    texts = {}
    for exporter in ("torchscript", "dynamo"):
        module = Module()
        for task, path in tiny_exports[family, exporter].items():
            import_onnx(path, module, task, DimSpec(1, SEQ))
        before = {t: run(module, t, tiny_inputs) for t in module.graphs}
        texts[exporter] = _canonical(module)
        for t in module.graphs:  # canonicalize changes no output
            np.testing.assert_allclose(run(module, t, tiny_inputs)["logits"], before[t]["logits"], atol=1e-5)
    module = Module()
    for task, model in tiny_models[family].items():
        import_torch(model, {k: torch.from_numpy(v) for k, v in tiny_inputs.items()},
                     module, task, ImportOptions(("logits",)))
    texts["fx"] = _canonical(module)
    assert texts["torchscript"] == texts["fx"]
    assert texts["dynamo"] == texts["fx"]
    # the canonical form really is canonical: GELU and linear fused, no matmul with a weight left
    assert "gelu(" in texts["fx"][0] and "linear(" in texts["fx"][0]
