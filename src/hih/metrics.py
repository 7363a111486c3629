"""Face-alignment metrics (paper section 4.1): NME, FR@t and AUC@t, on the full set and per subset.

All errors are per-face NMEs in percent (eq. 7). ``FaceAlignmentMetrics`` keeps its state as
concatenated per-sample tensors reduced with ``"cat"``, so under DDP ``compute()`` sees every
sample of every rank and returns exactly the single-process numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "FaceAlignmentMetrics",
    "PerFaceResults",
    "auc_from_errors",
    "ced",
    "failure_rate",
    "per_sample_nme",
    "threshold_suffix",
]


def _check_landmarks(name: str, value: Tensor) -> None:
    if value.ndim != 3 or value.shape[-1] != 2:
        raise ValueError(f"{name} must be (B, N, 2) landmarks, got shape {tuple(value.shape)}")


def per_sample_nme(pred: Tensor, target: Tensor, norm_pair: Sequence[int]) -> Tensor:
    """NME of each face in percent (eq. 7): mean landmark distance over ``d``, times 100.

    pred, target: (B, N, 2) in the same pixel units; norm_pair: (i, j) landmark indices of the
    target whose distance is ``d`` (outer eye corners for inter-ocular, pupils for inter-pupil).
    Returns (B,).
    """
    _check_landmarks("pred", pred)
    _check_landmarks("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    if len(norm_pair) != 2:
        raise ValueError(f"norm_pair must be two landmark indices, got {norm_pair!r}")
    i, j = (int(k) for k in norm_pair)
    n = target.shape[1]
    if not (0 <= i < n and 0 <= j < n) or i == j:
        raise ValueError(f"norm_pair {norm_pair!r} must be two distinct indices in 0..{n - 1}")
    pred = pred.float()
    target = target.float()
    d = torch.linalg.vector_norm(target[:, i] - target[:, j], dim=-1)
    if bool((d <= 0).any()):
        raise ValueError(f"normalising distance between landmarks {i} and {j} is zero for some target faces")
    dist = torch.linalg.vector_norm(pred - target, dim=-1)  # (B, N)
    return dist.mean(dim=1) / d * 100.0


def failure_rate(errors: Tensor, threshold: float) -> Tensor:
    """Percent of faces with NME above ``threshold`` (a fraction, 0.10 = 10 %). errors: (M,) percent."""
    if errors.numel() == 0:
        return errors.new_tensor(float("nan"))
    return (errors > threshold * 100.0).float().mean() * 100.0


def auc_from_errors(errors: Tensor, threshold: float) -> Tensor:
    """Area under the CED curve from 0 to ``threshold``, normalised to [0, 1]. errors: (M,) percent.

    The CED is the step function ``F(t) = #{e_i <= t} / M``; integrating it exactly gives
    ``(1 / (M T)) * sum_i max(T - e_i, 0)``: each face contributes from its error up to the cut-off.
    """
    if errors.numel() == 0:
        return errors.new_tensor(float("nan"))
    cutoff = threshold * 100.0
    return (cutoff - errors.double()).clamp(min=0).mean().to(errors.dtype) / cutoff


def ced(errors: Tensor, max_error: float, steps: int = 1000) -> tuple[Tensor, Tensor]:
    """CED curve of (M,) errors (percent): ``steps`` thresholds in [0, max_error] and the fraction of
    faces whose NME is at most each threshold."""
    if steps < 2:
        raise ValueError(f"ced needs steps >= 2, got {steps}")
    errors = errors.detach().flatten().double()
    thresholds = torch.linspace(0.0, float(max_error), steps, dtype=torch.float64, device=errors.device)
    if errors.numel() == 0:
        return thresholds, torch.full_like(thresholds, float("nan"))
    sorted_errors = torch.sort(errors).values
    counts = torch.searchsorted(sorted_errors, thresholds, right=True)
    return thresholds, counts.double() / errors.numel()


def threshold_suffix(threshold: float) -> str:
    """Key suffix for a threshold given as a fraction: 0.10 -> "10", 0.08 -> "8", 0.075 -> "7p5"."""
    return f"{round(threshold * 100.0, 6):g}".replace(".", "p")


class FaceAlignmentMetrics(Metric):
    """NME (%), FR@threshold (%) and AUC@threshold (fraction) for the full set and each subset.

    ``update(pred (B, N, 2), target (B, N, 2), subsets (B, K) bool | None)``; ``compute()``
    returns a flat dict: ``{"nme", "fr_10", "auc_10", "nme/<subset>", "fr_10/<subset>", ...}``.
    Subsets with no face give NaN.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        norm_pair: Sequence[int],
        subset_names: Sequence[str] = (),
        threshold: float = 0.10,
        ced_max: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if len(norm_pair) != 2:
            raise ValueError(f"norm_pair must be two landmark indices, got {norm_pair!r}")
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"threshold is a fraction of the normalising distance in (0, 1], got {threshold}")
        self.norm_pair = (int(norm_pair[0]), int(norm_pair[1]))
        self.subset_names = tuple(str(s) for s in subset_names)
        if len(set(self.subset_names)) != len(self.subset_names):
            raise ValueError(f"subset names must be unique, got {self.subset_names}")
        self.threshold = float(threshold)
        self.ced_max = float(ced_max) if ced_max is not None else self.threshold * 100.0
        self.suffix = threshold_suffix(self.threshold)
        self.add_state("errors", default=[], dist_reduce_fx="cat")
        self.add_state("subsets", default=[], dist_reduce_fx="cat")

    def update(self, pred: Tensor, target: Tensor, subsets: Tensor | None = None) -> None:
        errors = per_sample_nme(pred.detach(), target.detach(), self.norm_pair)
        k = len(self.subset_names)
        if subsets is None:
            if k:
                raise ValueError(f"subsets (B, {k}) bool is required: this metric reports subsets {self.subset_names}")
            subsets = torch.zeros(errors.shape[0], 0, dtype=torch.bool, device=errors.device)
        if subsets.ndim != 2 or subsets.shape != (errors.shape[0], k):
            raise ValueError(
                f"subsets must be (B, K) = ({errors.shape[0]}, {k}) for subsets {self.subset_names}, "
                f"got shape {tuple(subsets.shape)}"
            )
        # Both states 1-D and in the metric's float dtype: that is what torchmetrics substitutes for a
        # rank that saw no sample, and gather_all_tensors needs equal ndim and dtype on every rank.
        self.errors.append(errors.to(self.dtype))
        self.subsets.append(subsets.to(device=errors.device, dtype=self.dtype).flatten())

    def per_sample_errors(self) -> Tensor:
        """Every accumulated per-face NME (all ranks under DDP), (M,) percent, in update order."""
        with self.sync_context():
            return self._gathered()[0].clone()

    def _gathered(self) -> tuple[Tensor, Tensor]:
        k = len(self.subset_names)
        if isinstance(self.errors, list) and not self.errors:
            return torch.zeros(0, device=self.device), torch.zeros(0, k, dtype=torch.bool, device=self.device)
        errors = dim_zero_cat(self.errors)
        return errors, dim_zero_cat(self.subsets).reshape(errors.shape[0], k) > 0.5

    def _summary(self, errors: Tensor, suffix: str = "") -> dict[str, Tensor]:
        nme = errors.mean() if errors.numel() else errors.new_tensor(float("nan"))
        return {
            f"nme{suffix}": nme,
            f"fr_{self.suffix}{suffix}": failure_rate(errors, self.threshold),
            f"auc_{self.suffix}{suffix}": auc_from_errors(errors, self.threshold),
        }

    def compute(self) -> dict[str, Tensor]:
        errors, subsets = self._gathered()
        out = self._summary(errors)
        for col, name in enumerate(self.subset_names):
            out.update(self._summary(errors[subsets[:, col]], suffix=f"/{name}"))
        return out

    def ced(self, max_error: float | None = None, steps: int = 1000) -> tuple[Tensor, Tensor]:
        """CED of the accumulated full-set errors on [0, max_error] percent (default ``ced_max``)."""
        with self.sync_context():
            errors = self._gathered()[0].clone()
        return ced(errors, self.ced_max if max_error is None else max_error, steps)


class PerFaceResults:
    """Per-face test outputs, in test-batch order, gathered across DDP ranks by :meth:`collect`.

    After ``collect``: ``errors`` (M,) NME percent, ``predictions`` / ``targets`` (M, N, 2) input
    pixels, ``subsets`` (M, K) bool, ``indices`` (M,) dataset indices (None when batches carry no
    "index"); all on the CPU, None before the first test run.
    """

    def __init__(self, norm_pair: Sequence[int], subset_names: Sequence[str] = ()):
        self.norm_pair = tuple(norm_pair)
        self.subset_names = tuple(subset_names)
        self.errors: Tensor | None = None
        self.predictions: Tensor | None = None
        self.targets: Tensor | None = None
        self.subsets: Tensor | None = None
        self.indices: Tensor | None = None
        self._buffers: dict[str, list[Tensor]] = {}

    def reset(self) -> None:
        self._buffers = {"errors": [], "pred": [], "target": [], "subsets": [], "index": []}

    def update(self, pred: Tensor, target: Tensor, subsets: Tensor | None = None, index: Tensor | None = None) -> None:
        buf = self._buffers
        buf["errors"].append(per_sample_nme(pred, target, self.norm_pair).detach())
        buf["pred"].append(pred.detach())
        buf["target"].append(target.detach().float())
        if subsets is not None:
            buf["subsets"].append(subsets.detach().to(torch.uint8))  # uint8: all_gather-able on every backend
        if index is not None:
            buf["index"].append(index.detach())

    def collect(self, world_size: int = 1) -> None:
        """Concatenate the buffers (and gather them across ranks) onto the CPU."""
        buf = self._buffers
        if not buf.get("errors"):
            return
        parts = {k: torch.cat(v) for k, v in buf.items() if v}
        if world_size > 1 and torch.distributed.is_initialized():
            # The eval loaders shard without padding (ShardSampler), so ranks hold different counts:
            # torchmetrics' gather pads, gathers and trims; rank order = dataset order.
            from torchmetrics.utilities.distributed import gather_all_tensors

            parts = {k: torch.cat(gather_all_tensors(v)) for k, v in parts.items()}
        self.errors = parts["errors"].cpu()
        self.predictions = parts["pred"].cpu()
        self.targets = parts["target"].cpu()
        k = len(self.subset_names)
        self.subsets = (
            parts["subsets"].cpu().bool() if "subsets" in parts else torch.zeros(len(self.errors), k, dtype=torch.bool)
        )
        self.indices = parts["index"].cpu() if "index" in parts else None
        self._buffers = {}

    def errors_by_subset(self) -> dict[str, np.ndarray]:
        """Per-face NMEs (percent): {"full": (M,), "<subset>": (M_s,), ...}, for CED plots."""
        if self.errors is None:
            raise RuntimeError("no test results yet: run trainer.test(module, ...) first")
        errors = self.errors.double().numpy()
        out = {"full": errors}
        for col, name in enumerate(self.subset_names):
            out[name] = errors[self.subsets[:, col].numpy()]
        return out


# ----------------------------------------------------------------------------------------------
# Compensation-head metrics: does the decimal / offset head learn? Sums, not means, so
# they accumulate over batches and reduce across DDP ranks with "sum".
# ----------------------------------------------------------------------------------------------


def _visible(weight: Tensor, shape: tuple[int, int], name: str) -> Tensor:
    if weight.shape != shape:
        raise ValueError(f"weight must be (B, N) = {shape} visibility for {name}, got shape {tuple(weight.shape)}")
    return weight.detach() > 0


def decimal_hit_map(pred: Tensor, target: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Per-landmark decimal-cell hits: (hit (B, N) float 0/1, visible (B, N) bool); see :func:`decimal_hits`."""
    if pred.ndim != 4 or pred.shape != target.shape or pred.shape[-1] != pred.shape[-2]:
        raise ValueError(
            f"pred and target must be (B, N, d, d) decimal maps of the same shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    vis = _visible(weight, tuple(pred.shape[:2]), "decimal_hits")
    hit = pred.detach().flatten(2).argmax(-1) == target.detach().flatten(2).argmax(-1)
    return (hit & vis).double(), vis


def decimal_hits(pred: Tensor, target: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Decimal-cell hits: (hits, count) over visible landmarks, both 0-d float64 tensors.

    pred: (B, N, d, d) decimal maps output by the head; target: (B, N, d, d) the codec's decimal
    targets (``HIHCodec.encode(...)["decimal"]``, peaked on the target decimal cell); weight: (B, N),
    a landmark counts where weight > 0. A hit is ``argmax(pred) == argmax(target)`` over the d*d
    cells (ties go to the first cell). Accuracy = hits / count; chance is 1 / d^2.
    """
    hit, vis = decimal_hit_map(pred, target, weight)
    return hit.sum(), vis.sum().double()


def offset_error_map(
    pred: Tensor, target: Tensor, weight: Tensor, cells: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-landmark offset errors in heatmap cells: (error (B, N) float64, 0 where invisible; visible (B, N) bool).

    WOV: pred, target (B, N, 2) offset values (``OffsetValueCodec.encode(...)["offset"]``), ``cells`` None.
    WOM: pred, target (B, 2, H, W) offset maps (channel 0 x, 1 y; ``OffsetMapCodec.encode(...)["offset_map"]``)
    and ``cells`` (B, N, 2) long (x, y) target cells floor(u): both maps are read at each landmark's
    target cell (where the codec wrote its offset; a shared cell holds the colliding landmarks' mean).
    The error of one landmark is the Euclidean norm of the (x, y) difference. weight: (B, N).
    """
    if cells is None:
        if pred.ndim != 3 or pred.shape[-1] != 2 or pred.shape != target.shape:
            raise ValueError(
                f"WOV offsets must be (B, N, 2) of the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
    else:
        if pred.ndim != 4 or pred.shape[1] != 2 or pred.shape != target.shape:
            raise ValueError(
                f"WOM offset maps must be (B, 2, H, W) of the same shape, "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        b, _, h, w = pred.shape
        if cells.ndim != 3 or cells.shape[0] != b or cells.shape[-1] != 2:
            raise ValueError(
                f"cells must be (B, N, 2) (x, y) target cells with B = {b}, got shape {tuple(cells.shape)}"
            )
        flat = (cells[..., 1].clamp(0, h - 1) * w + cells[..., 0].clamp(0, w - 1)).long()  # (B, N)
        index = flat.unsqueeze(1).expand(-1, 2, -1)

        def read(m: Tensor) -> Tensor:
            return m.flatten(2).gather(2, index).transpose(1, 2)  # (B, N, 2)

        pred, target = read(pred.detach()), read(target.detach())
    vis = _visible(weight, tuple(pred.shape[:2]), "offset_error_map")
    err = torch.linalg.vector_norm(pred.detach().double() - target.detach().double(), dim=-1)
    return torch.where(vis, err, torch.zeros_like(err)), vis


#: score(head output, codec targets, cells (B, N, 2) long (x, y) target cells floor(u)) ->
#: (value (B, N) float64, visible (B, N) bool): one number per landmark, averaged over visible ones.
HeadScore = Callable[[Tensor, Mapping[str, Tensor], Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class HeadMetric:
    """How a method's compensation head is scored: ``hih.methods.Method.head_metric``.

    name: the key stem, logged as ``train/<name>`` (epoch mean), ``val/<name>``, ``test/<name>``
        and ``test/<name>/<subset>`` ("decimal_acc", "offset_err").
    gain: the key stem of integer-only NME (argmax cell centre) minus full NME, ``val/<gain>`` and
        ``test/<gain>`` ("decimal_gain", "offset_gain"): what the head adds beyond centring.
    score: the per-landmark score (:data:`HeadScore`), e.g. :func:`decimal_hit_map`.
    higher_is_better: True for accuracies, False for errors.
    """

    name: str
    gain: str
    score: HeadScore
    higher_is_better: bool


class HeadMetricMeter(Metric):
    """Landmark-weighted mean of a per-landmark head score, on the full set and each subset.

    ``update(value (B, N), visible (B, N) bool, subsets (B, K) bool | None)``; ``compute()`` ->
    ``{"": mean, "/<subset>": mean, ...}`` (NaN where no visible landmark). Sums, reduced with
    "sum" across DDP ranks, so the result is the single-process one.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, subset_names: Sequence[str] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.subset_names = tuple(str(s) for s in subset_names)
        k = len(self.subset_names) + 1
        self.add_state("total", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: Tensor, visible: Tensor, subsets: Tensor | None = None) -> None:
        if value.ndim != 2 or visible.shape != value.shape:
            raise ValueError(
                f"value and visible must be (B, N) of the same shape, "
                f"got {tuple(value.shape)} and {tuple(visible.shape)}"
            )
        b, k = value.shape[0], len(self.subset_names)
        if subsets is None:
            if k:
                raise ValueError(f"subsets (B, {k}) bool is required: this metric reports subsets {self.subset_names}")
            subsets = torch.zeros(b, 0, dtype=torch.bool, device=value.device)
        if subsets.shape != (b, k):
            raise ValueError(
                f"subsets must be (B, K) = ({b}, {k}) for subsets {self.subset_names}, got shape {tuple(subsets.shape)}"
            )
        vis = visible.detach().bool()
        face_total = torch.where(vis, value.detach().double(), 0.0).sum(1)  # (B,)
        face_count = vis.sum(1).double()
        # Column 0 is the full set, then one column per subset: (K + 1, B) @ (B,) sums the faces of each.
        member = (
            torch.cat([torch.ones(b, 1, dtype=torch.bool, device=vis.device), subsets.to(vis.device).bool()], 1)
            .double()
            .T
        )
        self.total += (member @ face_total).to(self.total.device)
        self.count += (member @ face_count).to(self.count.device)

    def compute(self) -> dict[str, Tensor]:
        mean = torch.where(
            self.count > 0, self.total / self.count.clamp(min=1), torch.full_like(self.total, float("nan"))
        )
        return {"": mean[0], **{f"/{name}": mean[i + 1] for i, name in enumerate(self.subset_names)}}


__all__ += [
    "HeadMetric",
    "HeadMetricMeter",
    "HeadScore",
    "decimal_hit_map",
    "decimal_hits",
    "offset_error_map",
]
