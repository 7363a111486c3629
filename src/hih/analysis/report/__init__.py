"""Turn a Hydra multirun folder into the paper's tables: one row per run, failed runs included.

A multirun folder (``outputs/train/multirun/<time>``) holds one folder per job with
``.hydra/config.yaml``, ``.hydra/overrides.yaml`` and, once the job has finished, ``metrics.json``
(the flat ``test/...`` keys of the design notes). :func:`collect_runs` reads every job and gives it
a status; :func:`write_report` writes Markdown and CSV tables in the paper's layout (rows = runs,
columns = full set and subsets; NME and FR in percent, AUC as a fraction) and the plots.

Status of a job, from the most to the least certain evidence:
  ``completed``    metrics.json is there;
  ``failed``       status.json (written by :class:`hih.cli.hydra_callbacks.SweepCallback`) says so, or the job log has
                   a traceback;
  ``cancelled``    status.json says the job started, and the scheduler's log that it ended it (scancel,
                   time limit; :mod:`hih.analysis.scheduler_log`);
  ``running``      status.json says the job started and nothing says it ended (still running, or
                   killed by the scheduler: time limit, out of memory);
  ``no metrics``   the job ended without metrics.json (e.g. ``test=false``);
  ``incomplete``   a job folder with neither metrics nor a status (an older run, or killed);
  ``not started``  part of the sweep's grid (multirun.yaml) but no job folder yet.
Nothing is dropped silently: every job of the grid is a row.

Seeds: jobs whose overrides differ only in ``seed`` are one row of the tables (:func:`group_runs`):
mean ± standard deviation and the number of completed seeds, failed or missing ones counted, and the
paired difference to a reference row with its 95 % t interval (:class:`Difference`). A run that was
re-decoded (``test/<metric>@<method>``, :func:`hih.evaluation.redecoders`) gives one more row per method.

Reading and reporting need no running Hydra app; Hydra's grid expansion is used only to list
not-started jobs.

The parts: :mod:`~hih.analysis.report.runs` (run discovery and status), :mod:`~hih.analysis.report.seeds`
(seed grouping and statistics), :mod:`~hih.analysis.report.tables` and
:mod:`~hih.analysis.report.seed_tables` (the tables), :mod:`~hih.analysis.report.charts` (the plots),
:mod:`~hih.analysis.report.csv_files` (the CSV files) and :mod:`~hih.analysis.report.assemble` (the report).
"""

from __future__ import annotations

from hih.analysis.report.assemble import Report, write_report
from hih.analysis.report.charts import plot_decimal, plot_rows, plot_runs
from hih.analysis.report.csv_files import all_metrics_table, seed_csv_table, write_csv
from hih.analysis.report.runs import (
    METRICS_FILE,
    STATUS_FILE,
    Run,
    collect_runs,
    config_value,
    expected_overrides,
    find_job_dirs,
    read_run,
    read_status,
    run_labels,
    write_status,
)
from hih.analysis.report.seed_tables import compensation_table, seed_metric_table, seed_summary_table
from hih.analysis.report.seeds import (
    CONFIDENCE,
    DEFAULT_REF,
    SEED_KEY,
    SEED_KEYS,
    Difference,
    Row,
    Stats,
    as_redecode,
    group_runs,
    is_multi_seed,
    redecoded_methods,
    reference_rows,
    run_seed,
)
from hih.analysis.report.tables import (
    INTEGER_TITLE,
    INTEGER_VARIANTS,
    METRICS,
    SUBSET_LABELS,
    TITLES,
    integer_table,
    metric_families,
    metric_table,
    subset_order,
    summary_table,
    to_markdown,
)

__all__ = [
    "CONFIDENCE",
    "DEFAULT_REF",
    "INTEGER_TITLE",
    "INTEGER_VARIANTS",
    "METRICS",
    "METRICS_FILE",
    "SEED_KEY",
    "SEED_KEYS",
    "STATUS_FILE",
    "SUBSET_LABELS",
    "TITLES",
    "Difference",
    "Report",
    "Row",
    "Run",
    "Stats",
    "all_metrics_table",
    "as_redecode",
    "collect_runs",
    "compensation_table",
    "config_value",
    "expected_overrides",
    "find_job_dirs",
    "group_runs",
    "integer_table",
    "is_multi_seed",
    "metric_families",
    "metric_table",
    "plot_decimal",
    "plot_rows",
    "plot_runs",
    "read_run",
    "read_status",
    "redecoded_methods",
    "reference_rows",
    "run_labels",
    "run_seed",
    "seed_csv_table",
    "seed_metric_table",
    "seed_summary_table",
    "subset_order",
    "summary_table",
    "to_markdown",
    "write_csv",
    "write_report",
    "write_status",
]
