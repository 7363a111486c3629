"""Every other decoder of a network's output, as the registry builds it (one training, every decoder's row)."""

from __future__ import annotations

from hih.codecs.base import Codec
from hih.methods import build_codec, codec_parameters, get_method, method_names

__all__ = ["redecoders"]


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
