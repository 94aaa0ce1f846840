"""Export the example families as one ONNX or `.pt2` file per task.

    python -m aalbert.examples.export --family adapter-albert --tasks 8 --size base --out models/
    python -m aalbert.examples.export --format pt2 --out models/

writes models/cola.onnx, models/sst2.onnx, ... (or cola.pt2, ...) with
inputs input_ids, attention_mask and token_type_ids ([batch, seq], int64,
both dimensions dynamic) and output logits. `--sample-inputs in.npz` also
writes seeded inputs for them (batch 1, sequence `--seq-len`) for
`aalbert-run`. `--exporter torchscript` uses torch.onnx's TorchScript
exporter (opset 17 by default), `--exporter dynamo` its dynamo exporter
(opset 18 by default; weights go to an external `.onnx.data` file when
large, as that exporter does by default). `--format pt2` writes the
`ExportedProgram` of `torch.export` with `torch.export.save`; the tasks of
one architecture are traced once, and each later task saves that program
with its own weights once it computes what the task's model computes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from aalbert.examples.albert import TaskModel
from aalbert.examples.config import FAMILIES, OFF_RAMPS, AdapterConfig, FamilySpec, task_names
from aalbert.examples.zoo import build_family, example_inputs

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("logits",)
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}


def export_model(model: TaskModel, path: Path, exporter: str = "torchscript", opset: int | None = None,
                 seq_len: int = 16, batch: int = 1) -> Path:
    """Export one task model; both batch and sequence dimensions stay dynamic."""
    inputs = example_inputs(model.config, batch, seq_len)
    args = tuple(inputs[n] for n in INPUT_NAMES)
    opset = opset or DEFAULT_OPSET[exporter]
    # the exporters are chatty (progress lines, deprecation warnings): keep that off the user's terminal
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                              input_names=list(INPUT_NAMES), output_names=list(_output_names(model)),
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in INPUT_NAMES})
        elif exporter == "dynamo":
            batch_dim = torch.export.Dim("batch", max=1024)
            seq_dim = torch.export.Dim("seq", min=2, max=model.config.max_position)
            shapes = {n: {0: batch_dim, 1: seq_dim} for n in INPUT_NAMES}
            torch.onnx.export(model, args, str(path), dynamo=True, opset_version=opset,
                              input_names=list(INPUT_NAMES), output_names=list(_output_names(model)),
                              dynamic_shapes=shapes, verbose=False)
        else:
            raise ValueError(f"unknown exporter {exporter!r} (torchscript or dynamo)")
    return path


def _output_names(model: torch.nn.Module) -> tuple[str, ...]:
    """A task model's outputs: its off-ramps' logits (exit_logits_<k>), if it has off-ramps, then its logits."""
    return getattr(model, "output_names", OUTPUT_NAMES)


class NamedOutput(torch.nn.Module):
    """A task model whose result is {"logits": ...} (and its off-ramps'), so the exported program names its
    outputs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids, attention_mask, token_type_ids)
        names = _output_names(self.model)
        return dict(zip(names, out if len(names) > 1 else (out,)))


def export_pt2(model: TaskModel, path: Path, seq_len: int = 16, batch: int = 2) -> Path:
    """torch.export one task model (`program`) and save the program."""
    torch.export.save(program(model, seq_len, batch), str(path))
    return path


def program(model: TaskModel, seq_len: int = 16, batch: int = 2,
            like: torch.export.ExportedProgram | None = None) -> torch.export.ExportedProgram:
    """The torch.export program of one task model, batch and sequence dynamic (the example has batch 2, as
    torch specializes sizes 0 and 1). `like`, the program of another task of the same architecture, is used
    with this task's weights when they fit it and it computes what this task's model computes (`rebound`);
    otherwise, or without `like`, the model is traced."""
    inputs = example_inputs(model.config, batch, seq_len)
    args = tuple(inputs[n] for n in INPUT_NAMES)
    root = NamedOutput(model).eval()
    ep = rebound(like, root, args) if like is not None else None
    if ep is None:
        batch_dim = torch.export.Dim("batch", max=1024)
        seq_dim = torch.export.Dim("seq", min=2, max=model.config.max_position)
        ep = torch.export.export(root, args, dynamic_shapes={n: {0: batch_dim, 1: seq_dim} for n in INPUT_NAMES},
                                 strict=False)
    return ep


def _tensor_at(root: torch.nn.Module, name: str) -> torch.Tensor | None:
    """The tensor attribute of `root` at dotted `name`, if there is one."""
    obj: object = root
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, torch.Tensor) else None


def rebound(ep: torch.export.ExportedProgram, root: torch.nn.Module,
            args: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram | None:
    """`ep`'s graph with `root`'s parameters, buffers and tensor attributes, or None when `root` may not be of
    `ep`'s architecture: other state names, shapes or dtypes, a constant that is no attribute of `root`, or
    other results on `args`. Tracing is most of an export's time, and a family's tasks differ in weights only."""
    state = root.state_dict(keep_vars=True)
    if set(state) != set(ep.state_dict):
        return None
    swapped: dict[str, dict] = {"state": {}, "constants": {}}
    for kind, old in (("state", ep.state_dict), ("constants", ep.constants)):
        for name, value in old.items():
            new = state[name] if kind == "state" else _tensor_at(root, name)
            if new is None or not isinstance(value, torch.Tensor) or new.shape != value.shape \
                    or new.dtype != value.dtype:
                return None  # a constant the forward code made, say: traced again
            swapped[kind][name] = new
    out = torch.export.ExportedProgram(ep.graph_module, ep.graph, ep.graph_signature, swapped["state"],
                                       ep.range_constraints, ep.module_call_graph, ep.example_inputs,
                                       swapped["constants"], verifiers=ep.verifiers)
    with torch.no_grad():
        got, want = out.module()(*args), root(*args)
    if got.keys() != want.keys() or not all(torch.equal(got[k], want[k]) for k in want):
        return None
    return out


@dataclass(frozen=True)
class FileForm:
    """The files an export writes: `fmt` "onnx" (by `exporter`, torchscript or dynamo, at `opset`, None: the
    exporter's default) or "pt2" (torch.export programs)."""

    fmt: str = "onnx"
    exporter: str = "torchscript"
    opset: int | None = None


def export_family(spec: FamilySpec, out_dir: Path, form: FileForm = FileForm(), seq_len: int = 16,
                  progress: bool = False) -> dict[str, Path]:
    """One file per task; `progress` shows a bar on stderr (when it is a terminal)."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    models = build_family(spec)
    paths = {}
    traced = None
    for task, m in tqdm(models.items(), desc="exporting", unit="task", file=sys.stderr,
                        disable=not (progress and sys.stderr.isatty())):
        if form.fmt == "pt2":
            traced = program(m, seq_len, like=traced)  # traced once per architecture
            paths[task] = out_dir / f"{task}.pt2"
            torch.export.save(traced, str(paths[task]))
        else:
            paths[task] = export_model(m, out_dir / f"{task}.onnx", form.exporter, form.opset, seq_len)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m aalbert.examples.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=FAMILIES, default="adapter-albert")
    p.add_argument("--tasks", type=int, default=2, help="number of GLUE tasks (default: 2)")
    p.add_argument("--size", choices=("base", "tiny", "xxlarge"), default="tiny")
    p.add_argument("--bottleneck", type=int, help="adapter bottleneck (default: 64; 8 for tiny)")
    p.add_argument("--adapter-placement", choices=("shared", "per_layer"), default="shared")
    p.add_argument("--task-specific", default="adapters,layernorm,head",
                   help="adapter-ALBERT: groups each task owns (adapters, layernorm, head, pooler, embeddings)")
    p.add_argument("--off-ramps", choices=OFF_RAMPS,
                   help="an exit classifier after every layer but the last, outputs exit_logits_<k> (default: none)")
    p.add_argument("--format", choices=("onnx", "pt2"), default="onnx",
                   help="ONNX files, or torch.export programs saved as .pt2 (default: onnx)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="the ONNX exporter (default: torchscript)")
    p.add_argument("--opset", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--sample-inputs", type=Path, metavar="FILE.npz",
                   help="also write seeded inputs for the models (batch 1, sequence --seq-len), e.g. for aalbert-run")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length of the sample inputs (default: 128)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        groups = frozenset(g.strip() for g in args.task_specific.split(",") if g.strip())
        spec = FamilySpec(args.family, args.size, tuple(task_names(args.tasks)),
                          AdapterConfig(args.bottleneck, args.adapter_placement, groups), seed=args.seed,
                          off_ramps=args.off_ramps)
        if args.sample_inputs is not None:
            if args.sample_inputs.suffix.lower() != ".npz":
                raise ValueError(f"--sample-inputs {args.sample_inputs}: the file must end in .npz")
            if not args.sample_inputs.parent.is_dir():
                raise ValueError(f"--sample-inputs {args.sample_inputs}: directory {args.sample_inputs.parent} "
                                 "does not exist")
            if args.seq_len < 2:
                raise ValueError(f"--seq-len must be at least 2, got {args.seq_len}")
            inputs = example_inputs(spec.config, 1, args.seq_len, seed=args.seed)
    except ValueError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    form = FileForm(args.format, args.exporter, args.opset)
    for task, path in export_family(spec, args.out, form, progress=not args.quiet).items():
        print(f"{task}: {path}")
    if args.sample_inputs is not None:
        from aalbert.ir.fileio import write_npz

        write_npz(args.sample_inputs, {k: v.numpy() for k, v in inputs.items()})
        print(f"sample inputs: {args.sample_inputs} ({', '.join(f'{k} {list(v.shape)}' for k, v in inputs.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
