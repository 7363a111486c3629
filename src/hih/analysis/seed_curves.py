"""Validation curves of multirun jobs grouped by the run they belong to, over their seeds.

A sweep such as ``sweep=decimal_recipe`` runs each of its files (``+sweep/decimal_recipe=<run>``) once
per seed. :func:`seed_curves` reads every job's validation ladder (``csv/metrics.csv``, see
:func:`hih.analysis.learning_curves.read_curves`) and gives, per run and metric, the mean over the seeds
with the seeds' minimum and maximum at each step; :func:`seed_curves_figure` draws them, one panel per
question (decimal accuracy against chance, offset error against the mean offset's, the gain over the
cell centre, the integer heatmap alone). Used by ``scripts/head_probe.py --multirun ... --figure``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from hih.analysis.learning_curves import (
    MEAN_OFFSET_ERR,
    VAL_DECIMAL_ACC,
    VAL_DECIMAL_GAIN,
    VAL_NME_INTEGER,
    VAL_OFFSET_ERR,
    VAL_OFFSET_GAIN,
    read_curves,
)
from hih.analysis.report.runs import collect_runs, override_value
from hih.analysis.report.seeds import Row, group_runs

#: {run: {metric: [(step, mean, min, max), ...]}} over the seeds that reached the step.
SeedCurves = dict[str, dict[str, list[tuple[int, float, float, float]]]]


def multirun_rows(multirun_dirs: Sequence[str | Path], group: str) -> list[tuple[str, Row]]:
    """The jobs of the multiruns (:func:`hih.analysis.report.collect_runs`, so a grid job that never
    started is listed too) as the seed report's rows (:func:`hih.analysis.report.seeds.group_runs`: one
    per grid point, its seeds together), each named by the value of its ``group`` override. Points that
    share that value but differ otherwise (e.g. another ``trainer.max_steps``) stay apart, named by
    the overrides that tell them apart."""
    runs = [run for folder in multirun_dirs for run in collect_runs(folder)]
    rows = [row for row in group_runs(runs) if row.redecode is None]
    names = [override_value(row.runs[0].overrides, group.lstrip("+~")) or row.label for row in rows]
    return [(row.label if names.count(name) > 1 else name, row) for name, row in zip(names, rows, strict=True)]


def seed_curves(multirun_dirs: Sequence[str | Path], group: str = "+sweep/decimal_recipe") -> SeedCurves:
    """Each run's validation curves over its seeds; jobs without a CSV log are left out."""
    out: SeedCurves = {}
    for name, row in multirun_rows(multirun_dirs, group):
        jobs = [
            read_curves(r.path) for r in row.runs if r.path is not None and (r.path / "csv" / "metrics.csv").is_file()
        ]
        if not jobs:
            continue
        out[name] = {}
        for key in {k for curves in jobs for k in curves}:
            by_step: dict[int, list[float]] = {}
            for curves in jobs:
                for step, value in curves.get(key, []):
                    by_step.setdefault(step, []).append(value)
            out[name][key] = [(s, sum(v) / len(v), min(v), max(v)) for s, v in sorted(by_step.items())]
    return out


def seed_curves_figure(curves: SeedCurves, chance: float | None = None, title: str | None = None):
    """Four panels against optimizer steps: each run's mean over seeds as a line, the seeds' range as a
    band. ``chance``: the decimal map's chance accuracy 1/d^2, drawn with 5x chance. A matplotlib Figure."""
    import matplotlib
    from matplotlib.figure import Figure

    panels = [
        ((VAL_DECIMAL_ACC,), "decimal-cell accuracy (HIH heads)"),
        ((VAL_OFFSET_ERR,), "offset error, cells (WOV / WOM)"),
        ((VAL_DECIMAL_GAIN, VAL_OFFSET_GAIN), "gain over the cell centre (NME)"),
        ((VAL_NME_INTEGER,), "integer heatmap alone (NME)"),
    ]
    fig = Figure(figsize=(13, 9))
    axes = fig.subplots(2, 2).flatten()
    cmap = matplotlib.colormaps["tab10"]
    colors = {name: cmap(i % 10) for i, name in enumerate(sorted(curves))}
    for ax, (keys, panel_title) in zip(axes, panels, strict=True):
        ax.set_title(panel_title, fontsize=10)
        drawn = False
        for name in sorted(curves):
            points = next((curves[name][k] for k in keys if curves[name].get(k)), None)
            if not points:
                continue
            steps = [p[0] for p in points]
            ax.plot(steps, [p[1] for p in points], marker="o", ms=2.5, color=colors[name], label=name)
            ax.fill_between(steps, [p[2] for p in points], [p[3] for p in points], color=colors[name], alpha=0.2)
            drawn = True
        if not drawn:  # e.g. no offset head among the runs: say so rather than draw an empty frame
            ax.text(0.5, 0.5, "no run logs this metric", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        if VAL_DECIMAL_ACC in keys and chance:
            d = round(math.sqrt(1 / chance))
            ax.axhline(chance, color="k", ls=":", lw=1, label=f"chance 1/{d * d}")
            ax.axhline(5 * chance, color="grey", ls=":", lw=1, label="5x chance")
        if VAL_OFFSET_ERR in keys:
            ax.axhline(MEAN_OFFSET_ERR, color="k", ls=":", lw=1, label=f"always (0.5, 0.5): {MEAN_OFFSET_ERR:.3f}")
        if VAL_DECIMAL_GAIN in keys:
            ax.axhline(0.0, color="k", ls=":", lw=1)
        ax.set_xlabel("optimizer steps")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
