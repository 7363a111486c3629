"""Learning curves of a multirun whose jobs validate every few optimizer steps (``sweep=decimal_study``).

Each job trains one model at a constant learning rate and validates every ``trainer.val_check_interval``
steps, so the validation points of one job are a ladder of training budgets. The curves come from
each job's ``csv/metrics.csv``:

- ``val/decimal_acc``: fraction of landmarks whose decimal argmax is the target's decimal cell
  (HIH heads; chance 1/d^2), ``val/offset_err`` for the offset heads (cells);
- ``val/decimal_gain`` / ``val/offset_gain``: integer-only NME (cell centre) minus full NME, i.e.
  what the compensation head adds beyond centring the integer cell;
- ``val/nme_integer``: the integer heatmap alone, against the baseline's ``val/nme`` (does the head
  wreck the shared backbone?).

:func:`write_study` writes ``study.json`` (every curve, the test metrics, wall times), ``study.md`` (a
summary on the test set, then the validation ladder) and ``study.png`` (the curves). Jobs are read
with :func:`hih.analysis.report.collect_runs`, so a failed or unfinished job is listed, not dropped.
Results and reading: docs/decimal_heads.md ("Do the paper's heads learn?").
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hih.analysis.numbers import fmt
from hih.analysis.report.runs import collect_runs, config_value, read_status
from hih.evaluation.keys import metric_key, parse_key

#: offset_err (Euclidean, cells) of a head that always predicts the mean offset (0.5, 0.5): the mean
#: distance from the centre of the unit square to a uniform point, (sqrt(2) + asinh(1)) / 6.
MEAN_OFFSET_ERR = (math.sqrt(2) + math.asinh(1)) / 6

#: The keys read (:mod:`hih.evaluation.keys`): NME, the integer heatmap alone at the cell centre, the head
#: metrics and their gains, on the validation ladder and on the test set.
VAL_NME, TEST_NME = (metric_key(stage, "nme") for stage in ("val", "test"))
VAL_NME_INTEGER, TEST_NME_INTEGER = (metric_key(stage, "nme", variant="_integer") for stage in ("val", "test"))
VAL_DECIMAL_ACC, TEST_DECIMAL_ACC = (metric_key(stage, "decimal_acc") for stage in ("val", "test"))
VAL_DECIMAL_GAIN, TEST_DECIMAL_GAIN = (metric_key(stage, "decimal_gain") for stage in ("val", "test"))
VAL_OFFSET_ERR, TEST_OFFSET_ERR = (metric_key(stage, "offset_err") for stage in ("val", "test"))
VAL_OFFSET_GAIN, TEST_OFFSET_GAIN = (metric_key(stage, "offset_gain") for stage in ("val", "test"))

#: The validation metrics read from each job's CSV log.
CURVES = (VAL_NME, VAL_NME_INTEGER, VAL_DECIMAL_ACC, VAL_DECIMAL_GAIN, VAL_OFFSET_ERR, VAL_OFFSET_GAIN)

Curves = dict[str, list[tuple[int, float]]]


@dataclass
class StudyRun:
    """One job of the study: its name, where it is, how it ended and what it measured."""

    name: str
    path: Path | None
    status: str
    overrides: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    curves: Curves = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    wall_s: float | None = None

    def value(self, dotted: str) -> Any:
        """A config value by dotted key, None when absent."""
        return config_value(self.config, dotted)

    @property
    def chance(self) -> float | None:
        """Chance decimal-cell accuracy 1/d^2 of a model with a decimal map, else None."""
        size = self.value("model.decimal_size")
        try:
            return 1.0 / int(size) ** 2
        except (TypeError, ValueError):  # absent, or an unresolved interpolation
            return None

    @property
    def head_weight(self) -> Any:
        """The loss weight of the compensation head (``model.loss.head``), None without a head."""
        return self.value("model.loss.head")


def read_curves(run_dir: str | os.PathLike) -> Curves:
    """{metric: [(optimizer steps, value), ...]} for the validation metrics of one run's CSV log.

    The CSV's ``step`` of a validation row is the optimizer steps done minus one (Lightning logs it
    from the last training batch), hence the +1."""
    out: Curves = {}
    with open(Path(run_dir) / "csv" / "metrics.csv") as fh:
        for row in csv.DictReader(fh):
            for key in CURVES:
                value = row.get(key, "")
                if value not in ("", None):
                    out.setdefault(key, []).append((int(row["step"]) + 1, float(value)))
    return out


def read_test(metrics: Mapping[str, float]) -> dict[str, float]:
    """The full-set test metrics of a run's ``metrics.json`` (no subsets)."""
    return {k: v for k, v in metrics.items() if (key := parse_key(k)) is not None and key.subset is None}


def wall_seconds(status: Mapping[str, Any] | None) -> float | None:
    """Seconds between a job's start and end in its ``status.json`` (written by the sweep callback)."""
    try:
        started, ended = (_dt.datetime.fromisoformat(str(status[k])) for k in ("started", "ended"))  # type: ignore
    except (TypeError, KeyError, ValueError):
        return None
    return (ended - started).total_seconds()


def run_names(labels: Sequence[str]) -> list[str]:
    """Short names: the value when every label sets one and the same key (``+sweep/decimal_study=hih_l``
    -> ``hih_l``), else the labels themselves."""
    keys = {label.partition("=")[0] for label in labels}
    if len(keys) == 1 and all(label.count("=") == 1 and " " not in label for label in labels):
        return [label.partition("=")[2] for label in labels]
    return list(labels)


def collect(multirun_dir: str | os.PathLike) -> list[StudyRun]:
    """Every job of the multirun (see :func:`hih.analysis.report.collect_runs`) with its curves."""
    runs = collect_runs(multirun_dir)
    out = []
    for run, name in zip(runs, run_names([r.label for r in runs]), strict=True):
        study = StudyRun(name, run.path, run.status, run.overrides, run.config, test=read_test(run.metrics))
        if run.path is not None:
            if (run.path / "csv" / "metrics.csv").is_file():
                study.curves = read_curves(run.path)
            study.wall_s = wall_seconds(read_status(run.path))
        out.append(study)
    return out


def log_ladder(steps: Sequence[int]) -> set[int]:
    """About one ladder step per doubling, plus the last: enough rows to read a curve."""
    keep, nxt = set(), 0
    for s in steps:
        if s >= nxt:
            keep.add(s)
            nxt = 2 * s
    return keep | set(steps[-1:])


def _cell(value: float | None) -> str:
    """Every number of the study's tables with 3 decimals (accuracies, NMEs and cell errors alike)."""
    return fmt(value, places=3)


def _last(points: list[tuple[int, float]] | None, step: int) -> float | None:
    vals = [v for s, v in points or [] if s <= step]
    return vals[-1] if vals else None


def _delta(value: float | None, ref: float | None) -> str:
    return fmt(value - ref, places=3, signed=True) if value is not None and ref is not None else "-"


def _row(name: str, step: object, cells: list, delta: str) -> str:
    """A ladder row: the values formatted, the third one ("vs baseline") given as text."""
    return "| " + " | ".join([name, str(step), *(delta if i == 2 else _cell(v) for i, v in enumerate(cells))]) + " |"


def ladder_table(runs: Sequence[StudyRun], steps: Sequence[int], baseline: str | None) -> str:
    """Markdown: one row per run and ladder step (validation set), then the run's test row.

    "vs baseline": integer-heatmap-only NME minus the baseline's NME at the same step (> 0: the head
    made the shared backbone's integer heatmap worse)."""
    rows = [
        "| run | steps | NME | integer only | vs baseline | decimal acc | gain (NME) | offset err (cells) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_name = {r.name: r for r in runs}
    base = by_name[baseline] if baseline in by_name else None
    for r in runs:
        c = r.curves
        if not c:
            continue
        gain_key = VAL_DECIMAL_GAIN if c.get(VAL_DECIMAL_GAIN) else VAL_OFFSET_GAIN
        last_step = max((s for pts in c.values() for s, _ in pts), default=0)
        for step in [s for s in steps if s <= last_step]:  # a shorter run has no row past its end
            integer = _last(c.get(VAL_NME_INTEGER), step)
            ref = _last(base.curves.get(VAL_NME), step) if base else None
            cells = [
                _last(c.get(VAL_NME), step),
                integer,
                None,
                _last(c.get(VAL_DECIMAL_ACC), step),
                _last(c.get(gain_key), step),
                _last(c.get(VAL_OFFSET_ERR), step),
            ]
            rows.append(_row(r.name, step, cells, _delta(integer, ref)))
        t = r.test
        if t:
            integer, ref = t.get(TEST_NME_INTEGER), base.test.get(TEST_NME) if base else None
            gain = t.get(TEST_DECIMAL_GAIN, t.get(TEST_OFFSET_GAIN))
            cells = [t.get(TEST_NME), integer, None, t.get(TEST_DECIMAL_ACC), gain, t.get(TEST_OFFSET_ERR)]
            rows.append(_row(r.name, "**test**", cells, _delta(integer, ref)))
    return "\n".join(rows)


def summary_table(runs: Sequence[StudyRun], baseline: str | None) -> str:
    """Markdown: one row per run with test metrics (best checkpoint by val NME), and when the head
    first reached 5x chance on the validation set."""
    rows = [
        "| run | head loss weight | test NME | integer only | vs baseline | decimal acc (x chance) "
        "| offset err (cells) | gain (NME) | val decimal acc >= 5x chance at step | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ref = next((r.test.get(TEST_NME) for r in runs if r.name == baseline), None)
    for r in runs:
        t = r.test
        if not t:
            continue
        weight = "-" if r.head_weight is None else r.head_weight
        integer = t.get(TEST_NME_INTEGER)
        acc, chance = t.get(TEST_DECIMAL_ACC), r.chance
        acc_s = f"{acc:.3f} ({acc / chance:.1f}x)" if acc is not None and chance else "-"
        gain = t.get(TEST_DECIMAL_GAIN, t.get(TEST_OFFSET_GAIN))
        first = "-"
        if r.curves.get(VAL_DECIMAL_ACC) and chance:
            first = next((str(s) for s, v in r.curves[VAL_DECIMAL_ACC] if v >= 5 * chance), "never")
        wall = "-" if r.wall_s is None else f"{r.wall_s:.0f}"
        rows.append(
            f"| {r.name} | {weight} | {_cell(t.get(TEST_NME))} | {_cell(integer)} | {_delta(integer, ref)} "
            f"| {acc_s} | {_cell(t.get(TEST_OFFSET_ERR))} | {_cell(gain)} | {first} | {wall} |"
        )
    return "\n".join(rows)


def curves_figure(runs: Sequence[StudyRun], baseline: str | None):
    """Four panels against optimizer steps (log scale): decimal-cell accuracy with chance and 5x
    chance, offset error with the mean offset's, the gain over the cell centre, and the integer
    heatmap alone with the baseline's NME; other seeds of the baseline (``<baseline>_seed*``) are
    drawn as the band of its run-to-run spread. A matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    curves = {r.name: r.curves for r in runs if r.curves}
    chance = next((r.chance for r in runs if r.curves and r.chance), None)
    if baseline not in curves:
        baseline = None
    panels = [
        (VAL_DECIMAL_ACC, "decimal-cell accuracy (HIH heads)"),
        (VAL_OFFSET_ERR, "offset error, cells (WOV / WOM)"),
        (VAL_DECIMAL_GAIN, "gain over the cell centre (NME)"),
        (VAL_NME_INTEGER, "integer heatmap alone (NME); baseline: its NME"),
    ]
    fig = Figure(figsize=(13, 9))
    axes = fig.subplots(2, 2).flatten()
    seeds = [baseline, *(n for n in curves if n.startswith(f"{baseline}_seed"))] if baseline else []
    lines = {n: c for n, c in curves.items() if n not in seeds[1:]}
    cmap = _colormap("tab20")
    colors = {name: cmap(i % 20) for i, name in enumerate(lines)}
    for ax, (key, title) in zip(axes, panels, strict=True):
        if key == VAL_NME_INTEGER and len(seeds) > 1:
            per_step: dict[int, list[float]] = {}
            for n in seeds:
                for s, v in curves[n].get(VAL_NME, []):
                    per_step.setdefault(s, []).append(v)
            xs = sorted(s for s, v in per_step.items() if len(v) == len(seeds))
            low, high = [min(per_step[s]) for s in xs], [max(per_step[s]) for s in xs]
            ax.fill_between(xs, low, high, color="grey", alpha=0.25, label=f"baseline, {len(seeds)} seeds (min-max)")
        for name, c in lines.items():
            pts = c.get(key)
            if key == VAL_DECIMAL_GAIN and not pts:
                pts = c.get(VAL_OFFSET_GAIN)
            if key == VAL_NME_INTEGER and not pts and name == baseline:
                pts = c.get(VAL_NME)
            if pts:
                style = {"ls": "--"} if "_w1" in name or name == baseline else {}
                xs, ys = [s for s, _ in pts], [v for _, v in pts]
                ax.plot(xs, ys, marker="o", ms=3, label=name, color=colors[name], **style)
        if key == VAL_DECIMAL_ACC and chance:
            d = round(math.sqrt(1 / chance))
            ax.axhline(chance, color="k", ls=":", lw=1, label=f"chance 1/{d * d}")
            ax.axhline(5 * chance, color="grey", ls=":", lw=1, label="5x chance")
        if key == VAL_OFFSET_ERR:
            ax.axhline(MEAN_OFFSET_ERR, color="k", ls=":", lw=1, label=f"always (0.5, 0.5): {MEAN_OFFSET_ERR:.3f}")
        if key == VAL_DECIMAL_GAIN:
            ax.axhline(0.0, color="k", ls=":", lw=1)
        if key == VAL_NME_INTEGER and baseline and curves[baseline].get(VAL_NME):
            ax.set_ylim(top=2.5 * curves[baseline][VAL_NME][-1][1])  # the late steps, where heads differ
        ax.set_xscale("log")
        ax.set_xlabel("optimizer steps")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _labels(runs: Sequence[StudyRun]) -> str:
    settings = next((r.value("labels") for r in runs if isinstance(r.value("labels"), Mapping)), None) or {}
    parts = [f"{k}={settings[k]}" for k in ("integer_target", "decimal_quantizer") if k in settings]
    return "label settings " + ", ".join(parts) if parts else "the configs' label settings"


def study_markdown(runs: Sequence[StudyRun], baseline: str | None = "baseline") -> str:
    """The summary table on the test set, then the validation ladder, then runs without curves."""
    done = [r for r in runs if r.curves]
    if baseline not in {r.name for r in done}:
        baseline = None
    chance = next((r.chance for r in done if r.chance), None)
    ladder = sorted({s for r in done for pts in r.curves.values() for s, _ in pts})
    wall = sum(r.wall_s or 0.0 for r in done)
    chance_s = f"1/{round(1 / chance)}" if chance else "-"
    md = (
        f"Validation set at each ladder step, then the test set (best checkpoint by val NME). {_labels(done)}; "
        f"chance decimal acc {chance_s}; wall time {wall / 60:.0f} min.\n\n"
        + summary_table(done, baseline)
        + "\n\nValidation curves (ladder):\n\n"
        + ladder_table(done, [s for s in ladder if s in log_ladder(ladder)], baseline)
    )
    missing = [r for r in runs if not r.curves]
    if missing:
        md += "\n\nNo curves (not in the tables): " + ", ".join(f"{r.name} ({r.status})" for r in missing)
    return md


def write_study(
    multirun_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, baseline: str | None = "baseline"
) -> dict[str, Any]:
    """Read the multirun and write ``study.json``, ``study.md`` and ``study.png`` into ``out_dir``
    (default: the multirun folder). Returns {"runs", "markdown", "paths"}."""
    runs = collect(multirun_dir)
    out = Path(out_dir) if out_dir is not None else Path(multirun_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = [r for r in runs if r.curves]
    wall = {r.name: r.wall_s for r in done if r.wall_s is not None}
    summary = {
        "multirun_dir": str(multirun_dir),
        "runs": {r.name: " ".join(r.overrides) for r in runs},
        "status": {r.name: r.status for r in runs},
        "chance": next((r.chance for r in done if r.chance), None),
        "wall_s": wall,
        "wall_s_total": round(sum(wall.values()), 1),
        "test": {r.name: r.test for r in done if r.test},
        "curves": {r.name: r.curves for r in done},
    }
    paths = {"json": out / "study.json", "md": out / "study.md", "png": out / "study.png"}
    paths["json"].write_text(json.dumps(summary, indent=1))
    md = study_markdown(runs, baseline)
    paths["md"].write_text(md + "\n")
    fig = curves_figure(done, baseline)
    fig.savefig(paths["png"], dpi=80)
    return {"runs": runs, "markdown": md, "paths": paths}
