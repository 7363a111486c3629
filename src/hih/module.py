"""The LightningModule: training with intermediate supervision, and the calls into evaluation.

Batches follow docs/contracts.md: ``{"image": (B, 3, S, S), "landmarks": (B, N, 2), "subsets": (B, K)
bool, "index": (B,)}``, plus the codec's ``"targets"`` in fit / validate / test, built on the device
by the DataModule (:mod:`hih.data.targets`; plain DataLoaders: :class:`hih.data.targets.EncodedLoaders`).
This module never encodes, and refuses at setup a DataModule whose codec is configured otherwise.
It logs ``train/loss`` with each loss term and ``val/loss`` (none without targets); one
:class:`hih.evaluation.StageEvaluator` per stage decodes and scores, and its results are logged as they
come (``val/nme`` is the checkpoint monitor; keys in docs/contracts.md). The optimizer and lr schedule
are Hydra ``_partial_`` targets (:mod:`hih.optim`); the NaN/Inf guard is a callback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from hih.codecs.base import Codec
from hih.codecs.matching import check_encoder, check_net
from hih.config import plain
from hih.data.targets import batch_targets
from hih.evaluation import StageEvaluator, metric_key
from hih.evaluation.normalisation import resolve_normalisation
from hih.methods import build_loss
from hih.metrics import PerFaceResults
from hih.models.output import ModelOutput
from hih.optim import as_partial, run_lengths
from hih.warm_start import WarmStart

__all__ = ["FaceAlignmentModule"]

#: Adam when no optimizer is given (conf/module/default.yaml gives one); no scheduler: a constant lr.
DEFAULT_OPTIMIZER = functools.partial(torch.optim.Adam, lr=1e-3)


class FaceAlignmentModule(L.LightningModule):
    """Train / evaluate a landmark net with a codec.

    net: ``forward(image (B, 3, S, S)) -> ModelOutput``.
    codec: :class:`hih.codecs.base.Codec` matching the net's head (same ``head_key``).
    layout, norm_pair, subset_names, norm: which landmarks normalise NME and which subsets the test
        reports (:func:`hih.evaluation.normalisation.resolve_normalisation`).
    loss: ``model.loss``: the shared ``heatmap`` / ``head`` weights and ``stack_reduction``
        (:data:`hih.losses.LOSS_DEFAULTS`) plus the head's own options, which its method's loss takes
        (HIH ``decimal_loss`` "l2" | "kl" | "cls", WOM ``smooth_l1_beta``; :func:`hih.methods.build_loss`).
    optimizer: ``optimizer(params) -> torch.optim.Optimizer``: a functools.partial or a Hydra
        ``_partial_`` config (e.g. ``{_target_: torch.optim.AdamW, _partial_: true, lr: 2e-3}``).
    scheduler: ``scheduler(optimizer, **lengths) -> LRScheduler`` or None, stepped every optimizer step;
        ``lengths``: the ``total_steps`` / ``steps_per_epoch`` its signature asks for (:mod:`hih.optim`).
    metric_threshold: FR / AUC cut-off as a fraction of the normalising distance (0.10 -> fr_10, auc_10).
    compile: ``torch.compile`` the net in place (state-dict keys unchanged).
    channels_last: channels-last weights and inputs (faster convolutions on tensor cores).
    init_from, freeze, head_lr: start from another run's backbone (strict about shapes), freeze it
        ("backbone": no gradient, BN statistics kept), give the head its own lr (:mod:`hih.warm_start`).
    """

    def __init__(
        self,
        net: nn.Module,
        codec: Codec,
        layout: str | Any | None = None,
        norm_pair: Sequence[int] | None = None,
        subset_names: Sequence[str] | None = None,
        norm: str = "ocular",
        loss: Mapping[str, Any] | None = None,
        optimizer: Callable | Mapping[str, Any] | None = None,
        scheduler: Callable | Mapping[str, Any] | None = None,
        metric_threshold: float = 0.10,
        compile: bool = False,
        channels_last: bool = False,
        init_from: str | None = None,
        freeze: str | Sequence[str] | None = None,
        head_lr: float | None = None,
    ) -> None:
        super().__init__()
        loss, norm_pair, subset_names = plain(loss), plain(norm_pair), plain(subset_names)
        chosen = DEFAULT_OPTIMIZER if optimizer is None else optimizer
        self.optimizer_factory, optimizer_record = as_partial(chosen, "optimizer")
        self.scheduler_factory, scheduler_record = as_partial(scheduler, "scheduler")
        layout_spec, layout = layout, getattr(layout, "name", layout)  # checkpoints record a Layout by its name
        self.save_hyperparameters(ignore=["net", "codec", "optimizer", "scheduler"])
        # Plain records of the partials (checkpoints load with weights_only=True).
        self.hparams["optimizer"] = optimizer_record
        self.hparams["scheduler"] = scheduler_record

        self.net = net
        self.codec = codec
        check_net(net, codec)
        self.norm_pair, self.subset_names = resolve_normalisation(layout_spec, norm_pair, subset_names, norm)
        #: The training loss, built once by the head's method from ``loss``.
        self.criterion = build_loss(codec.head_key, loss)
        self.loss_weights = self.criterion.options
        self.metric_threshold = float(metric_threshold)
        self.channels_last = bool(channels_last)
        self.warm_start = WarmStart(self.net, init_from, freeze, head_lr)
        #: Evaluation, one component per stage: metrics, head meter, re-decoders (hih.evaluation).
        self.train_evaluator, self.val_evaluator, self.test_evaluator = (
            StageEvaluator(stage, codec, self.norm_pair, self.subset_names, self.metric_threshold)
            for stage in ("train", "val", "test")
        )
        #: Per-face results of the last test run (the test evaluator's, for the CED and sample plots).
        self.test_results: PerFaceResults = self.test_evaluator.per_face
        #: The named loss terms of the current training step (read by NonFiniteGuard).
        self.train_losses: dict[str, Tensor] = {}
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            # In place, so checkpoints keep the plain module's keys (no "_orig_mod." prefix).
            self.net.compile()

    def setup(self, stage: str) -> None:
        self.check_codec(getattr(self._trainer, "datamodule", None))
        self.warm_start.setup(stage)

    def train(self, mode: bool = True):
        super().train(mode)
        self.warm_start.train()
        return self

    def check_codec(self, datamodule: Any) -> None:
        """Refuse a DataModule that encodes with another codec configuration than the one this module decodes."""
        check_encoder(datamodule, self.codec)

    def forward(self, image: Tensor, cells: Tensor | None = None) -> ModelOutput:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image, cells) if cells is not None else self.net(image)

    def _train_cells(self, targets: Mapping[str, Tensor]) -> Tensor | None:
        """Ground-truth integer cells floor(u) (the codec's "cell" target) for heads that read around them (HIH_L)."""
        return targets["cell"] if getattr(self.net, "wants_cells", False) else None

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        targets = batch_targets(batch)
        cells = self._train_cells(targets)
        # forward(image) alone unless the head needs the cells: subclasses may override forward(image).
        output = self(batch["image"]) if cells is None else self(batch["image"], cells)
        losses = self.train_losses = self.criterion(output, targets)
        self.train_evaluator.update(output, targets=targets)
        bs = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        for name, value in losses.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=True, on_epoch=True, batch_size=bs)
        return losses["loss"]

    def on_train_epoch_end(self) -> None:
        # compute() gathers every rank's samples: no sync_dist needed (here and below).
        self.log_dict(self.train_evaluator.compute())
        self.train_evaluator.reset()

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        output = self(batch["image"])
        targets = batch_targets(batch, required=False)
        if targets is not None:
            loss = self.criterion(output, targets)["loss"]
            self.log("val/loss", loss, on_epoch=True, batch_size=batch["image"].shape[0], sync_dist=True)
        self.val_evaluator.update(output, batch["landmarks"], targets)

    def on_validation_epoch_end(self) -> None:
        values = self.val_evaluator.compute()
        self.log("val/nme", values.pop(metric_key("val", "nme")), prog_bar=True)
        self.log_dict(values)
        self.val_evaluator.reset()

    def on_test_epoch_start(self) -> None:
        self.test_results.reset()

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        output = self(batch["image"])
        targets = batch_targets(batch, required=False)
        self.test_evaluator.update(output, batch["landmarks"], targets, batch.get("subsets"), batch.get("index"))

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_evaluator.compute())
        self.test_evaluator.reset()
        self.test_results.collect(self.trainer.world_size if self._trainer is not None else 1)

    def test_errors_by_subset(self):
        """Per-face NMEs (percent) of the last test run by subset (see PerFaceResults.errors_by_subset)."""
        return self.test_results.errors_by_subset()

    def predict_step(self, batch: Mapping[str, Tensor] | Tensor, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Decoded landmarks (B, N, 2) in input pixels; ``batch`` is a batch dict or an image tensor."""
        image = batch if isinstance(batch, Tensor) else batch["image"]
        return self.codec.decode(self(image).for_codec()).float()

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.warm_start.param_groups(self))
        if self.scheduler_factory is None:
            return opt
        scheduler = self.scheduler_factory(opt, **run_lengths(self.trainer, self.scheduler_factory))
        # Every schedule is a pure function of the optimizer step, so resumed runs continue exactly.
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
