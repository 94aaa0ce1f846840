"""Hugging Face decoders through torch.export: a prefill and decode steps in the interpreter against PyTorch.

Each family (GPT-2, Llama, Qwen2, SmolLM; 2 layers, hidden 64) is built
with one LoRA task, the Llama with two, and exported once per session by
`examples/decoders.py`: one `.pt2` per task and phase, with the KV cache as
state.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")
torch = pytest.importorskip("torch")

from aalbert.errors import FrontendError  # noqa: E402
from aalbert.examples import decoders  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.ir.state import state_pairs  # noqa: E402
from aalbert.ir.verifier import verify  # noqa: E402
from aalbert.mapper.frontends.torch_import import import_exported, import_pt2  # noqa: E402
from tests.hf_decoders import ir_run, largest_difference, torch_run  # noqa: E402

TASKS = {"gpt2": 1, "llama": 2, "qwen2": 1, "smollm": 1}


class Exported:
    """A family's model, its spec and its files (graph key -> path)."""

    def __init__(self, family: str, root):
        self.spec = decoders.DecoderSpec(family=family)
        self.names = decoders.task_names(TASKS[family])
        self.model = decoders.build_decoder(self.spec, self.names)
        self.files = decoders.export_decoders(self.spec, TASKS[family], root, onnx=family == "llama",
                                              model=self.model)

    def module(self, suffix: str = "") -> Module:
        """The files of one format imported into one module, keyed by their graph keys."""
        module = Module()
        for key in (f"{t}/{p}" for t in self.names for p in decoders.PHASES):
            path = self.files[key + suffix]
            if suffix:
                from aalbert.mapper.frontends.onnx_import import import_onnx
                import_onnx(path, module, key)
            else:
                import_pt2(path, module, key)
        verify(module)
        return module


@pytest.fixture(scope="session", params=sorted(TASKS))
def exported(request, tmp_path_factory) -> Exported:
    return Exported(request.param, tmp_path_factory.mktemp(f"dec-{request.param}"))


@pytest.fixture(scope="session")
def llama(tmp_path_factory) -> Exported:
    return Exported("llama", tmp_path_factory.mktemp("dec-llama-only"))


def test_interpreter_follows_pytorch_over_prefill_and_decode_steps(exported):
    """Prefill, then 8 decode steps with the cache fed back: the imported graphs' logits are PyTorch's, for every
    task; the graphs carry the cache as state pairs named as `ir/state.py` says."""
    module = exported.module()
    spec = exported.spec
    for task in exported.names:
        reference = torch_run(exported.model, spec, task)
        assert len(reference) == 9 and reference[-1].logits.shape == (1, 1, spec.vocab)
        assert largest_difference(reference, ir_run(module, task, spec, reference)) < 1e-4
        decode = module.graphs[f"{task}/decode"]
        assert [v.name for v in decode.inputs[:2]] == ["input_ids", "cache_position"]
        pairs = state_pairs(decode)
        assert sorted(p.name for p in pairs) == sorted(decoders.cache_names(spec))
        assert all(p.is_cache and p.capacity == spec.capacity for p in pairs)
    ops = {n.op for g in module.graphs.values() for n in g.nodes}
    assert "index_copy" in ops
    assert {"silu", "sin", "cos"} <= ops if exported.spec.family != "gpt2" else "gelu" in ops or "tanh" in ops


def test_a_decode_step_attends_to_the_slots_up_to_its_position(exported):
    """What the cache holds past the step's position does not change its logits; what it holds before does."""
    module = exported.module()
    spec, task = exported.spec, exported.names[0]
    rng = np.random.default_rng(0)
    pos = 5
    caches = {n: rng.standard_normal(decoders.empty_cache(spec).shape).astype(np.float32)
              for n in decoders.cache_names(spec)}
    feed = {"input_ids": np.array([[3]]), "cache_position": np.array([pos])}

    def logits(changed_slots: slice) -> np.ndarray:
        from aalbert.ir.interpreter import run
        edited = {n: c.copy() for n, c in caches.items()}
        for c in edited.values():
            c[:, :, changed_slots] += 1.0
        return run(module, f"{task}/decode", {**feed, **edited})["logits"]

    base = logits(slice(0, 0))
    np.testing.assert_array_equal(logits(slice(pos + 1, None)), base)
    assert np.abs(logits(slice(pos - 1, pos)) - base).max() > 1e-3


def test_bfloat16_is_refused_in_one_line():
    lin = torch.nn.Linear(4, 4).to(torch.bfloat16)
    x = torch.randn(2, 4, dtype=torch.bfloat16)
    ep = torch.export.export(lin, (x,), strict=False)
    with pytest.raises(FrontendError, match=r"bfloat16, which numpy cannot hold") as e:
        import_exported(ep, Module(), "t", shapes={"input": x.shape})
    assert "\n" not in str(e.value)


def test_float16_decoder_follows_pytorch(tmp_path):
    """A float16 model imports with f16 weights and cache; its logits follow PyTorch's at f16's precision."""
    spec = decoders.DecoderSpec(family="llama", layers=1, dtype="float16")
    model = decoders.build_decoder(spec, ())
    files = decoders.export_decoders(spec, 0, tmp_path, model=model)
    module = Module()
    for key, path in files.items():
        import_pt2(path, module, key)
    assert {w.type.dtype.value for w in module.weights.values()} == {"f16"}
    reference = torch_run(model, spec, None, steps=2)
    assert largest_difference(reference, ir_run(module, "base", spec, reference)) < 2e-2
