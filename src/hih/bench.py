"""Timing helpers for the benchmarks and the GPU check (scripts/): the cores this process may use, a
wall-time budget, a loader's rate alone, and timed fits of a composed config's Lightning ``Trainer``.

A timed fit is hih-train's training: the config's trainer (accelerator, devices, precision, ...), the
module's ``configure_optimizers`` (optimizer and lr schedule), its ``training_step``; the time comes from
:class:`hih.callbacks.StepTimer`, the measurement behind the training logs' ``time/step_s``. Only
validation, checkpoints, loggers and the progress bar are off. Lightning and Hydra are imported by the
functions that need them, so :func:`usable_cores` costs nothing to import.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["Budget", "FixedBatches", "endless", "loader_rate", "timed_fit", "usable_cores"]


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask (what SLURM or taskset grant), else the CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class Budget:
    """Wall time since ``start`` (default: now) against ``seconds``, and progress lines stamped with it."""

    def __init__(self, seconds: float, name: str, start: float | None = None):
        self.seconds = seconds
        self.name = name
        self.t0 = time.perf_counter() if start is None else start

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.seconds - self.now()

    def log(self, msg: str) -> None:
        print(f"[{self.name} {self.now():6.1f} s / {self.seconds:.0f} s] {msg}", flush=True)


def endless(loader) -> Iterator:
    """A loader's batches, epoch after epoch (``loader.sampler.set_epoch`` where it has one)."""
    for epoch in itertools.count():
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader


def loader_rate(batches: Iterator[Mapping[str, Any]], seconds: float) -> dict[str, float]:
    """Images per second of a loader's batches alone (no model): what its workers can feed. The first
    batch (workers starting) is not timed."""
    next(batches)
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += next(batches)["image"].shape[0]
    return {"img_per_s": images / (time.perf_counter() - start), "images": images}


class FixedBatches:
    """``steps`` times the same batch (tensors already on the device), as a map-style dataset for
    ``DataLoader(..., batch_size=None)``: a fit on it is model-bound (the loader costs nothing), and it
    has a length, which step schedules need."""

    def __init__(self, batch: Mapping[str, Any], steps: int):
        self.batch = dict(batch)
        self.steps = int(steps)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.steps:
            raise IndexError(index)
        return self.batch


def _stop_after(seconds: float, warmup: int, timer):
    from lightning.pytorch.callbacks import Callback

    class StopAfter(Callback):
        """Stops the fit once ``seconds`` have passed after the warm-up steps (at least one timed step)."""

        def __init__(self):
            self.start: float | None = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
            steps = timer._taken
            if steps == warmup:
                self.start = time.perf_counter()
            elif self.start is not None and time.perf_counter() - self.start >= seconds:
                trainer.should_stop = True

    return StopAfter()


def timed_fit(
    trainer_cfg: Any,
    module,
    datamodule,
    seconds: float,
    warmup: int = 1,
    callbacks: Iterable = (),
) -> dict[str, float]:
    """Fit ``module`` on ``datamodule`` with the trainer ``trainer_cfg`` describes (a composed config's
    ``trainer`` node) for ``warmup`` untimed steps, then about ``seconds`` of timed steps, without
    validation, checkpoints, loggers, bar or model summary. ``callbacks`` join the step timer.

    Returns img_per_s, steps, seconds, step_s and data_share of the timed steps (StepTimer), warmup_s
    and the last training loss (``loss``, when the module logged one).
    """
    from hydra.utils import instantiate

    from hih.callbacks import StepTimer

    timer = StepTimer(warmup=warmup)
    stop = _stop_after(seconds, warmup, timer)
    trainer = instantiate(
        trainer_cfg,
        logger=False,
        callbacks=[timer, stop, *callbacks],
        min_epochs=None,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    wall = time.perf_counter() - t0
    total = timer.total
    r = {
        "img_per_s": total.samples_per_s,
        "steps": total.steps,
        "seconds": total.wall_s,
        "warmup_s": wall - total.wall_s,
        "step_s": total.step_s,
        "data_share": total.data_share,
    }
    loss = trainer.callback_metrics.get("train/loss")
    if loss is not None:
        r["loss"] = float(loss)
    return r
