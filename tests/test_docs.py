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


# -- docs/backend.md: every simulated figure it quotes is what the code prints ----------------------------------
BACKEND = ROOT / "docs" / "backend.md"


def _quoted_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Each fenced block without a language, with the paragraph before it (joined into one line)."""
    out = []
    for m in re.finditer(r"(?:^|\n\n)((?:[^\n]+\n)+)\n```\n(.*?)```", text, flags=re.S):
        out.append((" ".join(m.group(1).split()), [line for line in m.group(2).splitlines() if line.strip()]))
    return out


def _compile_output(command: str, capsys) -> list[str]:
    from aalbert.mapper.cli import compile as compile_cli

    args = command.split()
    assert args[0] == "aalbert-compile"
    assert compile_cli.main(args[1:]) == 0
    return capsys.readouterr().out.splitlines()


def _backend_benchmark():
    import importlib.util

    spec = importlib.util.spec_from_file_location("backend_benchmark", ROOT / "benchmarks" / "backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backend_doc_quotes_what_its_commands_print(capsys, monkeypatch):
    """Every block docs/backend.md quotes after "From `aalbert-compile ...`" is printed by that command, line by
    line, and the prose's off-ramp cost is the `cola` rows of those blocks."""
    monkeypatch.chdir(ROOT)
    text = BACKEND.read_text()
    checked = {}
    for before, lines in _quoted_blocks(text):
        m = re.search(r"From `(aalbert-compile [^`]+)`", before)
        if not m:
            continue
        command = " ".join(m.group(1).split())
        printed = _compile_output(command, capsys)
        for line in lines:
            assert line in printed, f"docs/backend.md quotes a line `{command}` does not print:\n{line}"
        checked[command] = next(line for line in lines if line.startswith("cola "))
    assert len(checked) == 2, list(checked)
    with_ramps, without = re.search(r"takes ([\d.]+ ms) with off-ramps against ([\d.]+ ms) without",
                                    " ".join(text.split())).groups()
    rows = {("--off-ramps" in c): row for c, row in checked.items()}
    assert f" {with_ramps} " in rows[True] and f" {without} " in rows[False]


def test_backend_doc_quotes_the_benchmarks_simulated_figures():
    """The simulated lines of `python benchmarks/backend.py` that docs/backend.md quotes are what it computes (its
    wall times are measurements, not checked)."""
    bench = _backend_benchmark()
    module = bench.compiled()
    blocks = [lines for before, lines in _quoted_blocks(BACKEND.read_text())
              if "From `python benchmarks/backend.py`" in before]
    assert len(blocks) == 1
    quoted = [line for line in blocks[0] if line.startswith(("simulated:", "PE array busy during"))]
    assert quoted == bench.simulated(module)
    from aalbert.targets.codegen.lower import lower
    from aalbert.targets.hardware.spec import load_target

    count = len(lower(module, load_target("edge_accel"), next(iter(module.graphs))).instrs)
    assert f"one base inference ({count} instructions)" in "\n".join(blocks[0])


def test_readme_early_exit_block_is_what_its_command_prints(capsys, monkeypatch):
    """The README quotes the policies of its early-exit compile; they must be what the command prints now."""
    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    m = re.search(r"```sh\n(aalbert-compile --off-ramps[^\n]*)\n```\n\n(?:[^\n]+\n)+\n```\n(.*?)```", text, flags=re.S)
    assert m, "README: no early-exit command with its quoted output"
    printed = _compile_output(m.group(1), capsys)
    quoted = [line for line in m.group(2).splitlines() if line.strip()]
    assert len(quoted) >= 4
    for line in quoted:
        assert line in printed, f"README quotes a line `{m.group(1)}` does not print:\n{line}"


# -- docs/targets.md: the memory models' table and the DRAM's figures are the code's --------------------------
TARGETS_DOC = ROOT / "docs" / "targets.md"


def _close(quoted: str, value: float) -> bool:
    """`quoted` is `value` as printed to the digits it shows."""
    digits = len(quoted.split(".")[1]) if "." in quoted else 0
    return abs(float(quoted) - value) <= 0.5 * 10 ** -digits + 1e-12


def test_targets_doc_memory_models_table_is_the_anchors():
    from aalbert.targets.hardware.memtech import anchors

    text = TARGETS_DOC.read_text()
    head = "| model | anchor | capacity |"
    assert head in text
    body = text[text.index(head):].split("\n\n", 1)[0].splitlines()[2:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in body]
    models = anchors()
    assert {r[0].strip("`") for r in rows} == set(models)
    for r in rows:
        a = models[r[0].strip("`")]
        numbers = (a.read_energy_pj, a.write_energy_pj, a.read_latency_ns, a.write_latency_ns, a.leakage_mw,
                   a.area_mm2)
        for quoted, value in zip(r[3:], numbers):
            assert _close(quoted, value), (r[0], quoted, value)


def test_targets_doc_dram_figures_are_the_models():
    from aalbert.targets.hardware.dram import DRAM_SPECS

    spec = DRAM_SPECS["lpddr4_3200"]
    p = spec.power()
    text = " ".join(TARGETS_DOC.read_text().split())
    for pattern, value in ((r"\(([\d.]+) pJ per byte with ACT/PRE", spec.read_pj_per_byte),
                           (r"a write ([\d.]+) pJ per byte", spec.write_pj_per_byte),
                           (r"active standby \(IDD3N, ([\d.]+) mW\)", p.active_mw),
                           (r"power-down \(IDD2P, ([\d.]+) mW\)", p.power_down_mw),
                           (r"self-refresh \(IDD6, ([\d.]+) mW\)", p.self_refresh_mw),
                           (r"its break-even \(([\d.]+) us", p.self_refresh_after_ns / 1000),
                           (r"self-refresh costs ([\d.]+) mW", p.refresh_mw),
                           (r"slower than the DRAM's ([\d.]+) GB/s", p.bytes_per_ns),
                           (r"tCKE \+ tXP \(([\d.]+) \+", p.power_down_min_ns)):
        m = re.search(pattern, text)
        assert m, pattern
        assert _close(m.group(1), value), (pattern, m.group(1), value)


def test_targets_doc_phone_npu_dram_figures_are_the_models():
    from aalbert.targets.hardware.dram import DRAM_SPECS
    from aalbert.targets.hardware.spec import load_target

    spec = DRAM_SPECS["lpddr5_6400"]
    p = load_target("phone_npu").level("dram").dram
    text = " ".join(TARGETS_DOC.read_text().split())
    m = re.search(r"From these the DRAM costs ([\d.]+) pJ per byte read and ([\d.]+) written, and its four channels "
                  r"draw ([\d.]+) mW in active standby, ([\d.]+) mW in power-down, ([\d.]+) mW in self-refresh and "
                  r"([\d.]+) mW of refresh", text)
    assert m
    values = (spec.read_pj_per_byte, spec.write_pj_per_byte, p.active_mw, p.power_down_mw, p.self_refresh_mw,
              p.refresh_mw)
    for quoted, value in zip(m.groups(), values):
        assert _close(quoted, value), (quoted, value)


def test_targets_doc_scaling_factors_are_the_edge_targets():
    from aalbert.targets.hardware.spec import load_target

    tech = load_target("edge_accel").technology
    m = re.search(r"energy x (\d+\.\d+), area x (\d+\.\d+)", " ".join(TARGETS_DOC.read_text().split()))
    assert m and _close(m.group(1), tech.energy_factor) and _close(m.group(2), tech.area_factor)
