"""Heatmap In Heatmap (paper section 3.2.1): an integer heatmap plus a decimal heatmap per landmark."""

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
    render_gaussian,
    to_heatmap_coords,
)

DECIMAL_DECODES = {"corner": 0.0, "centre": 0.5}
DECIMAL_QUANTIZERS = ("floor", "round")


class HIHCodec(Codec):
    """Integer heatmap (as :class:`HeatmapCodec`) plus a decimal heatmap that refines its argmax cell.

    encode(landmarks (B, N, 2)) ->
        {"heatmap": (B, N, H, W), "decimal": (B, N, d, d), "cell": (B, N, 2), "weight": (B, N)},
    d = decimal_size: with u = x / stride, offset o = u - floor(u) (eq. 1), decimal cell
    o* = floor(o * d) (eq. 2), and the decimal heatmap is a Gaussian of ``decimal_sigma`` cells peaked
    on cell o*, zero where the L-inf distance exceeds 3 decimal_sigma (eq. 3). Rows are y, columns x.

    decode({"heatmap", "decimal"}) -> (B, N, 2) input pixels:
    (argmax(heatmap) + (argmax(decimal) + a) / d) * stride (eq. 4), with a = 0 for
    ``decimal_decode="corner"`` (eq. 4 as the paper writes it) or a = 0.5 for "centre" (bin centre).
    ``integer_only=True`` ignores the decimal map and returns the integer cell's centre (Table 7).

    Ideal-condition cost (targets fed back as outputs): the landmark is uniform in a square bin of
    side b = stride / d input pixels; the mean distance to the bin's corner is 0.765 b (max 1.414 b),
    to its centre 0.383 b (max 0.707 b). At 256 -> 64 (stride 4): d = 8 gives 0.383 px (corner) or
    0.191 px (centre); each doubling of d halves it. ``integer_only`` costs 0.383 * stride.

    The authors' settings (github starhiking/HeatmapInHeatmap), both options, ours the default
    (``labels=ours|authors`` selects them, docs/paper_fidelity.md):

    - ``integer_target="cell"``: the integer Gaussian centred on cell floor(u) and sampled on the
      cell grid (no sub-cell information in the integer map; see :class:`HeatmapCodec`). Their
      HIH takes floor of their pixel-centre coordinate v = u - 0.5; we keep eq. 1 in this repo's
      convention (floor(u), offset from the cell's corner), the same construction on a grid
      shifted by half a cell, so the error statistics are the same and the decoders unchanged.
    - ``decimal_quantizer="round"``: decimal peak on o* = min(floor(o * d + 0.5), d - 1), the
      rounded index clipped at the last cell (their generator rounds o * d; a peak rounded to d lies
      off the map, whose argmax is then d - 1), decoded with eq. 4 at the index
      (``decimal_decode="corner"``). Their map for o * d >= d - 0.5 is a Gaussian centred off the
      map at d; ours is centred on d - 1: same argmax, maps differ only in that border case.

    The paper's combination is ``decimal_quantizer="round"`` + ``decimal_decode="corner"``: the
    error is at most half a decimal cell per axis except in the last cell, which collects
    o * d in [d - 1.5, d) and errs up to a whole decimal cell. That boundary cell is a larger
    share of the bins at small d, which is why the paper's Table 8 "Ideal" ratios are 2.31
    (4x4 / 8x8) and 2.00 (8x8 / 16x16) rather than exactly 2. floor + centre has the same
    half-cell error everywhere (ratio exactly 2); floor + corner errs up to a whole cell everywhere
    (twice the floor + centre error). round + centre is offset by half a cell and is not meant
    to be used.
    """

    head_key = "decimal"
    target_keys = ("heatmap", "decimal", "cell", "weight")

    def __init__(
        self,
        input_size: int = 256,
        heatmap_size: int = 64,
        sigma: float = 1.5,
        decimal_size: int = 8,
        decimal_sigma: float = 1.0,
        decimal_decode: str = "corner",
        integer_only: bool = False,
        integer_target: str = "subpixel",
        decimal_quantizer: str = "floor",
    ):
        super().__init__(input_size, heatmap_size)
        self.sigma = check_sigma("sigma", sigma, 1.0 / 6.0)
        if isinstance(decimal_size, bool) or int(decimal_size) != decimal_size or int(decimal_size) < 1:
            raise ValueError(f"decimal_size must be a positive integer, got {decimal_size!r}")
        self.decimal_size = int(decimal_size)
        # The peak sits exactly on a decimal cell, so any positive sigma keeps it.
        self.decimal_sigma = check_sigma("decimal_sigma", decimal_sigma, 1e-6)
        if decimal_decode not in DECIMAL_DECODES:
            raise ValueError(f"decimal_decode must be one of {sorted(DECIMAL_DECODES)}, got {decimal_decode!r}")
        self.decimal_decode = decimal_decode
        self.integer_only = bool(integer_only)
        self.integer_target = check_integer_target(integer_target)
        if decimal_quantizer not in DECIMAL_QUANTIZERS:
            raise ValueError(f"decimal_quantizer must be one of {DECIMAL_QUANTIZERS}, got {decimal_quantizer!r}")
        self.decimal_quantizer = decimal_quantizer

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, "
            f"decimal_size={self.decimal_size}, decimal_sigma={self.decimal_sigma}, "
            f"decimal_decode={self.decimal_decode!r}, integer_only={self.integer_only}, "
            f"integer_target={self.integer_target!r}, decimal_quantizer={self.decimal_quantizer!r})"
        )

    def encode(self, landmarks: Tensor) -> dict[str, Tensor]:
        """landmarks (B, N, 2) -> heatmap, decimal, cell and weight targets.

        {"heatmap": (B, N, H, W), "decimal": (B, N, d, d), "cell": (B, N, 2) long, "weight": (B, N)}.

        "cell" is floor(u) (eq. 1), the integer cell HIH_L's decimal head is teacher-forced with.
        """
        coords = to_heatmap_coords(landmarks, self.input_size, self.heatmap_size)
        d = self.decimal_size
        # floor: clamp guards o * d rounding up to d when o is one ulp below 1 and d is not a power
        # of two. round: the clamp is the authors' clip of an index rounded up to d.
        shift = 0.5 if self.decimal_quantizer == "round" else 0.0
        o_star = (coords.offset * d + shift).floor().clamp(0, d - 1)
        return {
            "heatmap": integer_heatmap(coords, self.heatmap_size, self.sigma, self.integer_target),
            "decimal": render_gaussian(o_star, d, self.decimal_sigma, 0.0, coords.dtype),
            "cell": coords.cell,
            "weight": coords.weight,
        }

    def decode(self, outputs: Mapping[str, Tensor]) -> Tensor:
        """{"heatmap": (B, N, H, W), "decimal": (B, N, d, d)} -> (B, N, 2) input pixels.

        With ``integer_only`` only "heatmap" is read.
        """
        outputs = as_mapping(outputs)
        heatmap = get_heatmap(outputs, self.heatmap_size)
        dtype = coord_dtype(heatmap)
        if self.integer_only:
            return self.decode_integer(heatmap, anchor="centre").to(dtype)
        cy, cx, _ = argmax_2d(heatmap)
        b, n = heatmap.shape[:2]
        d = self.decimal_size
        decimal = get_output(outputs, "decimal", (b, n, d, d), note="B, N from outputs['heatmap']")
        oy, ox, _ = argmax_2d(decimal)
        a = DECIMAL_DECODES[self.decimal_decode]
        frac_x = (ox.to(dtype) + a) / d
        frac_y = (oy.to(dtype) + a) / d
        x = cx.to(dtype) + frac_x
        y = cy.to(dtype) + frac_y
        return torch.stack((x, y), dim=-1) * self.stride
