"""One line per interval of training, readable in a log file: where the run is, when it ends, whether it waits on data.

    Epoch 2/8  batch 30/63  step 93/504  lr 1.87e-03  eta 0:02:55  step 0.412 s  data 0.021 s (5% of step)
        77.7 img/s  mem 812 MiB  loss 0.0021  heatmap 0.0018

(one line in the log, wrapped here).

The same timing goes to every logger as metrics (``time/step_s``, ``time/data_s``, ``time/data_share``,
``throughput/img_s``, ``memory/peak_mib``), so a sweep's dashboard shows which runs are loader-bound.
"""

from __future__ import annotations

import logging
import math
import resource
import sys
import time

import torch

from hih.callbacks.timing import StepTimer, Timing
from hih.progress import console_is_terminal, emit, format_duration

__all__ = ["IntervalLog"]

LOG = logging.getLogger("hih.train")


class IntervalLog(StepTimer):
    """Interval lines and timing metrics while training, a line per validation, lines while testing.

    A line goes to the run's log file (Hydra's ``train.log``) always, and to stdout unless stdout is a
    terminal showing a progress bar. Under DDP only global rank 0 writes; the data time is the slowest
    rank's (the one the others wait for), the throughput the sum over ranks.

    Args:
        every_n_steps: optimizer steps per line; None: the trainer's ``log_every_n_steps``. The first
            line comes after the first step.
        max_interval_s: fewer steps per line when the steps are slow, so a line comes at least about
            this often (a divisor of ``every_n_steps``, sized from the last interval's step time).
        log_metrics: also send the timing to the trainer's loggers.
    """

    def __init__(
        self, every_n_steps: int | None = None, max_interval_s: float = 60.0, log_metrics: bool = True, warmup: int = 1
    ):
        super().__init__(warmup=warmup)
        self.every_n_steps = every_n_steps
        self.max_interval_s = max_interval_s
        self.log_metrics = log_metrics
        self._n = 1
        self._last_step = -1
        self._val_s = 0.0
        self._val_t0: float | None = None
        self._train_steps_at_val = 0
        self._best: tuple[float, int] | None = None
        self._losses: dict[str, torch.Tensor] = {}
        self._console: bool | None = None
        self._test_t0 = self._test_last = 0.0

    # -- training --------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._n = self._every(trainer)
        self._last_step = trainer.global_step
        self._val_s, self._train_steps_at_val, self._losses = 0.0, 0, {}
        self._console = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        losses = getattr(pl_module, "train_losses", None) or _loss_of(outputs)
        for name, value in losses.items():  # summed on the device: no host sync per step
            v = value.detach().float().reshape(())
            self._losses[name] = self._losses[name] + v if name in self._losses else v
        step = trainer.global_step
        if step == self._last_step:  # accumulating gradients: not an optimizer step
            return
        self._last_step = step
        if self._taken == 1 or step % self._n == 0 or self._last_batch(trainer, batch_idx):
            self._interval(trainer, pl_module, batch_idx)

    def _last_batch(self, trainer, batch_idx: int) -> bool:
        total = trainer.num_training_batches
        return isinstance(total, int) and batch_idx + 1 == total and trainer.current_epoch + 1 == trainer.max_epochs

    def _interval(self, trainer, pl_module, batch_idx: int) -> None:
        local = self.take()
        names = list(self._losses)
        # One gather per interval: [wall, data, steps, samples, memory, *loss sums]; all ranks take part.
        values = torch.tensor(
            [local.wall_s, local.data_s, local.steps, local.samples, _peak_memory_mib(pl_module.device)],
            dtype=torch.float64,
        )
        if names:
            values = torch.cat([values, torch.stack([self._losses[n] for n in names]).double().cpu()])
        self._losses = {}
        gathered = trainer.strategy.all_gather(values.to(pl_module.device))
        gathered = gathered.reshape(-1, values.numel()).double().cpu()
        steps = int(gathered[0, 2])
        timing = Timing(steps, int(gathered[:, 3].sum()), float(gathered[:, 0].max()), float(gathered[:, 1].max()))
        memory = float(gathered[:, 4].max())
        losses = {n: float(gathered[:, 5 + i].mean()) / max(steps, 1) for i, n in enumerate(names)}
        # Same numbers on every rank, so every rank sizes the next interval alike.
        if math.isfinite(timing.step_s) and timing.step_s > 0:
            self._n = interval_steps(self._every(trainer), timing.step_s, self.max_interval_s)
        if not trainer.is_global_zero:
            return
        metrics = {
            "time/step_s": timing.step_s,
            "time/data_s": timing.data_step_s,
            "time/data_share": timing.data_share,
            "throughput/img_s": timing.samples_per_s,
            "memory/peak_mib": memory,
        }
        if self.log_metrics and trainer.loggers:
            logged_step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)
            for lg in trainer.loggers:
                lg.log_metrics({**metrics, "epoch": trainer.current_epoch}, step=logged_step)
        self._write(trainer, self._train_line(trainer, batch_idx, timing, memory, losses))

    def _train_line(self, trainer, batch_idx: int, timing: Timing, memory: float, losses: dict[str, float]) -> str:
        total_steps = trainer.estimated_stepping_batches
        parts = [
            _of(
                "Epoch",
                trainer.current_epoch + 1,
                trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None,
            ),
            _of("batch", batch_idx + 1, trainer.num_training_batches),
            _of("step", trainer.global_step, total_steps),
        ]
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
        parts += [
            f"eta {format_duration(self.eta_s(trainer, timing))}",
            f"step {timing.step_s:.3f} s",
            f"data {timing.data_step_s:.3f} s ({100 * timing.data_share:.0f}% of step)",
            f"{timing.samples_per_s:.1f} img/s",
            f"mem {memory:.0f} MiB",
        ]
        # The total first, then its terms.
        parts += [f"{name} {value:.4g}" for name, value in sorted(losses.items(), key=lambda kv: kv[0] != "loss")]
        return "  ".join(parts)

    def eta_s(self, trainer, last: Timing) -> float:
        """Seconds left in the fit: the steps left at the mean step time since the warm-up (the last
        interval's before it), plus validation at its measured cost per training step so far."""
        total = trainer.estimated_stepping_batches
        if not isinstance(total, (int, float)) or not math.isfinite(total):
            return float("nan")
        step_s = self.total.step_s if self.total.steps else last.step_s
        val_per_step = self._val_s / self._train_steps_at_val if self._train_steps_at_val else 0.0
        # The clock counts batches; the trainer's totals count optimizer steps (k batches each when accumulating).
        batches_left = max(0.0, total - trainer.global_step) * max(
            1, int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        )
        return batches_left * (step_s + val_per_step)

    # -- validation ------------------------------------------------------------------------------
    def on_validation_start(self, trainer, pl_module) -> None:
        super().on_validation_start(trainer, pl_module)
        self._val_t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if trainer.sanity_checking or self._val_t0 is None:
            return
        took = time.perf_counter() - self._val_t0
        self._val_s += took
        self._train_steps_at_val = self._taken
        monitor = _monitor(trainer)
        value = trainer.callback_metrics.get(monitor)
        if value is None or not trainer.is_global_zero:
            return
        value = float(value)
        epoch = trainer.current_epoch + 1
        sign = -1.0 if getattr(trainer.checkpoint_callback, "mode", "min") == "max" else 1.0
        if self._best is None or sign * value < sign * self._best[0]:
            self._best = (value, epoch)
        self._write(
            trainer,
            f"Epoch {epoch} validation  {monitor} {value:.4g}  best {self._best[0]:.4g} (epoch {self._best[1]})  "
            f"took {took:.1f} s",
        )

    # -- testing (hih-train's test stage, hih-eval) ------------------------------------------------
    def on_test_start(self, trainer, pl_module) -> None:
        self._test_t0 = self._test_last = time.perf_counter()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        total = trainer.num_test_batches[dataloader_idx] if trainer.num_test_batches else None
        now = time.perf_counter()
        done = batch_idx + 1
        last = isinstance(total, int) and done == total
        every = (
            math.ceil(total / 10) if isinstance(total, int) and total > 0 else self._every(trainer)
        )  # about 10 lines
        if not trainer.is_global_zero or not (
            last or done % every == 0 or now - self._test_last >= self.max_interval_s
        ):
            return
        self._test_last = now
        rate = done / (now - self._test_t0)
        eta = (total - done) / rate if isinstance(total, int) and rate > 0 else float("nan")
        self._write(
            trainer,
            f"Test  batch {_of('', done, total).strip()}  {rate:.2f} batch/s  "
            f"elapsed {format_duration(now - self._test_t0)}  eta {format_duration(eta)}",
        )

    # -- output ----------------------------------------------------------------------------------
    def _every(self, trainer) -> int:
        return max(1, int(self.every_n_steps or trainer.log_every_n_steps or 50))

    def _write(self, trainer, line: str) -> None:
        if self._console is None:
            # A terminal with a progress bar shows the bar alone; lines only reach the log file there.
            self._console = not (console_is_terminal() and trainer.progress_bar_callback is not None)
        emit(line, console=self._console, logger=LOG)


def interval_steps(every: int, step_s: float, max_interval_s: float) -> int:
    """Steps per line: the largest divisor of ``every`` whose lines come within ``max_interval_s``, so
    lines stay on multiples of ``every`` (where Lightning logs too) and evenly spaced."""
    limit = max(1, int(max_interval_s / step_s))
    return max(d for d in range(1, every + 1) if every % d == 0 and d <= limit)


def _of(name: str, value: int, total) -> str:
    if isinstance(total, (int, float)) and math.isfinite(total) and total > 0:
        width = len(str(int(total)))
        return f"{name} {value:>{width}}/{int(total)}"
    return f"{name} {value}"


def _loss_of(outputs) -> dict[str, torch.Tensor]:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return {"loss": loss} if isinstance(loss, torch.Tensor) else {}


def _monitor(trainer) -> str:
    ckpt = trainer.checkpoint_callback
    return getattr(ckpt, "monitor", None) or "val/nme"


def _peak_memory_mib(device: torch.device) -> float:
    """Peak CUDA memory allocated since the last call (reset each call); on the CPU, the process's peak RSS."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        return peak / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
