"""The study's sized chips: STT-MRAM, field-writable and non-volatile, as one of the architectures."""

from __future__ import annotations

from aalbert.mapper.study.chips import ARCHITECTURES, sized_target, sizes, workload_for
from aalbert.mapper.study.configuration import template_of, workload
from aalbert.mapper.study.evaluate import ModelSpec, place, prepared
from aalbert.mapper.study.grid import StudyConfig, configurations_of, label


def test_stt_mram_is_one_of_the_studys_architectures_with_task_weights_changing_or_fixed():
    cfg = StudyConfig(tasks=[1, 2], size="tiny", seq_len=16, requests=4)
    for fixed in (False, True):
        chips = {c.chip for c in configurations_of(cfg, fixed_tasks=fixed) if c.sized}
        assert "mram_sram" in chips, fixed
    assert label("mram_sram") == ARCHITECTURES["mram_sram"] == "sized: STT-MRAM + SRAM"


def test_a_sized_stt_mram_chip_holds_task_weights_that_change_in_the_field():
    module = prepared(ModelSpec("adapter-albert", 2, "tiny", seq_len=16))
    wl = workload(module, fixed_tasks=False)
    assert wl.task_weights_change
    template, where, base = template_of("edge_accel", ())
    s = sizes(module, base, fixed_tasks=False)
    assert s.mutable > 0                                   # task weights that change in the field
    target = sized_target(template, where, s, "mram_sram")
    mram = target.level("mram")
    assert mram.model == "stt_mram" and mram.field_writable and not mram.volatile
    assert mram.capacity_bytes >= s.frozen + s.mutable and target.level("sram").holds == ("activations",)
    assert workload_for("mram_sram", wl) == wl            # no fixed-tasks rule
    placed, _ = place(module, target, wl, spill=False)
    task_weights = [w for w in placed.weights.values() if not w.role.shared]
    assert task_weights and all(w.placement.level == "mram" for w in task_weights)
    assert all(w.placement.level == "mram" for w in placed.weights.values())


def test_study_figures_start_energy_at_zero_and_keep_legends_off_the_lines(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aalbert.mapper.study import plots

    made = []
    real_save = plots.save

    def keep(fig, stem):
        made.append(fig)
        return real_save(fig, stem)

    plots.save = keep
    try:
        # a 4 % spread between two lines that would fill the axes if the axis started at the data
        plots.study_figure([("energy", "mJ", {"a": [(1, 5.0), (2, 5.1)], "b": [(1, 5.2), (2, 5.0)]})] * 4,
                           tmp_path / "f")
        plots.stacked_energy({"x": {"pe": 1.0, "pe_regs": 0.2, "input0": 0.1}}, tmp_path / "g", "t")
    finally:
        plots.save = real_save
    for fig in made:
        fig.canvas.draw()
        for ax in fig.axes:
            assert ax.get_ylim()[0] == 0
            legend = ax.get_legend()
            box, frame = legend.get_window_extent(), ax.get_window_extent()
            assert box.x0 >= frame.x1  # beside the axes, over no line or bar
        plt.close(fig)
    labels = [t.get_text() for t in made[1].axes[0].get_legend().get_texts()]
    assert labels == ["PE array", "PE registers", "input0"]       # every component, named
