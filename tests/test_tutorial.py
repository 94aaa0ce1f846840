"""docs/tutorial.md keeps its promises: its TOML file, its commands as written, and the output it quotes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"


def steps(text: str) -> list[tuple[str, str]]:
    """The fenced blocks in order, as (language, body)."""
    return re.findall(r"^```(\w*)\n(.*?)^```\n", text, flags=re.S | re.M)


def test_tutorial_has_a_target_commands_and_quoted_output():
    blocks = steps(TUTORIAL.read_text())
    kinds = [lang for lang, _ in blocks]
    assert kinds.count("toml") == 1 and kinds.count("sh") >= 6 and kinds.count("") >= 6
    (toml,) = [body for lang, body in blocks if lang == "toml"]
    assert toml.startswith("# my_chip.toml:") and 'dataflows = ["output_stationary"]' in toml
    assert 'technology = "mram"' in toml and "NVMExplorer" in toml


def test_tutorial_commands_print_what_it_quotes(tmp_path):
    """Each ```sh block runs in order in one scratch folder; the blocks of output after it (if any) quote its
    last command's output line by line ("..." skips lines); a quoted error means exit status 2, else 0."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               MPLBACKEND="Agg")
    last, quoted_last, checked = None, False, 0
    for lang, body in steps(TUTORIAL.read_text()) + [("sh", "")]:
        if lang == "toml":
            name = body.split(":", 1)[0].lstrip("# ").strip()
            (tmp_path / name).write_text(body)
        elif lang == "sh":
            if last is not None and not quoted_last:  # a command whose output is not quoted must succeed
                assert last.returncode == 0, f"{last.args[-1]}\n{last.stderr[-2000:]}"
            commands = [c for c in body.splitlines() if c.strip() and not c.startswith("#")]
            for i, command in enumerate(commands):
                last = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=600)
                quoted_last = False
                if i < len(commands) - 1:  # only a block's last command may be the error it quotes
                    assert last.returncode == 0, f"{command}\n{last.stderr[-2000:]}"
        elif lang == "" and last is not None:
            quoted = [line for line in body.splitlines() if line != "..."]
            error = any(": error: " in line for line in quoted)
            assert last.returncode == (2 if error else 0), f"{last.args[-1]}\n{last.stderr[-2000:]}"
            assert "Traceback" not in last.stderr
            printed = (last.stdout + last.stderr).splitlines()
            for line in quoted:
                assert line in printed, f"{last.args[-1]}: the tutorial quotes a line it does not print:\n{line}"
            quoted_last, checked = True, checked + 1
    assert checked >= 8
