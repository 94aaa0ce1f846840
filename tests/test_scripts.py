"""The scripts beside the package: --help on each, and a clear stop when a benchmark's peer tools are missing."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import needs

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [f"benchmarks/{p.name}" for p in sorted((ROOT / "benchmarks").glob("*.py"))] + [
    pytest.param("-m aalbert.examples.export", marks=needs("torch"))]


def python(script: str) -> list[str]:
    return [sys.executable] + [str(ROOT / a) if a.startswith("benchmarks/") else a for a in script.split()]


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_print_usage_on_help(tmp_path, script):
    """`python SCRIPT --help` prints usage and exits 0 without running anything (no other output, no file)."""
    r = subprocess.run(python(script) + ["--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:"), r.stdout[:500]
    assert r.stderr == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(importlib.util.find_spec("zigzag") is not None or importlib.util.find_spec("scalesim") is not None,
                    reason="a peer tool is installed here")
@pytest.mark.parametrize("extra, names", [
    ([], "ZigZag (zigzag-dse) and SCALE-Sim (scalesim) not installed"),
    (["--skip", "scalesim"], "ZigZag (zigzag-dse) is not installed"),
])
def test_peers_benchmark_without_the_peers_says_what_to_install(tmp_path, extra, names):
    r = subprocess.run(python("benchmarks/peers.py") + extra, cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2
    assert r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"benchmarks/peers.py: error: {names} for {sys.executable}")
    assert "pip install" in line
    assert list(tmp_path.iterdir()) == []


@needs("torch", "onnx")
def test_export_writes_models_and_sample_inputs(tmp_path):
    r = subprocess.run(python("-m aalbert.examples.export") + ["--tasks", "2", "--out", "m", "--sample-inputs",
                                                                "in.npz", "--seq-len", "8"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["cola.onnx", "sst2.onnx"]
    assert "sample inputs: in.npz (input_ids [1, 8], attention_mask [1, 8], token_type_ids [1, 8])" in r.stdout
    from aalbert.mapper.cli import run as run_cli

    assert run_cli.main([str(tmp_path / "m" / "sst2.onnx"), "--inputs", str(tmp_path / "in.npz"), "-o",
                         str(tmp_path / "out.npz")]) == 0


def run_with_terminal_stderr(argv: list[str], cwd: Path) -> tuple[str, str]:
    """(stdout, what went to stderr), stderr being a 100-column pseudo-terminal."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    stdout = cwd / "stdout.txt"
    with stdout.open("wb") as f:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=f, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=300)
    os.close(master)
    out = stdout.read_text()
    assert proc.returncode == 0, seen.decode(errors="replace")
    return out, seen.decode(errors="replace")


@pytest.mark.parametrize("tool, args", [
    ("aalbert-compile", ["--size", "tiny", "--tasks", "2", "--seq-len", "8", "--compress", "edgebert", "--fidelity",
                         "--samples", "1", "--target", "edge_accel"]),
    ("aalbert-study", ["--size", "tiny", "--tasks", "1", "--families", "adapter-albert", "--targets", "edge_accel",
                       "--no-sized", "--seq-len", "8", "--requests", "2", "--jobs", "1", "--out", "st"]),
])
def test_progress_on_a_terminal_only_and_never_on_stdout(tmp_path, tool, args):
    exe = str(Path(sys.executable).parent / tool)
    plain = subprocess.run([exe] + args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0 and plain.stderr == "", plain.stderr
    out, bar = run_with_terminal_stderr([exe] + args, tmp_path)
    assert "%|" in bar and "step" in bar  # a tqdm bar
    out_quiet, nothing = run_with_terminal_stderr([exe] + args + ["--quiet"], tmp_path)
    assert nothing == ""
    def untimed(text: str) -> str:  # the study's last line holds its wall time
        return re.sub(r" in \d+ s; wrote ", " in N s; wrote ", text)

    assert untimed(out) == untimed(out_quiet) == untimed(plain.stdout)


def test_edgebert_exit_histogram_counts_the_first_off_ramp_below_the_threshold(tmp_path):
    """Three sentences in EdgeBERT's format (11 off-ramp entropies and a 12th column): they leave after layer 1,
    after layer 3, and never."""
    rows = [[0.1] + [0.6] * 11, [0.5, 0.4, 0.2] + [0.1] * 9, [0.69] * 12]
    (tmp_path / "e.txt").write_text("\n".join(", ".join(map(str, r)) for r in rows) + "\n")
    r = subprocess.run(python("benchmarks/edgebert_exits.py") + ["e.txt", "--threshold", "0.3"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "histogram = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]" in r.stdout
    assert "mean exit layer 5.33 of 12" in r.stdout
