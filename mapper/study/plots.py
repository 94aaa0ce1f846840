"""Figures of the study and the sweeps (matplotlib, PNG and SVG, reproducible bytes)."""

from __future__ import annotations

from pathlib import Path

from aalbert.outputs import atomic_writer

COMPONENT_COLORS = {"pe": "#4477aa", "pe_regs": "#88aadd", "acc": "#225588", "noc": "#999933", "buffers": "#ddcc77",
                    "sfu": "#66ccee", "rram": "#228833", "mram": "#117733", "sram": "#ccbb44", "dram": "#ee6677",
                    "leakage": "#bbbbbb", "dram_background": "#aa3377"}
COMPONENT_LABELS = {"pe": "PE array", "pe_regs": "PE registers", "acc": "accumulators", "noc": "interconnect",
                    "buffers": "buffers", "sfu": "SFU", "rram": "RRAM", "mram": "STT-MRAM", "sram": "SRAM",
                    "dram": "DRAM", "leakage": "leakage and wake-ups", "dram_background": "DRAM background"}
EXTRA_COLORS = ("#332288", "#882255", "#44aa99", "#661100", "#6699cc", "#aa4466")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matplotlib.rcParams["svg.hashsalt"] = "aalbert"
    return plt


def save(fig, stem: Path) -> list[Path]:
    """Write `stem.png` and `stem.svg` atomically, without timestamps."""
    paths = []
    for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
        path = stem.with_suffix(f".{fmt}")
        with atomic_writer(path) as f:
            fig.savefig(f, format=fmt, metadata=meta, dpi=120)
        paths.append(path)
    return paths


def lines_vs_tasks(series: dict[str, list[tuple[int, float]]], ax, ylabel: str, title: str) -> None:
    drawn = []
    for label, points in series.items():
        xs, ys = zip(*sorted(points))
        # a line on top of an earlier one is dashed, so both stay visible
        style = "--" if (xs, ys) in drawn else "-"
        ax.plot(xs, ys, marker="o", markersize=3, linestyle=style, label=label)
        drawn.append((xs, ys))
    ax.set_ylim(bottom=0)  # from zero: a spread of a few percent looks like one
    ax.set_xlabel("number of tasks")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def study_figure(panels: list[tuple[str, str, dict]], stem: Path) -> list[Path]:
    """A 2x2 grid of metric-vs-tasks panels: (title, y label, {line label: [(tasks, value)]})."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(15, 8))
    for ax, (title, ylabel, series) in zip(axes.flat, panels):
        lines_vs_tasks(series, ax, ylabel, title)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # beside, over no line
    fig.tight_layout()
    out = save(fig, stem)
    plt.close(fig)
    return out


def stack_order(bars: dict[str, dict[str, float]]) -> list[str]:
    """Every component any bar has, known ones in `COMPONENT_COLORS` order, then the others by name."""
    present = {c for b in bars.values() for c, v in b.items() if v}
    return [c for c in COMPONENT_COLORS if c in present] + sorted(present - set(COMPONENT_COLORS))


def stacked_energy(bars: dict[str, dict[str, float]], stem: Path, title: str) -> list[Path]:
    """One bar per configuration, stacked by component (mJ per inference): every component a bar has, so that
    each bar is the configuration's whole energy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.8))
    labels = list(bars)
    components = stack_order(bars)
    extra = iter(EXTRA_COLORS * (1 + len(components)))
    bottoms = [0.0] * len(labels)
    for comp in components:
        values = [bars[label].get(comp, 0.0) for label in labels]
        ax.bar(range(len(labels)), values, bottom=bottoms, color=COMPONENT_COLORS.get(comp) or next(extra),
               label=COMPONENT_LABELS.get(comp, comp))
        bottoms = [b + v for b, v in zip(bottoms, values)]
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("energy per inference (mJ)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    out = save(fig, stem)
    plt.close(fig)
    return out


def pareto_figure(points: list[dict], front: list[dict], stem: Path) -> list[Path]:
    """Energy against area, colored by latency; the Pareto front circled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    sc = ax.scatter([p["area_mm2"] for p in points], [p["energy_mj"] for p in points],
                    c=[p["latency_ms"] for p in points], cmap="viridis", s=25)
    ax.scatter([p["area_mm2"] for p in front], [p["energy_mj"] for p in front], facecolors="none",
               edgecolors="red", s=90, label="Pareto front (energy, area, latency)")
    fig.colorbar(sc, ax=ax, label="latency per inference (ms)")
    ax.set_xlabel("area (mm^2)")
    ax.set_ylabel("energy per inference (mJ)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = save(fig, stem)
    plt.close(fig)
    return out


def grouped_bars(groups: dict[str, dict[str, float]], stem: Path, title: str, ylabel: str) -> list[Path]:
    """One group of bars per label (a bar per series, the same series in every group), values printed on top."""
    plt = _pyplot()
    labels = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(labels))]
        values = [groups[label].get(name, 0.0) for label in labels]
        bars = ax.bar(xs, values, width=width, label=name)
        ax.bar_label(bars, labels=[f"{v:.2f}" if v else "" for v in values], fontsize=6, padding=1)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    out = save(fig, stem)
    plt.close(fig)
    return out


def lines_figure(panels: list[tuple[str, str, bool, dict]], stem: Path, xlabel: str) -> list[Path]:
    """A 2x2 grid of line panels, (title, y label, log scale, {line label: [(x, y)]}); a label keeps its colour in
    every panel, also where another panel lacks some of the lines."""
    plt = _pyplot()
    names = list(dict.fromkeys(name for *_, series in panels for name in series))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"] + list(EXTRA_COLORS)
    colors = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    fig, axes = plt.subplots(2, 2, figsize=(15, 8))
    for ax, (title, ylabel, log, series) in zip(axes.flat, panels):
        for name in names:
            if series.get(name):
                xs, ys = zip(*sorted(series[name]))
                ax.plot(xs, ys, marker="o", markersize=3, color=colors[name], label=name)
        if log:  # values a hundredfold apart: each line stays readable
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    out = save(fig, stem)
    plt.close(fig)
    return out
