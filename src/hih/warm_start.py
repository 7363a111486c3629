"""Training a head on another run's backbone: ``module.init_from``, ``module.freeze``, ``module.head_lr``.

- :func:`load_backbone`: the backbone (every stack, its integer heatmaps and the fusion the head reads)
  from a hih-train checkpoint, loaded as plain tensors (:func:`hih.checkpoints.load_state_dict`, never
  pickled code) and strict: every backbone key present with the same shape, or an error naming them.
- :func:`freeze` / :func:`keep_frozen_in_eval`: frozen parts get no gradient and stay in eval mode,
  so their BatchNorm layers normalise with the loaded running statistics and never update them: a
  frozen backbone computes exactly the same features for a face at every step.
- :func:`param_groups`: the optimizer's parameter groups, the head's with its own lr.
- :class:`WarmStart`: the three options together, as the LightningModule applies them to its net.

This separates "can the head learn on a trained backbone" from "does the head disturb the backbone".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from torch import nn

from hih.checkpoints import CheckpointMismatchError, load_state_dict, state_mismatch

__all__ = ["FREEZABLE", "WarmStart", "freeze", "keep_frozen_in_eval", "load_backbone", "param_groups", "parse_freeze"]

log = logging.getLogger(__name__)

#: The parts of a :class:`hih.models.net.LandmarkNet` that ``module.freeze`` may name.
FREEZABLE = ("backbone",)
#: Where the net's backbone sits in a checkpoint written by hih-train (the LightningModule's ``net``).
_PREFIXES = ("net.backbone.", "backbone.")


def _backbone_state(state: dict, path: str | Path) -> dict:
    for prefix in _PREFIXES:
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if found:
            return found
    raise CheckpointMismatchError(
        f"{path} holds no backbone weights (no key starts with {' or '.join(_PREFIXES)}); "
        "module.init_from takes a checkpoint written by hih-train"
    )


def load_backbone(net: nn.Module, path: str | Path) -> int:
    """Load the backbone of the checkpoint at ``path`` into ``net.backbone``; returns the tensors loaded.

    Strict: the checkpoint's backbone must have exactly this backbone's keys and shapes (same
    ``model.channels``, ``model.stacks``, landmarks; and a head, since a head-less net's last stack
    has no fusion layers). The head is not loaded: it is what the new run trains.
    """
    backbone = getattr(net, "backbone", None)
    if backbone is None:
        raise TypeError(f"module.init_from needs a net with a .backbone, got {type(net).__name__}")
    source = _backbone_state(load_state_dict(path), path)
    missing, unexpected, reshaped = state_mismatch(backbone.state_dict(), source)
    if missing or unexpected or reshaped:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

        parts = []
        if reshaped:
            parts.append(f"shapes differ: {show(reshaped)}")
        if missing:
            hint = (
                " (a head-less net, e.g. the baseline, has no fusion layers in its last stack)"
                if any("merge_" in k for k in missing)
                else ""
            )
            parts.append(f"missing from the checkpoint: {show(missing)}{hint}")
        if unexpected:
            parts.append(f"not in this backbone: {show(unexpected)}")
        raise CheckpointMismatchError(
            f"module.init_from={path}: its backbone does not fit this model's; "
            + "; ".join(parts)
            + ". Use the model settings (channels, stacks, landmarks) of the run that wrote it."
        )
    backbone.load_state_dict(source, strict=True)
    log.info(f"module.init_from: loaded {len(source)} backbone tensors from {path}")
    return len(source)


def parse_freeze(freeze_spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``module.freeze``: None / "none" -> (), "backbone" -> ("backbone",); unknown parts raise."""
    if freeze_spec is None:
        return ()
    names = [freeze_spec] if isinstance(freeze_spec, str) else list(freeze_spec)
    parts = tuple(str(n).strip().lower() for n in names if str(n).strip().lower() not in ("", "none", "null"))
    unknown = sorted(set(parts) - set(FREEZABLE))
    if unknown:
        raise ValueError(f"module.freeze: unknown part(s) {unknown}; expected one of {FREEZABLE} or null")
    return parts


def freeze(net: nn.Module, parts: Iterable[str]) -> None:
    """No gradient for the named parts of ``net`` (and eval mode: :func:`keep_frozen_in_eval`)."""
    for part in parts:
        getattr(net, part).requires_grad_(False)
    keep_frozen_in_eval(net, parts)


def keep_frozen_in_eval(net: nn.Module, parts: Iterable[str]) -> None:
    """Put the frozen parts back in eval mode (the LightningModule calls it after every ``train()``)."""
    for part in parts:
        getattr(net, part).eval()


def param_groups(module: nn.Module, head: nn.Module | None, head_lr: float | None) -> list:
    """The trainable parameters of ``module`` for the optimizer: a plain list without ``head_lr``;
    with it, two groups, the rest at the optimizer's lr and ``head``'s parameters at ``head_lr``."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("nothing to train: every parameter is frozen")
    if head_lr is None:
        return trainable
    lr = float(head_lr)
    if not lr > 0:
        raise ValueError(f"module.head_lr must be a positive learning rate or null, got {head_lr!r}")
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    head_params = [p for p in trainable if id(p) in head_ids]
    if not head_params:
        raise ValueError("module.head_lr is set, but this net has no trainable compensation head")
    rest = [p for p in trainable if id(p) not in head_ids]
    return ([{"params": rest}] if rest else []) + [{"params": head_params, "lr": lr}]


class WarmStart:
    """``module.init_from`` / ``freeze`` / ``head_lr`` applied to ``net``: frozen at construction, the
    backbone loaded when fitting starts (a resumed fit then restores its own weights over it), the
    frozen parts back in eval mode after every ``train()``, and the optimizer's parameter groups."""

    def __init__(
        self,
        net: nn.Module,
        init_from: str | Path | None = None,
        freeze_spec: str | Sequence[str] | None = None,
        head_lr: float | None = None,
    ) -> None:
        self.net, self.init_from, self.frozen, self.head_lr = net, init_from, parse_freeze(freeze_spec), head_lr
        freeze(net, self.frozen)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.init_from:
            load_backbone(self.net, self.init_from)

    def train(self) -> None:
        keep_frozen_in_eval(self.net, self.frozen)

    def param_groups(self, module: nn.Module) -> list:
        return param_groups(module, getattr(self.net, "head", None), self.head_lr)
