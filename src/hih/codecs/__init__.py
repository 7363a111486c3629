"""Label codecs: encode landmarks to training targets, decode network outputs back to landmarks.

See :mod:`hih.codecs.base` for the contract. Each method of the registry names its codec and the
arguments it fixes (:func:`hih.methods.build_codec`); the built-in ones:

========== ======================================== ==========
name        codec                                    head_key
========== ======================================== ==========
baseline    HeatmapCodec(decoder="argmax")           None
wsm         HeatmapCodec(decoder="wsm")              None
dark        HeatmapCodec(decoder="dark")             None
soft_argmax HeatmapCodec(decoder="soft_argmax")      None
hih_c/t/l   HIHCodec                                 "decimal"
wov         OffsetValueCodec                         "offset"
wom         OffsetMapCodec                           "offset_map"
========== ======================================== ==========
"""

from __future__ import annotations

from hih.codecs.base import Codec
from hih.codecs.heatmap import DECODERS, DEFAULT_SOFT_ARGMAX_BETA, HeatmapCodec
from hih.codecs.hih import HIHCodec
from hih.codecs.offset import OffsetMapCodec, OffsetValueCodec

__all__ = [
    "DECODERS",
    "DEFAULT_SOFT_ARGMAX_BETA",
    "Codec",
    "HIHCodec",
    "HeatmapCodec",
    "OffsetMapCodec",
    "OffsetValueCodec",
]
