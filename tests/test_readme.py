"""The README's two commands are what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = ROOT.joinpath("README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:3]]
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert blocks[0] in ci and blocks[1] in ci
    assert "aalbert-compile" in blocks[0] and "pytest" in blocks[1]


def test_readme_shows_what_the_first_command_prints(capsys):
    """The README quotes the default compile's output; it must be what the command prints now."""
    from aalbert.mapper.cli import compile as compile_cli

    readme = ROOT.joinpath("README.md").read_text()
    start = readme.index("The first command prints:\n\n```\n") + len("The first command prints:\n\n```\n")
    quoted = readme[start:readme.index("```", start)]
    assert compile_cli.main([]) == 0
    assert capsys.readouterr().out == quoted


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_readme_study_and_sweep_tables_are_the_generated_ones():
    """The README quotes docs/study and docs/sweep, which the commands it names wrote."""
    readme = _table_rows(ROOT.joinpath("README.md").read_text())
    study = _table_rows(ROOT.joinpath("docs", "study", "study.md").read_text())
    sweep = _table_rows(ROOT.joinpath("docs", "sweep", "sweep.md").read_text())
    quoted = [r for r in readme if "adapter-ALBERT |" in r or "| ALBERT |" in r]
    assert len(quoted) == 6 and all(r in study for r in quoted)
    assert all(r in readme for r in sweep)
    for figure in ("docs/study/study_vs_tasks.png", "docs/study/study_energy_breakdown.png", "docs/sweep/pareto.png"):
        assert f"]({figure})" in ROOT.joinpath("README.md").read_text()
        assert ROOT.joinpath(figure).read_bytes()[:4] == b"\x89PNG"
