"""The plain Gaussian heatmap codec (baseline) with its decoders: argmax, WSM, DARK, soft-argmax."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from hih.codecs.base import Codec
from hih.codecs.common import (
    as_mapping,
    check_integer_target,
    check_sigma,
    get_heatmap,
    integer_heatmap,
    to_heatmap_coords,
)
from hih.codecs.decoders import anchor_value, decode_argmax, decode_dark, decode_soft_argmax, decode_wsm

DECODERS = ("argmax", "wsm", "dark", "soft_argmax")

#: Default soft-argmax temperature, measured on ideal heatmaps (sigma 1.5, 64 x 64 map, landmarks
#: uniform over the inner 48 x 48 cells): mean error in cells 0.35 at beta 12, 0.086 at 14,
#: 0.082 at 15, 0.091 at 16, 0.13 at 20, 0.25 at 40. Smaller beta lets the flat zero background
#: (thousands of cells) pull the expectation toward the map centre; larger beta turns the softmax
#: into a spike narrower than a cell, which the cell grid samples too coarsely. The best value
#: grows with the map area and shrinks with sigma, so re-measure for other settings.
DEFAULT_SOFT_ARGMAX_BETA = 15.0


class HeatmapCodec(Codec):
    """Gaussian heatmap per landmark (paper eq. 3) decoded by one of four classic decoders.

    encode(landmarks (B, N, 2)) -> {"heatmap": (B, N, H, W), "cell": (B, N, 2), "weight": (B, N)}: at heatmap coordinate
    u = x / stride, value exp(-d^2 / 2 sigma^2) with d from each cell centre (j + 0.5) to u, zero where
    the L-inf distance exceeds 3 sigma; built separably (outer product of two 1-D Gaussians).
    decode({"heatmap": (B, N, H, W)}) -> (B, N, 2) input pixels, by ``decoder``:

    - "argmax": integer argmax cell plus ``anchor`` ("centre" + 0.5 cell, "corner" + 0, the literal
      integer argmax the paper's analysis assumes); ideal mean error 0.383 b / 0.765 b, b = stride.
    - "wsm": argmax plus a quarter cell toward the higher neighbour per axis; ideal mean 0.191 b.
    - "dark": DARK's Gaussian smoothing + log + Taylor step (``sigma`` as the smoothing sigma).
    - "soft_argmax": expectation under softmax(``beta`` * heatmap).

    ``integer_target`` places the Gaussian: "subpixel" (default, above) or "cell", the authors'
    placement: a Gaussian centred on a whole cell and sampled on the cell grid, so the map holds no
    sub-cell information. The authors' baseline puts it on round(v), v their heatmap coordinate
    with pixel centres at integers (their argmax index j is read as position j). In this repo's
    convention (cell j covers [j, j + 1), centre j + 0.5) the same point is v = u - 0.5, so
    round(v) = floor(u - 0.5 + 0.5) = floor(u): the cell containing u, i.e. the cell whose centre
    is nearest to the landmark (ties at exact half-cells aside). The "cell" map is therefore a
    Gaussian centred on the centre of cell floor(u); "argmax" with anchor "centre" decodes it to
    floor(u) + 0.5, the nearest cell centre, which is exactly the authors' decoded pixel (ideal
    error 0.383 b mean); anchor "corner" gives the paper's literal floor (0.765 b). The same map is
    what HIH / WOV / WOM use with ``integer_target="cell"`` (their floor(u) cell).
    """

    head_key = None
    target_keys = ("heatmap", "cell", "weight")

    def __init__(
        self,
        input_size: int = 256,
        heatmap_size: int = 64,
        sigma: float = 1.5,
        decoder: str = "argmax",
        anchor: str = "centre",
        beta: float = DEFAULT_SOFT_ARGMAX_BETA,
        integer_target: str = "subpixel",
    ):
        super().__init__(input_size, heatmap_size)
        # The landmark's own cell centre is up to 0.5 cell away: it must stay inside the 3-sigma support.
        self.sigma = check_sigma("sigma", sigma, 1.0 / 6.0)
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        anchor_value(anchor)
        if decoder in ("dark", "soft_argmax") and anchor != "centre":
            raise ValueError(
                f"anchor={anchor!r} applies to the argmax and wsm decoders only; "
                f"{decoder!r} estimates a continuous position"
            )
        self.integer_target = check_integer_target(integer_target)
        self.decoder = decoder
        self.anchor = anchor
        self.beta = float(beta)
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")

    def __repr__(self) -> str:
        extra = f", beta={self.beta}" if self.decoder == "soft_argmax" else ""
        return (
            f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, "
            f"decoder={self.decoder!r}, anchor={self.anchor!r}{extra}, integer_target={self.integer_target!r})"
        )

    def encode(self, landmarks: Tensor) -> dict[str, Tensor]:
        """landmarks (B, N, 2) input pixels -> {"heatmap": (B, N, H, W), "cell": (B, N, 2) long, "weight": (B, N)}."""
        coords = to_heatmap_coords(landmarks, self.input_size, self.heatmap_size)
        return {
            "heatmap": integer_heatmap(coords, self.heatmap_size, self.sigma, self.integer_target),
            "cell": coords.cell,
            "weight": coords.weight,
        }

    def decode_heatmap(self, heatmap: Tensor) -> Tensor:
        """(B, N, H, W) -> (B, N, 2) heatmap coordinates with this codec's decoder."""
        if self.decoder == "argmax":
            return decode_argmax(heatmap, self.anchor)
        if self.decoder == "wsm":
            return decode_wsm(heatmap, self.anchor)
        if self.decoder == "dark":
            return decode_dark(heatmap, self.sigma)
        return decode_soft_argmax(heatmap, self.beta)

    def decode(self, outputs: Mapping[str, Tensor]) -> Tensor:
        """{"heatmap": (B, N, H, W)} -> (B, N, 2) input pixels (float32, or float64 for float64 input)."""
        heatmap = get_heatmap(as_mapping(outputs), self.heatmap_size)
        return self.decode_heatmap(heatmap) * self.stride
