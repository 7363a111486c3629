"""The paper's methods (baseline, WSM, WOV, WOM, HIH_C, HIH_T), DARK, soft-argmax and HIH_L."""

from __future__ import annotations

from functools import partial

from hih.codecs.heatmap import HeatmapCodec
from hih.codecs.hih import HIHCodec
from hih.codecs.offset import OffsetMapCodec, OffsetValueCodec
from hih.losses import decimal_kl, decimal_soft_cls, heatmap_l2, offset_l2, offset_map_smooth_l1, require_target
from hih.methods._registry import Method, register
from hih.metrics import HeadMetric, decimal_hit_map, offset_error_map
from hih.models.heads import HIHCHead, HIHLHead, HIHTHead, WOMHead, WOVHead


def _hih_c(channels, num_landmarks, heatmap_size, decimal_size, **kw):
    return HIHCHead(channels, num_landmarks, heatmap_size, decimal_size, **kw)


def _hih_t(channels, num_landmarks, heatmap_size, decimal_size, **kw):
    return HIHTHead(channels, num_landmarks, heatmap_size, decimal_size, **kw)


def _hih_l(channels, num_landmarks, heatmap_size, decimal_size, **kw):
    return HIHLHead(channels, num_landmarks, decimal_size, **kw)


def _wov(channels, num_landmarks, heatmap_size, decimal_size, **kw):
    return WOVHead(channels, num_landmarks, **kw)


def _wom(channels, num_landmarks, heatmap_size, decimal_size, **kw):
    return WOMHead(channels, **kw)


# The heads' losses: each method's loss takes its own options (model.loss.<option>) and returns the term.
DECIMAL_LOSSES = {"l2": heatmap_l2, "kl": decimal_kl, "cls": decimal_soft_cls}


def decimal_loss(decimal_loss: str = "l2"):
    """HIH: L2 on the decimal heatmap (the paper), or a soft classification over its d * d cells:
    ``"kl"`` (KL to the sum-normalised target) or ``"cls"`` (the authors' released loss)."""
    kind = str(decimal_loss).lower()
    if kind not in DECIMAL_LOSSES:
        raise ValueError(f"decimal_loss must be one of {tuple(DECIMAL_LOSSES)}, got {decimal_loss!r}")
    return partial(_decimal_term, fn=DECIMAL_LOSSES[kind])


def _decimal_term(pred, targets, weight, fn):
    return fn(pred, require_target(targets, "decimal", "decimal"), weight)


def offset_loss():
    """WOV: L2 on the offset values."""
    return _offset_term


def _offset_term(pred, targets, weight):
    return offset_l2(pred, require_target(targets, "offset", "offset"), weight)


def offset_map_loss(smooth_l1_beta: float = 1.0):
    """WOM: SmoothL1 (with this beta) on the offset map at the cells of ``"offset_mask"``."""
    beta = float(smooth_l1_beta)
    if beta < 0:
        raise ValueError(f"smooth_l1_beta must be >= 0, got {smooth_l1_beta}")
    return partial(_offset_map_term, beta=beta)


def _offset_map_term(pred, targets, weight, beta):
    return offset_map_smooth_l1(
        pred,
        require_target(targets, "offset_map", "offset_map"),
        require_target(targets, "offset_mask", "offset_map"),
        beta=beta,
    )


# Dashboard scores of the heads: does the head learn? Chance for decimal_acc is 1 / d^2.
DECIMAL_ACC = HeadMetric(
    "decimal_acc", "decimal_gain", lambda pred, t, cells: decimal_hit_map(pred, t["decimal"], t["weight"]), True
)
WOV_OFFSET_ERR = HeadMetric(
    "offset_err", "offset_gain", lambda pred, t, cells: offset_error_map(pred, t["offset"], t["weight"]), False
)
# WOM writes each landmark's offset at its target cell: both maps are read there.
WOM_OFFSET_ERR = HeadMetric(
    "offset_err",
    "offset_gain",
    lambda pred, t, cells: offset_error_map(pred, t["offset_map"], t["weight"], cells),
    False,
)

for _decoder in ("argmax", "wsm", "dark", "soft_argmax"):
    register(Method("baseline" if _decoder == "argmax" else _decoder, HeatmapCodec, {"decoder": _decoder}))

_DECIMAL = {
    "codec": HIHCodec,
    "output_key": "decimal",
    "loss": decimal_loss,
    "head_is_heatmap": True,
    "head_metric": DECIMAL_ACC,
}
register(Method("hih_c", head=_hih_c, **_DECIMAL))
register(Method("hih_t", head=_hih_t, **_DECIMAL))
register(Method("hih_l", head=_hih_l, **_DECIMAL))
register(Method("wov", OffsetValueCodec, head=_wov, output_key="offset", loss=offset_loss, head_metric=WOV_OFFSET_ERR))
register(
    Method("wom", OffsetMapCodec, head=_wom, output_key="offset_map", loss=offset_map_loss, head_metric=WOM_OFFSET_ERR)
)
