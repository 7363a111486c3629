"""Exact mid-epoch resume: hand the train loader its saved place in the epoch."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

__all__ = ["ResumeLoaderState"]


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
