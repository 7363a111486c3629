"""Training losses (paper section 4.1): every part is supervised by L2, except WOM's offsets (SmoothL1).

The loss functions below are the terms the methods build their losses from (:mod:`hih.methods`),
each a per-landmark mean weighted by the target ``"weight"`` (B, N) so that landmarks outside the
input do not count:

- ``"heatmap"``: L2 between each stack's integer heatmap and the target, summed over stacks
  (intermediate supervision, as in stacked hourglass training), or averaged over them with
  ``stack_reduction="mean"`` (the authors' code: one MSE over all stacks' maps);
- ``"decimal"`` (HIH): L2 on the decimal heatmap (the paper), or a soft classification over its
  d * d cells: ``decimal_loss="kl"`` is the KL divergence from the sum-normalised target to
  softmax(prediction); ``decimal_loss="cls"`` is the authors' released loss, the KL divergence from
  softmax(target) to softmax(prediction) averaged element-wise (divided by d * d); their config
  weights it 0.05 (``head``) with ``stack_reduction="mean"``;
- ``"offset"`` (WOV): L2 on the (B, N, 2) offset values;
- ``"offset_map"`` (WOM): SmoothL1 on the (B, 2, H, W) offset map at the cells of ``"offset_mask"``.

:class:`LandmarkLoss` adds them up: ``"loss"`` is ``heatmap * <heatmap term> + head * <head term>``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from hih.models.output import ModelOutput

__all__ = [
    "LOSS_DEFAULTS",
    "STACK_REDUCTIONS",
    "LandmarkLoss",
    "decimal_kl",
    "decimal_soft_cls",
    "heatmap_l2",
    "offset_l2",
    "offset_map_smooth_l1",
    "require_target",
    "resolve_loss_weights",
]

#: The loss options every method shares, with their defaults: heatmap / head: multipliers of the two
#: terms; stack_reduction: "sum" | "mean" of the per-stack heatmap L2. A head's own options (HIH's
#: ``decimal_loss``, WOM's ``smooth_l1_beta``) belong to its method (:func:`hih.methods.build_loss`).
LOSS_DEFAULTS: dict[str, object] = {"heatmap": 1.0, "head": 1.0, "stack_reduction": "sum"}
STACK_REDUCTIONS = ("sum", "mean")


def resolve_loss_weights(options: Mapping[str, object] | None) -> tuple[dict[str, object], dict[str, object]]:
    """(the shared options: defaults overlaid and checked, the rest: the head's own options, unchecked)."""
    options = dict(options or {})
    shared = {key: options.pop(key, default) for key, default in LOSS_DEFAULTS.items()}
    if str(shared["stack_reduction"]).lower() not in STACK_REDUCTIONS:
        raise ValueError(f"stack_reduction must be one of {STACK_REDUCTIONS}, got {shared['stack_reduction']!r}")
    shared["stack_reduction"] = str(shared["stack_reduction"]).lower()
    for key in ("heatmap", "head"):
        shared[key] = float(shared[key])  # type: ignore[arg-type]
        if shared[key] < 0:
            raise ValueError(f"loss weight {key!r} must be >= 0, got {shared[key]}")
    return shared, options


def _landmark_mean(per_landmark: Tensor, weight: Tensor) -> Tensor:
    """Weighted mean of (B, N) per-landmark losses; weight-0 landmarks contribute nothing, even NaN."""
    valid = weight > 0
    total = torch.where(valid, per_landmark * weight, per_landmark.new_zeros(()))
    return total.sum() / weight.sum().clamp(min=1e-6)


def _check_same(name: str, pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}"
        )


def heatmap_l2(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Weighted L2 of (B, N, H, W) maps: mean squared error per landmark map, weighted over landmarks."""
    _check_same("heatmap", pred, target)
    per_landmark = (pred.float() - target.float()).pow(2).flatten(2).mean(-1)
    return _landmark_mean(per_landmark, weight)


def decimal_kl(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """KL(target distribution || softmax(pred)) per landmark over its h_o * w_o cells, weighted mean.

    The target map is normalised to sum to 1; an all-zero target (landmark outside) gives 0.
    """
    _check_same("decimal", pred, target)
    t = target.float().flatten(2).clamp(min=0)
    t = t / t.sum(-1, keepdim=True).clamp(min=1e-12)
    log_q = F.log_softmax(pred.float().flatten(2), dim=-1)
    # xlogy gives 0 * log 0 = 0 at the target's empty cells.
    per_landmark = (torch.xlogy(t, t) - t * log_q).sum(-1)
    return _landmark_mean(per_landmark, weight)


def decimal_soft_cls(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """The authors' soft classification: KL(softmax(target) || softmax(pred)) over the h_o * w_o
    cells, divided by h_o * w_o (their element-wise mean), then the weighted mean over landmarks.

    softmax of the target (a Gaussian with peak 1) is a flat distribution that still peaks at the
    target cell; an all-zero target (a landmark outside) is uniform, and its weight 0 drops it.
    """
    _check_same("decimal", pred, target)
    cells = pred.shape[-1] * pred.shape[-2]
    log_p = F.log_softmax(target.float().flatten(2), dim=-1)
    log_q = F.log_softmax(pred.float().flatten(2), dim=-1)
    per_landmark = (log_p.exp() * (log_p - log_q)).sum(-1) / cells
    return _landmark_mean(per_landmark, weight)


def offset_l2(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """WOV: weighted L2 of (B, N, 2) offsets (mean over x and y)."""
    _check_same("offset", pred, target)
    per_landmark = (pred.float() - target.float()).pow(2).mean(-1)
    return _landmark_mean(per_landmark, weight)


def offset_map_smooth_l1(pred: Tensor, target: Tensor, mask: Tensor, beta: float = 1.0) -> Tensor:
    """WOM: SmoothL1 of the (B, 2, H, W) offset map, averaged over the masked cells and both channels.

    mask: (B, 1, H, W), nonzero at the cells that hold a landmark inside the input.
    """
    _check_same("offset_map", pred, target)
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != pred.shape[2:] or mask.shape[0] != pred.shape[0]:
        raise ValueError(
            f"offset_mask must be (B, 1, H, W) = ({pred.shape[0]}, 1, {pred.shape[2]}, {pred.shape[3]}), "
            f"got {tuple(mask.shape)}"
        )
    m = mask.float().expand_as(pred)
    per_cell = F.smooth_l1_loss(pred.float(), target.float(), reduction="none", beta=beta)
    per_cell = torch.where(m > 0, per_cell * m, per_cell.new_zeros(()))
    return per_cell.sum() / m.sum().clamp(min=1e-6)


def require_target(targets: Mapping[str, Tensor], key: str, head_key: str | None) -> Tensor:
    """``targets[key]``, or a KeyError naming the head that needs it and what the codec gave."""
    if key not in targets:
        raise KeyError(
            f"targets lack {key!r} (needed for head {head_key!r}); the codec's encode returned {sorted(targets)}"
        )
    return targets[key]


class LandmarkLoss:
    """The training loss: ``heatmap * <integer heatmap L2> + head * <the head's term>``.

    head_term: ``term(pred, targets, weight (B, N)) -> scalar``, built by the head's method from its
        own options (:func:`hih.methods.build_loss`), or None for a net without a head.
    head_key: the output key the head writes (and the name of its term).
    options: every option in force (shared and the head's own), for the record.
    Calling it with the net's :class:`ModelOutput` (heatmaps of every stack, head, head_key) and a
    codec's ``encode`` dict (``"heatmap"`` (B, N, H, W), ``"weight"`` (B, N), and the head's targets)
    returns ``{"heatmap": ..., <head_key>: ..., "loss": ...}``, scalar tensors.
    """

    def __init__(
        self,
        head_term,
        head_key: str | None,
        heatmap: float = 1.0,
        head: float = 1.0,
        stack_reduction: str = "sum",
        options: Mapping[str, object] | None = None,
    ):
        self.head_term, self.head_key = head_term, head_key
        self.heatmap_weight, self.head_weight, self.stack_reduction = float(heatmap), float(head), stack_reduction
        self.options = {
            "heatmap": self.heatmap_weight,
            "head": self.head_weight,
            "stack_reduction": stack_reduction,
            **(options or {}),
        }

    def __call__(self, output: ModelOutput, targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if not output.heatmaps:
            raise ValueError("ModelOutput.heatmaps is empty: expected one (B, N, H, W) heatmap per stack")
        if output.head_key != self.head_key:
            raise ValueError(f"this loss trains head {self.head_key!r}, the output comes from head {output.head_key!r}")
        target_heatmap = require_target(targets, "heatmap", output.head_key)
        weight = require_target(targets, "weight", output.head_key)
        if weight.shape != target_heatmap.shape[:2]:
            raise ValueError(
                f"targets['weight'] must be (B, N) = {tuple(target_heatmap.shape[:2])}, got {tuple(weight.shape)}"
            )
        weight = weight.float()

        per_stack = torch.stack([heatmap_l2(h, target_heatmap, weight) for h in output.heatmaps])
        terms: dict[str, Tensor] = {"heatmap": per_stack.mean() if self.stack_reduction == "mean" else per_stack.sum()}
        total = self.heatmap_weight * terms["heatmap"]
        if self.head_term is not None and output.head is not None:
            terms[self.head_key] = self.head_term(output.head, targets, weight)  # type: ignore[index]
            total = total + self.head_weight * terms[self.head_key]  # type: ignore[index]
        terms["loss"] = total
        return terms
