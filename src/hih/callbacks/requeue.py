"""SLURM's requeue signal taken at the end of a training step: the HPC checkpoint is then an exact resume point.

SLURM sends ``SIGUSR1`` some time before a job's limit (``--signal=USR1@<s>``, or when it preempts the job);
Lightning's SLURM environment saves ``hpc_ckpt_<n>.ckpt`` into the run folder and requeues the job
(``scontrol requeue``), and the requeued job resumes from that checkpoint by itself. But Lightning saves
inside the signal handler, wherever the signal interrupted the step (between the optimizer step and
the loop's counters, say), so the resumed run can repeat or skip part of a step. :class:`RequeueAtStepEnd`
takes the signal in its place (registered in ``setup``, before Lightning installs its handlers, so
Lightning adds none) and acts at the next training step's end, where ``last.ckpt`` is exact too: all
ranks agree (one all-reduce per step under DDP) and save the HPC checkpoint; at an epoch's last step,
after the epoch's validation instead (a checkpoint before it would resume past a validation that never
ran). Lightning then logs that step's (or epoch's) rows; at the next hook (the next step's or epoch's
start, or validation) rank 0 requeues the job and every process waits for SLURM to end it, so the
first attempt's log holds every row below the checkpoint's step and none that the resumed run logs
again. A signal after the last epoch's validation leaves the run to finish (the test phase is short).
Inert outside SLURM, or where the SLURM environment's auto-requeue is off.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from typing import Any

from lightning.pytorch.callbacks import Callback

__all__ = ["RequeueAtStepEnd"]

log = logging.getLogger(__name__)


class RequeueAtStepEnd(Callback):
    """On SLURM's requeue signal: HPC checkpoint and ``scontrol requeue`` at the next training step's end."""

    def __init__(self) -> None:
        self._signum: int | None = None
        self._previous: Any = None
        self._pending = self._saved = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        env = trainer._accelerator_connector.cluster_environment
        if stage != "fit" or os.name == "nt" or not (isinstance(env, SLURMEnvironment) and env.auto_requeue):
            return
        self._signum = env.requeue_signal or signal.SIGUSR1
        self._pending = self._saved = False
        self._previous = signal.signal(self._signum, self._note)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._signum is not None:
            signal.signal(self._signum, self._previous if self._previous is not None else signal.SIG_DFL)
            self._signum = None

    def _note(self, signum: int, frame: Any) -> None:
        self._pending = True
        log.info("SLURM requeue signal (%s): checkpoint and requeue at the end of this training step", signum)

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._signum is None or not self._agreed(trainer):
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._pending = True  # the epoch's validation first: saved in on_train_epoch_end
            return
        self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._saved:
            self._requeue_and_wait(trainer)
        elif self._signum is not None and self._agreed(trainer):
            self._save(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._requeue_and_wait(trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._requeue_and_wait(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._requeue_and_wait(trainer)

    def _agreed(self, trainer) -> bool:
        """Whether a signal is pending on any rank (every rank calls this at the same point); clears it."""
        pending = self._pending
        if trainer.world_size > 1:
            pending = trainer.strategy.reduce_boolean_decision(pending, all=False)
        self._pending = False
        return pending

    def _save(self, trainer) -> None:
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)  # where Lightning resumes from
        trainer.save_checkpoint(path)
        self._saved = True
        log.info("saved %s; requeueing the job once this step's rows are logged", path)

    def _requeue_and_wait(self, trainer) -> None:
        if not self._saved:
            return
        self._saved = False
        for logger in trainer.loggers:
            logger.save()
        requeued = _requeue() if trainer.is_global_zero else True
        requeued = trainer.strategy.broadcast(requeued, src=0)
        if not requeued:
            log.warning("the job was not requeued; training goes on until SLURM's limit")
            return
        log.info("requeued the job; waiting for SLURM to stop this attempt")
        while True:  # SLURM ends the job (SIGTERM, then SIGKILL) and starts it again later
            time.sleep(1)


def _requeue() -> bool:
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]
    if not re.fullmatch(r"[0-9_]+", job):
        raise ValueError(f"unexpected SLURM job id {job!r}")
    proc = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        log.warning("scontrol requeue %s failed: %s", job, proc.stderr.strip())
    else:
        log.info("requeued SLURM job %s", job)
    return proc.returncode == 0
