"""Generation requests re-priced from counts kept at fixed cache lengths (targets/sim/token_counts.py)."""

import dataclasses

import numpy as np
import pytest

from aalbert.examples.llama_ir import SMALL
from aalbert.mapper.study import decoder
from aalbert.targets.sim.counts import StreamSpec, scaled
from aalbert.targets.sim.prices import prices_of, retarget
from aalbert.targets.sim.token_counts import energy_per_token, knot_weights, knots, request


def _config(mode: str, chip: str = "edge_accel", sized: bool = False, kv: str = "allocator", tasks: int = 2):
    return decoder.DecoderConfiguration(dataclasses.replace(SMALL, tasks=tasks), mode, chip, sized, kv, "edge_accel", 6)


@pytest.fixture(scope="session")
def counted():
    """Each LoRA mode on edge_accel and on the sized RRAM + SRAM chip, 2 adapters: (row, counts and chip)."""
    return {(mode, chip): decoder.counted_row(_config(mode, chip, chip != "edge_accel",
                                                      "on-chip" if chip != "edge_accel" else "allocator"))
            for mode in ("unmerged", "merged", "merge-on-switch") for chip in ("edge_accel", "rram_sram")}


def test_knot_weights_sum_the_steps_and_are_exact_at_the_knots():
    at = [2, 6, 10]
    w = knot_weights(at, np.array([3, 2, 6]), np.array([5, 2, 10]))
    assert w.sum(axis=1).tolist() == [3.0, 1.0, 5.0]  # one unit of weight per step
    assert w[1].tolist() == [1.0, 0.0, 0.0]            # a step at a knot is that knot alone
    # steps 6..10: the knot at 6 gets 1 + 0.75 + 0.5 + 0.25, the one at 10 the rest
    assert w[2].tolist() == [0.0, 2.5, 2.5]
    assert knots(1, 8, 5) == [1, 3, 5, 6, 8] and knots(4, 4) == [4]


@pytest.mark.parametrize("mode", ["unmerged", "merged", "merge-on-switch"])
@pytest.mark.parametrize("chip", ["edge_accel", "rram_sram"])
def test_repriced_at_the_compiled_prices_is_the_simulated_stream(counted, mode, chip):
    row, c = counted[mode, chip]
    e = energy_per_token(c["counts"], prices_of(c["target"]), StreamSpec(10.0, 1.0, 1.0, 1.0), SMALL.prompt,
                         SMALL.generated)
    assert float(e[0]) / 1e6 == pytest.approx(row["energy_per_token_uj"], rel=1e-4)


def test_a_merge_on_switch_request_pays_its_merge(counted):
    _, c = counted["merge-on-switch", "edge_accel"]
    stream = next(iter(c["counts"].values())).stream
    assert stream.merges["switch"] and stream.copy_cycles["switch"] > 0
    _, plain = counted["unmerged", "edge_accel"]
    assert not next(iter(plain["counts"].values())).stream.merges


def test_repricing_follows_a_recompile_at_other_prices(counted):
    """Prices scaled as a recompile would charge them: the re-priced stream follows the simulated one."""
    from aalbert.mapper.backend import Stream, run_backend
    from aalbert.mapper.study.evaluate import place
    from aalbert.targets.sim.workload import default_workload

    _, c = counted["unmerged", "edge_accel"]
    target = c["target"]
    p = scaled(prices_of(target), {"read:": 1.3, "mac:": 0.8, "leak:": 1.3, "bank:": 1.3})
    other = retarget(target, p)
    module = decoder.prepared(dataclasses.replace(SMALL, tasks=2), "unmerged")
    wl = default_workload(module.graphs)
    placed, _ = place(module, other, wl, spill=False)
    g = run_backend(placed, other, wl, Stream(6)).generation
    e = energy_per_token(c["counts"], p, StreamSpec(10.0, 1.0, 1.0, 1.0), SMALL.prompt, SMALL.generated)
    assert float(e[0]) == pytest.approx(g.energy_per_token_pj, rel=1e-3)
    base = energy_per_token(c["counts"], prices_of(target), StreamSpec(10.0, 1.0, 1.0, 1.0), SMALL.prompt,
                            SMALL.generated)
    assert abs(float(e[0]) / float(base[0]) - 1) > 0.01  # the prices moved it


def test_more_tokens_cost_more_per_request_and_samples_are_priced_at_once(counted):
    _, c = counted["unmerged", "edge_accel"]
    g = next(iter(c["counts"].values()))
    p = prices_of(c["target"])
    r = request(g, p, np.array([4, 4, 8]), np.array([2, 8, 8]))
    pj, cycles = r[False]
    assert pj[0] < pj[1] < pj[2] and cycles[0] < cycles[1] < cycles[2]
    with pytest.raises(ValueError, match="compiled cache"):
        request(g, p, 8, SMALL.capacity)
