"""Never overwrite an earlier run's results: a guard Hydra runs before it writes into the run dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

__all__ = ["RunDirExistsError", "RunDirGuard", "check_run_dir"]

#: Files whose presence means "a run finished here".
RESULT_FILES = ("metrics.json", "predictions.json")


class RunDirExistsError(FileExistsError):
    """The run dir already holds the results of an earlier run."""


def check_run_dir(run_dir: str | Path, resuming: bool = False, result_files: tuple[str, ...] = RESULT_FILES) -> None:
    """Raise :class:`RunDirExistsError` if ``run_dir`` holds results and this run is not a resume."""
    run_dir = Path(run_dir)
    found = [name for name in result_files if (run_dir / name).is_file()]
    if found and not resuming:
        raise RunDirExistsError(
            f"run dir {run_dir} already holds the results of an earlier run ({', '.join(found)}); "
            "refusing to overwrite them. Choose a new hydra.run.dir (or leave it to the timestamped default), "
            "or resume that training run with ckpt_path=last (or a checkpoint path)."
        )


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
