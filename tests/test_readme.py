"""The README keeps its promises: every command in a ```sh block runs as written, and what it quotes is current."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .helpers import needs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Commands of the README not run here, each with its reason.
NOT_RUN = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e . && aalbert-compile":
        "sets up the environment these tests run in (.ci/run runs it on a clean checkout); the compile it ends "
        "with is checked by test_readme_shows_what_the_first_command_prints",
    ". .venv/bin/activate && pip install -c constraints.txt -e '.[test]' && python -m pytest -q -n auto":
        "the test suite itself",
    "ruff check .": "checks the source tree itself (.ci/run runs it)",
    "pylint support ir passes targets mapper examples": "checks the source tree itself (.ci/run runs it)",
    "python .ci/typecheck": "checks the source tree itself (.ci/run runs it)",
}
# Commands that regenerate committed docs run only when this is set, and their output must then equal the
# committed files byte for byte: together they take about 4 minutes on the 2-core development machine.
DOCS_ENV = "AALBERT_README_DOCS"
SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}


def readme_commands(text: str) -> list[str]:
    """Every command of every ```sh block, in order; backslash-continued lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = (pending + line).strip()
            pending = ""
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def docs_output(command: str) -> str | None:
    """The committed docs folder a command writes, if it does (`--out docs/...`)."""
    m = re.search(r"--out[ =](docs/\S+)", command)
    return m.group(1).rstrip("/") if m else None


def repository_state() -> dict[str, tuple[int, int]]:
    """Every file of the working tree (caches and environments aside) with its size and modification time."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            st = os.stat(os.path.join(dirpath, name))
            state[os.path.relpath(os.path.join(dirpath, name), ROOT)] = (st.st_size, st.st_mtime_ns)
    return state


def copy_inputs(commands: list[str], where: Path) -> None:
    """Repository files the commands name (a sweep file, say), at the same relative paths."""
    for command in commands:
        for token in shlex.split(command, comments=True):
            path = ROOT / token
            if not token.startswith("-") and ".." not in token and path.is_file():
                (where / token).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, where / token)


def test_readme_commands_are_found():
    commands = readme_commands(README.read_text())
    assert len(commands) >= 10
    assert set(NOT_RUN) <= set(commands), "a command listed as not run is no longer in the README"
    assert any(docs_output(c) for c in commands)


@needs("torch", "onnx", "onnxscript")  # the README exports models
def test_readme_commands_run_as_written(tmp_path):
    """Every command, in order, in a scratch folder (so nothing in the repository is written)."""
    commands = [c for c in readme_commands(README.read_text()) if c not in NOT_RUN]
    run_docs = os.environ.get(DOCS_ENV) == "1"
    work = tmp_path / "work"
    work.mkdir()
    copy_inputs(commands, work)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               XDG_CACHE_HOME=str(tmp_path / "cache"), MPLBACKEND="Agg")
    # the built-in examples come from the run's cache, which the other tests fill too (an example is built
    # once a run); the commands' other caches are their own
    examples = Path(os.environ["XDG_CACHE_HOME"], "aalbert", "examples")
    examples.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache" / "aalbert").mkdir(parents=True)
    (tmp_path / "cache" / "aalbert" / "examples").symlink_to(examples.resolve(), target_is_directory=True)
    before = repository_state()
    ran, skipped, printed = [], [], []
    for command in commands:
        docs = docs_output(command)
        if docs and not run_docs:
            skipped.append(command)
            continue
        start = time.perf_counter()
        r = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=work, env=env, capture_output=True,
                           text=True, timeout=1200)
        ran.append(f"{time.perf_counter() - start:6.1f} s  {command}")
        assert r.returncode == 0, \
            f"README command failed ({r.returncode}): {command}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr, f"{command}\n{r.stderr[-2000:]}"
        printed.append(r.stdout)
        if docs:
            committed = sorted(p.relative_to(ROOT / docs) for p in (ROOT / docs).rglob("*") if p.is_file())
            assert committed, f"{docs} holds no committed files"
            for rel in committed:
                assert (work / docs / rel).read_bytes() == (ROOT / docs / rel).read_bytes(), \
                    f"{command} writes another {docs}/{rel} than the committed one"
    assert repository_state() == before, "a README command wrote into the repository"
    # the figure the README quotes from the functional run is the one it prints, up to the summation order
    # of the CPU's BLAS kernels: float32 rounding either way
    (difference,) = re.findall(r"largest difference from the interpreter on the same compiled module: (\S+)",
                               "".join(printed))
    (quoted,) = re.findall(r"prints the largest difference, (\S+) here", " ".join(README.read_text().split()))
    assert float(difference) < 1e-6 and 1 / 3 <= float(difference) / float(quoted) <= 3, (difference, quoted)
    print("\n".join(ran + [f"not run (set {DOCS_ENV}=1): {c}" for c in skipped]))


def test_ci_runs_the_readme_commands():
    commands = readme_commands(README.read_text())
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert commands[0] in ci and commands[1] in ci
    assert "aalbert-compile" in commands[0] and "pytest" in commands[1]


def test_readme_shows_what_the_first_command_prints(capsys):
    """The README quotes the default compile's output; it must be what the command prints now."""
    from aalbert.mapper.cli import compile as compile_cli

    readme = README.read_text()
    start = readme.index("The first command prints:\n\n```\n") + len("The first command prints:\n\n```\n")
    quoted = readme[start:readme.index("```", start)]
    assert compile_cli.main([]) == 0
    assert capsys.readouterr().out == quoted


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_readme_study_and_sweep_tables_are_the_generated_ones():
    """The README quotes docs/study and docs/sweep, which the commands it names wrote."""
    readme = _table_rows(README.read_text())
    study = _table_rows(ROOT.joinpath("docs", "study", "study.md").read_text())
    sweep = _table_rows(ROOT.joinpath("docs", "sweep", "sweep.md").read_text())
    quoted = [r for r in readme if "adapter-ALBERT |" in r or "| ALBERT |" in r
              or r.startswith(("| same chip:", "| the paper's:", "| each on its lowest-energy chip"))]
    assert all(r in study for r in quoted)
    for baseline in ("| same chip: edge_accel |", "| the paper's:", "| each on its lowest-energy chip |"):
        assert any(r.startswith(baseline) for r in quoted), baseline  # the headline ratios, per baseline
    text = ROOT.joinpath("docs", "study", "study.md").read_text()
    claims = [x for x in README.read_text().splitlines()
              if x.startswith(("- Holds:", "- Flips:", "- Never holds:"))]
    assert claims and all(c in text.splitlines() for c in claims)
    joint = [x for x in README.read_text().splitlines() if x.startswith("- ") and "of the joint distribution" in x
             and "LoRA" not in x]  # the decoder study's are checked by tests/test_decoder_joint.py
    assert len(joint) >= 5 and all(c in text.splitlines() for c in joint)  # each conclusion with its fraction
    assert all(r in readme for r in sweep)
    for figure in ("docs/study/study_vs_tasks.png", "docs/study/study_energy_breakdown.png",
                   "docs/study/sensitivity_tornado.png", "docs/study/deployment_map.png", "docs/sweep/pareto.png"):
        assert f"]({figure})" in README.read_text()
        assert ROOT.joinpath(figure).read_bytes()[:4] == b"\x89PNG"
