"""The report's assembly: read a multirun, write ``report.md``, the CSV files and the plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hih.analysis.report.charts import plot_decimal, plot_rows, plot_runs
from hih.analysis.report.csv_files import all_metrics_table, seed_csv_table, write_csv
from hih.analysis.report.runs import Run, collect_runs
from hih.analysis.report.seed_tables import compensation_table, seed_metric_table, seed_summary_table
from hih.analysis.report.seeds import CONFIDENCE, Row, group_runs, is_multi_seed, reference_rows
from hih.analysis.report.tables import (
    INTEGER_TITLE,
    TITLES,
    integer_table,
    metric_families,
    metric_table,
    summary_table,
    to_markdown,
)
from hih.evaluation.keys import metric_key, parse_name


@dataclass
class Report:
    runs: list[Run]
    markdown: Path
    csvs: dict[str, Path]
    plots: dict[str, Path]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def write_report(
    multirun_dir: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    stage: str = "test",
    plots: bool = True,
    ref: str | None = None,
) -> Report:
    """Read a multirun folder and write ``report.md``, ``runs.csv``, one CSV per metric table and the plots.

    Runs whose overrides differ only in ``seed`` form one row (:func:`group_runs`); when some row has
    several seeds, every table shows mean ± std over them with the number of completed seeds, the
    summary adds each row's paired difference to its reference (``ref``, an override string; default
    the baseline when present, :func:`reference_rows`) with a 95 % t interval, and ``rows.csv`` holds
    it all. One seed per row: one row per run, as without seeds. Re-decodes of a run's network
    (``test/<metric>@<method>``) are rows of their own in both cases.
    output_dir defaults to ``<multirun_dir>/report``. Returns what was written.
    """
    root = Path(multirun_dir)
    runs = collect_runs(root)
    out = Path(output_dir) if output_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = group_runs(runs, stage)

    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    sections = [
        f"# Sweep report: {root}",
        "",
        f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".",
        "NME and FR in percent, AUC as a fraction (paper layout); rows are labelled by the overrides that vary.",
        "",
    ]
    csvs = {"runs": write_csv(out / "runs.csv", *all_metrics_table(runs, stage))}
    if is_multi_seed(rows):
        sections += _seed_sections(rows, ref, stage, out, csvs)
        if plots:
            path = plot_rows(rows, out / "rows_nme.png", "nme", stage)
            written = {"rows": path} if path is not None else {}
            sections += [f"![rows]({path.name})", ""] if path is not None else []
        else:
            written = {}
        header, table = summary_table(runs, stage)
        sections += ["## Every job", "", to_markdown(header, table), ""]
        markdown = out / "report.md"
        markdown.write_text("\n".join(sections))
        return Report(runs, markdown, csvs, written)

    # One seed per grid point: one row per run (re-decodes after their run), as the paper's tables.
    shown = [r for row in rows for r in row.runs]
    sections += ["## Runs", ""]
    header, table = summary_table(shown, stage)
    sections += [to_markdown(header, table), ""]
    glance_done = False
    for metric in metric_families(shown, stage):
        header, table = metric_table(shown, metric, stage)
        if not table:
            continue
        if parse_name(metric)[1] and not glance_done:  # Table 7's summary heads its section
            glance_done = True
            g_header, g_rows = integer_table(shown, stage)
            csvs["integer"] = write_csv(out / "integer.csv", g_header, g_rows)
            sections += [f"## {INTEGER_TITLE}", "", to_markdown(g_header, g_rows), ""]
        csvs[metric] = write_csv(out / f"{metric}.csv", header, table)
        sections += [f"## {TITLES.get(metric, metric)}", "", to_markdown(header, table, metric), ""]
    written: dict[str, Path] = {}
    if plots:
        from hih.progress import emit

        emit(f"tables written to {out}; drawing the plots")
        for name, fn in (
            ("runs", lambda p: plot_runs(shown, p, "nme", stage)),
            ("decimal", lambda p: plot_decimal(runs, p, "nme", stage)),
        ):
            path = fn(out / f"{name}_nme.png")
            if path is not None:
                written[name] = path
                sections += [f"![{name}]({path.name})", ""]
    markdown = out / "report.md"
    markdown.write_text("\n".join(sections))
    return Report(runs, markdown, csvs, written)


def _seed_sections(rows: Sequence[Row], ref: str | None, stage: str, out: Path, csvs: dict[str, Path]) -> list[str]:
    """The Markdown of a multi-seed report (and its CSVs into ``csvs``)."""
    refs = reference_rows(rows, ref)
    seeds = sorted({s for row in rows for s in row.seeds}, key=lambda s: (len(s), s))
    header, table = seed_summary_table(rows, refs, stage)
    csvs["rows"] = write_csv(out / "rows.csv", *seed_csv_table(rows, refs, stage))
    with_ref = any(ref_row is not None for ref_row in refs.values())
    sections = [
        (
            f"{len(rows)} rows over seeds {', '.join(seeds) or '-'}: each cell is mean ± standard deviation "
            "over the row's "
            'completed seeds (sample std, ddof = 1); "seeds" counts the completed ones against the row\'s jobs, '
            "and names "
            "how the others ended (failed, running, not started: never averaged in)."
        )
    ]
    if with_ref:
        sections[-1] += (
            f" Δ nme: the row minus its reference (the reference row at the row's other overrides), paired by seed, "
            f"mean [{int(CONFIDENCE * 100)} % t interval over the pairs]; * marks an interval that excludes 0. "
            "Re-decode rows (→ <method>) decode the same trained networks as the row above them."
        )
    sections += ["", "## Rows (mean ± std over seeds)", "", to_markdown(header, table), ""]
    runs = [r for row in rows for r in row.runs]
    if with_ref and any(metric_key(stage, "nme", variant="_integer") in r.metrics for r in runs):
        header, table = compensation_table(rows, refs, stage)
        csvs["compensation"] = write_csv(out / "compensation.csv", header, table)
        note = (
            "gain = integer-only NME (argmax at the cell centre) − NME: what the head or decoder adds on its own "
            "integer heatmap. The last column compares the row's integer heatmap with the reference's NME: "
            "whether training the head helped or hurt the heatmap it reads."
        )
        sections += [
            "## Compensation: full decode against the integer heatmap alone, mean ± std over seeds",
            "",
            note,
            "",
            to_markdown(header, table),
            "",
        ]
    for metric in metric_families(runs, stage):
        header, table = seed_metric_table(rows, metric, stage)
        if not table:
            continue
        csvs[metric] = write_csv(out / f"{metric}.csv", header, table)
        sections += [
            f"## {TITLES.get(metric, metric)}, mean ± std over seeds",
            "",
            to_markdown(header, table, metric),
            "",
        ]
    return sections
