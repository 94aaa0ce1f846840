"""docs/decoders.md keeps its promises: its Python and commands run as written, in order, and print what it quotes.

The ```python blocks run in this process, one namespace for all of them (a reader's Python session), in the
scratch folder the ```sh commands run in; a block of output after a step quotes that step's output (its last
command's, for a ```sh block) line by line, "..." skipping lines. Figures in the prose are checked against
everything printed."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import needs

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "decoders.md"
FENCED = re.compile(r"^```(\w*)\n(.*?)^```\n", flags=re.S | re.M)
# a figure as the reports print it: 0.080, 61,673.5, 106,824, 2,097,152 (plain integers such as 8 or 32 are not)
FIGURE = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,])|(?<![\w.,])\d+\.\d+(?![\w.])")


def steps(text: str) -> list[tuple[str, str]]:
    """The fenced blocks in order, as (language, body)."""
    return FENCED.findall(text)


def prose_figures(text: str) -> list[str]:
    """The figures the tutorial quotes outside its blocks and inline code."""
    prose = re.sub(r"`[^`]*`", "", FENCED.sub("", text))
    return FIGURE.findall(prose)


def test_tutorial_covers_the_flow():
    blocks = steps(TUTORIAL.read_text())
    kinds = [lang for lang, _ in blocks]
    assert kinds.count("python") >= 4 and kinds.count("sh") >= 5 and kinds.count("") >= 8
    commands = "\n".join(body for lang, body in blocks if lang == "sh")
    for needed in ("--target edge_accel", "--target phone_npu", "--lora merged", "aalbert-run "):
        assert needed in commands, needed
    code = "\n".join(body for lang, body in blocks if lang == "python")
    assert "export_phases(" in code and "peft." in code and "capacity=8192" in code


def test_prose_figures_are_found():
    figures = prose_figures("a TPOT of 0.016 ms, 61,673.5 tokens/s, 106,824 parameters, 8 tokens, `1.5`, 1e-4")
    assert figures == ["0.016", "61,673.5", "106,824"]


@needs("torch", "transformers", "peft")
def test_tutorial_runs_and_prints_what_it_quotes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               XDG_CACHE_HOME=str(tmp_path / "cache"), MPLBACKEND="Agg")
    namespace: dict = {"__name__": "decoders_tutorial"}
    printed_all: list[str] = []
    printed: list[str] | None = None
    checked = 0
    for lang, body in steps(TUTORIAL.read_text()):
        if lang == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, str(TUTORIAL), "exec"), namespace)  # noqa: S102 - the tutorial's own code
            printed = out.getvalue().splitlines()
        elif lang == "sh":
            commands = [c for c in body.splitlines() if c.strip() and not c.startswith("#")]
            for command in commands:
                r = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env,
                                   capture_output=True, text=True, timeout=600)
                assert r.returncode == 0 and "Traceback" not in r.stderr, f"{command}\n{r.stderr[-2000:]}"
                printed = (r.stdout + r.stderr).splitlines()
        elif lang == "":
            assert printed is not None, "a quoted output before any step"
            for line in (x for x in body.splitlines() if x != "..."):
                assert line in printed, f"the tutorial quotes a line its step does not print:\n{line}"
            checked += 1
            continue
        else:
            pytest.fail(f"a ```{lang} block the test does not know how to run")
        printed_all += printed
    assert checked >= 8
    everything = "\n".join(printed_all)
    missing = [f for f in prose_figures(TUTORIAL.read_text()) if f not in everything]
    assert not missing, f"the tutorial's prose quotes figures nothing printed: {missing}"
