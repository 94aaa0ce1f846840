"""Graph keys by task and phase (`ir/phases.py`) and state buffers (`ir/state.py`)."""

from aalbert.ir.graph import Graph, Value
from aalbert.ir.phases import GraphKey, parse_key, phases_of, task_of, tasks
from aalbert.ir.state import state_bytes, state_pairs
from aalbert.ir.types import parse_tensor_type


def test_keys_name_task_and_phase():
    assert parse_key("sst2/decode") == GraphKey("sst2", "decode")
    assert parse_key("sst2/prefill") == GraphKey("sst2", "prefill")
    assert parse_key("sst2") == GraphKey("sst2")
    assert parse_key("a/b") == GraphKey("a/b")          # not a phase: the whole key is the task
    assert parse_key("/decode") == GraphKey("/decode")  # no task before the slash
    assert str(GraphKey("t", "decode")) == "t/decode" and task_of("t/prefill") == "t"


def test_tasks_group_phases_in_graph_order():
    graphs = {name: Graph(name) for name in ("b/prefill", "b/decode", "a/prefill", "a/decode")}
    assert tasks(graphs) == ["b", "a"]
    assert list(phases_of(graphs, "a")) == ["prefill", "decode"]


def test_state_pairs_are_inputs_written_back_under_their_name():
    cache = parse_tensor_type("tensor<1x2x16x4xf32>")
    g = Graph("t/decode")
    x = Value("x", parse_tensor_type("tensor<1x4xf32>"))
    k = Value("cache.key.0", cache)
    g.inputs += [x, k]
    g.outputs += [("logits", x), ("cache.key.0", k)]
    (pair,) = state_pairs(g)
    assert pair.name == "cache.key.0" and pair.is_cache and pair.capacity == 16
    assert state_bytes(g) == 1 * 2 * 16 * 4 * 4


def test_decoder_fixture_decode_steps_agree_with_a_longer_prompt():
    """The IR decoder's cache is right: prefill of P tokens then decode steps give the logits a prefill of the
    whole sequence gives for its last tokens."""
    import numpy as np

    from aalbert.ir.interpreter import run
    from aalbert.ir.verifier import verify
    from tests.decoder_ir import TinyDecoder, decoder_module

    cfg = TinyDecoder(prompt=4)
    module = decoder_module(("a", "b"), cfg)
    verify(module)
    tokens = np.random.default_rng(1).integers(0, cfg.vocab, 7)
    empty = {f"cache.{kv}.{i}": np.zeros((1, cfg.heads, cfg.capacity, cfg.head_dim), np.float32)
             for i in range(cfg.layers) for kv in ("key", "value")}
    out = run(module, "a/prefill", {"input_ids": tokens[None, :4], "cache_position": np.arange(4), **empty})
    caches = {k: out[k] for k in empty}
    steps = []
    for t in range(4, 7):
        out = run(module, "a/decode", {"input_ids": tokens[None, t:t + 1], "cache_position": np.array([t]), **caches})
        caches = {k: out[k] for k in empty}
        steps.append(out["logits"][0, 0])
    longer = decoder_module(("a", "b"), TinyDecoder(prompt=7))
    whole = run(longer, "a/prefill", {"input_ids": tokens[None, :], "cache_position": np.arange(7), **empty})
    np.testing.assert_allclose(np.stack(steps), whole["logits"][0, 4:], rtol=1e-5, atol=1e-5)
    other = run(module, "b/decode", {"input_ids": tokens[None, 6:7], "cache_position": np.array([6]), **caches})
    assert not np.allclose(other["logits"][0, 0], steps[-1], atol=1e-3)  # task b's LoRA pairs are its own


def test_share_takes_a_tasks_phases_as_one_task():
    """The base is shared, each task's LoRA pairs its own, read by both its phases as one weight; two tasks with
    identical adapters still own one copy each."""
    from aalbert.passes.base import PassManager
    from aalbert.passes.share import Share
    from tests.decoder_ir import decoder_module

    for same in (False, True):
        module = PassManager([Share()]).run(decoder_module(("a", "b"), same_adapters=same))
        roles = {name: w.role for name, w in module.weights.items()}
        lora = {n: r for n, r in roles.items() if ".lora" in n}
        assert lora and all(r.kind == "lora" for r in lora.values())
        assert sorted(r.tasks for r in lora.values()) == [("a",)] * 8 + [("b",)] * 8
        assert all(r.shared for n, r in roles.items() if n not in lora)
        for task in ("a", "b"):
            prefill, decode = (module.used_weights(f"{task}/{p}") for p in ("prefill", "decode"))
            assert [w.name for w in prefill] == [w.name for w in decode]
