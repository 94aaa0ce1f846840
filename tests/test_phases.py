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
