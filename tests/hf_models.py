"""Tiny Hugging Face and AdapterHub encoders built from configs with seeded random weights (no downloads),
exported and imported once per session."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings

import numpy as np
import pytest

SEQ = 16
DIMS = dict(vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
# all-MiniLM-L6-v2's BertModel config (the fidelity benchmark's model), with a small vocabulary
MINILM = dict(vocab_size=100, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
              max_position_embeddings=64)
FAMILIES = ("albert", "bert", "distilbert", "roberta", "minilm", "albert-classifier", "bert-classifier",
            "distilbert-classifier", "roberta-classifier", "albert-headless", "bert-headless")


def _perturb(model, seed: int):
    """HF's init leaves biases at zero and LayerNorm scales at one, which exporters may fold away."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


@functools.cache
def hf_encoder(family: str, attention: str = "eager"):
    """A tiny encoder of `family` with eager or SDPA attention."""
    transformers = pytest.importorskip("transformers")
    import torch
    torch.manual_seed(0)
    T = transformers
    if family == "albert":
        model = T.AlbertModel(T.AlbertConfig(embedding_size=16, num_hidden_layers=3, attn_implementation=attention,
                                             **DIMS))
    elif family == "albert-headless":  # no pooler
        model = T.AlbertModel(T.AlbertConfig(embedding_size=16, num_hidden_layers=2, attn_implementation=attention,
                                             **DIMS), add_pooling_layer=False)
    elif family == "albert-classifier":  # pooler and a 3-way classification head
        model = T.AlbertForSequenceClassification(T.AlbertConfig(embedding_size=16, num_hidden_layers=2, num_labels=3,
                                                                  attn_implementation=attention, **DIMS))
    elif family == "bert":
        model = T.BertModel(T.BertConfig(num_hidden_layers=2, attn_implementation=attention, **DIMS))
    elif family == "bert-headless":  # no pooler
        model = T.BertModel(T.BertConfig(num_hidden_layers=2, attn_implementation=attention, **DIMS),
                            add_pooling_layer=False)
    elif family == "bert-classifier":  # pooler and a 3-way classification head
        model = T.BertForSequenceClassification(T.BertConfig(num_hidden_layers=2, num_labels=3,
                                                             attn_implementation=attention, **DIMS))
    elif family == "minilm":
        model = T.BertModel(T.BertConfig(attn_implementation=attention, **MINILM))
    elif family == "roberta":
        model = T.RobertaModel(T.RobertaConfig(num_hidden_layers=2, attn_implementation=attention, **DIMS))
    elif family == "roberta-classifier":  # no pooler: a dense-tanh-projection head on the first token
        model = T.RobertaForSequenceClassification(T.RobertaConfig(num_hidden_layers=2, num_labels=3,
                                                                   attn_implementation=attention, **DIMS))
    elif family in ("distilbert", "distilbert-classifier"):
        config = T.DistilBertConfig(vocab_size=100, dim=32, n_heads=4, hidden_dim=64, n_layers=2,
                                    max_position_embeddings=64, num_labels=3, attn_implementation=attention)
        # the classifier: no pooler, a dense-ReLU-projection head on the first token
        model = T.DistilBertModel(config) if family == "distilbert" else T.DistilBertForSequenceClassification(config)
    else:
        raise ValueError(family)
    return _perturb(model, 1)


def input_names(family: str) -> tuple[str, ...]:
    return ("input_ids", "attention_mask") if family.split("-")[0] in ("roberta", "distilbert") else \
        ("input_ids", "attention_mask", "token_type_ids")


def hf_inputs(names, batch: int = 1, seq: int = SEQ, seed: int = 1) -> dict:
    """Token ids in [2, 100) (RoBERTa's padding id is 1), the last 3 positions padded, token types 0 then 1."""
    rng = np.random.default_rng(seed)
    feeds = {"input_ids": rng.integers(2, 100, (batch, seq)), "attention_mask": np.ones((batch, seq), np.int64),
             "token_type_ids": np.zeros((batch, seq), np.int64)}
    feeds["attention_mask"][:, -3:] = 0
    feeds["token_type_ids"][:, seq // 2:] = 1
    return {k: feeds[k].astype(np.int64) for k in names}


def positional(model, names, outputs):
    """An HF model with positional inputs and a tuple of tensors out (what exporters and .pt2 files want)."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            out = self.model(**dict(zip(names, (input_ids, attention_mask, token_type_ids))))
            return tuple(out[k] for k in outputs)
    return Positional().eval()


def export_onnx(model, path, names, outputs, exporter: str):
    """TorchScript (opset 17, dynamic axes) or dynamo (dynamic batch and sequence) export."""
    import torch
    feeds = hf_inputs(names)
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(positional(model, names, outputs), args, str(path), dynamo=False, opset_version=17,
                              input_names=list(names), output_names=list(outputs),
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})
        else:
            batch, seq = torch.export.Dim("batch", max=64), torch.export.Dim("seq", min=2, max=64)
            torch.onnx.export(positional(model, names, outputs), args, str(path), dynamo=True,
                              input_names=list(names), output_names=list(outputs), verbose=False,
                              dynamic_shapes={n: {0: batch, 1: seq} for n in names})
    return path


class SharedExports:
    """`(family, attention, exporter, outputs)` -> the ONNX export of `hf_encoder(family, attention)`, made by
    the first process of the run to ask for it, under a file lock, and read by the others (the workers of
    `pytest -n`): a dynamo export takes seconds, and several test modules check the same one."""

    def __init__(self, root):
        self.root = root

    def __call__(self, family: str, attention: str, exporter: str, outputs: tuple[str, ...]):
        from .helpers import made_once

        folder = self.root / f"hf-{family}-{attention}-{exporter}-{'-'.join(outputs)}"
        path = folder / f"{family}.onnx"
        made_once(folder, lambda: export_onnx(hf_encoder(family, attention), path, input_names(family), outputs,
                                              exporter))
        return path


@functools.cache
def adapter_albert(attention: str = "eager"):
    """A tiny ALBERT with three AdapterHub adapters: bottleneck (seq_bn), double bottleneck and LoRA."""
    adapters = pytest.importorskip("adapters")
    model = hf_encoder("albert-headless", attention)
    import copy
    model = copy.deepcopy(model)
    adapters.init(model)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        model.add_adapter("seq_bn", config=adapters.SeqBnConfig(reduction_factor=4))
        model.add_adapter("double_seq_bn", config=adapters.DoubleSeqBnConfig(reduction_factor=4))
        model.add_adapter("lora", config=adapters.LoRAConfig(r=4, alpha=8))
    return _perturb(model, 2)  # adapters start as identities (zero up-projections): make each one count
