"""Run discovery and status: every job folder of a multirun (and the grid's jobs not started yet) as a
:class:`Run` with its overrides, config, metrics and how it ended (see :mod:`hih.analysis.report`)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hih.analysis.results import write_json

log = logging.getLogger(__name__)


STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"


def write_status(job_dir: str | os.PathLike, status: Mapping[str, Any]) -> Path:
    """Atomically (re)write ``status.json`` in a job folder."""
    return write_json(Path(job_dir) / STATUS_FILE, dict(status))


def read_status(job_dir: str | os.PathLike) -> dict | None:
    path = Path(job_dir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return {"status": "unknown", "error": f"unreadable {path}: {e}"}


@dataclass
class Run:
    """One job of a multirun: where it is, what it overrode, how it ended, what it measured."""

    num: int | None
    path: Path | None
    overrides: list[str]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    error: str | None = None
    label: str = ""

    @property
    def model(self) -> str:
        return (
            str(self.config.get("model", {}).get("name", ""))
            if self.config
            else override_value(self.overrides, "model") or ""
        )

    def value(self, dotted: str) -> Any:
        """A config value by dotted key (``model.decimal_size``), None when absent."""
        return config_value(self.config, dotted)


def config_value(config: Mapping, dotted: str) -> Any:
    """``config``'s value at a dotted key (``model.decimal_size``) of a plain nested dict, None when absent."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def override_value(overrides: Sequence[str], key: str) -> str | None:
    for o in overrides:
        k, _, v = o.lstrip("+~").partition("=")
        if k == key:
            return v
    return None


def _load_yaml(path: Path) -> Any:
    # Plain YAML: interpolations stay strings, nothing is resolved or executed.
    with open(path) as f:
        return yaml.safe_load(f)


def find_job_dirs(multirun_dir: str | os.PathLike) -> list[Path]:
    """Folders holding ``.hydra/config.yaml`` under ``multirun_dir`` (the folder itself for a single run)."""
    root = Path(multirun_dir)
    if (root / ".hydra" / "config.yaml").is_file():
        return [root]
    found = [p.parent.parent for p in root.glob("**/.hydra/config.yaml") if ".submitit" not in p.parts]
    return sorted(found, key=_job_sort_key)


def _job_sort_key(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else math.inf for p in path.parts[-2:]), str(path)


def _job_num(job_dir: Path) -> int | None:
    hydra_yaml = job_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        try:
            num = (_load_yaml(hydra_yaml) or {}).get("hydra", {}).get("job", {}).get("num")
            if num is not None:
                return int(num)
        except (yaml.YAMLError, OSError, ValueError, AttributeError):
            pass
    return int(job_dir.name) if job_dir.name.isdigit() else None


_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|Error executing job|job failed:")


def _failure_in_logs(job_dir: Path) -> str | None:
    """The last error line of a traceback in the job's ``*.log`` files, if any."""
    for log_file in sorted(job_dir.glob("*.log")):
        try:
            text = log_file.read_text(errors="replace")
        except OSError:
            continue
        matches = list(_TRACEBACK.finditer(text))
        if matches:
            match = matches[-1]  # the last traceback: the one that ended the job
            tail = [ln.strip() for ln in text[match.start() :].splitlines() if ln.strip()]
            errors = [ln for ln in tail if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
            return (errors[-1] if errors else tail[0])[:500] + f" (see {log_file.name})"
    return None


def read_run(job_dir: str | os.PathLike) -> Run:
    """One job folder -> :class:`Run` with its status (see the module notes)."""
    job_dir = Path(job_dir)
    hydra_dir = job_dir / ".hydra"
    overrides = _load_yaml(hydra_dir / "overrides.yaml") if (hydra_dir / "overrides.yaml").is_file() else []
    config = _load_yaml(hydra_dir / "config.yaml") or {}
    run = Run(
        num=_job_num(job_dir),
        path=job_dir,
        overrides=[str(o) for o in overrides or []],
        status="incomplete",
        config=config,
    )
    status = read_status(job_dir)
    metrics_path = job_dir / METRICS_FILE
    if metrics_path.is_file():
        try:
            run.metrics = {k: float(v) for k, v in json.loads(metrics_path.read_text()).items()}
            run.status = "completed"
            return run
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as e:
            run.status, run.error = "failed", f"unreadable {metrics_path}: {e}"
            return run
    if status is not None and status.get("status") == "failed":
        run.status, run.error = "failed", status.get("error") or "failed (no message)"
        return run
    logged = _failure_in_logs(job_dir)
    if logged is not None:
        run.status, run.error = "failed", logged
    elif status is not None and status.get("status") == "running" and (ended := _scheduler_ended(status)):
        run.status, run.error = "cancelled", f"{ended} (see {status['scheduler_log']})"
    elif status is not None and status.get("status") == "running":
        run.status = "running"
        run.error = (
            f"started {status.get('started', '?')} on {status.get('host', '?')} (pid {status.get('pid', '?')}); "
            "still running, or killed"
        )
    elif status is not None and status.get("status") == "completed":
        run.status, run.error = "no metrics", "the job ended without writing metrics.json (test=false?)"
    return run


def _scheduler_ended(status: dict) -> str | None:
    from hih.analysis.scheduler_log import ended_by_scheduler

    return ended_by_scheduler(status["scheduler_log"]) if status.get("scheduler_log") else None


def expected_overrides(multirun_dir: str | os.PathLike) -> list[list[str]] | None:
    """The grid of a basic-sweeper multirun (job num -> overrides) from its ``multirun.yaml``.

    None when there is no multirun.yaml, the sweeper is not Hydra's basic one (Optuna decides its
    trials as it goes), or Hydra is not installed.
    """
    path = Path(multirun_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:
        return None
    cfg = _load_yaml(path) or {}
    hydra_cfg = cfg.get("hydra", {})
    sweeper = hydra_cfg.get("sweeper", {}) or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    args = list(hydra_cfg.get("overrides", {}).get("task", []) or [])
    try:
        parsed = OverridesParser.create().parse_overrides(params + args)
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception as e:  # a grammar this Hydra cannot parse: report the jobs that exist
        log.warning("cannot expand the sweep grid of %s: %s", path, e)
        return None
    return [list(job) for batch in batches for job in batch]


def collect_runs(multirun_dir: str | os.PathLike) -> list[Run]:
    """Every job of a multirun folder, in job order, labelled by the overrides that vary."""
    root = Path(multirun_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"multirun folder {root} does not exist; expected e.g. outputs/train/multirun/<time>")
    from hih.progress import track

    runs = [read_run(d) for d in track(find_job_dirs(root), "reading runs", unit="runs")]
    grid = expected_overrides(root)
    if grid is not None:
        seen = {r.num for r in runs}
        for num, overrides in enumerate(grid):
            if num not in seen:
                runs.append(Run(num=num, path=None, overrides=overrides, status="not started"))
    if not runs:
        raise FileNotFoundError(
            f"no Hydra job folders (with .hydra/config.yaml) under {root}: is it a multirun folder "
            "(outputs/<task>/multirun/<time>) written by hih-train -m?"
        )
    runs.sort(key=lambda r: (r.num is None, r.num if r.num is not None else 0, str(r.path)))
    for run, label in zip(runs, run_labels(runs)):
        run.label = label
    return runs


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Each run's overrides that differ between runs (``model=hih_c model.stacks=2``)."""
    parsed = [dict(o.lstrip("+~").partition("=")[::2] for o in r.overrides) for r in runs]
    keys: list[str] = []
    for p in parsed:
        keys += [k for k in p if k not in keys]
    varying = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    labels = []
    for r, p in zip(runs, parsed):
        parts = [f"{k}={p[k]}" for k in varying if k in p]
        labels.append(" ".join(parts) or r.model or (f"job {r.num}" if r.num is not None else str(r.path)))
    return labels
