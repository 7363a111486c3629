"""Where a training loop's time goes: waiting for the next batch against the whole step.

:class:`StepClock` is the measurement, usable from any loop (a plain PyTorch loop feeds it by hand);
:class:`StepTimer` feeds it from Lightning's own hooks. The data time is the time the loop spends
inside ``next()`` on the train loader (Lightning's ``train_dataloader_next`` profiler action, which
wraps exactly that call), not a separate loader benchmark. The step time is wall time between reads
divided by the steps taken, with validation excluded. On a GPU the clock never synchronises per step:
:meth:`StepClock.read` synchronises once, so the time of the queued kernels lands in the interval read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["StepClock", "StepTimer", "Timing"]

FETCH_ACTION = "train_dataloader_next"  # Lightning's profiler action around next(train loader)


@dataclass(frozen=True)
class Timing:
    """One stretch of training: ``steps`` steps of ``samples`` samples in ``wall_s`` seconds (validation
    excluded), ``data_s`` of them spent waiting for batches."""

    steps: int
    samples: int
    wall_s: float
    data_s: float

    @property
    def step_s(self) -> float:
        return self.wall_s / self.steps if self.steps else float("nan")

    @property
    def data_step_s(self) -> float:
        """Data (loader wait) time per step."""
        return self.data_s / self.steps if self.steps else float("nan")

    @property
    def data_share(self) -> float:
        """Share of the step spent waiting for data: near 1, the loader bounds training."""
        return self.data_s / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else float("nan")

    def __add__(self, other: Timing) -> Timing:
        return Timing(
            self.steps + other.steps,
            self.samples + other.samples,
            self.wall_s + other.wall_s,
            self.data_s + other.data_s,
        )


ZERO = Timing(0, 0, 0.0, 0.0)


class StepClock:
    """Accumulates fetch time, steps and samples; :meth:`read` returns the stretch since the last read.

    Call :meth:`start` when the loop starts, :meth:`fetch_start` / :meth:`fetch_end` around the
    loader's ``next()`` (or iterate :meth:`fetching`), :meth:`step_end` after each step, and
    :meth:`pause` / :meth:`resume` around work that is not training (validation).
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else None
        self._t0: float | None = None
        self._fetch_t0: float | None = None
        self._paused_at: float | None = None
        self._excluded = 0.0
        self._data = 0.0
        self._steps = 0
        self._samples = 0

    def start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()
        self._excluded = self._data = 0.0
        self._steps = self._samples = 0
        self._paused_at = None

    def fetch_start(self) -> None:
        self._fetch_t0 = time.perf_counter()

    def fetch_end(self) -> None:
        if self._fetch_t0 is not None:
            self._data += time.perf_counter() - self._fetch_t0
            self._fetch_t0 = None

    def fetching(self, loader: Iterable) -> Iterator:
        """Iterate ``loader``, timing each ``next()`` as data time (for plain loops)."""
        it = iter(loader)
        while True:
            self.fetch_start()
            try:
                batch = next(it)
            except StopIteration:
                self._fetch_t0 = None
                return
            self.fetch_end()
            yield batch

    def step_end(self, samples: int) -> None:
        self._steps += 1
        self._samples += int(samples)

    def pause(self) -> None:
        if self._paused_at is None:
            self._sync()
            self._paused_at = time.perf_counter()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._excluded += time.perf_counter() - self._paused_at
            self._paused_at = None

    @property
    def steps(self) -> int:
        """Steps since the last read (no sync)."""
        return self._steps

    def read(self) -> Timing:
        """The stretch since :meth:`start` or the last read; one device sync on a GPU. Starts the next one."""
        if self._t0 is None:
            raise RuntimeError("StepClock.read() before start()")
        self._sync()
        now = time.perf_counter()
        wall = now - self._t0 - self._excluded
        timing = Timing(self._steps, self._samples, wall, self._data)
        self._t0, self._excluded, self._data, self._steps, self._samples = now, 0.0, 0.0, 0, 0
        return timing

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def batch_size(batch) -> int:
    """Samples in a batch: the leading size of its ``image`` (or first) tensor."""
    if isinstance(batch, dict):
        batch = batch.get("image", next(iter(batch.values()), None))
    elif isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    return int(batch.shape[0]) if isinstance(batch, torch.Tensor) and batch.dim() else 1


class StepTimer(Callback):
    """Times training with a :class:`StepClock` fed by Lightning's hooks.

    :attr:`total` is the fit's timing so far without its first ``warmup`` steps (compilation, cuDNN
    autotuning, the loader's first fill); it is complete after the fit (read at ``on_train_end``).
    Subclasses take intervals with :meth:`take`. Measured per rank: :class:`IntervalLog` combines ranks.
    """

    def __init__(self, warmup: int = 1):
        self.warmup = warmup
        self.clock = StepClock()
        self.total = ZERO
        self.pending = ZERO  # read since the last take()
        self._taken = 0  # steps taken by this process (a resumed run starts at its global step)
        self._read_at = 0
        self._patched = None

    # -- Lightning hooks ------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self._patched is None:
            self._patch_profiler(trainer.profiler)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._patched is not None:
            for name in ("start", "stop"):
                self._patched.__dict__.pop(name, None)
            self._patched = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.clock.device = pl_module.device
        self.total = self.pending = ZERO
        self._taken = self._read_at = 0
        self.clock.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.clock.step_end(batch_size(batch))
        self._taken += 1
        if self._taken == self.warmup:  # the warm-up stretch is read alone, to leave it out of the total
            self.read()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.clock.steps:
            self.read()

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and self.clock._t0 is not None:
            self.clock.pause()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.clock.resume()

    # -- reading ---------------------------------------------------------------------------------
    def read(self) -> None:
        """Fold the clock's stretch (one device sync) into :attr:`pending` and, after the warm-up, :attr:`total`."""
        timing = self.clock.read()
        if self._read_at >= self.warmup:
            self.total = self.total + timing
        self._read_at = self._taken
        self.pending = self.pending + timing

    def take(self) -> Timing:
        """This rank's timing since the last take."""
        self.read()
        timing, self.pending = self.pending, ZERO
        return timing

    def _patch_profiler(self, prof) -> None:
        """Wrap the profiler's start/stop (instance attributes, removed at teardown) to time the fetch."""
        start, stop, clock = prof.start, prof.stop, self.clock

        def timed_start(action_name: str) -> None:
            if action_name.endswith(FETCH_ACTION):
                clock.fetch_start()
            start(action_name)

        def timed_stop(action_name: str) -> None:
            stop(action_name)
            if action_name.endswith(FETCH_ACTION):
                clock.fetch_end()

        prof.start, prof.stop = timed_start, timed_stop
        self._patched = prof
