"""Stop training on NaN/Inf before it reaches the weights or a checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

__all__ = ["NonFiniteError", "NonFiniteGuard"]


class NonFiniteError(FloatingPointError):
    """Training produced NaN/Inf: stopped before the bad values reached the weights or a checkpoint."""


class NonFiniteGuard(Callback):
    """Raise :class:`NonFiniteError` on a NaN/Inf loss term (naming step and term) or gradient,
    before the optimizer step, and refuse to write a checkpoint holding NaN/Inf.

    Reads the named loss terms the module keeps of its current step (``pl_module.train_losses``).
    Costs one host sync per step for the loss and one for the gradients.
    """

    def __init__(self) -> None:
        self._batch_idx: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer, pl_module, loss: Tensor) -> None:
        losses: Mapping[str, Tensor] = getattr(pl_module, "train_losses", None) or {"loss": loss}
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        finite = torch.isfinite(values)
        if bool(finite.all()):  # one host sync for every term
            return
        bad = {name: float(v.detach()) for (name, v), ok in zip(losses.items(), finite.tolist()) if not ok}
        terms = [n for n in bad if n != "loss"] or ["loss"]
        raise NonFiniteError(
            f"non-finite training loss at {_where(trainer, self._batch_idx)}: term(s) {', '.join(terms)} "
            f"({', '.join(f'{k}={v}' for k, v in bad.items())}). Training stopped before the optimizer step. "
            + _last_good(trainer)
        )

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # A finite loss can still give Inf gradients (overflow); the step would write them into the weights.
        # 16-bit AMP skips such steps itself (the GradScaler's job), so leave them to it.
        if "16-mixed" == str(getattr(trainer, "precision", "")):
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        # One fused norm per tensor and one host sync: NaN/Inf anywhere makes its norm non-finite.
        if not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            return
        names = [
            n for n, p in pl_module.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())
        ]
        raise NonFiniteError(
            f"non-finite gradient at {_where(trainer)} in {len(names)} parameter(s): {', '.join(names[:5])}"
            + (" ..." if len(names) > 5 else "")
            + ". Training stopped before the optimizer step. "
            + _last_good(trainer)
        )

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        bad = [
            k
            for k, v in checkpoint.get("state_dict", {}).items()
            if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())
        ]
        if bad:
            raise NonFiniteError(
                f"refusing to write a checkpoint at {_where(trainer)}: non-finite values in {', '.join(bad[:5])}"
                + (" ..." if len(bad) > 5 else "")
                + ". "
                + _last_good(trainer)
            )


def _where(trainer, batch_idx: int | None = None) -> str:
    where = f"global step {trainer.global_step} (epoch {trainer.current_epoch}"
    return where + (f", batch {batch_idx})" if batch_idx is not None else ")")


def _last_good(trainer) -> str:
    cb = getattr(trainer, "checkpoint_callbacks", None) or []
    paths = [p for c in cb for p in (getattr(c, "last_model_path", ""), getattr(c, "best_model_path", "")) if p]
    saved = f"The last good checkpoint is {paths[0]}" if paths else "No checkpoint had been written yet"
    return (
        f"{saved}; no non-finite state was saved. "
        "Lower the learning rate, check the inputs, or clip gradients (trainer.gradient_clip_val)."
    )
