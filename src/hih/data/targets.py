"""Label encoding on the training device: the codec's targets added to a batch once it is there.

Loaders ship coordinates only; :class:`hih.data.FaceDataModule` calls :func:`add_targets` in its
``on_after_batch_transfer`` hook, so the heatmaps are built on the device the batch was moved to
(never in the loader workers, where they would cost CPU time and host-to-device bandwidth). The
LightningModule reads ``batch["targets"]`` and only decodes.

Without that DataModule (plain DataLoaders in tests, notebooks, benchmark scripts), wrap the loaders
in :class:`EncodedLoaders`, which encodes with the same hook::

    trainer.fit(module, datamodule=EncodedLoaders(module.codec, train=train_loader, val=val_loader))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

__all__ = ["TARGETS_KEY", "EncodedLoaders", "add_targets", "batch_targets", "encodes_now"]

#: The batch key of the codec's targets: ``batch["targets"] = codec.encode(batch["landmarks"])``.
TARGETS_KEY = "targets"


def add_targets(batch: Any, codec: Any) -> Any:
    """``batch`` plus ``"targets"``: the codec's ``encode(batch["landmarks"])`` on the landmarks' device.

    Batches without landmarks (prediction) or a ``codec`` of None come back unchanged.
    """
    if codec is None or not isinstance(batch, Mapping) or "landmarks" not in batch:
        return batch
    with torch.no_grad():
        targets = codec.encode(batch["landmarks"])
    return {**batch, TARGETS_KEY: targets}


def batch_targets(batch: Mapping[str, Any], required: bool = True) -> Mapping[str, Any] | None:
    """The codec's targets that :func:`add_targets` put into ``batch``: the one place the LightningModule's
    steps read them from. None when absent and not ``required`` (evaluation on coordinate-only batches)."""
    targets = batch.get(TARGETS_KEY)
    if targets is None and required:
        raise KeyError(
            f"training batches must carry the codec's targets under {TARGETS_KEY!r}, got keys {sorted(batch)}: "
            "FaceDataModule(codec=...) adds them on the device; wrap plain DataLoaders in "
            "hih.data.targets.EncodedLoaders(module.codec, train=..., val=..., test=...)"
        )
    return targets


def encodes_now(trainer: Any) -> bool:
    """Fit, validate and test batches get targets (losses, head metrics); predict batches go without."""
    return trainer is None or not trainer.predicting


class EncodedLoaders(L.LightningDataModule):
    """Plain DataLoaders of coordinate batches as a DataModule that encodes like FaceDataModule.

    codec: the model's codec (``module.codec``). train / val / test / predict: the loaders; only the
    given ones become the DataModule's ``*_dataloader`` methods.
    """

    def __init__(
        self,
        codec: Any,
        train: DataLoader | None = None,
        val: DataLoader | None = None,
        test: DataLoader | None = None,
        predict: DataLoader | None = None,
    ):
        super().__init__()
        self.codec = codec
        # Instance attributes, as LightningDataModule.from_datasets does: Lightning asks for the
        # loaders a DataModule defines, so only the given ones may exist.
        for stage, loader in {"train": train, "val": val, "test": test, "predict": predict}.items():
            if loader is not None:
                setattr(self, f"{stage}_dataloader", lambda loader=loader: loader)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return add_targets(batch, self.codec) if encodes_now(self.trainer) else batch
