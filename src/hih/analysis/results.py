"""Run results: the flat ``metrics.json`` of the design notes and the console table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hih.analysis.numbers import digits, fmt
from hih.evaluation.keys import FULL, in_stage, parse_key, parse_name
from hih.evaluation.keys import VARIANTS as KEY_VARIANTS


def to_floats(metrics: Mapping[str, object]) -> dict[str, float]:
    """Tensors and numpy scalars to plain floats, keys sorted, so JSON diffs stay readable."""
    out = {}
    for key in sorted(metrics):
        value = metrics[key]
        out[key] = float(value.item() if hasattr(value, "item") else value)
    return out


def write_json(path: str | os.PathLike, data: object) -> Path:
    """Write ``data`` as indented JSON atomically: a crash (or a reader polling the file) never sees
    half a file. NaN is written as ``NaN`` (Python's json reads it back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
    os.replace(tmp, path)
    return path


def write_metrics(path: str | os.PathLike, metrics: Mapping[str, object]) -> Path:
    """Write ``metrics.json`` (plain floats, keys sorted) atomically."""
    return write_json(path, to_floats(metrics))


def split_metrics(metrics: Mapping[str, float], stage: str = "test") -> dict[str, dict[str, float]]:
    """``{"test/nme": 4.3, "test/nme/pose": 7.4}`` -> ``{"full": {"nme": 4.3}, "pose": {"nme": 7.4}}``."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parsed = parse_key(key) if in_stage(key, stage) else None
        if parsed is not None:
            rows.setdefault(parsed.subset or FULL, {})[parsed.name] = float(value)
    # Full set first, then subsets in the order they were logged.
    return dict(sorted(rows.items(), key=lambda kv: kv[0] != FULL))


#: Column groups in display order: the full decode, the integer heatmap alone at the cell centre,
#: the same at the argmax index (the paper's Table 7 convention), then the head metrics
#: (:class:`hih.metrics.HeadMetric`: accuracy / error, then its gain).
VARIANTS = tuple(variant.removeprefix("_") for variant in KEY_VARIANTS)
HEAD_COLUMNS = ("decimal_acc", "decimal_gain", "offset_err", "offset_gain")
HEAD_CAPTIONS = {
    "decimal_acc": "decimal_acc: decimal-cell accuracy (chance 1/d²)",
    "offset_err": "offset_err: offset error in heatmap cells",
    "decimal_gain": "decimal_gain = nme_integer (cell centre) - nme",
    "offset_gain": "offset_gain = nme_integer (cell centre) - nme",
}
VARIANT_LABELS = {"integer": "centre", "integer_corner": "corner"}


def split_variant(name: str) -> tuple[str, str]:
    """ "nme_integer" -> ("nme", "integer"); "fr_10_integer_corner" -> ("fr_10", "integer_corner");
    "decimal_acc" -> ("decimal_acc", "")."""
    metric, variant, _ = parse_name(name)
    return metric, variant.removeprefix("_")


def column_order(name: str) -> tuple[int, int, str]:
    """Sort key: nme, fr, auc of the full decode, then of each integer-only variant (centre, corner),
    then the head metrics (decimal_acc, decimal_gain, offset_err, offset_gain), then anything else, then
    the re-decodes (``nme@dark``, ...: every method's NME, then FR, then AUC)."""
    metric, variant, method = parse_name(name)
    if method is not None:
        return len(VARIANTS) + 2, column_order(metric + variant)[1], method
    if name in HEAD_COLUMNS:
        return len(VARIANTS), HEAD_COLUMNS.index(name), name
    base, variant = split_variant(name)
    for rank, prefix in enumerate(("nme", "fr", "auc")):
        if base.startswith(prefix):
            return (VARIANTS.index(variant) if variant in VARIANTS else len(VARIANTS) + 1), rank, name
    return len(VARIANTS) + 1, 3, name


def results_table(
    metrics: Mapping[str, float],
    stage: str = "test",
    title: str | None = None,
    columns: Sequence[str] | None = None,
    caption: str | None = None,
) -> Table:
    """A rich table: one row per subset; NME and FR in percent, AUC as a fraction (paper layout).

    columns: the metric names to show (default all, in :func:`column_order`); integer-only variants
    are headed by the metric over the anchor ("nme" / "corner") to keep the table narrow.
    """
    rows = split_metrics(metrics, stage)
    if columns is None:
        columns = sorted({c for row in rows.values() for c in row}, key=column_order)
    table = Table(title=title or f"{stage} results", caption=caption)
    table.add_column("subset")
    for column in columns:
        base, variant = split_variant(column)
        table.add_column(f"{base}\n{VARIANT_LABELS[variant]}" if variant in VARIANT_LABELS else column, justify="right")
    for subset, row in rows.items():
        table.add_row(subset, *(fmt(row.get(c), places=digits(c)) for c in columns))
    return table


def results_tables(metrics: Mapping[str, float], stage: str = "test", title: str | None = None) -> list[Table]:
    """The console's tables: the full decode with the head metrics, then the integer heatmap alone
    (cell centre and argmax corner side by side) when the run has one, then the NME under each other
    decoder of the same network (``nme@<method>``) when the run has re-decodes."""
    names = sorted({c for row in split_metrics(metrics, stage).values() for c in row}, key=column_order)
    redecoded = [c for c in names if parse_name(c)[2] is not None]  # the same network under the other decoders
    names = [c for c in names if c not in redecoded]
    integer = [c for c in names if split_variant(c)[1] in VARIANT_LABELS]
    main = [c for c in names if c not in integer]
    caption = "; ".join(HEAD_CAPTIONS[c] for c in main if c in HEAD_CAPTIONS) or None
    tables = [results_table(metrics, stage, title, main, caption)]
    if integer:
        title2 = f"{stage}: integer heatmap alone (centre: cell centre; corner: argmax index, paper Table 7)"
        tables.append(results_table(metrics, stage, title2, integer))
    nme = [c for c in redecoded if parse_name(c)[:2] == ("nme", "")]
    if nme:
        title3 = f"{stage}: NME of the same network under the other decoders (FR / AUC in metrics.json)"
        tables.append(results_table(metrics, stage, title3, nme))
    return tables


def print_results(
    metrics: Mapping[str, float], stage: str = "test", title: str | None = None, console: Console | None = None
) -> None:
    console = console or Console()
    for table in results_tables(metrics, stage, title):
        console.print(table)
