"""Loading checkpoints safely: tensors only (``weights_only=True``), never pickled code."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class CheckpointMismatchError(RuntimeError):
    """The checkpoint was written by a different model configuration."""


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused or corrupt file: say which file
        raise RuntimeError(f"cannot load checkpoint {path} as plain tensors (weights_only=True): {_reason(err)}") from err
    if not isinstance(ckpt, dict):
        raise RuntimeError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict with 'state_dict'")
    return ckpt.get("state_dict", ckpt)


def _reason(err: Exception) -> str:
    """torch's own message, less its advice to retry with weights_only=False (which would run the code)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if "WeightsUnpickler error" in ln or "GLOBAL" in ln:
            return ln + " The file holds pickled objects beyond tensors; hih refuses to execute them."
    return lines[0] if lines else type(err).__name__


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load weights into ``module``; a mismatch lists the missing, unexpected and reshaped keys."""
    state = load_state_dict(path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "") if keys else "none"

        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit this model configuration.\n"
            f"  missing keys: {show(missing)}\n  unexpected keys: {show(unexpected)}\n  shape mismatches: {show(reshaped)}\n"
            "Compose the same model config (model=..., model.stacks=..., model.decimal_size=...) as the training run."
        )
    module.load_state_dict(state, strict=True)
