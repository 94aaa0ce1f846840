"""Weight kinds of every Hugging Face family, with eager and SDPA attention: the same counts, the right ones.

The kinds come from the graph's structure (`passes/weight_kinds.py`); the expected counts here come from the
models' parameter names, which the pass never sees. SDPA scales the query and key before their product and
once made them "projection" (ALBERT-base's q and k: 1,179,648 parameters out of attention's 2,359,296).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from aalbert.passes.base import PassManager, parse_pipeline  # noqa: E402

from .hf_models import hf_encoder  # noqa: E402
from .test_torch_export import _imported  # noqa: E402  (each model imported once per session)

# the kind of each parameter, from its name (first match wins)
BY_NAME = [("layernorm", r"LayerNorm|layer_norm"),
           ("embedding", r"embeddings\.\w+_embeddings"),
           ("projection", r"embedding_hidden_mapping_in"),
           ("attention", r"attention\.(self\.)?(query|key|value|dense|q_lin|k_lin|v_lin|out_lin)\.|"
                         r"attention\.output\.dense\."),
           ("ffn", r"\.ffn\.|\.ffn_output\.|intermediate\.dense\.|\.output\.dense\.|ffn\.lin[12]\."),
           ("head", r"^pooler")]
FAMILIES = ("albert", "bert", "distilbert", "roberta", "minilm")


def _expected(family: str) -> Counter:
    counts: Counter = Counter()
    for name, p in hf_encoder(family, "eager").named_parameters():
        kind = next(k for k, pattern in BY_NAME if re.search(pattern, name))
        counts[kind] += p.numel()
    return counts


def _kinds(family: str, attention: str) -> Counter:
    module = PassManager(parse_pipeline("canonicalize,share")).run(_imported(family, attention).copy())
    counts: Counter = Counter()
    for w in module.weights.values():
        counts[w.role.kind] += w.numel
    return counts


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_and_sdpa_give_every_weight_its_kind(family):
    expected = _expected(family)
    assert expected["attention"] and expected["ffn"] and expected["embedding"]
    assert _kinds(family, "eager") == expected
    assert _kinds(family, "sdpa") == expected
