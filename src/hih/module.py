"""The LightningModule: encode landmarks on the device, train with intermediate supervision, evaluate.

Batches follow docs/contracts.md: ``{"image": (B, 3, S, S), "landmarks": (B, N, 2), "subsets": (B, K)
bool, "index": (B,)}``. Targets are built here by the codec (never in the DataLoader). Logged keys:
``train/loss`` and each loss term; ``val/loss``, ``val/nme`` (the checkpoint monitor), ``val/fr_10``,
``val/auc_10``; ``test/nme``, ``test/fr_10``, ``test/auc_10`` and ``test/<metric>/<subset>``; for codecs
with a compensation head also the integer-heatmap-only ``test/nme_integer``, ``test/fr_10_integer``,
``test/auc_10_integer`` and their subsets (paper Table 7).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from hih.codecs.base import Codec
from hih.codecs.common import to_heatmap_coords
from hih.losses import compute_losses, resolve_loss_weights
from hih.metrics import FaceAlignmentMetrics, per_sample_nme
from hih.models.output import ModelOutput

__all__ = ["FaceAlignmentModule", "NonFiniteError", "decode_integer_centre"]


class NonFiniteError(FloatingPointError):
    """Training produced NaN/Inf: stopped before the bad values reached the weights or a checkpoint."""

DEFAULT_OPTIMIZER: dict[str, Any] = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}
#: "step": multiply the lr by gamma every step_size epochs (the paper: Adam, /10 every 50 epochs).
DEFAULT_SCHEDULER: dict[str, Any] = {"type": "step", "step_size": 50, "gamma": 0.1, "warmup_steps": 0}


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists, so checkpoints hold only weights_only-safe types."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency, but the package must not need it
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def decode_integer_centre(heatmap: Tensor, stride: float) -> Tensor:
    """The integer heatmap alone: argmax cell centre. (B, N, H, W) -> (B, N, 2) input pixels."""
    w = heatmap.shape[-1]
    flat = heatmap.flatten(2).argmax(-1)
    xy = torch.stack((flat % w, torch.div(flat, w, rounding_mode="floor")), dim=-1)
    return (xy.float() + 0.5) * stride


class FaceAlignmentModule(L.LightningModule):
    """Train / evaluate a landmark net with a codec.

    net: ``forward(image (B, 3, S, S)) -> ModelOutput``.
    codec: :class:`hih.codecs.base.Codec` matching the net's head (same ``head_key``).
    layout: a layout name ("wflw" | "300w" | "cofw") or :class:`hih.data.layouts.Layout`; gives
        ``norm_pair`` and ``subset_names`` unless those are given explicitly.
    norm: "ocular" (outer eye corners, paper eq. 7) or "pupil" (the layout's pupil pair).
    loss: loss weights, see :data:`hih.losses.DEFAULT_LOSS_WEIGHTS` (heatmap, head, decimal_loss "l2" | "kl").
    optimizer: {"name": "adam" | "adamw", "lr", "weight_decay", "betas"?}.
    scheduler: {"type": "step" (step_size, gamma; in epochs) | "cosine" (min_lr_ratio) | "onecycle"
        (pct_start) | "none", "warmup_steps": linear warm-up in optimizer steps (step / cosine)}.
    metric_threshold: FR / AUC cut-off as a fraction of the normalising distance (0.10 -> fr_10, auc_10).
    compile: ``torch.compile`` the net in place (state-dict keys unchanged).
    channels_last: channels-last weights and inputs (faster convolutions on tensor cores).
    check_finite: stop with :class:`NonFiniteError` on a NaN/Inf loss term (naming step and term)
        or gradient, before the optimizer step, and refuse to write a checkpoint holding NaN/Inf;
        costs one host sync per step.
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
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        metric_threshold: float = 0.10,
        compile: bool = False,
        channels_last: bool = False,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        loss = _plain(loss)
        optimizer = _plain(optimizer)
        scheduler = _plain(scheduler)
        norm_pair = _plain(norm_pair)
        subset_names = _plain(subset_names)
        layout_spec = layout
        layout = getattr(layout, "name", layout)  # checkpoints record a Layout object by its name
        self.save_hyperparameters(ignore=["net", "codec"])

        self.net = net
        self.codec = codec
        net_key = getattr(net, "head_key", codec.head_key)
        if net_key != codec.head_key:
            raise ValueError(f"net head output {net_key!r} does not match codec {type(codec).__name__} (head_key {codec.head_key!r})")
        net_size = getattr(net, "input_size", codec.input_size)
        if net_size != codec.input_size:
            raise ValueError(f"net input_size {net_size} differs from codec input_size {codec.input_size}")

        self.norm_pair, self.subset_names = self._resolve_layout(layout_spec, norm_pair, subset_names, norm)
        self.loss_weights = resolve_loss_weights(loss)
        self.optimizer_cfg = {**DEFAULT_OPTIMIZER, **(optimizer or {})}
        self.scheduler_cfg = {**DEFAULT_SCHEDULER, **(scheduler or {})}
        self.metric_threshold = float(metric_threshold)
        self.channels_last = bool(channels_last)
        self.check_finite = bool(check_finite)

        self.val_metrics = FaceAlignmentMetrics(self.norm_pair, (), self.metric_threshold)
        self.test_metrics = FaceAlignmentMetrics(self.norm_pair, self.subset_names, self.metric_threshold)
        self.test_integer_metrics = (
            FaceAlignmentMetrics(self.norm_pair, self.subset_names, self.metric_threshold)
            if codec.head_key is not None
            else None
        )
        #: Filled by the test loop, in test-batch order: per-face NME (M,) percent, predictions and
        #: targets (M, N, 2) input pixels, subset flags (M, K) bool, dataset indices (M,) (None when
        #: batches carry no "index").
        self.test_errors: Tensor | None = None
        self.test_predictions: Tensor | None = None
        self.test_targets: Tensor | None = None
        self.test_subsets: Tensor | None = None
        self.test_indices: Tensor | None = None
        self._test_buffers: dict[str, list[Tensor]] = {}

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
            from hih.data.layouts import get_layout

            layout = get_layout(layout)
        if norm_pair is None:
            if layout is None:
                raise ValueError("FaceAlignmentModule needs a layout or a norm_pair to normalise NME")
            if norm == "pupil":
                if layout.pupil_pair is None:
                    raise ValueError(f"layout {layout.name!r} has no pupil landmarks; use norm='ocular' or pass norm_pair")
                norm_pair = layout.pupil_pair
            else:
                norm_pair = layout.norm_pair
        if subset_names is None:
            subset_names = layout.subset_names if layout is not None else ()
        if len(norm_pair) != 2:
            raise ValueError(f"norm_pair must be two landmark indices, got {norm_pair!r}")
        return (int(norm_pair[0]), int(norm_pair[1])), tuple(str(s) for s in subset_names)

    # ------------------------------------------------------------------ forward / steps
    def forward(self, image: Tensor, cells: Tensor | None = None) -> ModelOutput:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image, cells) if cells is not None else self.net(image)

    def _train_cells(self, landmarks: Tensor) -> Tensor | None:
        """Ground-truth integer cells floor(u) for heads that read around them (HIH_L), else None."""
        if not getattr(self.net, "wants_cells", False):
            return None
        return to_heatmap_coords(landmarks, self.codec.input_size, self.codec.heatmap_size).cell

    def _encode(self, landmarks: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return self.codec.encode(landmarks)

    def _losses(self, output: ModelOutput, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return compute_losses(output, self._encode(batch["landmarks"]), self.loss_weights)

    def _decode(self, output: ModelOutput) -> Tensor:
        return self.codec.decode(output.for_codec()).float()

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        cells = self._train_cells(batch["landmarks"])
        # forward(image) alone unless the head needs the cells: subclasses may override forward(image).
        output = self(batch["image"]) if cells is None else self(batch["image"], cells)
        losses = self._losses(output, batch)
        if self.check_finite:
            self._check_losses(losses, batch_idx)
        bs = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        for name, value in losses.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=True, on_epoch=True, batch_size=bs)
        return losses["loss"]

    # ------------------------------------------------------------------ numerical faults
    def _where(self, batch_idx: int | None = None) -> str:
        trainer = self._trainer
        if trainer is None:
            return "outside a Trainer"
        where = f"global step {trainer.global_step} (epoch {trainer.current_epoch}"
        return where + (f", batch {batch_idx})" if batch_idx is not None else ")")

    def _last_good(self) -> str:
        cb = getattr(self._trainer, "checkpoint_callbacks", None) or []
        paths = [p for c in cb for p in (getattr(c, "last_model_path", ""), getattr(c, "best_model_path", "")) if p]
        saved = f"The last good checkpoint is {paths[0]}" if paths else "No checkpoint had been written yet"
        return f"{saved}; no non-finite state was saved. Lower the learning rate, check the inputs, or clip gradients (trainer.gradient_clip_val)."

    def _check_losses(self, losses: Mapping[str, Tensor], batch_idx: int) -> None:
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        finite = torch.isfinite(values)
        if bool(finite.all()):  # one host sync for every term
            return
        bad = {name: float(v.detach()) for (name, v), ok in zip(losses.items(), finite.tolist()) if not ok}
        terms = [n for n in bad if n != "loss"] or ["loss"]
        raise NonFiniteError(
            f"non-finite training loss at {self._where(batch_idx)}: term(s) {', '.join(terms)} "
            f"({', '.join(f'{k}={v}' for k, v in bad.items())}). Training stopped before the optimizer step. "
            + self._last_good()
        )

    def on_before_optimizer_step(self, optimizer) -> None:
        # A finite loss can still give Inf gradients (overflow); the step would write them into the weights.
        # 16-bit AMP skips such steps itself (the GradScaler's job), so leave them to it.
        if not self.check_finite or "16-mixed" == str(getattr(self._trainer, "precision", "")):
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        # One fused norm per tensor and one host sync: NaN/Inf anywhere makes its norm non-finite.
        if not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            return
        names = [n for n, p in self.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        raise NonFiniteError(
            f"non-finite gradient at {self._where()} in {len(names)} parameter(s): {', '.join(names[:5])}"
            + (" ..." if len(names) > 5 else "") + ". Training stopped before the optimizer step. " + self._last_good()
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not self.check_finite:
            return
        bad = [k for k, v in checkpoint.get("state_dict", {}).items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
        if bad:
            raise NonFiniteError(
                f"refusing to write a checkpoint at {self._where()}: non-finite values in {', '.join(bad[:5])}"
                + (" ..." if len(bad) > 5 else "") + ". " + self._last_good()
            )

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        output = self(batch["image"])
        bs = batch["image"].shape[0]
        self.log("val/loss", self._losses(output, batch)["loss"], on_epoch=True, batch_size=bs, sync_dist=True)
        self.val_metrics.update(self._decode(output), batch["landmarks"])

    def on_validation_epoch_end(self) -> None:
        # compute() already gathered every rank's samples: no sync_dist needed.
        values = self.val_metrics.compute()
        self.log("val/nme", values.pop("nme"), prog_bar=True)
        self.log_dict({f"val/{k}": v for k, v in values.items()})
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self._test_buffers = {"errors": [], "pred": [], "target": [], "subsets": [], "index": []}

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        output = self(batch["image"])
        target = batch["landmarks"]
        subsets = batch.get("subsets") if self.subset_names else None
        if self.subset_names and subsets is None:
            raise KeyError(f"test batches must carry 'subsets' (B, {len(self.subset_names)}) for subsets {self.subset_names}")
        pred = self._decode(output)
        self.test_metrics.update(pred, target, subsets)
        if self.test_integer_metrics is not None:
            integer = decode_integer_centre(output.heatmaps[-1], self.codec.stride)
            self.test_integer_metrics.update(integer, target, subsets)
        buf = self._test_buffers
        buf["errors"].append(per_sample_nme(pred, target, self.norm_pair).detach())
        buf["pred"].append(pred.detach())
        buf["target"].append(target.detach().float())
        if subsets is not None:
            buf["subsets"].append(subsets.detach().to(torch.uint8))  # uint8: all_gather-able on every backend
        if "index" in batch:
            buf["index"].append(batch["index"].detach())

    def on_test_epoch_end(self) -> None:
        values = {f"test/{k}": v for k, v in self.test_metrics.compute().items()}
        if self.test_integer_metrics is not None:
            for key, value in self.test_integer_metrics.compute().items():
                name, _, subset = key.partition("/")
                values[f"test/{name}_integer" + (f"/{subset}" if subset else "")] = value
            self.test_integer_metrics.reset()
        self.log_dict(values)
        self.test_metrics.reset()
        self._collect_test_results()

    def _collect_test_results(self) -> None:
        """Concatenate the per-face buffers (and gather them across ranks) onto the CPU."""
        buf = self._test_buffers
        if not buf.get("errors"):
            return
        parts = {k: torch.cat(v) for k, v in buf.items() if v}
        if self.trainer is not None and self.trainer.world_size > 1 and torch.distributed.is_initialized():
            # The eval loaders shard without padding (ShardSampler), so ranks hold different counts:
            # torchmetrics' gather pads, gathers and trims; rank order = dataset order.
            from torchmetrics.utilities.distributed import gather_all_tensors

            parts = {k: torch.cat(gather_all_tensors(v)) for k, v in parts.items()}
        self.test_errors = parts["errors"].cpu()
        self.test_predictions = parts["pred"].cpu()
        self.test_targets = parts["target"].cpu()
        k = len(self.subset_names)
        self.test_subsets = parts["subsets"].cpu().bool() if "subsets" in parts else torch.zeros(len(self.test_errors), k, dtype=torch.bool)
        self.test_indices = parts["index"].cpu() if "index" in parts else None
        self._test_buffers = {}

    def test_errors_by_subset(self) -> dict[str, np.ndarray]:
        """Per-face NMEs (percent) of the last test run: {"full": (M,), "<subset>": (M_s,), ...}, for CED plots."""
        if self.test_errors is None:
            raise RuntimeError("no test results yet: run trainer.test(module, ...) first")
        errors = self.test_errors.double().numpy()
        out = {"full": errors}
        for col, name in enumerate(self.subset_names):
            out[name] = errors[self.test_subsets[:, col].numpy()]
        return out

    def predict_step(self, batch: Mapping[str, Tensor] | Tensor, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Decoded landmarks (B, N, 2) in input pixels; ``batch`` is a batch dict or an image tensor."""
        image = batch if isinstance(batch, Tensor) else batch["image"]
        return self._decode(self(image))

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        cfg = self.optimizer_cfg
        name = str(cfg["name"]).lower()
        kwargs = {"lr": float(cfg["lr"]), "weight_decay": float(cfg.get("weight_decay", 0.0))}
        if cfg.get("betas") is not None:
            kwargs["betas"] = tuple(float(b) for b in cfg["betas"])
        unknown = set(cfg) - {"name", "lr", "weight_decay", "betas"}
        if unknown:
            raise ValueError(f"unknown optimizer options {sorted(unknown)}; expected name, lr, weight_decay, betas")
        if name == "adam":
            opt = torch.optim.Adam(self.parameters(), **kwargs)
        elif name == "adamw":
            opt = torch.optim.AdamW(self.parameters(), **kwargs)
        else:
            raise ValueError(f"unknown optimizer {cfg['name']!r}; expected 'adam' or 'adamw'")

        sched = self.scheduler_cfg
        kind = str(sched.get("type") or "none").lower()
        if kind == "none":
            return opt
        if kind == "onecycle":
            total = self._total_steps()
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=kwargs["lr"], total_steps=total, pct_start=float(sched.get("pct_start", 0.3))
            )
        elif kind in ("step", "cosine"):
            scheduler = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_lambda(kind, sched))
        else:
            raise ValueError(f"unknown scheduler type {sched.get('type')!r}; expected 'step', 'cosine', 'onecycle' or 'none'")
        # Every schedule is a pure function of the optimizer step, so resumed runs continue exactly.
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def _total_steps(self) -> int:
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 0:
            raise ValueError("cosine / onecycle schedules need a finite run: set trainer.max_epochs or trainer.max_steps")
        return int(total)

    def _steps_per_epoch(self) -> int:
        trainer = self.trainer
        if trainer.train_dataloader is None:
            # What estimated_stepping_batches does too; it skips it when max_epochs is -1 (max_steps runs).
            trainer.fit_loop.setup_data()
        batches = trainer.num_training_batches
        if not math.isfinite(batches) or batches <= 0:
            raise ValueError("the step schedule counts epochs: the train dataloader needs a length")
        return max(1, math.ceil(batches / trainer.accumulate_grad_batches))

    def _lr_lambda(self, kind: str, sched: Mapping[str, Any]):
        warmup = int(sched.get("warmup_steps", 0) or 0)
        if kind == "step":
            step_size = int(sched.get("step_size", 50))
            gamma = float(sched.get("gamma", 0.1))
            if step_size < 1:
                raise ValueError(f"scheduler step_size is in epochs and must be >= 1, got {step_size}")
            per_epoch = self._steps_per_epoch()

            def decay(step: int) -> float:
                return gamma ** ((step // per_epoch) // step_size)
        else:
            total = self._total_steps()
            floor = float(sched.get("min_lr_ratio", 0.0))

            def decay(step: int) -> float:
                progress = min(1.0, max(0, step - warmup) / max(1, total - warmup))
                return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        def factor(step: int) -> float:
            ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
            return ramp * decay(step)

        return factor
