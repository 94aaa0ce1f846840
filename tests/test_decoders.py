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


_EXPORTED: dict[str, Exported] = {}  # each family exported once per session, whichever fixture asks first


def _exported(family: str, tmp_path_factory) -> Exported:
    if family not in _EXPORTED:
        _EXPORTED[family] = Exported(family, tmp_path_factory.mktemp(f"dec-{family}"))
    return _EXPORTED[family]


@pytest.fixture(scope="session", params=sorted(TASKS))
def exported(request, tmp_path_factory) -> Exported:
    return _exported(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def llama(tmp_path_factory) -> Exported:
    return _exported("llama", tmp_path_factory)


def _refuse(*args, **kwargs):
    raise AssertionError("torch's loader was asked to read the file")


def test_interpreter_follows_pytorch_over_prefill_and_decode_steps(exported, monkeypatch):
    """Prefill, then 8 decode steps with the cache fed back: the imported graphs' logits are PyTorch's, for every
    task; the graphs carry the cache as state pairs named as `ir/state.py` says. The files are read by the
    project's own reader, not torch's."""
    with monkeypatch.context() as m:
        m.setattr(torch.export, "load", _refuse)
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


def test_spec_of_reads_a_users_model_and_its_adapters(llama):
    """A model built elsewhere gets the spec it was built from (its PEFT wrapper read through); GPT-2 has a key
    and value head per query head; a head size that is not hidden / heads is refused."""
    import transformers

    assert decoders.spec_of(llama.model, llama.spec.capacity, llama.spec.prompt) == llama.spec
    gpt2 = transformers.GPT2LMHeadModel(decoders.hf_config(decoders.DecoderSpec(family="gpt2", capacity=16)))
    spec = decoders.spec_of(gpt2.half(), capacity=16, prompt=4)
    assert (spec.family, spec.kv_heads, spec.cache_heads, spec.dtype) == ("gpt2", 4, 4, "float16")
    config = decoders.hf_config(decoders.DecoderSpec())
    config.head_dim = 32
    with pytest.raises(ValueError, match=r"head size 32 x 4 heads is not the hidden size 64"):
        decoders.spec_of(transformers.LlamaForCausalLM(config))


# -- file names, ONNX, LoRA by structure, aalbert-run -------------------------------------------------------
def test_file_names_and_task_options_key_phases(llama):
    """`a.prefill.pt2` is graph `a/prefill`; `--task a/decode=PATH` names one; a task with a phase beside one
    without is refused in one line."""
    from aalbert.errors import AalbertError
    from aalbert.mapper.frontends import DimSpec
    from aalbert.mapper.loading import graph_key, load_files

    files = {k: str(p) for k, p in llama.files.items() if not k.endswith(".onnx")}
    assert graph_key(files["task1/decode"]) == "task1/decode" and graph_key("x/a.b.pt2") == "a.b"
    module = load_files([(None, p) for p in files.values()], DimSpec())
    assert sorted(module.graphs) == sorted(files)
    module = load_files([("chat/prefill", files["task0/prefill"]), ("chat/decode", files["task0/decode"])],
                        DimSpec())
    assert sorted(module.graphs) == ["chat/decode", "chat/prefill"]
    with pytest.raises(AalbertError, match="has a graph without a phase") as e:
        load_files([("chat", files["task0/prefill"]), ("chat/decode", files["task0/decode"])], DimSpec())
    assert "\n" not in str(e.value)


def test_onnx_import_follows_pytorch_with_the_cache_as_state(llama):
    """Optimum's past/present names become the state pairs; logits follow PyTorch over 8 decode steps."""
    module = llama.module(".onnx")
    for task in llama.names:
        decode = module.graphs[f"{task}/decode"]
        assert sorted(p.name for p in state_pairs(decode)) == sorted(decoders.cache_names(llama.spec))
        reference = torch_run(llama.model, llama.spec, task)
        assert largest_difference(reference, ir_run(module, task, llama.spec, reference)) < 1e-4


def _roles(module: Module):
    """The module after `canonicalize,share`: each weight's role."""
    from aalbert.passes.base import PassManager, parse_pipeline

    module = PassManager(parse_pipeline("canonicalize,share")).run(module)
    return module, {name: w.role for name, w in module.weights.items()}


def _check_lora_split(module: Module, spec, names: list[str]) -> None:
    """Two phases per task read the same weights; the LoRA A and B of q and v in every layer are the task's own
    (found by structure), every other weight shared by all tasks."""
    module, roles = _roles(module)
    lora = {n: r for n, r in roles.items() if r.kind == "lora"}
    per_task = 2 * 2 * spec.layers  # q and v, A and B, per layer
    assert sorted(r.tasks for r in lora.values()) == sorted((t,) for t in names for _ in range(per_task))
    assert all(spec.rank in module.weights[n].type.shape for n in lora)
    assert all(r.shared for n, r in roles.items() if n not in lora)
    for task in names:
        prefill, decode = (module.used_weights(f"{task}/{p}") for p in decoders.PHASES)
        assert [w.name for w in prefill] == [w.name for w in decode]


@pytest.mark.parametrize("suffix", ["", ".onnx"], ids=["pt2", "onnx"])
def test_share_finds_the_base_shared_and_each_tasks_lora_pairs(llama, suffix):
    _check_lora_split(llama.module(suffix), llama.spec, llama.names)


def test_identical_adapters_stay_each_tasks_own(tmp_path):
    """Two tasks whose LoRA pairs are equal byte for byte, through ONNX (names lost): still two tasks' own."""
    from aalbert.mapper.frontends.onnx_import import import_onnx

    spec = decoders.DecoderSpec(family="llama", seed=1)
    names = decoders.task_names(2)
    model = decoders.build_decoder(spec, names, same=True)
    module = Module()
    for task in names:
        for phase in decoders.PHASES:
            path = tmp_path / f"{task}.{phase}.onnx"
            step = decoders.DecoderStep(model, spec, task, stateful=False)
            import_onnx(decoders.export_onnx(step, path, phase), module, f"{task}/{phase}")
    _check_lora_split(module, spec, names)


def test_aalbert_run_on_a_decode_file_matches_pytorch(llama, tmp_path):
    """A decode step at position 11 over a cache of random contents, run from the `.pt2` by aalbert-run."""
    from aalbert.ir.fileio import read_npz, write_npz
    from aalbert.mapper.cli import run

    spec, task = llama.spec, llama.names[1]
    rng = np.random.default_rng(1)
    feed = {k: v.numpy() for k, v in decoders.phase_inputs(spec, "decode", start=11).items()}
    caches = {n: rng.standard_normal(decoders.empty_cache(spec).shape).astype(np.float32)
              for n in decoders.cache_names(spec)}
    write_npz(tmp_path / "in.npz", {**feed, **caches})
    assert run.main([str(llama.files[f"{task}/decode"]), "--inputs", str(tmp_path / "in.npz"),
                     "-o", str(tmp_path / "out.npz")]) == 0
    got = read_npz(tmp_path / "out.npz")
    step = decoders.DecoderStep(llama.model, spec, task, stateful=False).activate()
    with torch.no_grad():
        logits, *new = step(*(torch.from_numpy(feed[k]) for k in ("input_ids", "cache_position")),
                            *(torch.from_numpy(caches[n]) for n in decoders.cache_names(spec)))
    assert np.abs(got["logits"] - logits.numpy()).max() < 1e-4
    for name, want in zip(decoders.cache_names(spec), new):
        assert np.abs(got[name] - want.numpy()).max() < 1e-6


@pytest.mark.parametrize("suffix", ["", ".onnx"], ids=["pt2", "onnx"])
def test_a_llama_with_two_lora_tasks_compiles_for_a_target(llama, suffix, capsys):
    """The whole flow on a real decoder: both phases of both tasks lowered and simulated on `edge_accel`, its
    rotary table (a weight's view read as an operand) included; the report names the two tasks and the cache."""
    from aalbert.mapper.cli import compile as compile_cli

    files = [str(llama.files[f"{t}/{p}{suffix}"]) for t in llama.names for p in decoders.PHASES]
    assert compile_cli.main([*files, "--target", "edge_accel", "--lora", "merge-on-switch"]) == 0
    out = capsys.readouterr().out
    assert "shared by all 2 tasks" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in ([t] for t in llama.names)]
    assert [r[0] for r in rows[-2:]] == llama.names           # the generation table's rows, one per task
    assert "KV cache" in out and "TPOT" in out


def test_default_sdpa_attention_exports_and_follows_pytorch(tmp_path):
    """Hugging Face's default attention (scaled_dot_product_attention, not the examples' eager one), with a LoRA
    adapter, through `export_phases`: the interpreter follows PyTorch over a prefill and 8 decode steps."""
    import peft
    import transformers

    spec = decoders.DecoderSpec(family="llama")
    config = decoders.hf_config(spec)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    base = transformers.LlamaForCausalLM(config).eval()
    assert base.config._attn_implementation == "sdpa"
    lora = peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = peft.get_peft_model(base, lora, adapter_name="t").eval()
    got = decoders.spec_of(model, spec.capacity, spec.prompt)
    module = Module()
    for key, path in decoders.export_phases(model, tmp_path, "t", spec.capacity, spec.prompt).items():
        import_pt2(path, module, key)
    verify(module)
    reference = torch_run(model, got, "t")
    assert largest_difference(reference, ir_run(module, "t", got, reference)) < 1e-4
