"""Training losses (paper section 4.1): every part is supervised by L2, except WOM's offsets (SmoothL1).

Terms, each a per-landmark mean weighted by the target ``"weight"`` (B, N) so that landmarks
outside the input do not count:

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

``"loss"`` is ``weights["heatmap"] * heatmap + weights["head"] * <head term>``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from hih.models.output import ModelOutput

__all__ = ["DECIMAL_LOSSES", "DEFAULT_LOSS_WEIGHTS", "STACK_REDUCTIONS", "compute_losses", "decimal_soft_cls", "decimal_term", "offset_map_term", "offset_term", "resolve_loss_weights"]

#: heatmap / head: multipliers of the two terms; decimal_loss: "l2" | "kl" | "cls"; stack_reduction:
#: "sum" | "mean" of the per-stack heatmap L2; smooth_l1_beta: WOM's SmoothL1 beta.
DEFAULT_LOSS_WEIGHTS: dict[str, object] = {
    "heatmap": 1.0, "head": 1.0, "decimal_loss": "l2", "stack_reduction": "sum", "smooth_l1_beta": 1.0
}
DECIMAL_LOSSES = ("l2", "kl", "cls")
STACK_REDUCTIONS = ("sum", "mean")


def resolve_loss_weights(weights: Mapping[str, object] | None) -> dict[str, object]:
    """Defaults overlaid with ``weights``; unknown keys and bad values raise (typos in configs)."""
    out = dict(DEFAULT_LOSS_WEIGHTS)
    for key, value in (weights or {}).items():
        if key not in DEFAULT_LOSS_WEIGHTS:
            raise ValueError(f"unknown loss weight {key!r}; expected keys {sorted(DEFAULT_LOSS_WEIGHTS)}")
        out[key] = value
    for key, allowed in (("decimal_loss", DECIMAL_LOSSES), ("stack_reduction", STACK_REDUCTIONS)):
        if str(out[key]).lower() not in allowed:
            raise ValueError(f"{key} must be one of {allowed}, got {out[key]!r}")
        out[key] = str(out[key]).lower()
    for key in ("heatmap", "head", "smooth_l1_beta"):
        out[key] = float(out[key])  # type: ignore[arg-type]
        if out[key] < 0:
            raise ValueError(f"loss weight {key!r} must be >= 0, got {out[key]}")
    return out


def _landmark_mean(per_landmark: Tensor, weight: Tensor) -> Tensor:
    """Weighted mean of (B, N) per-landmark losses; weight-0 landmarks contribute nothing, even NaN."""
    valid = weight > 0
    total = torch.where(valid, per_landmark * weight, per_landmark.new_zeros(()))
    return total.sum() / weight.sum().clamp(min=1e-6)


def _check_same(name: str, pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{name}: prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")


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
        raise ValueError(f"offset_mask must be (B, 1, H, W) = ({pred.shape[0]}, 1, {pred.shape[2]}, {pred.shape[3]}), got {tuple(mask.shape)}")
    m = mask.float().expand_as(pred)
    per_cell = F.smooth_l1_loss(pred.float(), target.float(), reduction="none", beta=beta)
    per_cell = torch.where(m > 0, per_cell * m, per_cell.new_zeros(()))
    return per_cell.sum() / m.sum().clamp(min=1e-6)


def _target(targets: Mapping[str, Tensor], key: str, head_key: str | None) -> Tensor:
    if key not in targets:
        raise KeyError(f"targets lack {key!r} (needed for head {head_key!r}); the codec's encode returned {sorted(targets)}")
    return targets[key]


# The heads' loss terms, as the method registry (hih.methods) names them: (pred, targets, weight, weights).
def decimal_term(pred: Tensor, targets: Mapping[str, Tensor], weight: Tensor, weights: Mapping[str, object]) -> Tensor:
    """HIH: L2 on the decimal heatmap, or ``decimal_loss="kl"`` / ``"cls"`` (soft classification)."""
    fn = {"l2": heatmap_l2, "kl": decimal_kl, "cls": decimal_soft_cls}[str(weights["decimal_loss"])]
    return fn(pred, _target(targets, "decimal", "decimal"), weight)


def offset_term(pred: Tensor, targets: Mapping[str, Tensor], weight: Tensor, weights: Mapping[str, object]) -> Tensor:
    """WOV: L2 on the offset values."""
    return offset_l2(pred, _target(targets, "offset", "offset"), weight)


def offset_map_term(pred: Tensor, targets: Mapping[str, Tensor], weight: Tensor, weights: Mapping[str, object]) -> Tensor:
    """WOM: SmoothL1 on the offset map at the masked cells."""
    return offset_map_smooth_l1(
        pred, _target(targets, "offset_map", "offset_map"), _target(targets, "offset_mask", "offset_map"), beta=weights["smooth_l1_beta"]
    )


def compute_losses(output: ModelOutput, targets: Mapping[str, Tensor], weights: Mapping[str, object] | None = None) -> dict[str, Tensor]:
    """Named loss terms and their weighted total ``"loss"``.

    output: the net's :class:`ModelOutput` (heatmaps of every stack, head, head_key).
    targets: a codec's ``encode`` dict (``"heatmap"`` (B, N, H, W), ``"weight"`` (B, N), and the
        head's target: ``"decimal"`` / ``"offset"`` / ``"offset_map"`` + ``"offset_mask"``).
    weights: see :data:`DEFAULT_LOSS_WEIGHTS`; missing keys take the defaults.
    Returns ``{"heatmap": ..., <head_key>: ..., "loss": ...}``, scalar tensors; the head's term is
    the one its method registers (:mod:`hih.methods`).
    """
    from hih.methods import head_output  # the registry imports this module's terms

    w = resolve_loss_weights(weights)
    if not output.heatmaps:
        raise ValueError("ModelOutput.heatmaps is empty: expected one (B, N, H, W) heatmap per stack")
    target_heatmap = _target(targets, "heatmap", output.head_key)
    weight = _target(targets, "weight", output.head_key)
    if weight.shape != target_heatmap.shape[:2]:
        raise ValueError(f"targets['weight'] must be (B, N) = {tuple(target_heatmap.shape[:2])}, got {tuple(weight.shape)}")
    weight = weight.float()

    per_stack = torch.stack([heatmap_l2(h, target_heatmap, weight) for h in output.heatmaps])
    terms: dict[str, Tensor] = {"heatmap": per_stack.mean() if w["stack_reduction"] == "mean" else per_stack.sum()}
    total = w["heatmap"] * terms["heatmap"]

    key = output.head_key
    if output.head is not None and key is not None:
        method = head_output(key)
        term = method.loss(output.head, targets, weight, w)
        terms[key] = term
        total = total + w[method.weight_key] * term
    terms["loss"] = total
    return terms
