"""Offset-based compensation (paper section 3.3): WOV (offset values) and WOM (CornerNet-style offset map)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from hih.codecs.base import Codec
from hih.codecs.common import (
    argmax_2d,
    as_mapping,
    check_integer_target,
    check_sigma,
    coord_dtype,
    get_heatmap,
    get_output,
    integer_heatmap,
    to_heatmap_coords,
)


class _OffsetBase(Codec):
    """Shared constructor. ``integer_target``: "subpixel" (default) or "cell" (the authors' WOV / WOM
    placement: the integer Gaussian centred on cell floor(u), see :func:`hih.codecs.common.integer_heatmap`);
    the offset targets are u - floor(u) either way."""

    def __init__(
        self, input_size: int = 256, heatmap_size: int = 64, sigma: float = 1.5, integer_target: str = "subpixel"
    ):
        super().__init__(input_size, heatmap_size)
        self.sigma = check_sigma("sigma", sigma, 1.0 / 6.0)
        self.integer_target = check_integer_target(integer_target)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, "
            f"integer_target={self.integer_target!r})"
        )


class OffsetValueCodec(_OffsetBase):
    """WOV: integer heatmap plus one (x, y) offset value per landmark.

    encode(landmarks (B, N, 2)) -> {"heatmap": (B, N, H, W), "offset": (B, N, 2), "cell": (B, N, 2), "weight": (B, N)},
    offset = u - floor(u) in [0, 1) heatmap cells (eq. 1), u = x / stride (after clipping).
    decode({"heatmap", "offset": (B, N, 2)}) -> (argmax cell + offset) * stride, (B, N, 2) input pixels.
    Ideal-condition error: 0 up to float rounding.
    """

    head_key = "offset"
    target_keys = ("heatmap", "offset", "cell", "weight")

    def encode(self, landmarks: Tensor) -> dict[str, Tensor]:
        coords = to_heatmap_coords(landmarks, self.input_size, self.heatmap_size)
        return {
            "heatmap": integer_heatmap(coords, self.heatmap_size, self.sigma, self.integer_target),
            "offset": coords.offset.to(coords.dtype),
            "cell": coords.cell,
            "weight": coords.weight,
        }

    def decode(self, outputs: Mapping[str, Tensor]) -> Tensor:
        outputs = as_mapping(outputs)
        heatmap = get_heatmap(outputs, self.heatmap_size)
        b, n = heatmap.shape[:2]
        offset = get_output(outputs, "offset", (b, n, 2), note="B, N from outputs['heatmap']; (x, y) in cells")
        dtype = coord_dtype(heatmap)
        cy, cx, _ = argmax_2d(heatmap)
        return (torch.stack((cx, cy), dim=-1).to(dtype) + offset.to(dtype)) * self.stride


class OffsetMapCodec(_OffsetBase):
    """WOM (CornerNet style): integer heatmap plus one 2-channel offset map shared by all landmarks.

    encode(landmarks (B, N, 2)) -> {"heatmap": (B, N, H, W), "offset_map": (B, 2, H, W),
    "offset_mask": (B, 1, H, W), "cell": (B, N, 2), "weight": (B, N)}. Channel 0 holds the x offset, channel 1 the y
    offset, u - floor(u) in [0, 1) cells, at each landmark's cell floor(u); the mask is 1 there.
    Only landmarks inside the input (weight 1) are written: a clipped outside landmark would
    otherwise overwrite a border cell that a visible landmark may own.

    Collisions: a cell can hold one offset, but on a dense 98-point face two landmarks of the same
    face often fall in the same cell. The target there is the mean of the colliding offsets
    (scatter_add of values and of counts), which is deterministic but exact for none of them: this
    conflict is the paper's criticism of WOM, and it is why WOM's ideal-condition error is > 0.

    decode({"heatmap", "offset_map": (B, 2, H, W)}) -> (argmax cell + map at that cell) * stride,
    (B, N, 2) input pixels.
    """

    head_key = "offset_map"
    target_keys = ("heatmap", "offset_map", "offset_mask", "cell", "weight")

    def encode(self, landmarks: Tensor) -> dict[str, Tensor]:
        coords = to_heatmap_coords(landmarks, self.input_size, self.heatmap_size)
        hw = self.heatmap_size
        b = coords.u.shape[0]
        work = coords.u.dtype
        flat = coords.cell[..., 1] * hw + coords.cell[..., 0]  # (B, N)
        w = coords.weight.to(work)
        counts = torch.zeros(b, hw * hw, dtype=work, device=flat.device).scatter_add_(1, flat, w)
        sums = torch.zeros(b, 2, hw * hw, dtype=work, device=flat.device).scatter_add_(
            2, flat.unsqueeze(1).expand(-1, 2, -1), (coords.offset * w.unsqueeze(-1)).transpose(1, 2)
        )
        offset_map = sums / counts.clamp(min=1.0).unsqueeze(1)
        return {
            "heatmap": integer_heatmap(coords, hw, self.sigma, self.integer_target),
            "offset_map": offset_map.view(b, 2, hw, hw).to(coords.dtype),
            "offset_mask": (counts > 0).view(b, 1, hw, hw).to(coords.dtype),
            "cell": coords.cell,
            "weight": coords.weight,
        }

    def decode(self, outputs: Mapping[str, Tensor]) -> Tensor:
        outputs = as_mapping(outputs)
        heatmap = get_heatmap(outputs, self.heatmap_size)
        b = heatmap.shape[0]
        hw = self.heatmap_size
        offset_map = get_output(
            outputs, "offset_map", (b, 2, hw, hw), note="B from outputs['heatmap']; channels (x, y)"
        )
        dtype = coord_dtype(heatmap)
        cy, cx, flat = argmax_2d(heatmap)
        off = offset_map.flatten(2).gather(2, flat.unsqueeze(1).expand(-1, 2, -1)).transpose(1, 2)  # (B, N, 2)
        return (torch.stack((cx, cy), dim=-1).to(dtype) + off.to(dtype)) * self.stride
