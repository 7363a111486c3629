"""The authors' label placement (integer_target="cell", decimal_quantizer="round") against an
independent per-landmark NumPy reference written in the authors' own (pixel-centre) convention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hih.codecs import HeatmapCodec, HIHCodec, OffsetMapCodec, OffsetValueCodec
from hih.codecs.common import argmax_2d

INPUT, SIZE, STRIDE = 256, 64, 4
SIGMA, DEC_SIGMA = 1.5, 1.0
M = 10_000


def ref_gaussian(centre: tuple[int, int], size: int, sigma: float) -> np.ndarray:
    """exp(-d^2 / 2 sigma^2) on the integer grid around an integer centre, cut at 3 sigma (eq. 3)."""
    j = np.arange(size, dtype=np.float64)
    out = np.zeros((size, size))
    for r in range(size):
        for c in range(size):
            dx, dy = j[c] - centre[0], j[r] - centre[1]
            if abs(dx) <= 3 * sigma and abs(dy) <= 3 * sigma:
                out[r, c] = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
    return out


def ref_gaussian_fast(centre, size, sigma):
    # Same as ref_gaussian, separable; ref_gaussian checks it once below (the double loop is slow).
    j = np.arange(size, dtype=np.float64)
    gx = np.where(np.abs(j - centre[0]) <= 3 * sigma, np.exp(-((j - centre[0]) ** 2) / (2 * sigma**2)), 0.0)
    gy = np.where(np.abs(j - centre[1]) <= 3 * sigma, np.exp(-((j - centre[1]) ** 2) / (2 * sigma**2)), 0.0)
    return np.outer(gy, gx)


def authors_baseline_cell(x: float) -> int:
    """The authors' baseline: round(v), v the heatmap coordinate with pixel centres at integers.

    Our u = x / stride has cell j covering [j, j + 1); their v = u - 0.5."""
    v = x / STRIDE - 0.5
    return math.floor(v + 0.5)


def authors_hih(x: float, d: int) -> tuple[int, int, int]:
    """(integer cell floor(u), rounded decimal index round(o d) (may be d), its argmax min(., d - 1))."""
    u = x / STRIDE
    cell = math.floor(u)
    k = math.floor((u - cell) * d + 0.5)
    return cell, k, min(k, d - 1)


@pytest.fixture(scope="module")
def landmarks() -> torch.Tensor:
    g = torch.Generator().manual_seed(12)
    return (torch.rand(100, M // 100, 2, generator=g) * INPUT).float()  # (B, N, 2), 10,000 landmarks


def test_fast_reference_matches_loop_reference():
    for centre in [(0, 0), (3, 60), (31, 32), (63, 5)]:
        np.testing.assert_allclose(ref_gaussian_fast(centre, SIZE, SIGMA), ref_gaussian(centre, SIZE, SIGMA), atol=0)


def _cells(heatmap: torch.Tensor) -> np.ndarray:
    cy, cx, _ = argmax_2d(heatmap)
    return torch.stack((cx, cy), -1).reshape(-1, 2).numpy()


@pytest.mark.parametrize(
    "codec",
    [
        HeatmapCodec(INPUT, SIZE, SIGMA, decoder="argmax", integer_target="cell"),
        OffsetValueCodec(INPUT, SIZE, SIGMA, integer_target="cell"),
        OffsetMapCodec(INPUT, SIZE, SIGMA, integer_target="cell"),
        HIHCodec(INPUT, SIZE, SIGMA, decimal_size=8, integer_target="cell", decimal_quantizer="round"),
    ],
    ids=repr,
)
def test_cell_integer_target_matches_reference(codec, landmarks):
    pts = landmarks.reshape(-1, 2).double().numpy()
    if isinstance(codec, HeatmapCodec):
        ref = np.array([[authors_baseline_cell(x), authors_baseline_cell(y)] for x, y in pts])
    else:
        ref = np.array([[authors_hih(x, 8)[0], authors_hih(y, 8)[0]] for x, y in pts])
    for start in range(0, len(landmarks), 10):  # 1,000 landmarks at a time bounds memory
        lm = landmarks[start : start + 10]
        heatmap = codec.encode(lm)["heatmap"]
        sl = slice(start * lm.shape[1], (start + 10) * lm.shape[1])
        np.testing.assert_array_equal(_cells(heatmap), ref[sl])
        maps = heatmap.reshape(-1, SIZE, SIZE).double().numpy()
        for i in range(0, len(maps), 37):  # a spread sample of maps, including border cells
            np.testing.assert_allclose(maps[i], ref_gaussian_fast(ref[sl][i], SIZE, SIGMA), atol=1e-6)


def test_cell_baseline_decodes_to_the_authors_pixel_centre(landmarks):
    """argmax + centre anchor on a cell target returns the authors' decoded pixel (their index j is
    position j in their convention, i.e. j + 0.5 in ours)."""
    codec = HeatmapCodec(INPUT, SIZE, SIGMA, decoder="argmax", anchor="centre", integer_target="cell")
    out = codec.decode(codec.encode(landmarks)).reshape(-1, 2).double().numpy()
    pts = landmarks.reshape(-1, 2).double().numpy()
    ref = np.array(
        [[(authors_baseline_cell(x) + 0.5) * STRIDE, (authors_baseline_cell(y) + 0.5) * STRIDE] for x, y in pts]
    )
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert np.abs(out - pts).max() <= STRIDE / 2 + 1e-4  # the nearest cell centre


@pytest.mark.parametrize("d", [4, 8, 16])
def test_round_decimal_quantizer_matches_reference(d, landmarks):
    codec = HIHCodec(
        INPUT, SIZE, SIGMA, decimal_size=d, decimal_sigma=DEC_SIGMA, integer_target="cell", decimal_quantizer="round"
    )
    targets = codec.encode(landmarks)
    pts = landmarks.reshape(-1, 2).double().numpy()
    ref = [(authors_hih(x, d), authors_hih(y, d)) for x, y in pts]
    ref_idx = np.array([[rx[2], ry[2]] for rx, ry in ref])
    np.testing.assert_array_equal(_cells(targets["decimal"]), ref_idx)
    np.testing.assert_array_equal(_cells(targets["heatmap"]), np.array([[rx[0], ry[0]] for rx, ry in ref]))
    # Maps away from the border: where the rounded index stays on the map (round(o d) < d).
    maps = targets["decimal"].reshape(-1, d, d).double().numpy()
    inside = [i for i, (rx, ry) in enumerate(ref) if rx[1] < d and ry[1] < d]
    assert len(inside) > 0.7 * len(ref)  # (1 - 1/(2d))^2 of them
    for i in inside:
        np.testing.assert_allclose(maps[i], ref_gaussian_fast((ref[i][0][1], ref[i][1][1]), d, DEC_SIGMA), atol=1e-6)
    # Eq. 4 at the index (corner decode) on the fed-back targets.
    out = codec.decode({"heatmap": targets["heatmap"], "decimal": targets["decimal"]}).reshape(-1, 2).double().numpy()
    want = np.array([[(rx[0] + rx[2] / d) * STRIDE, (ry[0] + ry[2] / d) * STRIDE] for rx, ry in ref])
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_defaults_are_unchanged():
    lm = torch.tensor([[[10.3, 200.9]]])
    for cls in (HeatmapCodec, OffsetValueCodec, OffsetMapCodec, HIHCodec):
        assert cls().encode(lm)["heatmap"].equal(cls(integer_target="subpixel").encode(lm)["heatmap"])
    assert HIHCodec().encode(lm)["decimal"].equal(HIHCodec(decimal_quantizer="floor").encode(lm)["decimal"])
    # The subpixel map differs from the cell map (it carries the sub-cell position).
    assert not HeatmapCodec().encode(lm)["heatmap"].equal(HeatmapCodec(integer_target="cell").encode(lm)["heatmap"])


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="integer_target"):
        HeatmapCodec(integer_target="pixel")
    with pytest.raises(ValueError, match="decimal_quantizer"):
        HIHCodec(decimal_quantizer="ceil")
