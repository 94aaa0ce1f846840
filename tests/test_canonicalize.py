"""canonicalize: rule by rule on small IR, then whole models from every frontend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aalbert.ir.interpreter import run
from aalbert.ir.module import Module
from aalbert.ir.printer import print_graph
from aalbert.mapper.frontends import DimSpec, import_onnx
from aalbert.mapper.frontends.fx_import import import_torch

from .helpers import SEQ, random_feeds
from .ir_cases import graph_text, module_with_data, run_pipeline


def check(text_in: str, expected_graph: str, pipeline: str = "canonicalize"):
    before = module_with_data(text_in)
    after = run_pipeline(text_in, pipeline)
    assert graph_text(after) == expected_graph
    # and it computes the same thing
    for task in before.graphs:
        feeds = random_feeds(before.graphs[task], seed=3, vocab=4)
        want, got = run(before, task, feeds), run(after, task, feeds)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=1e-5)


def test_folds_constants_and_removes_identities():
    check("""module {
  graph @t(%x: tensor<2x3xf32>) -> ("y": tensor<2x3xf32>) {
    %0 = constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
    %1 = constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
    %2 = mul(%0, %1) : tensor<f32>
    %3 = mul(%x, %2) : tensor<2x3xf32>
    %4 = constant {value = dense<0.0> : tensor<1x3xf32>} : tensor<1x3xf32>
    %5 = add(%4, %3) : tensor<2x3xf32>
    return %5
  }
}
""", """  graph @t(%x: tensor<2x3xf32>) -> ("y": tensor<2x3xf32>) {
    return %x
  }
}
""")


def test_matmul_with_weight_and_bias_is_linear_and_gather_is_embedding():
    check("""module {
  weight @table : tensor<4x8xf32> hash "0"
  weight @w : tensor<8x5xf32> hash "1"
  weight @b : tensor<5xf32> hash "2"
  graph @t(%ids: tensor<1x3xi64>) -> ("y": tensor<1x3x5xf32>) {
    %0 = weight {name = @table} : tensor<4x8xf32>
    %1 = gather(%0, %ids) {axis = 0} : tensor<1x3x8xf32>
    %2 = weight {name = @w} : tensor<8x5xf32>
    %3 = matmul(%1, %2) : tensor<1x3x5xf32>
    %4 = weight {name = @b} : tensor<5xf32>
    %5 = add(%4, %3) : tensor<1x3x5xf32>
    return %5
  }
}
""", """  graph @t(%ids: tensor<1x3xi64>) -> ("y": tensor<1x3x5xf32>) {
    %0 = weight {name = @table} : tensor<4x8xf32>
    %1 = embedding(%0, %ids) : tensor<1x3x8xf32>
    %2 = weight {name = @w} : tensor<8x5xf32>
    %3 = weight {name = @b} : tensor<5xf32>
    %4 = linear(%1, %2, %3) : tensor<1x3x5xf32>
    return %4
  }
}
""")


def test_layout_chains_take_one_spelling():
    # Unsqueeze, Unsqueeze, Gather-of-positions and Expand: a reshape and a broadcast
    check("""module {
  graph @t(%m: tensor<1x4xf32>) -> ("y": tensor<1x1x3x4xf32>) {
    %0 = reshape(%m) {shape = [1, 1, 4]} : tensor<1x1x4xf32>
    %1 = reshape(%0) {shape = [1, 1, 1, 4]} : tensor<1x1x1x4xf32>
    %2 = constant {value = dense<[0, 1, 2, 3]> : tensor<4xi64>} : tensor<4xi64>
    %3 = gather(%1, %2) {axis = 3} : tensor<1x1x1x4xf32>
    %4 = broadcast(%3) {shape = [1, 1, 3, 4]} : tensor<1x1x3x4xf32>
    return %4
  }
}
""", """  graph @t(%m: tensor<1x4xf32>) -> ("y": tensor<1x1x3x4xf32>) {
    %0 = reshape(%m) {shape = [1, 1, 1, 4]} : tensor<1x1x1x4xf32>
    %1 = broadcast(%0) {shape = [1, 1, 3, 4]} : tensor<1x1x3x4xf32>
    return %1
  }
}
""")


def test_head_split_and_key_transpose():
    check("""module {
  graph @t(%x: tensor<1x6x8xf32>) -> ("k": tensor<1x2x4x6xf32>) {
    %0 = reshape(%x) {shape = [1, 6, 2, 4]} : tensor<1x6x2x4xf32>
    %1 = transpose(%0) {perm = [0, 2, 1, 3]} : tensor<1x2x6x4xf32>
    %2 = transpose(%1) {perm = [0, 1, 3, 2]} : tensor<1x2x4x6xf32>
    return %2
  }
}
""", """  graph @t(%x: tensor<1x6x8xf32>) -> ("k": tensor<1x2x4x6xf32>) {
    %0 = reshape(%x) {shape = [6, 8]} : tensor<6x8xf32>
    %1 = transpose(%0) {perm = [1, 0]} : tensor<8x6xf32>
    %2 = reshape(%1) {shape = [1, 2, 4, 6]} : tensor<1x2x4x6xf32>
    return %2
  }
}
""")


def test_elementwise_moves_before_layout_and_broadcasts_are_implicit():
    # the classic mask: (1 - float(mask[:, None, None, :])) * -10000 added to scores
    check("""module {
  graph @t(%s: tensor<1x2x4x4xf32>, %m: tensor<1x4xi64>) -> ("y": tensor<1x2x4x4xf32>) {
    %0 = reshape(%m) {shape = [1, 1, 1, 4]} : tensor<1x1x1x4xi64>
    %1 = cast(%0) {to = "f32"} : tensor<1x1x1x4xf32>
    %2 = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
    %3 = sub(%2, %1) : tensor<1x1x1x4xf32>
    %4 = constant {value = dense<-10000.0> : tensor<f32>} : tensor<f32>
    %5 = mul(%3, %4) : tensor<1x1x1x4xf32>
    %6 = add(%s, %5) : tensor<1x2x4x4xf32>
    return %6
  }
}
""", """  graph @t(%s: tensor<1x2x4x4xf32>, %m: tensor<1x4xi64>) -> ("y": tensor<1x2x4x4xf32>) {
    %0 = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
    %1 = cast(%m) {to = "f32"} : tensor<1x4xf32>
    %2 = sub(%0, %1) : tensor<1x4xf32>
    %3 = constant {value = dense<-10000.0> : tensor<f32>} : tensor<f32>
    %4 = mul(%2, %3) : tensor<1x4xf32>
    %5 = add(%s, %4) : tensor<1x2x4x4xf32>
    return %5
  }
}
""")


def test_layout_that_shrinks_data_is_not_sunk():
    # tanh of the first token must not become tanh of the whole sequence
    check("""module {
  graph @t(%h: tensor<1x5x3xf32>) -> ("y": tensor<1x3xf32>) {
    %0 = slice(%h) {starts = [0, 0, 0], steps = [1, 1, 1], stops = [1, 1, 3]} : tensor<1x1x3xf32>
    %1 = reshape(%0) {shape = [1, 3]} : tensor<1x3xf32>
    %2 = tanh(%1) : tensor<1x3xf32>
    return %2
  }
}
""", """  graph @t(%h: tensor<1x5x3xf32>) -> ("y": tensor<1x3xf32>) {
    %0 = slice(%h) {starts = [0, 0, 0], steps = [1, 1, 1], stops = [1, 1, 3]} : tensor<1x1x3xf32>
    %1 = reshape(%0) {shape = [1, 3]} : tensor<1x3xf32>
    %2 = tanh(%1) : tensor<1x3xf32>
    return %2
  }
}
""")


GELU_FORMS = {
    "erf": """    %1 = constant {value = dense<1.4142135> : tensor<f32>} : tensor<f32>
    %2 = div(%x, %1) : tensor<2x5xf32>
    %3 = erf(%2) : tensor<2x5xf32>
    %4 = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
    %5 = add(%3, %4) : tensor<2x5xf32>
    %6 = mul(%x, %5) : tensor<2x5xf32>
    %7 = constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
    %8 = mul(%6, %7) : tensor<2x5xf32>""",
    "tanh-pow": """    %1 = constant {value = dense<3.0> : tensor<f32>} : tensor<f32>
    %2 = pow(%x, %1) : tensor<2x5xf32>
    %3 = constant {value = dense<0.044715> : tensor<f32>} : tensor<f32>
    %4 = mul(%3, %2) : tensor<2x5xf32>
    %5 = add(%x, %4) : tensor<2x5xf32>
    %6 = constant {value = dense<0.7978846> : tensor<f32>} : tensor<f32>
    %7 = mul(%6, %5) : tensor<2x5xf32>
    %70 = tanh(%7) : tensor<2x5xf32>
    %71 = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
    %72 = add(%71, %70) : tensor<2x5xf32>
    %73 = mul(%x, %72) : tensor<2x5xf32>
    %74 = constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
    %8 = mul(%74, %73) : tensor<2x5xf32>""",
    "tanh-cube": """    %1 = mul(%x, %x) : tensor<2x5xf32>
    %2 = mul(%x, %1) : tensor<2x5xf32>
    %3 = constant {value = dense<0.044715> : tensor<f32>} : tensor<f32>
    %4 = mul(%2, %3) : tensor<2x5xf32>
    %5 = add(%4, %x) : tensor<2x5xf32>
    %6 = constant {value = dense<0.7978846> : tensor<f32>} : tensor<f32>
    %7 = mul(%5, %6) : tensor<2x5xf32>
    %70 = tanh(%7) : tensor<2x5xf32>
    %71 = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
    %72 = add(%70, %71) : tensor<2x5xf32>
    %74 = constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
    %73 = mul(%x, %74) : tensor<2x5xf32>
    %8 = mul(%73, %72) : tensor<2x5xf32>""",
}


@pytest.mark.parametrize("form", GELU_FORMS)
def test_gelu_in_any_spelling(form):
    approx = "none" if form == "erf" else "tanh"
    check(f"""module {{
  graph @t(%x: tensor<2x5xf32>) -> ("y": tensor<2x5xf32>) {{
{GELU_FORMS[form]}
    return %8
  }}
}}
""", f"""  graph @t(%x: tensor<2x5xf32>) -> ("y": tensor<2x5xf32>) {{
    %0 = gelu(%x) {{approximate = "{approx}"}} : tensor<2x5xf32>
    return %0
  }}
}}
""")


def test_not_quite_gelu_is_left_alone():
    text = f"""module {{
  graph @t(%x: tensor<2x5xf32>) -> ("y": tensor<2x5xf32>) {{
{GELU_FORMS["erf"].replace("dense<0.5>", "dense<0.6>")}
    return %8
  }}
}}
"""
    out = graph_text(run_pipeline(text, "canonicalize"))
    assert "gelu" not in out and "erf" in out


def test_decomposed_layernorm():
    check("""module {
  weight @g : tensor<4xf32> hash "0"
  weight @b : tensor<4xf32> hash "1"
  graph @t(%x: tensor<2x3x4xf32>) -> ("y": tensor<2x3x4xf32>) {
    %0 = reduce_mean(%x) {axes = [2], keepdims = true} : tensor<2x3x1xf32>
    %1 = sub(%x, %0) : tensor<2x3x4xf32>
    %2 = constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
    %3 = pow(%1, %2) : tensor<2x3x4xf32>
    %4 = reduce_mean(%3) {axes = [2], keepdims = true} : tensor<2x3x1xf32>
    %5 = constant {value = dense<1e-05> : tensor<f32>} : tensor<f32>
    %6 = add(%4, %5) : tensor<2x3x1xf32>
    %7 = sqrt(%6) : tensor<2x3x1xf32>
    %8 = div(%1, %7) : tensor<2x3x4xf32>
    %9 = weight {name = @g} : tensor<4xf32>
    %10 = mul(%8, %9) : tensor<2x3x4xf32>
    %11 = weight {name = @b} : tensor<4xf32>
    %12 = add(%10, %11) : tensor<2x3x4xf32>
    return %12
  }
}
""", """  graph @t(%x: tensor<2x3x4xf32>) -> ("y": tensor<2x3x4xf32>) {
    %0 = weight {name = @g} : tensor<4xf32>
    %1 = weight {name = @b} : tensor<4xf32>
    %2 = layernorm(%x, %0, %1) {axis = 2, eps = 9.999999747378752e-06} : tensor<2x3x4xf32>
    return %2
  }
}
""")


def test_cse_dce_commutative_order_and_schedule():
    check("""module {
  weight @w : tensor<3xf32> hash "0"
  graph @t(%x: tensor<3xf32>) -> ("a": tensor<3xf32>, "b": tensor<3xf32>) {
    %9 = exp(%x) : tensor<3xf32>
    %0 = weight {name = @w} : tensor<3xf32>
    %1 = tanh(%x) : tensor<3xf32>
    %2 = tanh(%x) : tensor<3xf32>
    %3 = mul(%0, %1) : tensor<3xf32>
    %4 = mul(%2, %0) : tensor<3xf32>
    return %3, %4
  }
}
""", """  graph @t(%x: tensor<3xf32>) -> ("a": tensor<3xf32>, "b": tensor<3xf32>) {
    %0 = tanh(%x) : tensor<3xf32>
    %1 = weight {name = @w} : tensor<3xf32>
    %2 = mul(%0, %1) : tensor<3xf32>
    return %2, %2
  }
}
""")


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
        import_torch(model, {k: torch.from_numpy(v) for k, v in tiny_inputs.items()}, module, task, ("logits",))
    texts["fx"] = _canonical(module)
    assert texts["torchscript"] == texts["fx"]
    assert texts["dynamo"] == texts["fx"]
    # the canonical form really is canonical: GELU and linear fused, no matmul with a weight left
    assert "gelu(" in texts["fx"][0] and "linear(" in texts["fx"][0]


@pytest.mark.parametrize("name", ["bert", "albert"])
def test_hugging_face_encoder_from_three_frontends(tmp_path, name, tiny_inputs):
    from .test_onnx_models import _export_hf, hf_model

    model = hf_model(name, attention="eager")
    inputs = {k: torch.from_numpy(v) for k, v in tiny_inputs.items()}
    texts, outs = {}, ("last_hidden_state", "pooler_output")
    for exporter in ("torchscript", "dynamo"):
        module = Module()
        import_onnx(_export_hf(model, tmp_path / f"{exporter}.onnx", exporter, dynamic=True), module, "t",
                    DimSpec(1, SEQ))
        texts[exporter] = _canonical(module)
    module = Module()
    import_torch(model, inputs, module, "t", outs)
    before = run(module, "t", tiny_inputs)
    texts["fx"] = _canonical(module)
    after = run(module, "t", tiny_inputs)
    for k in outs:
        np.testing.assert_allclose(after[k], before[k], atol=1e-5)
    assert texts["torchscript"] == texts["fx"] == texts["dynamo"]
