"""Learning-rate schedules as Hydra ``_partial_`` targets: ``factory(optimizer, **what_it_needs)``.

conf/module/*.yaml name one of these with ``_partial_: true`` and its own options; the module calls
the partial with the optimizer plus ``total_steps`` and / or ``steps_per_epoch`` when the factory's
signature asks for them (:func:`run_lengths_needed`). Every schedule is stepped per optimizer step
and is a pure function of that step, so a resumed run continues exactly.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

__all__ = ["as_partial", "cosine", "onecycle", "run_lengths", "run_lengths_needed", "step_decay"]

#: Arguments the module supplies from the trainer when a factory's signature names them.
RUN_LENGTHS = ("total_steps", "steps_per_epoch")


def run_lengths_needed(factory: Callable) -> list[str]:
    """Which of :data:`RUN_LENGTHS` ``factory`` (a function or functools.partial) takes and still lacks."""
    given = set(getattr(factory, "keywords", {}) or {})
    params = inspect.signature(factory).parameters
    return [name for name in RUN_LENGTHS if name in params and name not in given]


def run_lengths(trainer, factory: Callable) -> dict[str, int]:
    """The run lengths ``factory`` asks for (:func:`run_lengths_needed`), counted in optimizer steps."""
    return {name: _LENGTHS[name](trainer) for name in run_lengths_needed(factory)}


def _total_steps(trainer) -> int:
    total = trainer.estimated_stepping_batches
    if not math.isfinite(total) or total <= 0:
        raise ValueError("cosine / onecycle schedules need a finite run: set trainer.max_epochs or trainer.max_steps")
    return int(total)


def _steps_per_epoch(trainer) -> int:
    if trainer.train_dataloader is None:
        # What estimated_stepping_batches does too; it skips it when max_epochs is -1 (max_steps runs).
        trainer.fit_loop.setup_data()
    batches = trainer.num_training_batches
    if not math.isfinite(batches) or batches <= 0:
        raise ValueError("the step schedule counts epochs: the train dataloader needs a length")
    return max(1, math.ceil(batches / trainer.accumulate_grad_batches))


_LENGTHS = {"total_steps": _total_steps, "steps_per_epoch": _steps_per_epoch}


def as_partial(spec: Any, what: str) -> tuple[Callable | None, dict | None]:
    """(callable, plain record for the hyper-parameters) of an optimizer / scheduler spec: a callable
    (functools.partial) or a Hydra config with ``_target_`` (instantiated with ``_partial_: true``).

    The record is plain containers, so checkpoints holding it load with ``weights_only=True``.
    """
    if spec is None:
        return None, None
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(spec, DictConfig):
            spec = OmegaConf.to_container(spec, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(spec, Mapping):
        if "_target_" not in spec:
            raise ValueError(
                f"{what} must be a Hydra _partial_ target ({{_target_: ..., _partial_: true, ...}}) or a callable, "
                f"got keys {sorted(spec)}"
            )
        from hydra.utils import instantiate

        return instantiate({**spec, "_partial_": True}), dict(spec)
    if not callable(spec):
        raise TypeError(f"{what} must be a callable or a Hydra _partial_ config, got {type(spec).__name__}")
    func = getattr(spec, "func", spec)
    keywords = dict(getattr(spec, "keywords", {}) or {})
    return spec, {"_target_": f"{func.__module__}.{func.__qualname__}", "_partial_": True, **keywords}


def _warmup(warmup_steps: int) -> Callable[[int], float]:
    warmup = int(warmup_steps or 0)
    return lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def step_decay(
    optimizer: Optimizer, steps_per_epoch: int, step_size: int = 50, gamma: float = 0.1, warmup_steps: int = 0
) -> LRScheduler:
    """Multiply the lr by ``gamma`` every ``step_size`` epochs (the paper: /10 every 50), counted in
    optimizer steps; linear warm-up over ``warmup_steps``."""
    step_size, gamma = int(step_size), float(gamma)
    if step_size < 1:
        raise ValueError(f"scheduler step_size is in epochs and must be >= 1, got {step_size}")
    ramp = _warmup(warmup_steps)
    return LambdaLR(optimizer, lambda step: ramp(step) * gamma ** ((step // steps_per_epoch) // step_size))


def cosine(optimizer: Optimizer, total_steps: int, min_lr_ratio: float = 0.0, warmup_steps: int = 0) -> LRScheduler:
    """Cosine decay to ``min_lr_ratio`` x lr over the run after a linear warm-up of ``warmup_steps``."""
    warmup, floor, ramp = int(warmup_steps or 0), float(min_lr_ratio), _warmup(warmup_steps)

    def factor(step: int) -> float:
        progress = min(1.0, max(0, step - warmup) / max(1, total_steps - warmup))
        return ramp(step) * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))

    return LambdaLR(optimizer, factor)


def onecycle(optimizer: Optimizer, total_steps: int, pct_start: float = 0.3) -> LRScheduler:
    """One-cycle schedule peaking at each parameter group's own lr (e.g. a head's ``module.head_lr``)."""
    peaks = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=float(pct_start))
