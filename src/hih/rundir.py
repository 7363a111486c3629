"""Never overwrite an earlier run's results: the check; the Hydra callback running it is
:class:`hih.cli.hydra_callbacks.RunDirGuard`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["RunDirExistsError", "check_run_dir"]

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
