"""crop_from="landmarks": the authors' oracle crop from the ground-truth landmarks' box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hih.data.datamodule import FaceDataModule
from hih.data.dataset import FaceDataset
from hih.data.datasets import get_layout, read_dataset
from hih.data.geometry import apply_affine, crop_matrix, landmark_box
from hih.data.records import FaceRecord

S = 64
LAYOUT = get_layout("wflw")


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> FaceRecord:
    root: Path = tmp_path_factory.mktemp("data") / "synthetic"
    FaceDataModule(dataset="synthetic", root=root, n_train=2, n_test=2, num_workers=0).prepare_data()
    rec = read_dataset("synthetic", root, "test")[0]
    # A detector box far off the face: shifted by two box widths, half the size.
    w = rec.bbox[2] - rec.bbox[0]
    off = np.array([rec.bbox[0] + 2 * w, rec.bbox[1] + 2 * w, rec.bbox[0] + 2.5 * w, rec.bbox[1] + 2.5 * w], np.float32)
    return FaceRecord(rec.image_path, rec.landmarks, off, rec.subsets)


def test_landmark_box_is_tight():
    pts = np.array([[3.0, 9.0], [7.5, 2.0], [np.nan, 100.0], [5.0, 4.0]])
    np.testing.assert_array_equal(landmark_box(pts), [3.0, 2.0, 7.5, 9.0])
    with pytest.raises(ValueError, match="finite landmark"):
        landmark_box(np.full((3, 2), np.nan))


@pytest.mark.parametrize("train", [False, True])
def test_landmarks_crop_centres_on_the_landmarks_whatever_the_box(record, train):
    aug = dict(rotation_prob=0.0, flip_prob=0.0, scale_jitter=0.0, shift_jitter=0.0)
    kw = dict(input_size=S, train=train, aug=aug, crop_scale=1.2)
    box_pts = FaceDataset([record], LAYOUT, **kw)[0]["landmarks"].numpy()
    lm_pts = FaceDataset([record], LAYOUT, crop_from="landmarks", **kw)[0]["landmarks"].numpy()
    # The off box crops the face away; the landmarks crop holds every landmark, centred, its
    # long side spanning S / 1.2.
    assert not ((box_pts >= 0) & (box_pts < S)).all()
    assert ((lm_pts >= 0) & (lm_pts < S)).all()
    lo, hi = lm_pts.min(0), lm_pts.max(0)
    np.testing.assert_allclose((lo + hi) / 2, [S / 2, S / 2], atol=1e-3)
    np.testing.assert_allclose((hi - lo).max(), S / 1.2, rtol=1e-4)
    # ... which is the crop of the landmarks' own box.
    want = apply_affine(record.landmarks, crop_matrix(landmark_box(record.landmarks), S, 1.2))
    np.testing.assert_allclose(lm_pts, want, atol=1e-3)


def test_datamodule_passes_crop_from(record, tmp_path):
    dm = FaceDataModule(
        dataset="synthetic", root=tmp_path, input_size=S, crop_from="landmarks", crop_scale=1.2, num_workers=0
    )
    ds = dm._dataset([record], train=False)
    assert ds.crop_from == "landmarks"
    assert FaceDataModule(dataset="synthetic", root=tmp_path).crop_from == "box"  # today's default
    with pytest.raises(ValueError, match="crop_from"):
        FaceDataModule(dataset="synthetic", root=tmp_path, crop_from="retinaface")
