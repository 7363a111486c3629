"""Checkpoint callbacks: the resumable ``last.ckpt`` (every N optimizer steps and at each epoch end) and
the run's config written into every checkpoint (read back by :func:`hih.checkpoints.config_from_checkpoint`)."""

from __future__ import annotations

import copy
from typing import Any

from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from hih.checkpoints import CONFIG_KEY

__all__ = ["ConfigInCheckpoint", "LastCheckpoint"]


class LastCheckpoint(ModelCheckpoint):
    """Keep ``<dirpath>/last.ckpt`` current: every ``every_n_train_steps`` steps and at each epoch end.

    A run killed mid-epoch resumes from it (``ckpt_path=last``) and, with the resumable train loader,
    repeats exactly what the uninterrupted run would have done. It is the only writer of ``last.ckpt``
    (the best-model checkpoint keeps ``save_last: false``), so no ``last-v1.ckpt`` appears. Writes go
    through Lightning's atomic save, and :class:`hih.callbacks.NonFiniteGuard` refuses to save
    non-finite weights, so the file is always the last good state.
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


class ConfigInCheckpoint(Callback):
    """Writes ``config`` (:func:`hih.checkpoints.describe`) into every checkpoint.

    It goes under :data:`hih.checkpoints.CONFIG_KEY`.
    """

    def __init__(self, config: dict) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[CONFIG_KEY] = copy.deepcopy(self.config)
