"""Shared pieces of the codecs: landmark -> heatmap-coordinate conversion, Gaussian rendering,
batched argmax and validation of decode inputs.

Everything is batched torch with no Python loop over samples or landmarks; tensors follow the
device of their input. Shapes: B batch, N landmarks, H x W heatmap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from hih.ops import argmax_2d  # noqa: F401  (re-exported: the codecs' decoders use it from here)

#: Smallest distance (in heatmap cells) kept between the rendered Gaussian's centre and its cell's
#: edges. Without it a landmark exactly on (or one float ulp below) a cell edge gives two cells
#: whose values round to the same float, and argmax could return floor(u) - 1 or floor(u) + 1
#: instead of floor(u) (eq. 1); with it the peak cell is strictly floor(u). The shift is at most
#: 1/1024 cell (0.004 px at stride 4) and never touches the offset / decimal targets.
EDGE_GUARD = 1.0 / 1024.0

#: Mean distance of a point drawn uniformly in the unit square from one of its corners,
#: (sqrt(2) + ln(1 + sqrt(2))) / 3 = 0.7652: the ideal mean error, in bins, of a decode that reads a
#: quantization bin at its corner (eq. 4's floor).
MEAN_DIST_TO_CORNER = (math.sqrt(2) + math.log(1 + math.sqrt(2))) / 3
#: ... and from its centre, half that (0.3826): the ideal mean error of a decode at the bin's centre.
MEAN_DIST_TO_CENTRE = MEAN_DIST_TO_CORNER / 2


@dataclass(frozen=True)
class HeatmapCoords:
    """A landmark batch in heatmap coordinates, clipped into the heatmap.

    u: (B, N, 2) float, (x, y) heatmap coordinates, clipped to [0, size) on both axes.
    cell: (B, N, 2) long, floor(u) (eq. 1), in [0, size - 1].
    offset: (B, N, 2) float, u - floor(u) in [0, 1) (eq. 1).
    weight: (B, N), 1 where the landmark is finite and inside [0, input_size) on both axes, else 0.
    dtype: the dtype the targets are returned in (the landmarks' floating dtype).
    """

    u: Tensor
    cell: Tensor
    offset: Tensor
    weight: Tensor
    dtype: torch.dtype


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Internal precision: at least float32, so that half-precision landmarks keep sub-pixel offsets."""
    return torch.promote_types(dtype, torch.float32)


def to_heatmap_coords(landmarks: Tensor, input_size: int, heatmap_size: int) -> HeatmapCoords:
    """Convert (B, N, 2) input-image landmarks to clipped heatmap coordinates.

    Landmarks on or beyond the border (and NaN / inf ones) are clipped into the heatmap so that
    targets can always be built; their weight is 0. Integer landmark tensors are read as float32.
    """
    if not isinstance(landmarks, Tensor):
        raise TypeError(f"landmarks must be a torch.Tensor of shape (B, N, 2), got {type(landmarks).__name__}")
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(
            f"landmarks must have shape (B, N, 2) with (x, y) in input pixels, got {tuple(landmarks.shape)}"
        )
    if not landmarks.is_floating_point():
        landmarks = landmarks.float()
    dtype = landmarks.dtype
    x = landmarks.to(work_dtype(dtype))
    finite = torch.isfinite(x).all(-1)
    inside = finite & (x >= 0).all(-1) & (x < input_size).all(-1)
    stride = input_size / heatmap_size
    u = torch.nan_to_num(x, nan=0.0, posinf=float(input_size), neginf=0.0) / stride
    # Largest float below heatmap_size in this dtype: floor(u) <= size - 1 and u - floor(u) < 1.
    top = torch.nextafter(torch.tensor(float(heatmap_size), dtype=u.dtype), torch.tensor(0.0, dtype=u.dtype)).item()
    u = u.clamp(min=0.0, max=top)
    cell = torch.floor(u)
    return HeatmapCoords(u=u, cell=cell.long(), offset=u - cell, weight=inside.to(dtype), dtype=dtype)


def gaussian_profile(centre: Tensor, size: int, sigma: float, grid_offset: float) -> Tensor:
    """1-D truncated Gaussian exp(-d^2 / 2 sigma^2), zero where |d| > 3 sigma (paper eq. 3).

    centre: (...) float, the peak position; grid positions are ``arange(size) + grid_offset``
    (0.5: pixel centres of the integer heatmap; 0: decimal-cell indices). Returns (..., size).
    """
    grid = torch.arange(size, device=centre.device, dtype=centre.dtype) + grid_offset
    d = grid - centre.unsqueeze(-1)
    g = torch.exp(d.square() * (-0.5 / sigma**2))
    return torch.where(d.abs() <= 3.0 * sigma, g, torch.zeros((), dtype=g.dtype, device=g.device))


def render_gaussian(centre: Tensor, size: int, sigma: float, grid_offset: float, dtype: torch.dtype) -> Tensor:
    """Separable 2-D truncated Gaussian: outer product of the y and x profiles.

    The L-inf cut-off of eq. 3 is exactly the product of the two 1-D cut-offs.
    centre: (B, N, 2) (x, y). Returns (B, N, size, size) in ``dtype``.
    """
    gx = gaussian_profile(centre[..., 0], size, sigma, grid_offset)
    gy = gaussian_profile(centre[..., 1], size, sigma, grid_offset)
    return (gy.unsqueeze(-1) * gx.unsqueeze(-2)).to(dtype)  # no copy when dtype is the work dtype


#: How the integer heatmap is placed (``integer_target`` of every heatmap-based codec).
INTEGER_TARGETS = ("subpixel", "cell")


def check_integer_target(integer_target: str) -> str:
    if integer_target not in INTEGER_TARGETS:
        raise ValueError(f"integer_target must be one of {INTEGER_TARGETS}, got {integer_target!r}")
    return integer_target


def integer_heatmap(coords: HeatmapCoords, heatmap_size: int, sigma: float, integer_target: str = "subpixel") -> Tensor:
    """The integer heatmap (B, N, H, W); its argmax is the cell floor(u) for both placements.

    - "subpixel": Gaussian at the sub-pixel position u, distances from pixel centres; the peak is
      kept EDGE_GUARD inside cell floor(u) so that argmax returns floor(u) exactly. The map's shape
      still tells where inside the cell the landmark is.
    - "cell" (the authors' placement): Gaussian centred on the centre of cell floor(u), sampled at
      the cell centres, i.e. exp(-|j - floor(u)|^2 / 2 sigma^2) on the integer grid j; the peak cell
      holds exactly 1 and the map carries no sub-cell information.
    """
    if check_integer_target(integer_target) == "cell":
        return render_gaussian(coords.cell.to(coords.u.dtype), heatmap_size, sigma, 0.0, coords.dtype)
    centre = coords.cell.to(coords.u.dtype) + coords.offset.clamp(EDGE_GUARD, 1.0 - EDGE_GUARD)
    return render_gaussian(centre, heatmap_size, sigma, 0.5, coords.dtype)


def check_sigma(name: str, sigma: float, minimum: float) -> float:
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum:.4g}, got {sigma}")
    return sigma


def coord_dtype(t: Tensor) -> torch.dtype:
    """Decoded coordinates are at least float32 (half precision cannot hold 256 px to sub-pixel)."""
    return work_dtype(t.dtype) if t.is_floating_point() else torch.float32


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def as_mapping(outputs: object) -> Mapping[str, Tensor]:
    """Accept a mapping, or a ModelOutput-like object with ``for_codec()``."""
    if hasattr(outputs, "for_codec") and not isinstance(outputs, Mapping):
        outputs = outputs.for_codec()  # type: ignore[union-attr]
    if not isinstance(outputs, Mapping):
        raise TypeError(
            f"decode expects a mapping of output tensors (e.g. ModelOutput.for_codec()), got {type(outputs).__name__}"
        )
    return outputs


def get_output(outputs: Mapping[str, Tensor], key: str, expected: tuple, note: str = "") -> Tensor:
    """Fetch ``outputs[key]`` and check its shape.

    expected: one entry per dimension, an int (must match) or a str label (any size, e.g. "B").
    Raises ValueError naming the key, the expected and the actual shape.
    """
    want = _fmt(expected) + (f" ({note})" if note else "")
    if key not in outputs:
        raise ValueError(
            f"decode: outputs lack key {key!r}: expected a tensor of shape {want}; got keys {sorted(outputs)}"
        )
    t = outputs[key]
    if not isinstance(t, Tensor):
        raise ValueError(f"decode: outputs[{key!r}] must be a tensor of shape {want}, got {type(t).__name__}")
    ok = t.ndim == len(expected) and all(isinstance(e, str) or int(s) == e for s, e in zip(t.shape, expected))
    if not ok:
        raise ValueError(f"decode: outputs[{key!r}] must have shape {want}, got {_fmt(tuple(t.shape))}")
    return t


def get_heatmap(outputs: Mapping[str, Tensor], heatmap_size: int) -> Tensor:
    """The (B, N, H, W) integer heatmap, H = W = the codec's heatmap_size."""
    return get_output(outputs, "heatmap", ("B", "N", heatmap_size, heatmap_size))
