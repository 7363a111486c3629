"""The one number formatter of the analysis tables (the report, the console and W&B tables, the
learning curves): NME and FR in percent with 2 decimals, AUC, accuracies and cell errors with 3."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["digits", "fmt"]


def digits(name: str) -> int:
    """Decimals shown for a metric: fractions and cell errors 3, percentages 2."""
    return 3 if name.startswith("auc") or name.endswith(("_acc", "_err")) else 2


def fmt(value: Any, column: str = "", places: int | None = None, signed: bool = False) -> str:
    """One table cell: ``-`` for a missing or NaN value; a float (any number when ``places`` is given)
    with ``places`` decimals (default: 3 for an AUC column, else :func:`digits` of ``column``), ``+``
    signed on request; anything else as Markdown-safe text."""
    if value is None or (isinstance(value, str) and value == "") or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) or places is not None:
        places = (3 if "auc" in column else digits(column)) if places is None else places
        return f"{value:{'+' if signed else ''}.{places}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")
