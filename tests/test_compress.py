"""prune, quantize and compress: IR in and out, policies, sidecars, and errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from aalbert.errors import OptionError
from aalbert.ir.fileio import load_module, save_module
from aalbert.ir.interpreter import run
from aalbert.ir.printer import print_module
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.passes.compress import BUILTIN_POLICIES, load_policy, prune_array

from .helpers import assert_clean_error, call
from .ir_cases import module_with_data

SMALL = """module {
  weight @w : tensor<32x16xf32> hash "0"
  weight @b : tensor<16xf32> hash "1"
  graph @t(%x: tensor<2x32xf32>) -> ("y": tensor<2x16xf32>) {
    %0 = weight {name = @w} : tensor<32x16xf32>
    %1 = weight {name = @b} : tensor<16xf32>
    %2 = linear(%x, %0, %1) : tensor<2x16xf32>
    return %2
  }
}
"""


def decls(module) -> list[str]:
    """Weight declarations without their (data-dependent) hashes."""
    return [re.sub(r'hash "[0-9a-f]+"', 'hash "#"', line.strip()) for line in print_module(module).splitlines()
            if line.strip().startswith("weight @")]


def compress(pipeline: str):
    module = module_with_data(SMALL)
    before = {k: v.values().copy() for k, v in module.weights.items()}
    return PassManager(parse_pipeline(pipeline)).run(module), before


def test_non_finite_weights_are_refused():
    module = module_with_data(SMALL)
    module.weights["w"].data[3, 4] = np.nan
    with pytest.raises(OptionError, match="@w holds NaN or infinite values"):
        PassManager(parse_pipeline("quantize{format=afloat<8,3>}")).run(module)


def test_prune_unstructured():
    module, before = compress("prune{sparsity=0.25}")
    assert decls(module) == ['weight @w : tensor<32x16xf32> hash "#" {storage = "bitmask", nnz = 384}',
                             'weight @b : tensor<16xf32> hash "#"']
    w = module.weights["w"].values()
    assert np.count_nonzero(w) == 384  # floor(0.25 * 512) zeros
    kept = np.abs(before["w"][w != 0]).min()
    assert kept >= np.abs(before["w"][w == 0]).max()  # the smallest magnitudes went
    np.testing.assert_array_equal(module.weights["b"].values(), before["b"])  # vectors are not pruned


def test_prune_blocks_aligned_to_the_array():
    module, before = compress("prune{sparsity=0.5,block=16x16}")
    w = module.weights["w"].values()
    assert decls(module)[0].endswith('{storage = "bitmask", nnz = 256, block = [16, 16]}')
    blocks = (w.reshape(2, 16, 1, 16) != 0).any(axis=(1, 3))
    assert blocks.sum() == 1  # one of two 16x16 blocks survives, whole
    assert np.count_nonzero(w.reshape(2, 16, 16)[blocks[:, 0]]) == 256


def test_block_pruning_pads_partial_blocks():
    w = np.arange(1, 1 + 20 * 12, dtype=np.float32).reshape(20, 12)
    out = prune_array(w, 0.5, (16, 16))
    # blocks: rows 0-15 (192 small values) and rows 16-19 (48 large values); the first goes
    assert np.count_nonzero(out[:16]) == 0 and np.count_nonzero(out[16:]) == 48


@pytest.mark.parametrize("pipeline, fact", [
    ("quantize{format=f16}", '{format = "f16", bits = 16}'),
    ("quantize{format=int8}", '{format = "int", bits = 8, scale = '),
    ("quantize{format=int4,granularity=channel}", '{format = "int", bits = 4, granularity = "channel"}'),
    ("quantize{format=afloat<8,3>}", '{format = "afloat", bits = 8, exp_bits = 3, exp_bias = '),
    ("prune{sparsity=0.5},quantize{format=afloat8}", '{format = "afloat", bits = 8, exp_bits = 3, exp_bias = '),
])
def test_quantize_records_the_encoding_and_stays_close(pipeline, fact):
    module, before = compress(pipeline)
    assert fact in decls(module)[0]
    if "prune" in pipeline:
        assert decls(module)[0].endswith('storage = "bitmask", nnz = 256}')
    w = module.weights["w"]
    assert w.data.dtype != np.float32
    err = np.abs(w.values() - (before["w"] if "prune" not in pipeline else prune_array(before["w"], 0.5, None)))
    assert err.max() <= 0.13 * np.abs(before["w"]).max()


def test_compressed_module_runs_and_round_trips_through_text_and_sidecar(tmp_path):
    module = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 8))
    PassManager(parse_pipeline("canonicalize,share,compress{policy=edgebert}")).run(module)
    feeds = {"input_ids": np.arange(8)[None] % 100, "attention_mask": np.ones((1, 8), np.int64),
             "token_type_ids": np.zeros((1, 8), np.int64)}
    out = run(module, "cola", feeds)
    save_module(module, tmp_path / "m.ir")
    loaded = load_module(tmp_path / "m.ir")
    assert print_module(loaded) == print_module(module)
    np.testing.assert_array_equal(run(loaded, "cola", feeds)["logits"], out["logits"])
    labels = {w.encoding.label for w in module.weights.values()}
    assert labels == {"afloat<8,3>", "afloat<8,3>+bitmask"}


def test_int_channel_scales_travel_in_the_sidecar(tmp_path):
    module, _ = compress("quantize{format=int8,granularity=channel}")
    save_module(module, tmp_path / "m.ir")
    loaded = load_module(tmp_path / "m.ir")
    np.testing.assert_array_equal(loaded.weights["w"].scales, module.weights["w"].scales)
    np.testing.assert_array_equal(loaded.weights["w"].values(), module.weights["w"].values())


def test_edgebert_policy_matches_the_design_arithmetic():
    """ALBERT-base shared backbone under EdgeBERT's policy: 7.17 MB (2.05 + 0.10 + 4.43 + 0.59)."""
    module = load_example(ExampleSpec("adapter-albert", 1, "base"), DimSpec(1, 8))
    PassManager(parse_pipeline("canonicalize,share,compress")).run(module)
    by_kind = {}
    for w in module.weights.values():
        by_kind[w.role.kind] = by_kind.get(w.role.kind, 0) + w.nbytes
    assert round(by_kind["embedding"] / 1e6, 2) == 2.05
    assert round(by_kind["projection"] / 1e6, 2) == 0.10
    assert round((by_kind["attention"] + by_kind["ffn"]) / 1e6, 2) == 4.43
    assert round(by_kind["head"] / 1e6, 2) == 0.59  # pooler (the 2-label head adds 1.5 KB)


def test_compress_twice_is_an_error():
    module, _ = compress("quantize{format=int8}")
    with pytest.raises(OptionError, match="already encoded as int8; compress it once"):
        PassManager(parse_pipeline("quantize{format=f16}")).run(module)


# --- policies ----------------------------------------------------------------------------------------------
def test_builtin_and_file_policies(tmp_path):
    assert [r.sparsity for r in BUILTIN_POLICIES["edgebert"].rules] == [0.6, 0.5, 0.0]
    (tmp_path / "p.toml").write_text('[[rule]]\nkinds = ["attention", "ffn"]\nrole = "shared"\n'
                                     'format = "int4"\ngranularity = "channel"\nsparsity = 0.9\nblock = [16, 16]\n')
    policy = load_policy(str(tmp_path / "p.toml"))
    (rule,) = policy.rules
    assert rule.kinds == ("attention", "ffn") and rule.format.bits == 4 and rule.block == (16, 16)


@pytest.mark.parametrize("text, message", [
    ('[[rule]]\nsparsty = 0.5\n', "p.toml: rule 1: unknown key 'sparsty'"),
    ('[[rule]]\nkinds = ["attn"]\n', "p.toml: rule 1: kinds: unknown weight class 'attn'"),
    ('[[rule]]\nkinds = []\n', "p.toml: rule 1: kinds: names no weight class"),
    ('[[rule]]\nsparsity = 1.0\n', "p.toml: rule 1: sparsity must be in [0, 1), got 1.0"),
    ('[[rule]]\nformat = "int40"\n', "p.toml: rule 1: int formats take 2 to 16 bits, got 40"),
    ('[[rule]]\nformat = "afloat<8,8>"\n', "p.toml: rule 1: afloat<8,8> needs"),
    ('[[rule]]\nrole = "frozen"\n', "p.toml: rule 1: role must be one of any, shared, task"),
    ('[[rule]]\nblock = [16]\n', "p.toml: rule 1: block must be two positive sizes"),
    ('title = "x"\n', "p.toml: unknown key 'title'"),
    ('', "p.toml: no [[rule]] tables"),
    ('[[rule]\n', "p.toml: not a readable TOML policy"),
])
def test_bad_policy_files(tmp_path, text, message):
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(OptionError) as e:
        load_policy(str(tmp_path / "p.toml"))
    assert message in str(e.value)


def test_bad_policy_file_through_the_cli(tmp_path, capsys):
    (tmp_path / "p.toml").write_text('[[rule]]\nkinds = ["encoder"]\n')
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--compress", tmp_path / "p.toml"], capsys,
                       "rule 1: kinds: unknown weight class 'encoder'")


def test_fidelity_report(capsys):
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "8", "--quantize", "f16",
                                             "--fidelity", "--samples", "3"], capsys)
    assert code == 0, err
    tail = out[out.index("fidelity against"):].splitlines()
    assert tail[0] == "fidelity against the uncompressed model (3 seeded inputs per task, activations in f32)"
    cola = tail[2].split()
    assert cola[0] == "cola" and float(cola[1]) > 0.9999 and cola[3] == "100.0"
    assert tail[-1].startswith("weights: ") and "2.00x smaller" in tail[-1]


def test_fidelity_of_a_model_with_off_ramps_compares_the_models_outputs(capsys):
    """The early-exit pass runs after the reference is copied and adds the exit tests' entropies as outputs:
    fidelity compares the outputs both have (it used to join outputs of different lengths and crash)."""
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", "8", "--off-ramps",
                                             "--quantize", "f16", "--fidelity", "--samples", "2"], capsys)
    assert code == 0, err
    row = out[out.index("fidelity against"):].splitlines()[2].split()
    assert row[0] == "cola" and float(row[1]) > 0.9999 and row[3] == "100.0"
