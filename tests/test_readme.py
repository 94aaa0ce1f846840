"""The README's two commands are what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = ROOT.joinpath("README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:3]]
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert blocks[0] in ci and blocks[1] in ci
    assert "aalbert-compile" in blocks[0] and "pytest" in blocks[1]
