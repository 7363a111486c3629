"""Lightning callbacks for reliable runs: the resumable ``last.ckpt`` and exact mid-epoch resume.

Numerical-fault checks live in :class:`hih.module.FaceAlignmentModule` (``check_finite``), where the
named loss terms are; the run-dir guard is a Hydra callback in :mod:`hih.rundir`.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback, ModelCheckpoint

__all__ = ["LastCheckpoint", "ResumeLoaderState"]


class ResumeLoaderState(Callback):
    """Hand the train loader its saved place in the epoch when Lightning would not.

    Lightning restores a stateful loader inside ``FitLoop.setup_data``, but when the loader was
    already built before the checkpoint was restored (``estimated_stepping_batches``, asked for by
    the one-cycle / cosine schedules in ``configure_optimizers``), ``setup_data`` returns early and
    the saved state is never applied: the resumed epoch would restart at its first batch. Lightning
    keeps the pending state on the fit loop; this applies it at ``on_train_start``, after the restore
    and before the first batch is drawn (the hih train loader starts its iterator lazily). A no-op
    when there is nothing pending.
    """

    def on_train_start(self, trainer, pl_module) -> None:
        trainer.fit_loop._load_combined_loader_states()


class LastCheckpoint(ModelCheckpoint):
    """Keep ``<dirpath>/last.ckpt`` current: every ``every_n_train_steps`` steps and at each epoch end.

    A run killed mid-epoch resumes from it (``ckpt_path=last``) and, with the resumable train loader,
    repeats exactly what the uninterrupted run would have done. It is the only writer of ``last.ckpt``
    (the best-model checkpoint keeps ``save_last: false``), so no ``last-v1.ckpt`` appears. Writes go
    through Lightning's atomic save, and the module refuses to save non-finite weights, so the file
    is always the last good state.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 100, **kwargs: Any) -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        for key in ("monitor", "save_top_k", "save_last", "every_n_epochs", "train_time_interval"):
            if key in kwargs:
                raise TypeError(f"LastCheckpoint fixes {key!r}; it only writes last.ckpt")
        super().__init__(
            dirpath=dirpath,
            monitor=None,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
            **kwargs,
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(kind="last", every_n_train_steps=self._every_n_train_steps)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Runs after the epoch's validation, so the saved state includes the best-model tracker too.
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
