"""Synthetic faces: exact rasterisation, determinism, on-disk format, attribute flags, landmark fidelity."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hih.data.datasets import read_dataset
from hih.data.records import load_image
from hih.data.synthetic import (
    ATTRIBUTES,
    MANIFEST,
    attribute_flags,
    disc_coverage,
    ensure_synthetic,
    face_rng,
    make_face,
    polygon_coverage,
    render_face,
    sample_face,
    stroke_coverage,
)

SMALL = dict(n_train=12, n_test=6, seed=3, image_size=(96, 128), progress=False, workers=1)


def _centroid(cov: np.ndarray, x0: int = 0, y0: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0 : cov.shape[0], 0 : cov.shape[1]] + 0.5
    return np.array([(cov * (xx + x0)).sum(), (cov * (yy + y0)).sum()]) / cov.sum()


def test_polygon_coverage_is_exact_area_and_centroid():
    pts = np.array([[10.3, 12.7], [30.6, 11.2], [28.1, 33.9], [8.8, 30.05], [15.2, 22.4]])
    x, y = pts[:, 0], pts[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = 0.5 * cross.sum()
    centroid = np.array([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()]) / (6 * area)
    cov = polygon_coverage(pts, 2, 5, 36, 34, sub=8)
    assert cov.min() >= 0 and cov.max() <= 1
    assert cov.sum() == pytest.approx(area, abs=0.05)
    np.testing.assert_allclose(_centroid(cov, 2, 5), centroid, atol=0.01)
    # a pixel-aligned square covers exactly its pixels (pixel i covers [i, i + 1))
    sq = polygon_coverage(np.array([[2.0, 3.0], [5.0, 3.0], [5.0, 7.0], [2.0, 7.0]]), 0, 0, 8, 8)
    expected = np.zeros((8, 8), np.float32)
    expected[3:7, 2:5] = 1
    np.testing.assert_allclose(sq, expected, atol=1e-6)


def test_disc_and_stroke_centroids_are_subpixel():
    c = np.array([7.3, 9.85])
    np.testing.assert_allclose(_centroid(disc_coverage(c, 2.7, 0, 0, 20, 20)), c, atol=0.01)
    seg = np.array([[3.2, 4.6], [15.7, 12.1]])
    np.testing.assert_allclose(_centroid(stroke_coverage(seg, 1.5, False, 0, 0, 20, 20)), seg.mean(0), atol=0.05)


def test_make_face_deterministic_and_varied():
    a, b = make_face(5, "train", 7, (96, 128)), make_face(5, "train", 7, (96, 128))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.bbox, b.bbox)
    c = make_face(5, "test", 7, (96, 128))
    assert not np.array_equal(a.landmarks, c.landmarks)
    with pytest.raises(ValueError, match="train, test"):
        face_rng(0, "val", 0)


def test_attribute_flags_vary_with_reasonable_shares():
    params = [sample_face(face_rng(1, "train", i)) for i in range(300)]
    flags = np.stack([p.flags for p in params])
    shares = flags.mean(0)
    assert ((shares > 0.08) & (shares < 0.35)).all(), dict(zip(ATTRIBUTES, shares))
    for p in params[:50]:
        np.testing.assert_array_equal(attribute_flags(p), p.flags)
    # the flagged variation really is larger: pose angles and blur
    yaw = np.abs([p.yaw for p in params])
    assert yaw[flags[:, 0]].max() > 30 and yaw[~flags[:, 0]].max() <= 30
    assert all(p.occluder is None for p, f in zip(params, flags[:, 4]) if not f)


def test_landmarks_in_image_and_face_box_size():
    for i in range(20):
        p = sample_face(face_rng(2, "test", i), image_size=(256, 384))
        H, W = p.canvas_hw
        lm = p.landmarks
        assert 256 <= H <= 384 and 256 <= W <= 384
        assert (lm >= 0).all() and (lm[:, 0] < W).all() and (lm[:, 1] < H).all()
        extent = np.ptp(lm, axis=0).max() / min(H, W)
        assert 0.39 < extent < 0.71


def _neutral(face_index: int, seed: int = 0):
    """A large, open-eyed face with no occluder, blur, noise or lighting change."""
    for i in range(face_index, face_index + 50):
        p = sample_face(face_rng(seed, "train", i), image_size=(384, 384))
        if p.eye_close < 0.2 and abs(p.yaw) < 20:
            return dataclasses.replace(
                p, occluder=None, blur_sigma=0.0, noise_sigma=0.0, brightness=1.0, gradient=0.0, cast=np.ones(3)
            )
    raise AssertionError("no open-eyed face found")


@pytest.mark.parametrize("face_index", [0, 10])
def test_pupil_landmark_at_centroid_of_drawn_pupil(face_index):
    p = _neutral(face_index)
    img = render_face(p).astype(np.float64).mean(-1)
    lm = p.landmarks
    iris_grey = float(np.mean(p.iris))
    pupil_grey = 32.0 / 3  # the pupil colour (12, 10, 10)
    for eye, k in ((np.r_[60:68], 96), (np.r_[68:76], 97)):
        eye_w = np.linalg.norm(lm[eye[4]] - lm[eye[0]])
        r = 0.085 * eye_w + 1.0
        c = lm[k]
        x0, y0 = int(c[0] - r) - 1, int(c[1] - r) - 1
        win = img[y0 : y0 + int(2 * r) + 3, x0 : x0 + int(2 * r) + 3]
        yy, xx = np.mgrid[0 : win.shape[0], 0 : win.shape[1]] + 0.5
        inside = np.hypot(xx + x0 - c[0], yy + y0 - c[1]) <= r
        w = np.clip((iris_grey - win) / (iris_grey - pupil_grey), 0, 1) * inside
        centroid = _centroid(w, x0, y0)
        assert np.linalg.norm(centroid - c) < 0.3, (k, centroid, c)


def test_ensure_synthetic_writes_wflw_format_deterministically(tmp_path):
    a = ensure_synthetic(tmp_path / "a", **SMALL)
    b = ensure_synthetic(tmp_path / "b", **SMALL)
    for split, n in (("train", 12), ("test", 6)):
        ra, rb = read_dataset("synthetic", a, split), read_dataset("synthetic", b, split)
        assert len(ra) == len(rb) == n
        for x, y in zip(ra, rb):
            np.testing.assert_array_equal(x.landmarks, y.landmarks)
            np.testing.assert_array_equal(x.subsets, y.subsets)
            assert x.image_path.read_bytes() == y.image_path.read_bytes()
            img = load_image(x.image_path)
            h, w = img.shape[:2]
            assert 96 <= h <= 128 and 96 <= w <= 128
            assert (x.landmarks >= 0).all() and (x.landmarks[:, 0] < w).all() and (x.landmarks[:, 1] < h).all()
            assert x.bbox[2] > x.bbox[0] and x.bbox[3] > x.bbox[1]
    # annotation values round-trip the generator's (to the 6 decimals written)
    face = make_face(3, "train", 4, (96, 128))
    np.testing.assert_allclose(read_dataset("synthetic", a, "train")[4].landmarks, face.landmarks, atol=1e-4)
    assert not list(tmp_path.glob(".*tmp*")), "temporary folders left behind"


def test_ensure_synthetic_reuses_and_regenerates(tmp_path):
    root = ensure_synthetic(tmp_path / "s", **SMALL)
    listing = root / "WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt"
    stamp = listing.stat().st_mtime_ns
    assert ensure_synthetic(tmp_path / "s", **SMALL) == root
    assert listing.stat().st_mtime_ns == stamp  # reused, not rewritten
    ensure_synthetic(tmp_path / "s", **{**SMALL, "n_train": 5})
    assert len(read_dataset("synthetic", root, "train")) == 5
    assert json.loads((root / MANIFEST).read_text())["n_train"] == 5
    assert not [p for p in tmp_path.glob(".*") if p.is_dir()]  # no temp or backup folders left (the lock file stays)


def test_ensure_synthetic_refuses_foreign_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        ensure_synthetic(foreign, **SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="image_format"):
        ensure_synthetic(tmp_path / "x", image_format="gif", progress=False)
