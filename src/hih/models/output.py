"""The network's output: what every model returns, and what codecs and losses read."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ModelOutput:
    """Integer heatmaps of every stack plus the compensation head's output.

    heatmaps: one (B, N, H, W) tensor per stack, last stack last (intermediate supervision).
    head: the compensation head's output, or None for baseline / WSM:
      ``"decimal"`` (B, N, h_o, w_o) for HIH_C / HIH_T, ``"offset"`` (B, N, 2) for WOV,
      ``"offset_map"`` (B, 2, H, W) for WOM.
    head_key: which of those keys ``head`` is.
    """

    heatmaps: list[Tensor]
    head: Tensor | None = None
    head_key: str | None = None

    def for_codec(self, stack: int = -1) -> dict[str, Tensor]:
        """The mapping a codec's ``decode`` takes: the chosen stack's heatmap plus the head."""
        out = {"heatmap": self.heatmaps[stack]}
        if self.head is not None and self.head_key is not None:
            out[self.head_key] = self.head
        return out
