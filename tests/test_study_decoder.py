"""The decoder study (`aalbert-study --family lora-decoder`) at the small decoder size: its grid, what LoRA modes
cost in task weights, where the KV cache goes on sized chips, byte-identical outputs, and its refusals."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from aalbert.mapper.cli import study as study_cli
from aalbert.mapper.study import decoder

from .helpers import assert_clean_error

ARGS = ["--family", "lora-decoder", "--decoder-size", "small", "--adapters", "2", "--lora", "unmerged,merged",
        "--targets", "edge_accel", "--requests", "4", "--quiet"]
OUTPUTS = ("study_decoder.csv", "study_decoder.md", "study_decoder.png", "study_decoder.svg")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The small decoder study, here and then on two worker processes."""
    outs = [tmp_path_factory.mktemp(f"decoder{i}") for i in range(2)]
    for out, jobs in zip(outs, ("1", "2")):
        assert study_cli.main(ARGS + ["--out", str(out), "--jobs", jobs]) == 0
    return outs


@pytest.fixture(scope="module")
def rows(runs):
    return list(csv.DictReader(io.StringIO((runs[0] / "study_decoder.csv").read_text())))


def test_the_grid_is_modes_by_adapters_by_chips():
    cfg = decoder.DecoderStudyConfig([1, 2, 3], ["edge_accel", "phone_npu"], ["unmerged", "merged",
                                                                                "merge-on-switch"], "small")
    configs = decoder.configurations(cfg)
    per_count = 2 + len(decoder.SIZED) * len(decoder.KV_SIZED)
    assert len(configs) == 3 * 3 * per_count
    assert [c.shape.tasks for c in configs[:per_count + 1]] == [1] * per_count + [2]
    assert [c.shape.tasks for c in configs if c.mode == "merge-on-switch"][0] == 1
    assert {(c.chip, c.kv) for c in configs if c.sized} == {(a, k) for a in decoder.SIZED for k in decoder.KV_SIZED}
    assert {c.kv for c in configs if not c.sized} == {decoder.ALLOCATOR}


def test_rows_cover_the_grid_with_their_figures(rows):
    assert len(rows) == 2 * (1 + len(decoder.SIZED) * len(decoder.KV_SIZED))
    for r in rows:
        assert float(r["energy_per_token_uj"]) > 0 and float(r["tpot_ms"]) > 0 and float(r["area_mm2"]) > 0
        assert r["kv_level"] in ("sram", "dram", "mram")
    areas = {r["architecture"]: float(r["area_mm2"]) for r in rows}
    assert areas["edge_accel"] > areas["sram"]  # a sized chip is smaller than the fixed one


def test_merged_costs_more_task_weight_bytes_than_unmerged(rows):
    by = {(r["lora"], r["architecture"], r["kv_placement"]): int(r["task_weight_bytes"]) for r in rows}
    for (mode, arch, kv), b in by.items():
        if mode == "merged":
            assert b > by["unmerged", arch, kv] > 0, arch


def test_a_chip_sized_for_the_kv_cache_keeps_it_on_chip(rows):
    for r in rows:
        if r["kv_placement"] == "on-chip":
            assert r["kv_level"] in ("sram", "mram"), r


def test_outputs_are_byte_identical_across_runs_and_workers(runs):
    for name in OUTPUTS:
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    md = (runs[0] / "study_decoder.md").read_text()
    assert "## 2 adapters, LoRA merged" in md and "--jobs" not in md


def test_merge_on_switch_runs_at_one_adapter(tmp_path):
    """With one adapter, merge-on-switch is placed and simulated like the other modes: it merges once, at the
    first request, so its first token comes later than merged's and a token costs at least as much."""
    args = ["--family", "lora-decoder", "--decoder-size", "small", "--adapters", "1", "--lora",
            "merged,merge-on-switch", "--targets", "edge_accel_dram", "--no-sized", "--requests", "4", "--quiet",
            "--jobs", "1", "--out", str(tmp_path)]
    assert study_cli.main(args) == 0
    got = {r["lora"]: r for r in csv.DictReader(io.StringIO((tmp_path / "study_decoder.csv").read_text()))}
    assert got.keys() == {"merged", "merge-on-switch"}
    merged, on_switch = got["merged"], got["merge-on-switch"]
    assert merged["error"] == on_switch["error"] == ""
    assert float(on_switch["ttft_ms"]) > float(merged["ttft_ms"])
    assert float(on_switch["energy_per_token_uj"]) >= float(merged["energy_per_token_uj"])
    assert "## 1 adapters, LoRA merge-on-switch" in (tmp_path / "study_decoder.md").read_text()


def test_bad_options_exit_2(tmp_path, capsys):
    assert_clean_error(study_cli.main, ["--family", "lora-decoder", "--families", "albert"], capsys,
                       "--families does not apply to --family lora-decoder")
    assert_clean_error(study_cli.main, ["--adapters", "1-2"], capsys, "--adapters does not apply to --family encoders")
    assert_clean_error(study_cli.main, ["--family", "lora-decoder", "--lora", "fused"], capsys,
                       "unknown mode 'fused'")
    assert_clean_error(study_cli.main, ["--family", "lora-decoder", "--targets", "nowhere"], capsys, "nowhere")
    assert_clean_error(study_cli.main, ["--family", "lora-decoder", "--adapters", "0-2"], capsys,
                       "task counts must be >= 1")
    (tmp_path / "file").write_text("")
    assert_clean_error(study_cli.main, ["--family", "lora-decoder", "--out", str(tmp_path / "file")], capsys,
                       "not a directory")


def test_readme_quotes_the_committed_decoder_study():
    """The lines the README quotes from the decoder study's run are those of docs/study_decoder."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    quoted = [line for line in readme.splitlines() if line.startswith(("decoder study:", "- 8 adapters, LoRA"))]
    committed = (root / "docs" / "study_decoder" / "study_decoder.md").read_text().splitlines()
    assert len(quoted) == 4
    assert all(line in committed for line in quoted[1:])
    rows = list(csv.DictReader(io.StringIO((root / "docs" / "study_decoder" / "study_decoder.csv").read_text())))
    failed = sum(1 for r in rows if r["error"])
    tail = f", {failed} of them not placed (their placement fails its check)" if failed else ""
    assert quoted[0].endswith(f"; {len(rows)} configurations{tail}")
    assert "aalbert-study --family lora-decoder --sensitivity --out docs/study_decoder" in readme
