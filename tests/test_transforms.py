"""Training / eval pipelines: flip re-indexing, blob test through the full train transform,
stateless randomness, normalisation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hih.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    EvalTransform,
    TrainTransform,
    denormalize,
    sample_rng,
    to_tensor,
)

GEOMETRY_ONLY = dict(occlusion_prob=0.0, blur_prob=0.0, color_prob=0.0)
BBOX = np.array([30.0, 25.0, 90.0, 85.0], np.float32)
POINTS = np.array([[48.3, 44.6], [71.9, 46.2], [60.2, 69.7]], np.float32)  # left eye, right eye, mouth
PERM = (1, 0, 2)  # the eyes swap under a flip, the mouth maps to itself


def three_blobs(sigma: float = 3.0) -> np.ndarray:
    """(110, 120, 3) uint8: blob k of POINTS drawn in channel k."""
    ys, xs = np.mgrid[0:110, 0:120].astype(np.float64) + 0.5
    img = np.stack([np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in POINTS], axis=-1)
    return np.round(img * 255).astype(np.uint8)


def channel_centroids(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float64)
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]] + 0.5
    w = img.sum(axis=(0, 1))
    return np.stack([(xs[..., None] * img).sum((0, 1)) / w, (ys[..., None] * img).sum((0, 1)) / w], axis=-1)


def test_flip_reindexes_with_flip_perm() -> None:
    tf = TrainTransform(
        64, PERM, aug=dict(GEOMETRY_ONLY, flip_prob=1.0, rotation_prob=0.0, scale_jitter=0.0, shift_jitter=0.0)
    )
    img, pts, m = tf(three_blobs(), POINTS, BBOX, sample_rng(0, 0, 0))
    plain = EvalTransform(64)(three_blobs(), POINTS, BBOX)[1]
    # output landmark j is the mirror of input landmark PERM[j]
    np.testing.assert_allclose(pts, np.stack([64 - plain[:, 0], plain[:, 1]], -1)[list(PERM)], atol=1e-4)
    # and sits on the blob of channel PERM[j]
    cen = channel_centroids(img)
    assert np.abs(cen[list(PERM)] - pts).max() < 0.1
    assert pts[0, 0] < pts[1, 0]  # left eye stays on the left after flip + re-index


@pytest.mark.parametrize("index", range(6))
def test_random_geometry_blob_test(index: int) -> None:
    # full-strength geometry (flip, +-30 deg, scale/shift jitter), photometric off
    tf = TrainTransform(
        96, PERM, aug=dict(GEOMETRY_ONLY, flip_prob=0.5, rotation_prob=1.0, scale_jitter=0.1, shift_jitter=0.05)
    )
    rng = sample_rng(7, 3, index)
    g = tf.sample_geometry(sample_rng(7, 3, index))
    img, pts, _ = tf(three_blobs(), POINTS, BBOX, rng)
    cen = channel_centroids(img)
    order = list(PERM) if g["flip"] else [0, 1, 2]
    assert np.abs(cen[order] - pts).max() < 0.1, (g, cen[order], pts)


def test_same_seed_epoch_index_same_sample_and_albumentations_is_stateless() -> None:
    tf = TrainTransform(48, PERM, aug=dict(occlusion_prob=1.0, blur_prob=1.0, color_prob=1.0, saturation=0.2, hue=0.02))
    rgb = np.random.default_rng(1).integers(0, 255, size=(110, 120, 3), dtype=np.uint8)
    a_img, a_pts, a_m = tf(rgb, POINTS, BBOX, sample_rng(3, 1, 5))
    # disturb every global random state and run other samples in between
    random.seed(123), np.random.seed(123), torch.manual_seed(123)
    tf(rgb, POINTS, BBOX, sample_rng(3, 2, 5))
    b_img, b_pts, b_m = TrainTransform(48, PERM, aug=tf.aug)(rgb, POINTS, BBOX, sample_rng(3, 1, 5))
    c_img, c_pts, _ = tf(rgb, POINTS, BBOX, sample_rng(3, 1, 5))
    np.testing.assert_array_equal(a_img, b_img), np.testing.assert_array_equal(a_img, c_img)
    np.testing.assert_array_equal(a_pts, b_pts), np.testing.assert_array_equal(a_m, b_m)
    d_img, _, d_m = tf(rgb, POINTS, BBOX, sample_rng(3, 2, 5))
    e_img, _, _ = tf(rgb, POINTS, BBOX, sample_rng(4, 1, 5))
    assert not np.array_equal(a_img, d_img) and not np.array_equal(a_m, d_m)
    assert not np.array_equal(a_img, e_img)


def test_augmentation_rates_follow_config() -> None:
    tf = TrainTransform(32, PERM)  # paper defaults: flip 0.5, rotation 0.5 within +-30
    draws = [tf.sample_geometry(sample_rng(0, 0, i)) for i in range(400)]
    flips = np.mean([d["flip"] for d in draws])
    rots = np.array([d["rotation"] for d in draws])
    assert 0.4 < flips < 0.6
    assert 0.4 < np.mean(rots != 0) < 0.6 and np.abs(rots).max() <= 30.0
    scales = np.array([d["scale"] for d in draws])
    assert scales.min() >= 1.25 * 0.95 - 1e-9 and scales.max() <= 1.25 * 1.05 + 1e-9 and scales.std() > 0

    # occlusion: a rectangle of one colour appears in about half of the samples
    occ = TrainTransform(
        32,
        PERM,
        aug=dict(
            occlusion_prob=0.5,
            occlusion_size=(0.3, 0.3),
            blur_prob=0.0,
            color_prob=0.0,
            flip_prob=0.0,
            rotation_prob=0.0,
            scale_jitter=0.0,
            shift_jitter=0.0,
        ),
    )
    src = np.random.default_rng(2).integers(0, 255, size=(110, 120, 3), dtype=np.uint8)
    clean = EvalTransform(32)(src, POINTS, BBOX)[0]
    changed = [not np.array_equal(occ(src, POINTS, BBOX, sample_rng(0, 0, i))[0], clean) for i in range(60)]
    assert 0.25 < np.mean(changed) < 0.75


def test_eval_transform_is_crop_only() -> None:
    img, pts, m = EvalTransform(64, crop_scale=1.0)(three_blobs(), POINTS, BBOX)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and pts.dtype == np.float32
    np.testing.assert_allclose(pts, (POINTS - BBOX[:2]) * 64 / 60, atol=1e-4)


def test_to_tensor_normalises_and_denormalize_inverts() -> None:
    img = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32
    ref = (img.astype(np.float32) / 255 - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    np.testing.assert_allclose(t.numpy(), ref.transpose(2, 0, 1), atol=1e-5)
    np.testing.assert_allclose(denormalize(t).numpy(), img.transpose(2, 0, 1) / 255, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(img.astype(np.float32))


def test_config_validation() -> None:
    assert AugmentConfig.from_any({"blur_sigma": [1, 2]}).blur_sigma == (1.0, 2.0)
    with pytest.raises(ValueError, match="unknown augmentation option"):
        AugmentConfig.from_any({"flip": 0.5})
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="involution"):
        TrainTransform(32, (1, 2, 0))
