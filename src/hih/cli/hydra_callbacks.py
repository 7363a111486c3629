"""Hydra callbacks (``hydra.callbacks`` in conf/): the run-dir guard that never overwrites an earlier
run's results (run before Hydra writes into the run dir), and the sweeps' job status and seeds."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from hih.analysis.report.runs import read_status, write_status
from hih.rundir import RunDirExistsError, check_run_dir

__all__ = ["RunDirGuard", "SweepCallback", "add_seeds", "point_by_swept_keys"]

log = logging.getLogger(__name__)


class RunDirGuard(Callback):
    """Hydra callback (``hydra.callbacks``): checks the run dir before Hydra writes its config there.

    A training run with ``ckpt_path`` set is a resume and may continue in its own dir; every other
    run (a new training run, hih-eval, hih-predict) needs a dir without earlier results.
    """

    def __init__(self, resume_tasks: tuple[str, ...] | list[str] = ("train",)) -> None:
        self.resume_tasks = tuple(resume_tasks)

    def _check(self, config: Any, run_dir: str) -> None:
        resuming = config.get("task_name") in self.resume_tasks and config.get("ckpt_path") not in (None, "", "null")
        try:
            check_run_dir(run_dir, resuming)
        except RunDirExistsError as err:
            # Hydra turns a callback's exceptions into warnings and goes on; SystemExit is not an
            # Exception, so it stops the app here (exit status 1), before anything is written.
            raise SystemExit(f"Error: {err}") from None

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, config.hydra.run.dir)

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        # Multirun jobs: each job's own dir (known once the job starts).
        if str(config.hydra.mode) == "RunMode.MULTIRUN":
            self._check(config, config.hydra.runtime.output_dir)


class SweepCallback(Callback):
    """Hydra callback (``hydra.callbacks``) of the sweep configs: job status files and one W&B group.

    A subclass of Hydra's ``Callback``: Hydra calls every hook (on_run_*, on_multirun_end, ...) on
    each callback, and one this class lacked was reported as a warning at the end of every multirun.

    on_job_start writes ``status.json`` = ``{"status": "running", "started", "host", "pid"}`` into
    the job's folder (under SLURM also ``slurm_job`` and ``scheduler_log``, the job's stderr file);
    on_job_end rewrites it as ``completed`` or ``failed`` with the error and its traceback (also
    logged to the job's log). This is how the report tells a failed job from a running one: Hydra's
    launchers keep going after a failing job but record the failure nowhere in the job's folder.

    on_multirun_start resolves ``wandb_sweep`` once in the sweep's master config: Hydra copies the
    master's resolver cache into every job's config, so ``${now:...}`` in the group is the same
    for all jobs of the sweep (even when ``hydra.sweep.dir`` holds no timestamp). It also adds the
    seeds of ``sweep.seeds`` to the basic sweeper's grid (:func:`add_seeds`), before Hydra expands it,
    and names each job's grid point by its swept keys only (:func:`point_by_swept_keys`): the W&B group.
    """

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        add_seeds(config)
        point_by_swept_keys(config)
        for key in ("wandb_sweep", "wandb_group"):
            try:
                OmegaConf.select(config, key)
                break
            except Exception as e:  # an unresolvable group fails in the job itself, with the job's error
                log.debug("%s not resolved in the master config: %s", key, e)

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if _rank() > 0:  # one process per job writes its status: the first of a multi-process (srun) job
            return
        status = {"status": "running", "started": _now(), "host": socket.gethostname(), "pid": os.getpid()}
        write_status(_job_dir(config), {**status, **_scheduler_job()})

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        if _rank() > 0:
            return
        job_dir = _job_dir(config)
        previous = read_status(job_dir) or {}
        status = {**previous, "ended": _now()}
        failed = getattr(getattr(job_return, "status", None), "name", "") == "FAILED"
        if failed:
            exc = getattr(job_return, "_return_value", None)  # .return_value would re-raise it
            status["status"] = "failed"
            status["error"] = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
            if isinstance(exc, BaseException):
                status["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            log.error("job failed: %s\n%s", status["error"], status.get("traceback", ""))
        else:
            status["status"] = "completed"
        write_status(job_dir, status)


def add_seeds(config: Any) -> str | None:
    """Add ``seed=<sweep.seeds>`` to the basic sweeper's ``hydra.sweeper.params`` of a multirun's config,
    as its first key: the whole grid runs with the first seed, then with the next.

    Nothing when ``sweep.seeds`` is empty, when the grid already sweeps ``seed``, or when the command
    line sets it (``seed=1,2,3`` wins). Another sweeper (Optuna) would search over the seeds: refused.
    Returns the seeds added (``"1,2,3"``) or None.
    """
    from omegaconf import OmegaConf, open_dict, read_write

    seeds = OmegaConf.select(config, "sweep.seeds", default=None)
    if not seeds:
        return None
    if isinstance(seeds, (str, int)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"sweep.seeds must be a list of integers, e.g. sweep.seeds=[1,2,3]; got {seeds!r}")
    sweeper = config.hydra.sweeper
    params = sweeper.get("params") or {}
    command_line = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
    if "seed" in params or any(o.lstrip("+~").partition("=")[0] == "seed" for o in command_line):
        return None
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        raise ValueError(
            f"sweep.seeds={list(seeds)} repeats the grid of Hydra's basic sweeper; {sweeper.get('_target_')} "
            "searches its own space. Set sweep.seeds=null and pass seed=... as the searcher expects."
        )
    value = ",".join(str(s) for s in seeds)
    with read_write(config), open_dict(config):
        # First: the first key varies slowest, so every grid point runs once before any runs twice
        # (a sweep cut short still covers the whole grid).
        sweeper.params = {"seed": value, **(OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {})}
    return value


def point_by_swept_keys(config: Any) -> list[str]:
    """Make every job's ``hydra.job.override_dirname`` its grid point: the swept overrides less the seed.

    The keys the command line sets for every job alike, and ``seed``, join
    ``hydra.job.config.override_dirname.exclude_keys`` through a Hydra override appended to the
    sweep's ``hydra.overrides.hydra`` (Hydra composes each job from those), so ``wandb_group`` stays
    short and equal across the seeds of a point. Returns the excluded keys.
    """
    from omegaconf import OmegaConf, read_write

    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:  # pragma: no cover - a callback runs inside Hydra
        return []
    task = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(task)
    except HydraException as e:  # Hydra itself reports a bad override
        log.debug("overrides not parsed: %s", e)
        return []
    fixed = [
        o.get_key_element().lstrip("+~")
        for o in parsed
        if not o.is_sweep_override() and o.get_key_element().lstrip("+~") not in params
    ]
    keys = sorted(
        set(fixed)
        | {"seed"}
        | set(OmegaConf.select(config, "hydra.job.config.override_dirname.exclude_keys", default=[]) or [])
    )
    hydra_overrides = OmegaConf.select(config, "hydra.overrides.hydra")
    if hydra_overrides is None:
        return keys
    with read_write(config):
        hydra_overrides.append(
            "hydra.job.config.override_dirname.exclude_keys=[" + ",".join(f"'{k}'" for k in keys) + "]"
        )
    return keys


def _job_dir(config: Any) -> Path:
    try:
        return Path(str(config.hydra.runtime.output_dir))
    except Exception:  # the callback may get the task config only
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)


def _scheduler_job() -> dict[str, str]:
    """Under SLURM: the job id and the stderr file where SLURM writes why it ended the job (submitit's)."""
    if "SLURM_JOB_ID" not in os.environ:
        return {}
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = {"slurm_job": f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else os.environ["SLURM_JOB_ID"]}
    if "SUBMITIT_FOLDER" in os.environ:
        try:
            import submitit

            job["scheduler_log"] = str(submitit.JobEnvironment().paths.stderr)
        except Exception as e:  # the status file goes without it
            log.debug("no submitit job environment: %s", e)
    return job


def _rank() -> int:
    """This process's global rank where a launcher started several per job (srun, torchrun), else 0."""
    return int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0)


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")
