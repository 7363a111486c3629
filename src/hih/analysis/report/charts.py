"""The report's plots: one full-set metric per run or per row (mean ± std over seeds), and NME against
the decimal resolution (Table 8)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hih.analysis.numbers import fmt
from hih.analysis.report.runs import Run
from hih.analysis.report.seeds import Row
from hih.evaluation.keys import metric_key
from hih.methods import codec_parameters


def plot_rows(
    rows: Sequence[Row], path: str | os.PathLike, metric: str = "nme", stage: str = "test", title: str | None = None
) -> Path | None:
    """Bar chart of one full-set metric per row: the mean over seeds, error bars one standard deviation."""
    done = [(row, row.stats(metric_key(stage, metric))) for row in rows]
    done = [(row, st) for row, st in done if st.n]
    if not done:
        return None
    means = [st.mean for _, st in done]
    stds = [st.std or 0.0 for _, st in done]
    fig, ax = _figure((max(4.0, 0.6 * len(done) + 2), 4.5))
    colors = ["tab:orange" if row.redecode else "tab:blue" for row, _ in done]
    bars = ax.bar(range(len(done)), means, yerr=stds, capsize=3, color=colors)
    ax.bar_label(bars, labels=[f"{fmt(m, metric)}\nn={st.n}" for m, (_, st) in zip(means, done)], fontsize=6, padding=2)
    ax.set_xticks(range(len(done)), [row.label for row, _ in done], rotation=40, ha="right", fontsize=6)
    ax.set_ylabel(f"{metric} ({'fraction' if 'auc' in metric else '%'}), mean ± std over seeds")
    ax.set_title(title or f"{stage} {metric}: mean ± std over seeds (orange: re-decodes)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_runs(
    runs: Sequence[Run], path: str | os.PathLike, metric: str = "nme", stage: str = "test", title: str | None = None
) -> Path | None:
    """Bar chart of one full-set metric per completed run (the per-head comparison of Table 5)."""
    done = [r for r in runs if metric_key(stage, metric) in r.metrics]
    if not done:
        return None
    values = [r.metrics[metric_key(stage, metric)] for r in done]
    fig, ax = _figure((max(4.0, 0.9 * len(done) + 2), 4))
    bars = ax.bar(range(len(done)), values, color="tab:blue")
    ax.bar_label(bars, labels=[fmt(v, metric) for v in values], fontsize=7)
    ax.set_xticks(range(len(done)), [r.label for r in done], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"{metric} ({'fraction' if 'auc' in metric else '%'})")
    missing = [r for r in runs if r not in done]
    ax.set_title(
        title or f"{stage} {metric} per run" + (f" ({len(missing)} without results)" if missing else ""), fontsize=9
    )
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _has_decimal_map(model: str | None) -> bool:
    """Whether method ``model``'s codec has a decimal resolution (the registry's word; False if unknown)."""
    try:
        return "decimal_size" in codec_parameters(str(model))
    except ValueError:  # a run of a method this installation does not register
        return False


def plot_decimal(runs: Sequence[Run], path: str | os.PathLike, metric: str = "nme", stage: str = "test") -> Path | None:
    """NME against the decimal heatmap resolution (Table 8), one line per (model, stacks); None
    unless the completed HIH runs use at least two resolutions."""
    groups: dict[str, list[tuple[int, float]]] = {}
    for r in runs:
        size = r.value("model.decimal_size")
        if metric_key(stage, metric) not in r.metrics or size is None or not _has_decimal_map(r.model):
            continue
        groups.setdefault(f"{r.model} ({r.value('model.stacks') or 1} stack)", []).append(
            (int(size), r.metrics[metric_key(stage, metric)])
        )
    if len({s for pts in groups.values() for s, _ in pts}) < 2:
        return None
    fig, ax = _figure((5, 4))
    for name, pts in sorted(groups.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
    sizes = sorted({s for pts in groups.values() for s, _ in pts})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [f"{s}x{s}" for s in sizes])
    ax.set_xlabel("decimal heatmap resolution")
    ax.set_ylabel(f"{stage} {metric} (%)")
    ax.set_title("NME against decimal resolution (Table 8)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _figure(size: tuple[float, float]):
    # A bare Figure, not pyplot: no global backend switch (notebooks keep theirs), works headless.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=120)
    return fig, fig.add_subplot()


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path
