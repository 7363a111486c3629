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
re-decoded (``test/<metric>@<method>``, :func:`hih.module.redecoders`) gives one more row per method.

Reading and reporting need no running Hydra app; Hydra's grid expansion is used only to list
not-started jobs.
"""

from __future__ import annotations

import csv
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

from hih.analysis.results import HEAD_COLUMNS, digits, write_json
from hih.methods import codec_parameters

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"
#: Metric families in the paper's order (Tables 1/2/5/7).
METRICS = ("nme", "fr_10", "auc_10")
#: Integer heatmap only (Table 7), each metric in two conventions, the paper's first: "_integer_corner"
#: reads the argmax index (the cell's corner), which the paper's integer-only / full ratios match
#: (4.90 / 4.31 = 1.14 for HIH_C, 1 stack); "_integer" reads the cell centre (half the quantization cost).
INTEGER_VARIANTS = ("_integer_corner", "_integer")
SUBSET_LABELS = {
    "full": "Fullset",
    "pose": "Pose",
    "expression": "Exp.",
    "illumination": "Ill.",
    "makeup": "Mu.",
    "occlusion": "Occ.",
    "blur": "Blur",
    "common": "Com.",
    "challenge": "Cha.",
}


# ---------------------------------------------------------------------------------------- status
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


# ------------------------------------------------------------------------------------ collecting
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
            else _override_value(self.overrides, "model") or ""
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


def _override_value(overrides: Sequence[str], key: str) -> str | None:
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
    elif status is not None and status.get("status") == "running" and _scheduler_ended(status):
        run.status, run.error = "cancelled", f"{_scheduler_ended(status)} (see {status['scheduler_log']})"
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


# -------------------------------------------------------------------------------------- tables
def subset_order(runs: Sequence[Run], stage: str = "test") -> list[str]:
    """Subsets present in the runs' metrics: full set first, then the layout's order."""
    found: set[str] = set()
    for r in runs:
        for key in r.metrics:
            parts = key.split("/")
            if parts[0] == stage and len(parts) == 3:
                found.add(parts[2])
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
    return ["full"] + order + sorted(found - set(order))


def metric_families(runs: Sequence[Run], stage: str = "test") -> list[str]:
    """nme, fr_10, auc_10 (paper order), then the integer-only variants found, each metric's corner
    (Table 7's convention) before its centre (nme_integer_corner, nme_integer, fr_10_integer_corner, ...),
    then the head metrics (decimal_acc, decimal_gain, offset_err, offset_gain)."""
    # <metric>@<method>: a re-decode, shown as a row of its own (group_runs), not as a column.
    names = {
        k.split("/")[1]
        for r in runs
        for k in r.metrics
        if k.startswith(stage + "/") and k.count("/") >= 1 and "@" not in k
    }
    base = [m for m in METRICS if m in names] or sorted(
        n for n in names if "_integer" not in n and n not in HEAD_COLUMNS
    )
    variants = [m + v for m in METRICS for v in INTEGER_VARIANTS if m + v in names]
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
        values = [r.metrics.get(f"{stage}/{metric}" + ("" if s == "full" else f"/{s}")) for s in subsets]
        if (
            r.status == "completed"
            and all(v is None for v in values)
            and (metric.endswith(INTEGER_VARIANTS) or metric in HEAD_COLUMNS)
        ):
            # Families only some runs have: the baseline has no integer-only decode and no head metric.
            continue
        rows.append([r.label, r.model, r.status] + values)
    return header, rows


def summary_table(runs: Sequence[Run], stage: str = "test") -> tuple[list[str], list[list[Any]]]:
    """One row per run: full-set NME / FR / AUC (and integer-only NME at the corner and the centre, the
    head metric and its gain where present), status and what went wrong."""
    families = [
        m
        for m in metric_families(runs, stage)
        if m in METRICS or m in ("nme_integer_corner", "nme_integer") or m in HEAD_COLUMNS
    ]
    header = ["job", "run", "model", "status"] + families + ["folder / error"]
    rows = []
    for r in runs:
        where = r.error or (str(r.path) if r.path else "")
        rows.append([r.num, r.label, r.model, r.status] + [r.metrics.get(f"{stage}/{m}") for m in families] + [where])
    return header, rows


def _fmt(value: Any, column: str = "") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{3 if 'auc' in column else digits(column)}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], metric: str = "") -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(v, metric or h) for v, h in zip(row, header)) + " |")
    return "\n".join(lines)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return path


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
        full, corner, centre = (r.metrics.get(f"{stage}/nme{v}") for v in ("", *INTEGER_VARIANTS))
        if r.status == "completed" and corner is None and centre is None:
            continue  # no integer-only decode (the baseline's full decode is its integer heatmap)
        ratio = corner / full if corner is not None and full else None
        rows.append([r.label, r.model, r.status, full, corner, centre, ratio])
    return header, rows


# ----------------------------------------------------------------------------------- over seeds
SEED_KEY = "seed"
#: Overrides that choose seeds only: a job's grid point is its overrides less these (a sweep's
#: ``sweep.seeds=[3]`` run later into the same folder adds seeds to the same points).
SEED_KEYS = (SEED_KEY, "sweep.seeds")
#: Confidence of the paired intervals (t distribution over the seeds).
CONFIDENCE = 0.95
#: Default reference of the paired differences, when such a row exists.
DEFAULT_REF = "model=baseline"


def run_seed(run: Run) -> str | None:
    """The run's seed: its ``seed=`` override, else its config's ``seed``."""
    value = _override_value(run.overrides, SEED_KEY)
    if value is None and run.config:
        value = run.config.get(SEED_KEY)
    return None if value is None else str(value)


def _point(run: Run) -> tuple[str, ...]:
    """The run's overrides less its seed (:data:`SEED_KEYS`): the grid point it belongs to."""
    return tuple(o for o in run.overrides if o.lstrip("+~").partition("=")[0] not in SEED_KEYS)


def redecoded_methods(run: Run, stage: str = "test") -> list[str]:
    """The methods a run was re-decoded with (keys ``<stage>/<metric>@<method>``), in logged order."""
    found: list[str] = []
    for key in run.metrics:
        if key.startswith(stage + "/") and "@" in key:
            method = key.split("@", 1)[1].split("/", 1)[0]
            if method not in found:
                found.append(method)
    return found


def as_redecode(run: Run, method: str, stage: str = "test") -> Run:
    """``run`` as decoded by ``method``: its ``<metric>@<method>`` keys under the plain names.

    The same job (number, folder, seed, status) as ``run``: a failed training fails its re-decodes too.
    """
    metrics = {}
    for key, value in run.metrics.items():
        head, sep, rest = key.partition("@")
        if sep and rest.split("/", 1)[0] == method:
            metrics[head + rest[len(method) :]] = value
    status = run.status if run.status != "completed" or metrics else "no metrics"
    return Run(
        run.num,
        run.path,
        run.overrides,
        status,
        metrics,
        run.config,
        run.error,
        label=f"{run.label} → {method} (re-decode)",
    )


@dataclass
class Row:
    """One grid point: the runs whose overrides differ only in ``seed`` (one per seed, failed ones included).

    redecode: the method whose decode of these runs' network this row shows (None: the runs' own decode).
    """

    label: str
    runs: list[Run]
    redecode: str | None = None
    point: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        own = next((r.model for r in self.runs if r.model), "")
        return f"{self.redecode} (re-decode of {own})" if self.redecode else own

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.status == "completed"]

    @property
    def seeds(self) -> list[str]:
        return [s for s in (run_seed(r) for r in self.runs) if s is not None]

    def values(self, key: str) -> dict[str, float]:
        """seed -> value of ``key`` over the completed runs that logged it (NaN left out)."""
        out = {}
        for r in self.completed:
            v = r.metrics.get(key)
            if v is not None and not math.isnan(v):
                out[run_seed(r) or f"job {r.num}"] = float(v)
        return out

    def stats(self, key: str) -> Stats:
        return Stats.of(list(self.values(key).values()))


@dataclass(frozen=True)
class Stats:
    """Mean, sample standard deviation (ddof=1; None for one value) and n of a metric over seeds."""

    mean: float | None
    std: float | None
    n: int

    @staticmethod
    def of(values: Sequence[float]) -> Stats:
        n = len(values)
        if not n:
            return Stats(None, None, 0)
        mean = math.fsum(values) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        return Stats(mean, std, n)


@dataclass(frozen=True)
class Difference:
    """Row minus reference, paired by seed: mean difference, its 95 % t interval (None for < 2 pairs), n pairs."""

    mean: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    @staticmethod
    def paired(row: Mapping[str, float], ref: Mapping[str, float], confidence: float = CONFIDENCE) -> Difference:
        seeds = [s for s in row if s in ref]
        diffs = [row[s] - ref[s] for s in seeds]
        stats = Stats.of(diffs)
        if stats.n < 2:
            return Difference(stats.mean, None, None, stats.n)
        from scipy.stats import t

        half = float(t.ppf(0.5 + confidence / 2, stats.n - 1)) * stats.std / math.sqrt(stats.n)
        return Difference(stats.mean, stats.mean - half, stats.mean + half, stats.n)


def group_runs(runs: Sequence[Run], stage: str = "test") -> list[Row]:
    """Runs -> rows: one per grid point (overrides less ``seed``), in job order, each followed by
    its re-decode rows (one per method its runs were re-decoded with)."""
    points: dict[tuple[str, ...], list[Run]] = {}
    for r in runs:  # the grid lists a not-started job's overrides in its own order
        points.setdefault(tuple(sorted(_point(r))), []).append(r)
    firsts = [members[0] for members in points.values()]
    stripped = [Run(r.num, r.path, list(_point(r)), r.status, config=r.config) for r in firsts]
    rows: list[Row] = []
    for members, first, label in zip(points.values(), stripped, run_labels(stripped)):
        point = tuple(first.overrides)
        rows.append(Row(label, members, None, point))
        methods: list[str] = []
        for r in members:
            methods += [m for m in redecoded_methods(r, stage) if m not in methods]
        for method in methods:
            rows.append(
                Row(f"{label} → {method} (re-decode)", [as_redecode(r, method, stage) for r in members], method, point)
            )
    return rows


def _parse_ref(ref: str) -> dict[str, str]:
    parsed = {}
    for part in str(ref).split():
        key, sep, value = part.lstrip("+~").partition("=")
        if not sep:
            raise ValueError(
                f"ref={ref!r}: expected override strings key=value "
                "(e.g. ref=model=baseline or ref='model=wsm labels=ours')"
            )
        parsed[key] = value
    return parsed


def reference_rows(rows: Sequence[Row], ref: str | None = None) -> dict[int, Row | None]:
    """Each row's reference (index -> row, None when it has none).

    ``ref``: override string(s) naming the reference (``model=baseline``; default: the baseline when
    a row has it, else no differences). A row's reference is the reference row at its own values of
    every other override (``model=hih_c labels=ours`` -> ``model=baseline labels=ours``); a re-decode
    row's may be its own training's row (``ref=model=baseline``: DARK's re-decode against argmax).
    """
    spec = _parse_ref(ref) if ref else None
    own_rows = [r for r in rows if r.redecode is None]
    if spec is None:
        default = _parse_ref(DEFAULT_REF)
        if not any(_matches(r.point, default) for r in own_rows):
            return {i: None for i in range(len(rows))}
        spec = default
    candidates = [r for r in own_rows if _matches(r.point, spec)]
    if not candidates:
        known = sorted({o for r in own_rows for o in r.point})
        raise ValueError(f"ref={ref!r} matches no row; the rows' overrides: {', '.join(known) or '(none)'}")
    out = {}
    for i, row in enumerate(rows):
        others = _without(row.point, spec)
        found = [c for c in candidates if _without(c.point, spec) == others]
        out[i] = found[0] if found else None
    return out


def _pairs(point: Sequence[str]) -> dict[str, str]:
    return dict(o.lstrip("+~").partition("=")[::2] for o in point)


def _matches(point: Sequence[str], spec: Mapping[str, str]) -> bool:
    pairs = _pairs(point)
    return all(pairs.get(k) == v for k, v in spec.items())


def _without(point: Sequence[str], spec: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in _pairs(point).items() if k not in spec}


def is_multi_seed(rows: Sequence[Row]) -> bool:
    """Some grid point has more than one job (seeds): the report aggregates."""
    return any(len(r.runs) > 1 for r in rows)


def _pm(stats: Stats, column: str) -> str:
    if stats.mean is None:
        return "-"
    if stats.std is None:
        return _fmt(stats.mean, column)
    return f"{_fmt(stats.mean, column)} ± {_fmt(stats.std, column)}"


def _diff_text(diff: Difference | None, column: str) -> str:
    if diff is None or diff.mean is None:
        return "-"
    text = f"{diff.mean:+.{3 if 'auc' in column else digits(column)}f}"
    if diff.low is not None:
        places = 3 if "auc" in column else digits(column)
        text += f" [{diff.low:+.{places}f}, {diff.high:+.{places}f}]"
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
    families = [
        m
        for m in metric_families(runs, stage)
        if m in METRICS or m in ("nme_integer_corner", "nme_integer") or m in HEAD_COLUMNS
    ]
    header = ["run", "model", "seeds", *families, f"Δ nme vs ref [{int(CONFIDENCE * 100)} % CI]", "ref"]
    out = []
    for i, row in enumerate(rows):
        ref = refs.get(i)
        diff = (
            None
            if ref is None or ref is row
            else Difference.paired(row.values(f"{stage}/nme"), ref.values(f"{stage}/nme"))
        )
        ref_text = "(reference)" if ref is row else (ref.label if ref is not None else "-")
        out.append(
            [
                row.label,
                row.model,
                _count(row),
                *(_pm(row.stats(f"{stage}/{m}"), m) for m in families),
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
        nme = row.values(f"{stage}/nme")
        integer = row.values(f"{stage}/nme_integer")
        if not integer and row.redecode is None:
            integer = nme  # a plain heatmap's own decode is its integer heatmap (argmax at the cell centre)
        gain = {s: integer[s] - nme[s] for s in nme if s in integer}
        if ref is None or ref is row:
            d_nme = d_int = None
        else:
            d_nme = Difference.paired(nme, ref.values(f"{stage}/nme"))
            d_int = Difference.paired(integer, ref.values(f"{stage}/nme")) if row.redecode is None else None
        out.append(
            [
                row.label,
                row.model,
                _count(row),
                _pm(row.stats(f"{stage}/nme"), "nme"),
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
        keys = [f"{stage}/{metric}" + ("" if s == "full" else f"/{s}") for s in subsets]
        cells = [_pm(row.stats(k), metric) for k in keys]
        if (
            row.completed
            and all(c == "-" for c in cells)
            and (metric.endswith(INTEGER_VARIANTS) or metric in HEAD_COLUMNS)
        ):
            continue
        out.append([row.label, row.model, _count(row)] + cells)
    return header, out


def seed_csv_table(
    rows: Sequence[Row], refs: Mapping[int, Row | None], stage: str = "test"
) -> tuple[list[str], list[list[Any]]]:
    """Wide CSV of the rows: label, model, re-decode, reference, seeds, counts, then per metric key its
    mean, std, n and the paired difference to the reference (mean, interval low / high, n pairs)."""
    keys = sorted({k for row in rows for r in row.runs for k in r.metrics if k.startswith(stage + "/")})
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


def plot_rows(
    rows: Sequence[Row], path: str | os.PathLike, metric: str = "nme", stage: str = "test", title: str | None = None
) -> Path | None:
    """Bar chart of one full-set metric per row: the mean over seeds, error bars one standard deviation."""
    done = [(row, row.stats(f"{stage}/{metric}")) for row in rows]
    done = [(row, st) for row, st in done if st.n]
    if not done:
        return None
    means = [st.mean for _, st in done]
    stds = [st.std or 0.0 for _, st in done]
    fig, ax = _figure((max(4.0, 0.6 * len(done) + 2), 4.5))
    colors = ["tab:orange" if row.redecode else "tab:blue" for row, _ in done]
    bars = ax.bar(range(len(done)), means, yerr=stds, capsize=3, color=colors)
    ax.bar_label(
        bars, labels=[f"{_fmt(m, metric)}\nn={st.n}" for m, (_, st) in zip(means, done)], fontsize=6, padding=2
    )
    ax.set_xticks(range(len(done)), [row.label for row, _ in done], rotation=40, ha="right", fontsize=6)
    ax.set_ylabel(f"{metric} ({'fraction' if 'auc' in metric else '%'}), mean ± std over seeds")
    ax.set_title(title or f"{stage} {metric}: mean ± std over seeds (orange: re-decodes)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------------------- plots
def plot_runs(
    runs: Sequence[Run], path: str | os.PathLike, metric: str = "nme", stage: str = "test", title: str | None = None
) -> Path | None:
    """Bar chart of one full-set metric per completed run (the per-head comparison of Table 5)."""
    done = [r for r in runs if f"{stage}/{metric}" in r.metrics]
    if not done:
        return None
    values = [r.metrics[f"{stage}/{metric}"] for r in done]
    fig, ax = _figure((max(4.0, 0.9 * len(done) + 2), 4))
    bars = ax.bar(range(len(done)), values, color="tab:blue")
    ax.bar_label(bars, labels=[_fmt(v, metric) for v in values], fontsize=7)
    ax.set_xticks(range(len(done)), [r.label for r in done], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"{metric} ({'fraction' if 'auc' in metric else '%'})")
    missing = [r for r in runs if r not in done]
    ax.set_title(
        title or f"{stage} {metric} per run" + (f" ({len(missing)} without results)" if missing else ""), fontsize=9
    )
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _has_decimal_map(model: str | None) -> bool:
    """Whether method ``model``'s codec has a decimal resolution (the registry's word; False if unknown)."""
    try:
        return "decimal_size" in codec_parameters(str(model))
    except ValueError:  # a run of a method this installation does not register
        return False


def plot_decimal(runs: Sequence[Run], path: str | os.PathLike, metric: str = "nme", stage: str = "test") -> Path | None:
    """NME against the decimal heatmap resolution (Table 8), one line per (model, stacks); None
    unless the completed HIH runs use at least two resolutions."""
    groups: dict[str, list[tuple[int, float]]] = {}
    for r in runs:
        size = r.value("model.decimal_size")
        if f"{stage}/{metric}" not in r.metrics or size is None or not _has_decimal_map(r.model):
            continue
        groups.setdefault(f"{r.model} ({r.value('model.stacks') or 1} stack)", []).append(
            (int(size), r.metrics[f"{stage}/{metric}"])
        )
    if len({s for pts in groups.values() for s, _ in pts}) < 2:
        return None
    fig, ax = _figure((5, 4))
    for name, pts in sorted(groups.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
    sizes = sorted({s for pts in groups.values() for s, _ in pts})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [f"{s}x{s}" for s in sizes])
    ax.set_xlabel("decimal heatmap resolution")
    ax.set_ylabel(f"{stage} {metric} (%)")
    ax.set_title("NME against decimal resolution (Table 8)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _figure(size: tuple[float, float]):
    # A bare Figure, not pyplot: no global backend switch (notebooks keep theirs), works headless.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=120)
    return fig, fig.add_subplot()


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


# -------------------------------------------------------------------------------------- report
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
        if "_integer" in metric and not glance_done:  # Table 7's summary heads its section
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
    if with_ref and any(f"{stage}/nme_integer" in r.metrics for r in runs):
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


def all_metrics_table(runs: Sequence[Run], stage: str = "test") -> tuple[list[str], list[list[Any]]]:
    """Wide CSV: job, label, model, status, overrides, error, then every metric key of any run."""
    keys = sorted({k for r in runs for k in r.metrics if k.startswith(stage + "/")})
    header = ["job", "run", "model", "status", "overrides", "error", "folder"] + keys
    rows = [
        [r.num, r.label, r.model, r.status, " ".join(r.overrides), r.error, str(r.path or "")]
        + [r.metrics.get(k) for k in keys]
        for r in runs
    ]
    return header, rows
