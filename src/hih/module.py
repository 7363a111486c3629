"""The LightningModule: train with intermediate supervision on the DataModule's targets, decode, evaluate.

Batches follow docs/contracts.md: ``{"image": (B, 3, S, S), "landmarks": (B, N, 2), "subsets": (B, K)
bool, "index": (B,)}``, plus ``"targets"`` in fit / validate / test: the codec's targets (``Codec.encode``),
built on the device by the DataModule's ``on_after_batch_transfer`` (:mod:`hih.data.targets`; plain
DataLoaders: :class:`hih.data.targets.EncodedLoaders`). This module never encodes: it reads the
targets and decodes, and refuses at setup a DataModule whose codec is configured otherwise. Without
targets, validation and test log no loss and no head metric. Logged keys:
``train/loss`` and each loss term; ``val/loss``, ``val/nme`` (the checkpoint monitor), ``val/fr_10``,
``val/auc_10``; ``test/nme``, ``test/fr_10``, ``test/auc_10`` and ``test/<metric>/<subset>``; for codecs
with a compensation head also the integer-heatmap-only ``test/nme_integer``, ``test/fr_10_integer``,
``test/auc_10_integer`` and their subsets, the same at the argmax index (the cell's corner, the
paper's Table 7 convention) as ``test/nme_integer_corner``, ``test/fr_10_integer_corner``,
``test/auc_10_integer_corner`` (+ subsets), and ``val/nme_integer``; for methods whose registry entry
names a head metric (:class:`hih.metrics.HeadMetric`) ``train/<name>`` (epoch mean), ``val/<name>``,
``test/<name>`` (+ subsets) and the gains ``val/<gain>`` = val/nme_integer - val/nme and
``test/<gain>`` (+ subsets) alike (``decimal_acc`` / ``decimal_gain``, ``offset_err`` /
``offset_gain``). A network without a compensation head (baseline, WSM, DARK, soft-argmax) is also
decoded at test time by every other method registered for the same output (:func:`redecoders`), logged
as ``test/<metric>@<method>`` (+ subsets: ``test/nme@dark/pose``): one training gives every decoder's row.
See docs/contracts.md.

Plumbing lives elsewhere: the optimizer and lr schedule are Hydra ``_partial_`` targets
(:mod:`hih.optim`), the NaN/Inf guard is a callback (:class:`hih.callbacks.NonFiniteGuard`), the
integer-only decode is the codec's (:meth:`hih.codecs.base.Codec.decode_integer`) and the per-face
test buffers are :class:`hih.metrics.PerFaceResults`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from hih.codecs.base import Codec
from hih.data.targets import TARGETS_KEY
from hih.methods import build_codec, build_loss, codec_parameters, get_method, head_output, method_names
from hih.metrics import FaceAlignmentMetrics, HeadMetricMeter, PerFaceResults
from hih.models.output import ModelOutput
from hih.optim import as_partial, run_lengths
from hih.warm_start import freeze as freeze_parts
from hih.warm_start import keep_frozen_in_eval, load_backbone, param_groups, parse_freeze

__all__ = ["FaceAlignmentModule"]

#: Adam when no optimizer is given (the configs always give one: conf/module/default.yaml); a
#: constant lr when no scheduler is given.
DEFAULT_OPTIMIZER = functools.partial(torch.optim.Adam, lr=1e-3)


def redecoders(codec: Codec) -> dict[str, Codec]:
    """The other decoders of ``codec``'s network output: method name -> codec, as the registry builds it.

    A method qualifies when its head writes the same output (``output_key == codec.head_key``) and
    its codec class is ``codec``'s; it is built with ``codec``'s configuration less what the method
    fixes (e.g. its ``decoder``), so geometry and label settings match. Methods whose codec decodes
    exactly as ``codec`` does (the run's own method, HIH_C / HIH_T / HIH_L, which share one codec)
    are left out, as is a method that refuses this configuration (e.g. DARK with a corner anchor).
    ``hih-eval model=<name>`` on the same checkpoint decodes alike (tested).
    """
    mine = codec.config()
    out: dict[str, Codec] = {}
    seen = [mine]
    for name in method_names():
        method = get_method(name)
        if method.output_key != codec.head_key or method.codec is not type(codec):
            continue
        accepted = set(codec_parameters(name))
        kw = {k: v for k, v in vars(codec).items() if k in accepted and k not in method.codec_kwargs}
        try:
            other = build_codec(name, **kw)
        except ValueError:
            continue
        if other.config() not in seen:
            seen.append(other.config())
            out[name] = other
    return out


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists, so checkpoints hold only weights_only-safe types."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency, but the package must not need it
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


class FaceAlignmentModule(L.LightningModule):
    """Train / evaluate a landmark net with a codec.

    net: ``forward(image (B, 3, S, S)) -> ModelOutput``.
    codec: :class:`hih.codecs.base.Codec` matching the net's head (same ``head_key``).
    layout: a layout name ("wflw" | "300w" | "cofw") or :class:`hih.data.layouts.Layout`; gives
        ``norm_pair`` and ``subset_names`` unless those are given explicitly.
    norm: "ocular" (outer eye corners, paper eq. 7) or "pupil" (the layout's pupil pair).
    loss: ``model.loss``: the shared ``heatmap`` / ``head`` weights and ``stack_reduction``
        (:data:`hih.losses.LOSS_WEIGHTS`) plus the head's own options, which its method's loss takes
        (HIH ``decimal_loss`` "l2" | "kl" | "cls", WOM ``smooth_l1_beta``; :func:`hih.methods.build_loss`).
    optimizer: ``optimizer(params) -> torch.optim.Optimizer``: a functools.partial or a Hydra
        ``_partial_`` config (e.g. ``{_target_: torch.optim.AdamW, _partial_: true, lr: 2e-3}``).
    scheduler: ``scheduler(optimizer, **lengths) -> LRScheduler`` or None, stepped every optimizer
        step; ``lengths`` are the ``total_steps`` / ``steps_per_epoch`` its signature asks for
        (the factories of :mod:`hih.optim`).
    metric_threshold: FR / AUC cut-off as a fraction of the normalising distance (0.10 -> fr_10, auc_10).
    compile: ``torch.compile`` the net in place (state-dict keys unchanged).
    channels_last: channels-last weights and inputs (faster convolutions on tensor cores).
    init_from: a hih-train checkpoint whose backbone (and integer heatmaps) this run starts from,
        loaded when fitting starts (:func:`hih.warm_start.load_backbone`; strict about shapes).
    freeze: "backbone" (or null): those parts get no gradient and stay in eval mode (BN statistics kept).
    head_lr: the compensation head's own learning rate (its own optimizer parameter group), or null.
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
        loss = _plain(loss)
        norm_pair = _plain(norm_pair)
        subset_names = _plain(subset_names)
        self.optimizer_factory, optimizer_record = as_partial(
            optimizer if optimizer is not None else DEFAULT_OPTIMIZER, "optimizer"
        )
        self.scheduler_factory, scheduler_record = as_partial(scheduler, "scheduler")
        layout_spec = layout
        layout = getattr(layout, "name", layout)  # checkpoints record a Layout object by its name
        self.save_hyperparameters(ignore=["net", "codec", "optimizer", "scheduler"])
        # Plain records of the partials (checkpoints load with weights_only=True).
        self.hparams["optimizer"] = optimizer_record
        self.hparams["scheduler"] = scheduler_record

        self.net = net
        self.codec = codec
        net_key = getattr(net, "head_key", codec.head_key)
        if net_key != codec.head_key:
            raise ValueError(
                f"net head output {net_key!r} does not match codec {type(codec).__name__} (head_key {codec.head_key!r})"
            )
        net_size = getattr(net, "input_size", codec.input_size)
        if net_size != codec.input_size:
            raise ValueError(f"net input_size {net_size} differs from codec input_size {codec.input_size}")
        if hasattr(net, "input_size") and codec.heatmap_size != net_size // 4:
            # The hourglass always writes input / 4 maps: another heatmap_size would encode targets it never sees.
            raise ValueError(
                f"data.heatmap_size={codec.heatmap_size}, but the network's heatmap is input_size / 4 = "
                f"{net_size // 4}: set data.heatmap_size={net_size // 4}"
            )

        self.norm_pair, self.subset_names = self._resolve_layout(layout_spec, norm_pair, subset_names, norm)
        #: The training loss, built once by the head's method from ``loss``.
        self.criterion = build_loss(codec.head_key, loss)
        self.loss_weights = self.criterion.options
        self.metric_threshold = float(metric_threshold)
        self.channels_last = bool(channels_last)
        self.init_from, self.frozen, self.head_lr = init_from, parse_freeze(freeze), head_lr
        freeze_parts(self.net, self.frozen)

        self.val_metrics = FaceAlignmentMetrics(self.norm_pair, (), self.metric_threshold)
        self.test_metrics = FaceAlignmentMetrics(self.norm_pair, self.subset_names, self.metric_threshold)
        has_head = codec.head_key is not None
        self.test_integer_metrics = (
            FaceAlignmentMetrics(self.norm_pair, self.subset_names, self.metric_threshold) if has_head else None
        )
        # The paper's Table 7 convention: the argmax index itself (the cell's corner), not its centre.
        self.test_integer_corner_metrics = (
            FaceAlignmentMetrics(self.norm_pair, self.subset_names, self.metric_threshold) if has_head else None
        )
        self.val_integer_metrics = FaceAlignmentMetrics(self.norm_pair, (), self.metric_threshold) if has_head else None
        #: How the registry scores this codec's head (None: no head, or a method without a head metric).
        method = head_output(codec.head_key)
        self.head_metric = method.head_metric if method is not None else None
        if self.head_metric is not None:
            self.train_head_meter = HeadMetricMeter()
            self.val_head_meter = HeadMetricMeter()
            self.test_head_meter = HeadMetricMeter(self.subset_names)
        #: Every other decoder of this network's output, scored on the test set alongside the own decode.
        self.redecoders = redecoders(codec)
        self.test_redecode_metrics = nn.ModuleDict(
            {
                name: FaceAlignmentMetrics(self.norm_pair, self.subset_names, self.metric_threshold)
                for name in self.redecoders
            }
        )
        #: Per-face results of the last test run (filled by the test loop).
        self.test_results = PerFaceResults(self.norm_pair, self.subset_names)
        #: The named loss terms of the current training step (read by NonFiniteGuard).
        self.train_losses: dict[str, Tensor] = {}

        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            # In place, so checkpoints keep the plain module's keys (no "_orig_mod." prefix).
            self.net.compile()

    @staticmethod
    def _resolve_layout(layout, norm_pair, subset_names, norm) -> tuple[tuple[int, int], tuple[str, ...]]:
        if norm not in ("ocular", "pupil"):
            raise ValueError(f"norm must be 'ocular' or 'pupil', got {norm!r}")
        if isinstance(layout, str):
            from hih.data.datasets import get_layout

            layout = get_layout(layout)
        if norm_pair is None:
            if layout is None:
                raise ValueError("FaceAlignmentModule needs a layout or a norm_pair to normalise NME")
            if norm == "pupil":
                if layout.pupil_pair is None:
                    raise ValueError(
                        f"layout {layout.name!r} has no pupil landmarks; use norm='ocular' or pass norm_pair"
                    )
                norm_pair = layout.pupil_pair
            else:
                norm_pair = layout.norm_pair
        if subset_names is None:
            subset_names = layout.subset_names if layout is not None else ()
        if len(norm_pair) != 2:
            raise ValueError(f"norm_pair must be two landmark indices, got {norm_pair!r}")
        return (int(norm_pair[0]), int(norm_pair[1])), tuple(str(s) for s in subset_names)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        self.check_codec(getattr(self._trainer, "datamodule", None))
        if stage == "fit" and self.init_from:  # a resumed fit then restores its own weights over these
            load_backbone(self.net, self.init_from)

    def train(self, mode: bool = True):
        super().train(mode)
        keep_frozen_in_eval(self.net, self.frozen)
        return self

    def check_codec(self, datamodule: Any) -> None:
        """Refuse a DataModule that encodes with another codec configuration than the one this module decodes."""
        theirs = getattr(datamodule, "codec", None)
        if theirs is None:
            return
        if not isinstance(theirs, Codec) or theirs.config() != self.codec.config():
            raise ValueError(
                f"the DataModule encodes labels with {theirs!r} but the model decodes with {self.codec!r}: "
                "both must be the same codec configuration "
                "(the configs give data.datamodule.codec: ${model.codec}; override model.codec.*)"
            )

    # ------------------------------------------------------------------ forward / steps
    def forward(self, image: Tensor, cells: Tensor | None = None) -> ModelOutput:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image, cells) if cells is not None else self.net(image)

    def _train_cells(self, targets: Mapping[str, Tensor]) -> Tensor | None:
        """Ground-truth integer cells floor(u) (the codec's "cell" target) for heads that read around them (HIH_L)."""
        return targets["cell"] if getattr(self.net, "wants_cells", False) else None

    def _targets(self, batch: Mapping[str, Any], required: bool = True) -> Mapping[str, Tensor] | None:
        """The codec's targets the DataModule added to ``batch`` on this device: the one place the steps
        read them from. None when absent and not ``required`` (evaluation on coordinate-only batches)."""
        targets = batch.get(TARGETS_KEY)
        if targets is None and required:
            raise KeyError(
                f"training batches must carry the codec's targets under {TARGETS_KEY!r}, got keys {sorted(batch)}: "
                "FaceDataModule(codec=...) adds them on the device; wrap plain DataLoaders in "
                "hih.data.targets.EncodedLoaders(module.codec, train=..., val=..., test=...)"
            )
        return targets

    def _losses(self, output: ModelOutput, targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.criterion(output, targets)

    def _score_head(
        self,
        meter: HeadMetricMeter,
        output: ModelOutput,
        targets: Mapping[str, Tensor],
        batch: Mapping[str, Tensor],
        subsets: Tensor | None = None,
    ) -> None:
        """Add the batch's per-landmark head scores (the registry's head metric) to ``meter``."""
        meter.update(*self.head_metric.score(output.head, targets, targets["cell"]), subsets)

    def _decode(self, output: ModelOutput) -> Tensor:
        return self.codec.decode(output.for_codec()).float()

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        targets = self._targets(batch)
        cells = self._train_cells(targets)
        # forward(image) alone unless the head needs the cells: subclasses may override forward(image).
        output = self(batch["image"]) if cells is None else self(batch["image"], cells)
        losses = self.train_losses = self._losses(output, targets)
        if self.head_metric is not None:
            self._score_head(self.train_head_meter, output, targets, batch)
        bs = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        for name, value in losses.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=True, on_epoch=True, batch_size=bs)
        return losses["loss"]

    def on_train_epoch_end(self) -> None:
        if self.head_metric is not None:
            # compute() sums every rank's landmarks: no sync_dist needed.
            self.log(f"train/{self.head_metric.name}", self.train_head_meter.compute()[""].float())
            self.train_head_meter.reset()

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        output = self(batch["image"])
        bs = batch["image"].shape[0]
        targets = self._targets(batch, required=False)
        if targets is not None:
            self.log("val/loss", self._losses(output, targets)["loss"], on_epoch=True, batch_size=bs, sync_dist=True)
        self.val_metrics.update(self._decode(output), batch["landmarks"])
        if self.val_integer_metrics is not None:
            self.val_integer_metrics.update(
                self.codec.decode_integer(output.heatmaps[-1], anchor="centre"), batch["landmarks"]
            )
        if self.head_metric is not None and targets is not None:
            self._score_head(self.val_head_meter, output, targets, batch)

    def on_validation_epoch_end(self) -> None:
        # compute() already gathered every rank's samples: no sync_dist needed.
        values = self.val_metrics.compute()
        nme = values.pop("nme")
        self.log("val/nme", nme, prog_bar=True)
        self.log_dict({f"val/{k}": v for k, v in values.items()})
        self.val_metrics.reset()
        if self.val_integer_metrics is not None:
            # The integer heatmap alone at the cell centre, and what the head adds beyond centring.
            nme_integer = self.val_integer_metrics.compute()["nme"]
            self.log("val/nme_integer", nme_integer)
            self.val_integer_metrics.reset()
            if self.head_metric is not None:
                self.log(f"val/{self.head_metric.gain}", nme_integer - nme)
        if self.head_metric is not None and self.val_head_meter.update_called:  # not without targets
            self.log(f"val/{self.head_metric.name}", self.val_head_meter.compute()[""].float())
            self.val_head_meter.reset()

    def on_test_epoch_start(self) -> None:
        self.test_results.reset()

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        output = self(batch["image"])
        target = batch["landmarks"]
        subsets = batch.get("subsets") if self.subset_names else None
        if self.subset_names and subsets is None:
            raise KeyError(
                f"test batches must carry 'subsets' (B, {len(self.subset_names)}) for subsets {self.subset_names}"
            )
        pred = self._decode(output)
        self.test_metrics.update(pred, target, subsets)
        if self.test_integer_metrics is not None:
            heatmap = output.heatmaps[-1]
            self.test_integer_metrics.update(self.codec.decode_integer(heatmap, anchor="centre"), target, subsets)
            self.test_integer_corner_metrics.update(
                self.codec.decode_integer(heatmap, anchor="corner"), target, subsets
            )
        if self.redecoders:
            outputs = output.for_codec()
            for name, codec in self.redecoders.items():
                self.test_redecode_metrics[name].update(codec.decode(outputs).float(), target, subsets)
        targets = self._targets(batch, required=False)
        if self.head_metric is not None and targets is not None:
            self._score_head(self.test_head_meter, output, targets, batch, subsets)
        self.test_results.update(pred, target, subsets, batch.get("index"))

    def on_test_epoch_end(self) -> None:
        values = {f"test/{k}": v for k, v in self.test_metrics.compute().items()}
        if self.test_integer_metrics is not None:
            for suffix, metrics in (
                ("_integer", self.test_integer_metrics),
                ("_integer_corner", self.test_integer_corner_metrics),
            ):
                for key, value in metrics.compute().items():
                    name, _, subset = key.partition("/")
                    values[f"test/{name}{suffix}" + (f"/{subset}" if subset else "")] = value
                metrics.reset()
            if self.head_metric is not None:
                # What the head adds beyond centring (0 for a head that learned nothing), per subset too.
                for subset in ("", *(f"/{s}" for s in self.subset_names)):
                    values[f"test/{self.head_metric.gain}{subset}"] = (
                        values[f"test/nme_integer{subset}"] - values[f"test/nme{subset}"]
                    )
        for method, metrics in self.test_redecode_metrics.items():
            for key, value in metrics.compute().items():
                name, _, subset = key.partition("/")
                values[f"test/{name}@{method}" + (f"/{subset}" if subset else "")] = value
            metrics.reset()
        if self.head_metric is not None and self.test_head_meter.update_called:  # not without targets
            values.update(
                {f"test/{self.head_metric.name}{k}": v.float() for k, v in self.test_head_meter.compute().items()}
            )
            self.test_head_meter.reset()
        self.log_dict(values)
        self.test_metrics.reset()
        self.test_results.collect(self.trainer.world_size if self._trainer is not None else 1)

    def test_errors_by_subset(self):
        """Per-face NMEs (percent) of the last test run by subset (see PerFaceResults.errors_by_subset)."""
        return self.test_results.errors_by_subset()

    def predict_step(self, batch: Mapping[str, Tensor] | Tensor, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Decoded landmarks (B, N, 2) in input pixels; ``batch`` is a batch dict or an image tensor."""
        image = batch if isinstance(batch, Tensor) else batch["image"]
        return self._decode(self(image))

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        opt = self.optimizer_factory(param_groups(self, getattr(self.net, "head", None), self.head_lr))
        if self.scheduler_factory is None:
            return opt
        scheduler = self.scheduler_factory(opt, **run_lengths(self.trainer, self.scheduler_factory))
        # Every schedule is a pure function of the optimizer step, so resumed runs continue exactly.
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
