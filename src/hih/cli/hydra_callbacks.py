"""Hydra callbacks (``hydra.callbacks`` in conf/): the run-dir guard that never overwrites an earlier
run's results, run before Hydra writes into the run dir."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback

from hih.rundir import RunDirExistsError, check_run_dir

__all__ = ["RunDirGuard"]


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
