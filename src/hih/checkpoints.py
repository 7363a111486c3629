"""Loading checkpoints safely: tensors only (``weights_only=True``), never pickled code.

Checkpoints written by hih-train also carry the run's model and data config (plain types, under
:data:`CONFIG_KEY`), so hih-eval / hih-predict / hih-export rebuild the model from the checkpoint
alone (:func:`config_from_checkpoint`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


class CheckpointMismatchError(RuntimeError):
    """The checkpoint was written by a different model configuration."""


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused or corrupt file: say which file
        raise RuntimeError(
            f"cannot load checkpoint {path} as plain tensors (weights_only=True): {_reason(err)}"
        ) from err
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


def state_mismatch(own: dict, state: dict) -> tuple[list[str], list[str], list[str]]:
    """What keeps ``state`` from loading strictly into a module whose state dict is ``own``: the missing
    keys, the unexpected keys and the reshaped ones (``"key: checkpoint (..) vs model (..)"``)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    return missing, unexpected, reshaped


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load weights into ``module``; a mismatch lists the missing, unexpected and reshaped keys."""
    state = load_state_dict(path)
    missing, unexpected, reshaped = state_mismatch(module.state_dict(), state)
    if missing or unexpected or reshaped:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "") if keys else "none"

        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit this model configuration.\n"
            f"  missing keys: {show(missing)}\n"
            f"  unexpected keys: {show(unexpected)}\n"
            f"  shape mismatches: {show(reshaped)}\n"
            "Compose the same model config (model=..., model.stacks=..., model.decimal_size=...) as the training run."
        )
    module.load_state_dict(state, strict=True)


# -- checkpoints that describe themselves -----------------------------------------------------------

#: Checkpoint key of the training run's config (plain types, see :func:`describe`).
CONFIG_KEY = "hih_config"
#: Codec keys that fix tensor shapes; its other keys (decimal_decode, integer_only, sigma) only change
#: how outputs are decoded or targets drawn, so a command-line value applies on top of a checkpoint.
_CODEC_GEOMETRY = ("input_size", "heatmap_size", "decimal_size")
#: ... and the keys that pick the codec (``name``: the method, :func:`hih.methods.build_codec`).
_CODEC_SHAPES = ("_target_", "name", *_CODEC_GEOMETRY)
#: Targets renamed since a checkpoint may have been written (its record is instantiated as stored).
_MOVED_TARGETS = {"hih.models.build_net": "hih.methods.build_net"}
#: The data keys that shape the model: resolved in the record, and taken from it when another dataset is tested.
_GEOMETRY = ("input_size", "heatmap_size", "num_landmarks")


#: Interpolations a checkpoint's data config keeps: the evaluating machine's folders, the model
#: (codec) the evaluation builds, and the label settings (the crop), which the record holds resolved.
_KEPT_REFERENCES = ("paths.", "model.", "labels.")


def describe(cfg) -> dict:
    """What a checkpoint needs to rebuild its model: ``{"model", "data", "labels"}`` in plain types.

    ``model`` and ``labels`` are resolved (fixed once trained). ``data`` is resolved except for the
    interpolations into ``paths`` (``root: ${paths.data_dir}/WFLW``: the evaluating machine's folder),
    ``model`` (the DataModule's codec) and ``labels`` (the crop, so ``labels.crop_from=box`` at
    evaluation tests another crop).
    """
    from omegaconf import OmegaConf

    record = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": _keep_references(
            OmegaConf.to_container(cfg.data, resolve=False), OmegaConf.to_container(cfg.data, resolve=True)
        ),
    }
    if "labels" in cfg:
        record["labels"] = OmegaConf.to_container(cfg.labels, resolve=True)
    return record


def _keep_references(raw, resolved):
    """``resolved``, except the leaves of ``raw`` that interpolate one of :data:`_KEPT_REFERENCES`."""
    if isinstance(raw, dict) and isinstance(resolved, dict):
        return {k: _keep_references(raw[k], resolved[k]) for k in raw}
    if isinstance(raw, str) and "${" in raw and any(ref in raw for ref in _KEPT_REFERENCES):
        return raw
    return resolved


def read_config(path: str | Path) -> dict | None:
    """The config a checkpoint carries (:data:`CONFIG_KEY`), or None for a checkpoint written before."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise RuntimeError(
            f"cannot load checkpoint {path} as plain tensors (weights_only=True): {_reason(err)}"
        ) from err
    return ckpt.get(CONFIG_KEY) if isinstance(ckpt, dict) else None


def config_from_checkpoint(cfg, ckpt_path: str | Path, overrides: list[str] | None = None):
    """``cfg`` (updated in place) with the model and, unless the command line picks data, the data of the checkpoint.

    hih-eval / hih-predict / hih-export call this before building anything. ``overrides``: the command
    line (Hydra's ``overrides.task``). A ``model=X``, ``model.KEY=V``, ``data.input_size=V`` or
    ``data.heatmap_size=V`` override must agree with the checkpoint (else an error naming both),
    except the codec's decoding options (``model.codec.decimal_decode=corner``, ``integer_only``),
    which apply to the checkpoint's model, and ``model=X`` for a method on the same network (a
    baseline checkpoint decoded as ``model=wsm`` / ``dark`` / ``soft_argmax``). ``data=X`` /
    ``experiment=X`` keep the composed data (a cross-dataset test) with the checkpoint's input and
    heatmap size, if its landmark count matches.
    The label settings (``labels``: the crop) are the checkpoint's unless the command line sets them.
    A checkpoint without a config (written before checkpoints carried one) leaves ``cfg`` as
    composed: pass the training run's overrides by hand.
    """
    from omegaconf import OmegaConf, open_dict

    record = read_config(ckpt_path)
    if record is None:
        return cfg
    keys = [_override_key(o) for o in overrides or []]
    composed = copy.deepcopy(cfg)  # what the command line composed, before the checkpoint's parts replace it
    ckpt = OmegaConf.create(record)
    target = OmegaConf.select(ckpt, "model.net._target_")
    if target in _MOVED_TARGETS:
        ckpt.model.net._target_ = _MOVED_TARGETS[target]
    disagree, decoding, redecode = [], [], False
    for key in keys:
        if key.startswith("model.codec.") and key.split(".")[2] not in _CODEC_SHAPES:
            decoding.append(key)  # an evaluation choice (e.g. corner vs centre decode of the same weights)
        elif key == "model" and composed.model.name != ckpt.model.name:
            # Another method on the same network (baseline -> wsm / dark / soft_argmax): a re-decode.
            redecode = composed.model.net.get("head") == ckpt.model.net.get("head")
            if not redecode:
                disagree.append(
                    f"model={composed.model.name} (checkpoint: model={ckpt.model.name}; "
                    f"network head {composed.model.net.get('head')} vs {ckpt.model.net.get('head')})"
                )
        elif key != "model" and (key.startswith("model.") or key in ("data.input_size", "data.heatmap_size")):
            mine = _plain(OmegaConf.select(composed, key))
            theirs = _plain(OmegaConf.select(ckpt, key, default="<absent>"))
            if mine != theirs:
                disagree.append(f"{key}={mine} (checkpoint: {theirs})")
    if disagree:
        raise CheckpointMismatchError(
            f"the command line disagrees with the model that checkpoint {ckpt_path} describes: "
            + "; ".join(disagree)
            + ". The checkpoint describes its own model: drop these overrides (or pass the checkpoint's values)."
        )
    chose_data = any(k in ("data", "experiment") for k in keys)
    with open_dict(cfg):
        # The training run's label settings (its crop), unless the command line picks them.
        if "labels" in ckpt and "labels" in cfg and not any(k in ("labels", "experiment") for k in keys):
            cfg.labels = ckpt.labels
            _reapply(cfg, composed, keys, "labels.")
        codec = _plain(cfg.model.codec) if redecode else None  # read with the labels now in place
        cfg.model = ckpt.model
        if redecode:  # the checkpoint's network; the chosen method's name, codec and loss at its geometry
            codec.update({k: v for k, v in ckpt.model.codec.items() if k in _CODEC_GEOMETRY})
            cfg.model.name, cfg.model.codec, cfg.model.loss = composed.model.name, codec, _plain(composed.model.loss)
        for key in decoding:
            OmegaConf.update(cfg, key, _plain(OmegaConf.select(composed, key)), force_add=True)
        if not chose_data:
            cfg.data = ckpt.data
            _reapply(cfg, composed, keys, "data.")  # data.KEY=V leaves of the command line still apply
        elif int(cfg.data.num_landmarks) != int(ckpt.data.num_landmarks):
            raise CheckpointMismatchError(
                f"checkpoint {ckpt_path} predicts {ckpt.data.num_landmarks} landmarks ({ckpt.data.name}), but "
                f"data={cfg.data.name} has {cfg.data.num_landmarks}: "
                "a cross-dataset test needs the same landmark layout."
            )
        cfg.data.input_size, cfg.data.heatmap_size = ckpt.data.input_size, ckpt.data.heatmap_size
    log.info(
        f"model from {ckpt_path}: {cfg.model.name}, {cfg.data.input_size} px input, {cfg.data.heatmap_size}x"
        f"{cfg.data.heatmap_size} heatmap; data: {cfg.data.name} ({'command line' if chose_data else 'checkpoint'})"
        + "".join(f"; {k}={OmegaConf.select(cfg, k)}" for k in decoding)
    )
    return cfg


def _reapply(cfg, composed, keys: list[str], prefix: str) -> None:
    """Set each command-line key under ``prefix`` to its composed value (after a checkpoint's part replaced it)."""
    from omegaconf import OmegaConf

    for key in keys:
        if key.startswith(prefix) and OmegaConf.select(composed, key) is not None:
            OmegaConf.update(cfg, key, _plain(OmegaConf.select(composed, key)), force_add=True)


def _override_key(override: str) -> str:
    """``+model.channels=16`` -> ``model.channels``; ``model=hih_c`` -> ``model``."""
    return override.split("=", 1)[0].lstrip("~+").split("@", 1)[0]


def _plain(value):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
