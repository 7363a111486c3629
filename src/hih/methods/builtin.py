"""The paper's methods (baseline, WSM, WOV, WOM, HIH_C, HIH_T), DARK, soft-argmax and HIH_L."""

from __future__ import annotations

from hih.codecs.heatmap import HeatmapCodec
from hih.codecs.hih import HIHCodec
from hih.codecs.offset import OffsetMapCodec, OffsetValueCodec
from hih.losses import decimal_term, offset_map_term, offset_term
from hih.metrics import HeadMetric, decimal_hit_map, offset_error_map
from hih.methods import Method, register
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


# Dashboard scores of the heads (issue 15): does the head learn? Chance for decimal_acc is 1 / d^2.
DECIMAL_ACC = HeadMetric("decimal_acc", "decimal_gain", lambda pred, t, cells: decimal_hit_map(pred, t["decimal"], t["weight"]), True)
WOV_OFFSET_ERR = HeadMetric("offset_err", "offset_gain", lambda pred, t, cells: offset_error_map(pred, t["offset"], t["weight"]), False)
# WOM writes each landmark's offset at its target cell: both maps are read there.
WOM_OFFSET_ERR = HeadMetric("offset_err", "offset_gain", lambda pred, t, cells: offset_error_map(pred, t["offset_map"], t["weight"], cells), False)

for _decoder in ("argmax", "wsm", "dark", "soft_argmax"):
    register(Method("baseline" if _decoder == "argmax" else _decoder, HeatmapCodec, {"decoder": _decoder}))

_DECIMAL = {"codec": HIHCodec, "output_key": "decimal", "loss": decimal_term, "head_is_heatmap": True, "head_metric": DECIMAL_ACC}
register(Method("hih_c", head=_hih_c, **_DECIMAL))
register(Method("hih_t", head=_hih_t, **_DECIMAL))
register(Method("hih_l", head=_hih_l, **_DECIMAL))
register(Method("wov", OffsetValueCodec, head=_wov, output_key="offset", loss=offset_term, head_metric=WOV_OFFSET_ERR))
register(Method("wom", OffsetMapCodec, head=_wom, output_key="offset_map", loss=offset_map_term, head_metric=WOM_OFFSET_ERR))
