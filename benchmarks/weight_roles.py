"""Weight kinds and sharing on real models: ALBERT-base with eager and SDPA attention, and fresh multi-task
AdapterHub and PEFT LoRA models.

    python benchmarks/weight_roles.py [--onnx]

1. `AlbertForSequenceClassification` with albert-base-v2's configuration,
   freshly initialised (torch seed 0; nothing is downloaded), built with
   eager and with SDPA attention and imported through torch.export (with
   `--onnx`, also through its TorchScript ONNX export), then
   `canonicalize,share`: the tensors in the pool, the parameters of every
   weight kind and the megabytes the `edgebert` policy stores. Eager and
   SDPA compute the same function, so every figure should agree.
2. Freshly initialised multi-task models, one task per adapter, imported
   through torch.export: the README's AdapterHub ALBERT (two `seq_bn`
   adapters, sst2 and mnli) and a BERT-base with two PEFT LoRA adapters
   (rank 8 on query and value). Fresh adapters and LoRA B matrices start at
   zero and every bias is zero: printed are the tensors in the pool, the
   most reads of one tensor per inference, the shared and task-specific
   parameters, and the adapter or LoRA weights reported shared (there
   should be none).

Prints markdown tables, and each import's wall time on stderr.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEQ = 128
NAMES = ("input_ids", "attention_mask", "token_type_ids")


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def inputs(vocab: int, seq: int = SEQ) -> dict:
    import torch
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(0, vocab, (1, seq), generator=g),
            "attention_mask": torch.ones(1, seq, dtype=torch.long),
            "token_type_ids": torch.zeros(1, seq, dtype=torch.long)}


def albert_base(attention: str):
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.AlbertConfig(hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                                       attn_implementation=attention)  # albert-base-v2's configuration
    return transformers.AlbertForSequenceClassification(config).eval()


def import_albert(attention: str, onnx: bool):
    import torch

    from aalbert.ir.module import Module
    from aalbert.mapper.frontends import DimSpec, import_onnx
    from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch

    class Positional(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    module, x = Module(), inputs(30000)
    with quiet():
        if not onnx:
            import_torch(albert_base(attention), x, module, "t", ImportOptions(tracer="export"))
            return module
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            torch.onnx.export(Positional(albert_base(attention)), tuple(x[n] for n in NAMES), str(path),
                              dynamo=False, opset_version=17, input_names=list(NAMES), output_names=["logits"])
            import_onnx(str(path), module, "t", DimSpec(1, SEQ))
    return module


def kinds_table(args) -> None:
    from aalbert.passes.base import PassManager
    from aalbert.passes.pipelines import compress, prepare

    rows = {}
    for source in ("torch", "onnx") if args.onnx else ("torch",):
        for attention in ("eager", "sdpa"):
            start = time.perf_counter()
            module = import_albert(attention, source == "onnx")
            print(f"ALBERT-base, {source} {attention}: imported in {time.perf_counter() - start:.1f} s",
                  file=sys.stderr)
            module = PassManager(prepare()).run(module)
            kinds: dict[str, int] = collections.Counter()
            for w in module.weights.values():
                kinds[w.role.kind] += w.numel
            compressed = PassManager(compress("edgebert")).run(module.copy())
            rows[f"{source} {attention}"] = {
                "tensors": len(module.weights), **dict(sorted(kinds.items())),
                "edgebert MB": f"{sum(w.nbytes for w in compressed.weights.values()) / 1e6:.2f}"}
    print("ALBERT-base (AlbertForSequenceClassification, fresh), after canonicalize,share\n")
    table(rows)


def adapterhub():
    import adapters
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.AlbertConfig(vocab_size=1000, embedding_size=64, hidden_size=256, num_hidden_layers=4,
                                       num_attention_heads=4, intermediate_size=1024)
    model = transformers.AlbertModel(config).eval()
    adapters.init(model)
    with quiet():
        for task in ("sst2", "mnli"):
            model.add_adapter(task, config="seq_bn")
    return model, model.set_active_adapters, inputs(1000, 64)


def peft_lora():
    import peft
    import torch
    import transformers
    torch.manual_seed(0)
    base = transformers.BertModel(transformers.BertConfig(vocab_size=1000)).eval()  # BERT-base, small vocabulary
    config = peft.LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"])
    with quiet():
        model = peft.get_peft_model(base, config, adapter_name="sst2")
        model.add_adapter("mnli", config)
    return model.eval(), model.set_adapter, inputs(1000)


def sharing_table() -> None:
    from aalbert.ir.module import Module
    from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch
    from aalbert.passes.base import PassManager
    from aalbert.passes.pipelines import prepare

    rows = {}
    for label, build in (("AdapterHub ALBERT, 2 x seq_bn", adapterhub), ("PEFT BERT-base, 2 x LoRA", peft_lora)):
        model, activate, x = build()
        module, seen = Module(), {}
        start = time.perf_counter()
        with quiet():
            for task in ("sst2", "mnli"):
                activate(task)
                import_torch(model, x, module, task, ImportOptions(tracer="export", seen=seen))
        print(f"{label}: imported in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        module = PassManager(prepare()).run(module)
        weights = list(module.weights.values())
        own: dict[str, int] = collections.Counter()
        for w in weights:
            if not w.role.shared:
                own[w.role.kind] += w.numel
        rows[label] = {"tensors": len(weights), "most reads of one tensor": max(w.role.uses for w in weights),
                       "shared parameters": sum(w.numel for w in weights if w.role.shared),
                       **{f"task-specific {k}": n for k, n in sorted(own.items())},
                       "adapter or LoRA tensors shared": sum(1 for w in weights if w.role.shared and
                                                             w.role.kind in ("adapter", "lora"))}
    print("\nFresh multi-task models, one task per adapter, after canonicalize,share\n")
    table(rows)


def table(rows: dict[str, dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    print("| figure | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for k in keys:
        cells = [f"{r.get(k, 0):,}" if isinstance(r.get(k, 0), int) else str(r[k]) for r in rows.values()]
        print(f"| {k} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", action="store_true", help="also import ALBERT-base's TorchScript ONNX exports")
    args = p.parse_args(argv)
    kinds_table(args)
    sharing_table()


if __name__ == "__main__":
    main()
