"""Run results: the flat ``metrics.json`` of the design notes and the console table."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table


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
    prefix = stage + "/"
    for key, value in metrics.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix):].split("/")
        name, subset = parts[0], (parts[1] if len(parts) > 1 else "full")
        rows.setdefault(subset, {})[name] = float(value)
    # Full set first, then subsets in the order they were logged.
    return dict(sorted(rows.items(), key=lambda kv: kv[0] != "full"))


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def results_table(metrics: Mapping[str, float], stage: str = "test", title: str | None = None) -> Table:
    """A rich table: one row per subset; NME and FR in percent, AUC as a fraction (paper layout)."""
    rows = split_metrics(metrics, stage)
    columns = sorted({c for row in rows.values() for c in row}, key=column_order)
    table = Table(title=title or f"{stage} results")
    table.add_column("subset")
    for column in columns:
        table.add_column(column, justify="right")
    for subset, row in rows.items():
        table.add_row(subset, *(_fmt(row.get(c), 3 if c.startswith("auc") else 2) for c in columns))
    return table


def column_order(name: str) -> tuple[int, int, str]:
    # nme, fr, auc of the full decode first; variants such as "nme_integer" after them.
    variant = name.split("_", 2)[-1] if name.count("_") >= (1 if name.startswith("nme") else 2) else ""
    for rank, prefix in enumerate(("nme", "fr", "auc")):
        if name.startswith(prefix):
            return (variant != ""), rank, name
    return True, 3, name


def print_results(metrics: Mapping[str, float], stage: str = "test", title: str | None = None, console: Console | None = None) -> None:
    (console or Console()).print(results_table(metrics, stage, title))
