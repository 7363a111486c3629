"""The tables of a report over seeds: mean ± std per row, the paired differences to the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hih.analysis.numbers import fmt
from hih.analysis.report.seeds import CONFIDENCE, Difference, Row, Stats
from hih.analysis.report.tables import SUBSET_LABELS, SUMMARY_FAMILIES, metric_families, optional_family, subset_order
from hih.analysis.results import HEAD_COLUMNS
from hih.evaluation.keys import metric_key


def _pm(stats: Stats, column: str) -> str:
    if stats.mean is None:
        return "-"
    if stats.std is None:
        return fmt(stats.mean, column)
    return f"{fmt(stats.mean, column)} ± {fmt(stats.std, column)}"


def _diff_text(diff: Difference | None, column: str) -> str:
    if diff is None or diff.mean is None:
        return "-"
    text = fmt(diff.mean, column, signed=True)
    if diff.low is not None:
        text += f" [{fmt(diff.low, column, signed=True)}, {fmt(diff.high, column, signed=True)}]"
        if diff.significant:
            text += " *"
    return text


def _count(row: Row) -> str:
    """ "n/total" completed seeds, and how the others ended (failed, running, ...)."""
    ended: dict[str, int] = {}
    for r in row.runs:
        if r.status != "completed":
            ended[r.status] = ended.get(r.status, 0) + 1
    text = f"{len(row.completed)}/{len(row.runs)}"
    return text + (" (" + ", ".join(f"{n} {s}" for s, n in ended.items()) + ")" if ended else "")


def seed_summary_table(
    rows: Sequence[Row], refs: Mapping[int, Row | None], stage: str = "test"
) -> tuple[list[str], list[list[Any]]]:
    """One row per grid point (and re-decode): seeds done / total, mean ± std of the full-set metrics,
    the paired NME difference to the reference with its interval (``*``: excludes 0)."""
    runs = [r for row in rows for r in row.runs]
    families = [m for m in metric_families(runs, stage) if m in SUMMARY_FAMILIES or m in HEAD_COLUMNS]
    header = ["run", "model", "seeds", *families, f"Δ nme vs ref [{int(CONFIDENCE * 100)} % CI]", "ref"]
    out = []
    for i, row in enumerate(rows):
        ref = refs.get(i)
        diff = (
            None
            if ref is None or ref is row
            else Difference.paired(row.values(metric_key(stage, "nme")), ref.values(metric_key(stage, "nme")))
        )
        ref_text = "(reference)" if ref is row else (ref.label if ref is not None else "-")
        out.append(
            [
                row.label,
                row.model,
                _count(row),
                *(_pm(row.stats(metric_key(stage, m)), m) for m in families),
                _diff_text(diff, "nme"),
                ref_text,
            ]
        )
    return header, out


def compensation_table(
    rows: Sequence[Row], refs: Mapping[int, Row | None], stage: str = "test"
) -> tuple[list[str], list[list[Any]]]:
    """What each compensation buys over seeds: NME, the integer heatmap alone (cell centre), the gain
    (integer-only − NME: what the head or decoder adds), and two paired differences to the reference,
    its NME against the row's NME and against the row's integer-only NME (does training the head
    help or hurt the integer heatmap itself?). A re-decode's integer heatmap is its training's (the
    same argmax); the reference's own integer heatmap is its NME when it has no integer-only metric."""
    header = [
        "run",
        "model",
        "seeds",
        "nme",
        "nme_integer (centre)",
        "gain",
        f"Δ nme vs ref [{int(CONFIDENCE * 100)} % CI]",
        f"Δ nme_integer vs ref nme [{int(CONFIDENCE * 100)} % CI]",
    ]
    out = []
    for i, row in enumerate(rows):
        ref = refs.get(i)
        nme = row.values(metric_key(stage, "nme"))
        integer = row.values(metric_key(stage, "nme", variant="_integer"))
        if not integer and row.redecode is None:
            integer = nme  # a plain heatmap's own decode is its integer heatmap (argmax at the cell centre)
        gain = {s: integer[s] - nme[s] for s in nme if s in integer}
        if ref is None or ref is row:
            d_nme = d_int = None
        else:
            d_nme = Difference.paired(nme, ref.values(metric_key(stage, "nme")))
            d_int = Difference.paired(integer, ref.values(metric_key(stage, "nme"))) if row.redecode is None else None
        out.append(
            [
                row.label,
                row.model,
                _count(row),
                _pm(row.stats(metric_key(stage, "nme")), "nme"),
                _pm(Stats.of(list(integer.values())), "nme") if row.redecode is None else "(its training's)",
                _pm(Stats.of(list(gain.values())), "nme") if row.redecode is None else "-",
                "(reference)" if ref is row else _diff_text(d_nme, "nme"),
                "(reference)" if ref is row else _diff_text(d_int, "nme"),
            ]
        )
    return header, out


def seed_metric_table(rows: Sequence[Row], metric: str, stage: str = "test") -> tuple[list[str], list[list[Any]]]:
    """:func:`metric_table` over seeds: mean ± std per subset, rows without this family left out."""
    runs = [r for row in rows for r in row.runs]
    subsets = subset_order(runs, stage)
    header = ["run", "model", "seeds"] + [SUBSET_LABELS.get(s, s) for s in subsets]
    out = []
    for row in rows:
        keys = [metric_key(stage, metric, s) for s in subsets]
        cells = [_pm(row.stats(k), metric) for k in keys]
        if row.completed and all(c == "-" for c in cells) and optional_family(metric):
            continue
        out.append([row.label, row.model, _count(row)] + cells)
    return header, out
