"""The codec contract: one object that encodes landmarks to targets and decodes outputs back.

Shapes (B batch, N landmarks, H x W heatmap, h_o x w_o decimal heatmap):

- landmarks: float tensor (B, N, 2), (x, y) in input-image pixels, convention of
  :mod:`hih` (pixel i covers [i, i + 1)).
- ``encode(landmarks)`` returns a dict of target tensors. Keys used across the suite:
  ``"heatmap"`` (B, N, H, W) integer heatmap; ``"decimal"`` (B, N, h_o, w_o);
  ``"offset"`` (B, N, 2) offset values in heatmap cells; ``"offset_map"`` (B, 2, H, W);
  ``"offset_mask"`` (B, 1, H, W); ``"weight"`` (B, N) 1 for landmarks inside the input;
  ``"cell"`` (B, N, 2) long, (x, y) integer cell floor(u) (eq. 1) clipped into the heatmap, which
  every built-in codec returns: HIH_L is teacher-forced with it, so the heatmap coordinates are
  computed once per batch.
- ``decode(outputs)`` takes a mapping with ``"heatmap"`` (B, N, H, W) and, for codecs
  with a compensation head, the head's key (``head_key``); returns (B, N, 2) in
  input-image pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from torch import Tensor

from hih.codecs.decoders import decode_argmax


class Codec(ABC):
    #: Key of the compensation head's output in ``decode``'s input; None for heatmap-only codecs.
    head_key: str | None = None
    #: Keys of the dict ``encode`` returns (targets for the losses plus ``"weight"``).
    target_keys: tuple[str, ...] = ()

    def __init__(self, input_size: int = 256, heatmap_size: int = 64):
        if input_size % heatmap_size:
            raise ValueError(f"input_size {input_size} must be a multiple of heatmap_size {heatmap_size}")
        self.input_size = int(input_size)
        self.heatmap_size = int(heatmap_size)
        self.stride = self.input_size // self.heatmap_size

    def config(self) -> dict[str, object]:
        """The codec's configuration: class and constructor state. Equal configs encode and decode alike
        (FaceAlignmentModule compares its own with the DataModule's at setup)."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", **vars(self)}

    @abstractmethod
    def encode(self, landmarks: Tensor) -> dict[str, Tensor]: ...

    @abstractmethod
    def decode(self, outputs: Mapping[str, Tensor]) -> Tensor: ...

    def targets_as_outputs(self, targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The ideal network: ``encode``'s targets fed back as ``decode``'s outputs (heatmap + head)."""
        outputs = {"heatmap": targets["heatmap"]}
        if self.head_key is not None:
            outputs[self.head_key] = targets[self.head_key]
        return outputs

    def decode_integer(self, heatmap: Tensor, anchor: str = "centre") -> Tensor:
        """The integer heatmap alone (paper Table 7): its argmax cell, (B, N, H, W) -> (B, N, 2) input pixels.

        anchor: "centre" puts the landmark at the cell centre ((i + 0.5) * stride); "corner" at the
        argmax index itself (i * stride), the convention of the paper's Table 7.
        """
        return (decode_argmax(heatmap, anchor) * self.stride).float()
