"""Affine helpers: the blob test of the design notes for every geometric transform."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hih.data.geometry import (
    apply_affine,
    crop_matrix,
    flip_matrix,
    rotation_matrix,
    to_opencv,
    translation_matrix,
    warp_image,
)


def render_blob(h: int, w: int, center: tuple[float, float], sigma: float) -> np.ndarray:
    """(h, w) float32 Gaussian blob centred at continuous (x, y); pixel (i, j) sampled at its centre."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    return np.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def centroid(img: np.ndarray) -> np.ndarray:
    """Intensity centroid (x, y) in continuous coordinates (pixel centre i + 0.5)."""
    img = img.astype(np.float64)
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]] + 0.5
    total = img.sum()
    return np.array([(xs * img).sum() / total, (ys * img).sum() / total])


SRC_H, SRC_W = 110, 130
BLOB = (61.37, 52.81)  # sub-pixel on purpose
BBOX = (40.0, 30.0, 88.0, 80.0)  # 48 x 50 box around the blob

CASES = {
    "crop": dict(input_size=64),
    "crop_upscale": dict(input_size=160),
    "crop_downscale": dict(input_size=40),
    "rotation": dict(input_size=64, rotation=23.0),
    "rotation_neg": dict(input_size=64, rotation=-30.0),
    "scale": dict(input_size=64, scale=0.9),
    "shift": dict(input_size=64, shift=(0.083, -0.061)),
    "flip": dict(input_size=64, flip=True),
    "composed": dict(input_size=96, scale=1.1, rotation=-17.5, shift=(-0.04, 0.07), flip=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_blob_centroid_follows_landmark(name: str) -> None:
    kw = dict(CASES[name])
    size = kw.pop("input_size")
    sigma = 3.0
    src = render_blob(SRC_H, SRC_W, BLOB, sigma)
    m = crop_matrix(BBOX, size, **kw)
    warped = warp_image(src, m, size)
    expected = apply_affine(np.array([BLOB]), m)[0]
    got = centroid(warped)
    # the blob must be well inside the crop for the centroid to be meaningful
    assert np.all(expected > 4 * sigma * size / 62.5) and np.all(expected < size - 4 * sigma * size / 62.5)
    assert np.abs(got - expected).max() < 0.1, (name, got, expected)


def test_blob_after_flip_lands_on_mirror() -> None:
    size = 64
    src = render_blob(SRC_H, SRC_W, BLOB, 3.0)
    plain = apply_affine(np.array([BLOB]), crop_matrix(BBOX, size))[0]
    m = crop_matrix(BBOX, size, flip=True)
    flipped = apply_affine(np.array([BLOB]), m)[0]
    np.testing.assert_allclose(flipped, [size - plain[0], plain[1]], atol=1e-4)
    assert np.abs(centroid(warp_image(src, m, size)) - flipped).max() < 0.1
    # the mirror equals the explicit x -> S - x matrix composed after the crop
    np.testing.assert_allclose(m, flip_matrix(size) @ crop_matrix(BBOX, size), atol=1e-12)


def test_crop_maps_box_to_input() -> None:
    size = 64
    box = (10.0, 20.0, 60.0, 70.0)  # square 50 x 50
    m = crop_matrix(box, size, scale=1.0)
    corners = apply_affine(np.array([[10.0, 20.0], [60.0, 70.0], [35.0, 45.0]]), m)
    np.testing.assert_allclose(corners, [[0, 0], [size, size], [size / 2, size / 2]], atol=1e-5)
    # the long side sets the crop; a 1.25 margin shrinks the box to 1/1.25 of the input
    m = crop_matrix((0.0, 0.0, 40.0, 80.0), 100, scale=1.25)
    np.testing.assert_allclose(apply_affine(np.array([[20.0, 0.0], [20.0, 80.0]]), m), [[50, 10], [50, 90]], atol=1e-5)


def test_rotation_sense_matches_opencv() -> None:
    # cv2.getRotationMatrix2D: positive angle = counter-clockwise on screen, origin top-left
    ours = rotation_matrix(30.0)[:2, :2]
    cv = cv2.getRotationMatrix2D((0.0, 0.0), 30.0, 1.0)[:, :2]
    np.testing.assert_allclose(ours, cv, atol=1e-12)


def test_warp_identity_and_integer_shift_are_exact() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_image(img, np.eye(3), (24, 20)), img)
    shifted = warp_image(img, translation_matrix(3, 2), (24, 20))
    np.testing.assert_array_equal(shifted[2:, 3:], img[:-2, :-3])
    assert (shifted[:2] == 0).all() and (shifted[:, :3] == 0).all()
    rep = warp_image(img, translation_matrix(3, 2), (24, 20), border="replicate")
    np.testing.assert_array_equal(rep[0, 0], img[0, 0])


def test_half_pixel_conjugation() -> None:
    m = crop_matrix(BBOX, 64, rotation=11.0, flip=True)
    m_cv = np.vstack([to_opencv(m), [0, 0, 1]])
    back = translation_matrix(0.5, 0.5) @ m_cv @ translation_matrix(-0.5, -0.5)
    np.testing.assert_allclose(back, m, atol=1e-12)


def test_apply_affine_shapes_and_errors() -> None:
    pts = np.zeros((2, 5, 2), np.float32)
    out = apply_affine(pts, translation_matrix(1, 2))
    assert out.shape == (2, 5, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], 1) and np.testing.assert_allclose(out[..., 1], 2)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        apply_affine(np.zeros((3, 3)), np.eye(3))
    with pytest.raises(ValueError, match="affine matrix"):
        apply_affine(np.zeros((3, 2)), np.eye(2))
    with pytest.raises(ValueError, match="bbox"):
        crop_matrix((1, 2, 3), 64)
    with pytest.raises(ValueError, match="empty crop"):
        crop_matrix((5, 5, 5, 5), 64)
    with pytest.raises(ValueError, match="border"):
        warp_image(np.zeros((4, 4), np.uint8), np.eye(3), 4, border="wrap")
