"""docs/architecture.md holds: its folder table is the import layering, and its "where new things go" table names
files and tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
SUBPACKAGES = ("ir", "passes", "targets", "mapper", "examples")


def _table(title_row: str) -> list[list[str]]:
    """The rows of the markdown table whose header is `title_row`, cells stripped."""
    text = DOC.read_text()
    assert title_row in text, f"docs/architecture.md has no table {title_row!r}"
    body = text.split(title_row, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    return [[c.strip() for c in row.strip("|").split("|")] for row in body]


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _layers() -> list[str]:
    return [_code(row[0])[0].rstrip("/") for row in _table("| folder | owns |")]


def _layer(path: str, layers: list[str]) -> int | None:
    """Index of the most specific folder of `layers` holding `path` (a slash path)."""
    found = [i for i, folder in enumerate(layers) if (path + "/").startswith(folder + "/")]
    return max(found, key=lambda i: len(layers[i])) if found else None


def _module_path(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "aalbert":
        return None
    rest = parts[1:]
    if not rest or rest[0] not in SUBPACKAGES:
        rest = ["support", *rest]
    return "/".join(rest)


def _upward_imports(layers: list[str]) -> list[str]:
    wrong = []
    for top in ("support", *SUBPACKAGES):
        for source in sorted((ROOT / top).rglob("*.py")):
            relative = source.relative_to(ROOT).as_posix()
            if relative == "support/__init__.py":  # the root's API, imported on first use (PEP 562)
                continue
            own = _layer(relative, layers)
            if own is None and relative.endswith("/__init__.py"):  # a folder of folders: above all of them
                own = 0
            assert own is not None, f"{relative} is in no folder of the architecture's table"
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    path = _module_path(name)
                    other = _layer(path, layers) if path else None
                    if other is not None and other > own:
                        wrong.append(f"{relative} imports {name} ({layers[other]} is below {layers[own]})")
    return wrong


def test_every_import_goes_to_the_same_folder_or_one_above_it_in_the_table():
    layers = _layers()
    assert len(layers) >= 8 and len(set(layers)) == len(layers)
    assert _upward_imports(layers) == []


def test_the_layering_check_catches_an_import_from_below():
    # the same code with two rows swapped: passes/ imports targets/sim/, so it must report that
    layers = _layers()
    i, j = layers.index("targets/sim"), layers.index("passes")
    layers[i], layers[j] = layers[j], layers[i]
    assert any(w.startswith("passes/") and "targets.sim" in w for w in _upward_imports(layers))


def _exists(pattern: str) -> bool:
    """A path of the table exists; `<name>` stands for any one existing name."""
    if "<" not in pattern:
        return (ROOT / pattern).exists()
    folder = (ROOT / pattern).parent
    return folder.is_dir()


def test_each_row_of_where_new_things_go_names_a_file_and_a_test_that_exist():
    rows = _table("| to add | write | tested by |")
    assert len(rows) >= 10
    for what, write, tested in rows:
        files, tests = _code(write), _code(tested)
        assert files and tests, f"row {what!r} names no file or no test"
        missing = [p for p in files if "/" in p and not _exists(p)] + [t for t in tests if not _exists(t)]
        assert not missing, f"row {what!r}: {missing} do not exist"
        assert all(t.startswith("tests/") for t in tests), f"row {what!r}: its test is not under tests/"
