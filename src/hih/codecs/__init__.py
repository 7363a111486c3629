"""Label codecs: encode landmarks to training targets, decode network outputs back to landmarks.

See :mod:`hih.codecs.base` for the contract. ``build_codec(name, **kw)`` maps a method name to a
configured codec, as the method registry (:mod:`hih.methods`) says; the built-in ones:

========== ======================================== ==========
name        codec                                    head_key
========== ======================================== ==========
baseline    HeatmapCodec(decoder="argmax")           None
wsm         HeatmapCodec(decoder="wsm")              None
dark        HeatmapCodec(decoder="dark")             None
soft_argmax HeatmapCodec(decoder="soft_argmax")      None
hih_c/t/l   HIHCodec (also by the name "hih")        "decimal"
wov         OffsetValueCodec                         "offset"
wom         OffsetMapCodec                           "offset_map"
========== ======================================== ==========
"""

from __future__ import annotations

import inspect

from hih.codecs.base import Codec
from hih.codecs.heatmap import DECODERS, DEFAULT_SOFT_ARGMAX_BETA, HeatmapCodec
from hih.codecs.hih import HIHCodec
from hih.codecs.offset import OffsetMapCodec, OffsetValueCodec

__all__ = [
    "ALIASES",
    "DECODERS",
    "DEFAULT_SOFT_ARGMAX_BETA",
    "Codec",
    "HIHCodec",
    "HeatmapCodec",
    "OffsetMapCodec",
    "OffsetValueCodec",
    "build_codec",
    "codec_names",
    "codec_spec",
]

#: Codec names beyond the registered methods: "hih" is the codec of hih_c / hih_t / hih_l.
ALIASES: dict[str, tuple[type[Codec], dict[str, object]]] = {"hih": (HIHCodec, {})}


def codec_spec(name: str) -> tuple[type[Codec], dict[str, object]]:
    """(codec class, fixed keyword arguments) of method ``name``, from the registry (:mod:`hih.methods`)."""
    from hih.methods import get_method  # the registry imports the codec classes of this package

    key = str(name).lower()
    if key in ALIASES:
        return ALIASES[key]
    try:
        method = get_method(key)
    except ValueError:
        raise ValueError(f"unknown codec {name!r}; expected one of {codec_names()}") from None
    return method.codec, dict(method.codec_kwargs)


def codec_names() -> list[str]:
    """Every name :func:`build_codec` takes: the registered methods plus the aliases."""
    from hih.methods import method_names

    return sorted({*ALIASES, *method_names()})


def build_codec(name: str, **kw: object) -> Codec:
    """A configured codec for method ``name`` (see the table above); ``kw`` go to its constructor.

    Raises ValueError for an unknown name, a parameter the codec does not take, or a ``decoder``
    that contradicts the name (e.g. ``build_codec("wsm", decoder="dark")``).
    """
    key = str(name).lower()
    cls, fixed = codec_spec(key)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ValueError(f"codec {key!r} ({cls.__name__}) does not take {unknown}; accepted parameters: {accepted}")
    for k, v in fixed.items():
        if k in kw and kw[k] != v:
            raise ValueError(f"codec {key!r} fixes {k}={v!r}, got {k}={kw[k]!r}; choose the codec name of that variant instead")
    return cls(**{**kw, **fixed})
