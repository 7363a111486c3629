"""Small tensor ops shared by the models and the codecs (neither imports the other's internals).

Shapes: B batch, N landmarks, H x W heatmap.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["argmax_2d"]


def argmax_2d(heatmap: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-map argmax of (B, N, H, W) maps: (cy, cx, flat) long tensors of shape (B, N).

    Ties go to the first cell in row-major order, as with a flat argmax; codec targets never tie.
    Two-level (row maxima, best row, argmax inside it) because torch's CPU argmax over long rows is
    several times slower than amax; the full map is read once, by amax.
    """
    w = heatmap.shape[-1]
    cy = heatmap.amax(-1).argmax(-1)  # first row holding the map's maximum
    cols = torch.arange(w, device=heatmap.device)
    row = heatmap.flatten(-2).gather(-1, cy.unsqueeze(-1) * w + cols)
    cx = row.argmax(-1)
    return cy, cx, cy * w + cx
