"""The tables of a report with one run per row, in the paper's layout (columns = full set and subsets),
and their Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hih.analysis.numbers import fmt
from hih.analysis.report.runs import Run
from hih.analysis.results import HEAD_COLUMNS
from hih.evaluation.keys import FULL, INTEGER_VARIANTS, metric_key, metric_name, parse_key, parse_name

METRICS = ("nme", "fr_10", "auc_10")
#: Integer heatmap only (Table 7), each metric in two conventions, the paper's first: "_integer_corner"
#: reads the argmax index (the cell's corner), which the paper's integer-only / full ratios match
#: (4.90 / 4.31 = 1.14 for HIH_C, 1 stack); "_integer" reads the cell centre (half the quantization cost).
#: The full-set columns of the summary tables: the metrics, then NME of the integer heatmap alone.
SUMMARY_FAMILIES = (*METRICS, *(metric_name("nme", v) for v in INTEGER_VARIANTS))
SUBSET_LABELS = {
    FULL: "Fullset",
    "pose": "Pose",
    "expression": "Exp.",
    "illumination": "Ill.",
    "makeup": "Mu.",
    "occlusion": "Occ.",
    "blur": "Blur",
    "common": "Com.",
    "challenge": "Cha.",
}


def optional_family(name: str) -> bool:
    """A family only some runs have (an integer-only variant, a head metric): a completed run without it
    is left out of its table rather than shown empty."""
    return parse_name(name)[1] in INTEGER_VARIANTS or name in HEAD_COLUMNS


def subset_order(runs: Sequence[Run], stage: str = "test") -> list[str]:
    """Subsets present in the runs' metrics: full set first, then the layout's order."""
    found: set[str] = set()
    for r in runs:
        for key in r.metrics:
            parsed = parse_key(key)
            if parsed is not None and parsed.stage == stage and parsed.subset is not None:
                found.add(parsed.subset)
    order: list[str] = []
    for r in runs:
        layout = r.value("data.layout")
        if layout:
            try:
                from hih.data.datasets import get_layout

                order = [s for s in get_layout(str(layout)).subset_names if s in found]
                break
            except (KeyError, ValueError):
                pass
    return [FULL] + order + sorted(found - set(order))


def metric_families(runs: Sequence[Run], stage: str = "test") -> list[str]:
    """nme, fr_10, auc_10 (paper order), then the integer-only variants found, each metric's corner
    (Table 7's convention) before its centre (nme_integer_corner, nme_integer, fr_10_integer_corner, ...),
    then the head metrics (decimal_acc, decimal_gain, offset_err, offset_gain)."""
    # <metric>@<method>: a re-decode, shown as a row of its own (group_runs), not as a column.
    parsed = (parse_key(k) for r in runs for k in r.metrics)
    names = {p.name for p in parsed if p is not None and p.stage == stage and p.method is None}
    base = [m for m in METRICS if m in names] or sorted(n for n in names if not optional_family(n))
    variants = [metric_name(m, v) for m in METRICS for v in INTEGER_VARIANTS if metric_name(m, v) in names]
    head = [m for m in HEAD_COLUMNS if m in names]
    rest = sorted(names - set(base) - set(variants) - set(head))
    return base + variants + head + rest


def metric_table(runs: Sequence[Run], metric: str, stage: str = "test") -> tuple[list[str], list[list[Any]]]:
    """Rows = runs, columns = full set and subsets of one metric (Tables 1, 2, 5, 7, 8 layout).

    Runs without this metric (not finished, or no integer heatmap for ``*_integer``) show their
    status in place of numbers, so no run disappears from a table.
    """
    subsets = subset_order(runs, stage)
    header = ["run", "model", "status"] + [SUBSET_LABELS.get(s, s) for s in subsets]
    rows = []
    for r in runs:
        values = [r.metrics.get(metric_key(stage, metric, s)) for s in subsets]
        if r.status == "completed" and all(v is None for v in values) and optional_family(metric):
            # Families only some runs have: the baseline has no integer-only decode and no head metric.
            continue
        rows.append([r.label, r.model, r.status] + values)
    return header, rows


def summary_table(runs: Sequence[Run], stage: str = "test") -> tuple[list[str], list[list[Any]]]:
    """One row per run: full-set NME / FR / AUC (and integer-only NME at the corner and the centre, the
    head metric and its gain where present), status and what went wrong."""
    families = [m for m in metric_families(runs, stage) if m in SUMMARY_FAMILIES or m in HEAD_COLUMNS]
    header = ["job", "run", "model", "status"] + families + ["folder / error"]
    rows = []
    for r in runs:
        where = r.error or (str(r.path) if r.path else "")
        rows.append(
            [r.num, r.label, r.model, r.status] + [r.metrics.get(metric_key(stage, m)) for m in families] + [where]
        )
    return header, rows


def to_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], metric: str = "") -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v, metric or h) for v, h in zip(row, header)) + " |")
    return "\n".join(lines)


TITLES = {
    "nme": "NME (%) ↓ (Tables 1, 5, 8)",
    "fr_10": "FR@10 (%) ↓ (Tables 2, 5)",
    "auc_10": "AUC@10 ↑ (Tables 2, 5)",
    "nme_integer_corner": "NME (%) ↓, integer heatmap only, argmax cell corner (Table 7, the paper's convention)",
    "fr_10_integer_corner": "FR@10 (%) ↓, integer heatmap only, argmax cell corner (Table 7, the paper's convention)",
    "auc_10_integer_corner": "AUC@10 ↑, integer heatmap only, argmax cell corner (Table 7, the paper's convention)",
    "nme_integer": "NME (%) ↓, integer heatmap only, cell centre (beside Table 7: not the paper's convention)",
    "fr_10_integer": "FR@10 (%) ↓, integer heatmap only, cell centre (beside Table 7: not the paper's convention)",
    "auc_10_integer": "AUC@10 ↑, integer heatmap only, cell centre (beside Table 7: not the paper's convention)",
    "decimal_acc": "Decimal-cell accuracy ↑ (fraction; chance 1/d²)",
    "decimal_gain": "Decimal gain (NME points) ↑: integer-only NME at the cell centre minus NME",
    "offset_err": "Offset error (heatmap cells) ↓",
    "offset_gain": "Offset gain (NME points) ↑: integer-only NME at the cell centre minus NME",
}
INTEGER_TITLE = "Table 7 at a glance: full-set NME (%) ↓, full decode against the integer heatmap only"


def integer_table(runs: Sequence[Run], stage: str = "test") -> tuple[list[str], list[list[Any]]]:
    """Runs with an integer-only decode: full-set NME of the full decode, of the integer heatmap read
    at the argmax cell's corner (Table 7's convention) and at its centre, and corner / full (the
    paper: 4.90 / 4.31 = 1.14 for HIH_C, 1 stack). Empty when no run has an integer-only metric."""
    header = ["run", "model", "status", "full decode", "integer, corner (Table 7)", "integer, centre", "corner / full"]
    rows = []
    for r in runs:
        full, corner, centre = (r.metrics.get(metric_key(stage, "nme", variant=v)) for v in ("", *INTEGER_VARIANTS))
        if r.status == "completed" and corner is None and centre is None:
            continue  # no integer-only decode (the baseline's full decode is its integer heatmap)
        ratio = corner / full if corner is not None and full else None
        rows.append([r.label, r.model, r.status, full, corner, centre, ratio])
    return header, rows
