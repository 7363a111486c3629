"""Whether a network, or a DataModule that encodes labels, fits the codec a model decodes with."""

from __future__ import annotations

from typing import Any

from hih.codecs.base import Codec

__all__ = ["check_encoder", "check_net"]


def check_net(net: Any, codec: Codec) -> None:
    """Refuse a net whose head output, input size or heatmap size the codec does not read."""
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


def check_encoder(datamodule: Any, codec: Codec) -> None:
    """Refuse a DataModule that encodes with another codec configuration than ``codec`` (none: nothing to check)."""
    theirs = getattr(datamodule, "codec", None)
    if theirs is None:
        return
    if not isinstance(theirs, Codec) or theirs.config() != codec.config():
        raise ValueError(
            f"the DataModule encodes labels with {theirs!r} but the model decodes with {codec!r}: "
            "both must be the same codec configuration "
            "(the configs give data.datamodule.codec: ${model.codec}; override model.codec.*)"
        )
