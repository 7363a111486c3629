"""Loggers that survive a kill and a resume in the same run dir (``ckpt_path=last``).

Lightning's CSVLogger deletes ``csv/metrics.csv`` when a new process opens the run dir, so a resumed
run kept only the rows logged after the resume. ``CSVLogger`` here keeps the earlier rows and drops
only those the resumed run logs again: rows at or after the first step this process logs (training
restarts from the checkpoint's step and re-logs from there). With ``flush_logs_every_n_steps: 1``
(conf/logger/csv.yaml) every row is on disk when it is logged, so a kill loses none.

``WandbLogger`` derives the run id from the run dir, so a resumed run continues the same W&B run
(``resume="allow"``), and leaves out the ``anonymous`` setting that W&B only warns about.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger as _CSVLogger
from lightning.pytorch.loggers import WandbLogger as _WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _ResumingWriter(ExperimentWriter):
    """ExperimentWriter that keeps an earlier process's rows below the first step logged now."""

    def __init__(self, log_dir: str) -> None:
        self._earlier: list[dict[str, str]] | None = None
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        # Replaces the base class's "previous log files will be deleted": read them instead.
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as fh:
                self._earlier = list(csv.DictReader(fh))

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if self._earlier is not None:
            first = step if step is not None else 0
            self._write_earlier([row for row in self._earlier if _step(row) < first])
            self._earlier = None
        super().log_metrics(metrics_dict, step)

    def _write_earlier(self, rows: list[dict[str, str]]) -> None:
        keys = sorted({k for row in rows for k, v in row.items() if v != ""})
        self.metrics_keys = keys
        with self._fs.open(self.metrics_file_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        if not rows:
            self._fs.rm_file(self.metrics_file_path)  # nothing kept: the base class writes a fresh file


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")  # comparisons with nan are False: such a row is dropped


class CSVLogger(_CSVLogger):
    """Lightning's CSVLogger, resumable in place (see the module docstring)."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumingWriter(log_dir=self.log_dir)
        return self._experiment


def run_id(run_dir: str | os.PathLike) -> str:
    """A W&B run id that is the same for every process training in ``run_dir`` (16 hex digits)."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


class WandbLogger(_WandbLogger):
    """Lightning's WandbLogger with a run id derived from ``save_dir`` (the run dir) unless one is given."""

    def __init__(self, save_dir: str = ".", id: str | None = None, **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir, id=id or run_id(save_dir), **kwargs)
        self._wandb_init["resume"] = "allow"
        # Lightning passes anonymous=None, which W&B >= 0.19 reports as a setting with no effect.
        self._wandb_init.pop("anonymous", None)
