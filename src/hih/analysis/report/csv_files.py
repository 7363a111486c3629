"""The report's CSV files: any table as CSV, the wide table of every job and the wide table over seeds."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hih.analysis.report.runs import Run
from hih.analysis.report.seeds import Difference, Row
from hih.evaluation.keys import in_stage


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return path


def all_metrics_table(runs: Sequence[Run], stage: str = "test") -> tuple[list[str], list[list[Any]]]:
    """Wide CSV: job, label, model, status, overrides, error, then every metric key of any run."""
    keys = sorted({k for r in runs for k in r.metrics if in_stage(k, stage)})
    header = ["job", "run", "model", "status", "overrides", "error", "folder"] + keys
    rows = [
        [r.num, r.label, r.model, r.status, " ".join(r.overrides), r.error, str(r.path or "")]
        + [r.metrics.get(k) for k in keys]
        for r in runs
    ]
    return header, rows


def seed_csv_table(
    rows: Sequence[Row], refs: Mapping[int, Row | None], stage: str = "test"
) -> tuple[list[str], list[list[Any]]]:
    """Wide CSV of the rows: label, model, re-decode, reference, seeds, counts, then per metric key its
    mean, std, n and the paired difference to the reference (mean, interval low / high, n pairs)."""
    keys = sorted({k for row in rows for r in row.runs for k in r.metrics if in_stage(k, stage)})
    header = ["run", "model", "redecode", "ref", "seeds", "completed", "jobs"]
    for k in keys:
        header += [f"{k} mean", f"{k} std", f"{k} n", f"{k} diff", f"{k} diff low", f"{k} diff high", f"{k} diff n"]
    out = []
    for i, row in enumerate(rows):
        ref = refs.get(i)
        line = [
            row.label,
            row.model,
            row.redecode or "",
            "" if ref is None else ("(reference)" if ref is row else ref.label),
            " ".join(row.seeds),
            len(row.completed),
            len(row.runs),
        ]
        for k in keys:
            st = row.stats(k)
            d = (
                Difference.paired(row.values(k), ref.values(k))
                if ref is not None and ref is not row
                else Difference(None, None, None, 0)
            )
            line += [st.mean, st.std, st.n, d.mean, d.low, d.high, d.n if ref is not None and ref is not row else None]
        out.append(line)
    return header, out
