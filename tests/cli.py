"""Console scripts run as their own processes in tests: one environment and one call for all of them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: The console scripts (hih-train, hih-eval, ...) of the environment the tests run in.
BIN = Path(sys.executable).parent


def cli_env(data_dir: str | Path | None = None, *, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """The test's environment for a console script: one compute thread in every process (the same float
    reductions, so metrics compare exactly with an in-process or another process's run), W&B offline,
    matplotlib without a display, ``HIH_DATA_DIR`` where ``data_dir`` is given. Variables whose names
    start with a ``drop`` prefix are left out (e.g. ``SLURM_`` for ranks that must not look like SLURM's
    inside a job); ``extra`` is added last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="offline", MPLBACKEND="Agg")
    if data_dir is not None:
        env["HIH_DATA_DIR"] = str(data_dir)
    return {**env, **extra}


def run_cli(
    script: str,
    args: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """``BIN/script *args`` to the end, its output captured; with ``check`` a non-zero exit fails the test
    with the tails of its stdout and stderr."""
    proc = subprocess.run(
        [str(BIN / script), *map(str, args)],
        env=cli_env() if env is None else env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc
