"""Decoder import at scale: a 1.1 B-parameter Llama exported with torch.export, then compiled from its `.pt2` files.

    python benchmarks/decoder_import.py                  # TinyLlama's dimensions, float16, one LoRA task
    python benchmarks/decoder_import.py --small          # the same at hidden 64, 2 layers (checks the script)
    python benchmarks/decoder_import.py --keep DIR       # export into DIR and keep the files; a DIR that
                                                         # already holds them is compiled without exporting

`benchmarks/decoder_scale.py` builds its 1.1 B decoder directly in the IR; this one goes the way a user's model
goes: `examples.decoders.export_decoders` exports the Hugging Face Llama (TinyLlama-1.1B's dimensions: hidden
2048, 22 layers, 32 query and 4 key/value heads, MLP 5632, vocabulary 32000; seeded random weights, float16) with
one PEFT LoRA task (rank 16 on q and v) to `<task>.prefill.pt2` and `<task>.decode.pt2`, a static cache of 256
slots and a 128-token prompt. Then `aalbert-compile` runs on the two files in a child process, its weights
quantized to int8, on phone_npu, generating 128 tokens for 16 requests at 0.1 per second (one at a
time, as decoder_scale.py runs them), and the child's wall time and peak resident set are
printed. The export is timed apart and excluded from the compile's figures. Each `.pt2` file holds the whole
base model (about 2.2 GB in float16), so the export writes about 4.4 GB per task.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINYLLAMA = {"family": "llama", "layers": 22, "hidden": 2048, "heads": 32, "kv_heads": 4, "ffn": 5632,
             "vocab": 32000, "capacity": 256, "prompt": 128, "rank": 16, "dtype": "float16"}
SMALL = {**TINYLLAMA, "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "ffn": 128, "vocab": 256,
         "capacity": 32, "prompt": 8, "rank": 4}


def export(spec, tasks: int, out: Path) -> float:
    from aalbert.examples.decoders import export_decoders

    t = time.perf_counter()
    export_decoders(spec, tasks, out)
    return time.perf_counter() - t


def compile_files(files: list[Path], generate: int, target: str, workload: Path) -> tuple[float, float, int, str]:
    """`aalbert-compile` on `files` in a child: its wall time (s), peak resident set (GB), status, stdout."""
    cmd = [sys.executable, "-m", "aalbert.mapper.cli.compile", *map(str, files), "--quantize", "int8",
           "--target", target, "--spill", "--generate", str(generate), "--workload", str(workload),
           "--requests", "16", "-q"]
    t = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - t, usage.ru_maxrss / 1024 ** 2, os.waitstatus_to_exitcode(status), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="hidden 64, 2 layers: the script's own check")
    ap.add_argument("--tasks", type=int, default=1, help="LoRA tasks (each adds two files of the whole model)")
    ap.add_argument("--target", default="phone_npu")
    ap.add_argument("--keep", metavar="DIR", help="export into DIR and keep the files (default: a temporary "
                    "folder); .pt2 files already in DIR are compiled as they are")
    args = ap.parse_args(argv)
    from aalbert.examples.decoders import DecoderSpec

    spec = replace(DecoderSpec(), **(SMALL if args.small else TINYLLAMA))
    with tempfile.TemporaryDirectory(prefix="aalbert-import-") as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        files = sorted(out.glob("*.pt2"))
        if files:
            print(f"export: reusing the {len(files)} .pt2 files in {out}")
        else:
            seconds = export(spec, args.tasks, out)
            files = sorted(out.glob("*.pt2"))
            print(f"export (excluded): {seconds:.1f} s, {len(files)} files, "
                  f"{sum(f.stat().st_size for f in files) / 1e9:.2f} GB")
        # one request at a time, as benchmarks/decoder_scale.py runs them: each request's figures are its own
        workload = Path(tmp) / "one_at_a_time.toml"
        workload.write_text("[workload]\ninferences_per_second = 0.1\n")
        wall, peak, code, text = compile_files(files, 128 if not args.small else 8, args.target, workload)
        print(text.rstrip())
        print(f"compile from .pt2: {wall:.2f} s, peak resident set {peak:.2f} GB, exit status {code}")
        return code


if __name__ == "__main__":
    sys.exit(main())
