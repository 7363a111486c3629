"""Dataset readers on tiny files written in each dataset's exact format."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hih.data.datasets import get_layout, read_dataset
from hih.data.readers import read_300w, read_cofw, read_pts, read_wflw
from hih.data.records import FaceRecord, ImageLoadError, load_image, save_image

RNG = np.random.default_rng(0)


def _image(path: Path, h: int = 12, w: int = 16, grey: bool = False) -> np.ndarray:
    img = RNG.integers(0, 256, (h, w) if grey else (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, img)
    return img


# ----------------------------------------------------------------------------- WFLW


def _wflw_line(lm: np.ndarray, box, flags, rel: str) -> str:
    return " ".join([*(f"{v:.6f}" for v in lm.reshape(-1)), *(str(b) for b in box), *(str(f) for f in flags), rel])


def _write_wflw(root: Path, n: int = 4, official: bool = True, images_under_root: bool = False):
    img_dir = root if images_under_root else root / "WFLW_images"
    list_dir = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" if official else root
    list_dir.mkdir(parents=True, exist_ok=True)
    lms, flags = [], []
    lines = []
    for i in range(n):
        rel = f"{i}--Event/{i}_face.png"
        _image(img_dir / rel)
        lm = RNG.uniform(0, 100, (98, 2))
        f = [int(i % 2 == 0), 0, 1, int(i == 1), 0, int(i < 3)]
        lines.append(_wflw_line(lm, [3, 4, 90, 95], f, rel))
        lms.append(lm)
        flags.append(f)
    for split in ("train", "test"):
        (list_dir / f"list_98pt_rect_attr_{split}.txt").write_text("\n".join(lines) + "\n")
    return np.array(lms), np.array(flags, dtype=bool), list_dir / "list_98pt_rect_attr_train.txt"


@pytest.mark.parametrize("official,images_under_root", [(True, False), (False, True)])
def test_read_wflw(tmp_path, official, images_under_root):
    lms, flags, _ = _write_wflw(tmp_path, official=official, images_under_root=images_under_root)
    recs = read_wflw(tmp_path, "train")
    assert len(recs) == 4 and all(isinstance(r, FaceRecord) for r in recs)
    np.testing.assert_allclose(np.stack([r.landmarks for r in recs]), lms, atol=1e-5)
    assert recs[0].landmarks.dtype == np.float32 and recs[0].bbox.dtype == np.float32
    np.testing.assert_array_equal(recs[2].bbox, [3, 4, 90, 95])
    subsets = np.stack([r.subsets for r in recs])
    np.testing.assert_array_equal(subsets, flags)
    # subset counts per attribute (pose, expression, illumination, makeup, occlusion, blur)
    np.testing.assert_array_equal(subsets.sum(0), [2, 0, 4, 1, 0, 3])
    assert subsets.shape[1] == len(get_layout("wflw").subset_names)
    assert all(r.image_path.is_file() and r.occluded is None for r in recs)
    assert len(read_dataset("WFLW", tmp_path, "test")) == 4


def test_wflw_missing_root_shows_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        read_wflw(tmp_path / "nope", "train")
    assert str(tmp_path / "nope") in str(e.value) and "list_98pt_rect_attr_train.txt" in str(e.value)
    with pytest.raises(FileNotFoundError, match="annotation list"):
        read_wflw(tmp_path, "train")
    with pytest.raises(ValueError, match="train, test"):
        read_wflw(tmp_path, "val")


def test_wflw_malformed_line_names_file_and_line(tmp_path):
    _, _, list_file = _write_wflw(tmp_path)
    lines = list_file.read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[2:])  # drop one landmark: 205 fields
    list_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{list_file}:2: expected 207 fields") + ".*got 205"):
        read_wflw(tmp_path, "train")
    tokens = lines[0].split()
    tokens[5] = "abc"
    lines[1] = " ".join(tokens)
    list_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{list_file}:2:") + ".*'abc'"):
        read_wflw(tmp_path, "train")
    tokens = lines[0].split()
    tokens[200] = "2"  # attribute flag out of range
    lines[1] = " ".join(tokens)
    list_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{list_file}:2: expected attribute flags 0 or 1")):
        read_wflw(tmp_path, "train")


def test_wflw_missing_image_names_line(tmp_path):
    _, _, list_file = _write_wflw(tmp_path)
    (tmp_path / "WFLW_images" / "3--Event" / "3_face.png").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{list_file}:4: image '3--Event/3_face.png'")):
        read_wflw(tmp_path, "train")
    assert len(read_wflw(tmp_path, "train", check_images=False)) == 4


# ----------------------------------------------------------------------------- 300W


def _pts_text(lm: np.ndarray, n_points: int | None = None) -> str:
    n = len(lm) if n_points is None else n_points
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in lm)
    return f"version: 1\nn_points:  {n}\n{{\n{body}\n}}\n"


def _write_300w(root: Path) -> dict:
    counts = {"lfpw/trainset": 1, "helen/trainset": 1, "afw": 1, "lfpw/testset": 2, "helen/testset": 1, "ibug": 1}
    lms = {}
    for folder, n in counts.items():
        for i in range(n):
            stem = root / folder / f"img_{i}"
            _image(stem.with_suffix(".png" if folder.startswith("lfpw") else ".jpg"))
            lm = RNG.uniform(5, 60, (68, 2))
            stem.with_suffix(".pts").write_text(_pts_text(lm))
            lms[f"{folder}/img_{i}"] = lm
    return lms


def test_read_300w_splits_and_subsets(tmp_path):
    lms = _write_300w(tmp_path)
    train = read_300w(tmp_path, "train")
    assert len(train) == 3 and not any(r.subsets.any() for r in train)
    test = read_300w(tmp_path, "test")
    assert len(test) == 4
    subsets = np.stack([r.subsets for r in test])
    np.testing.assert_array_equal(subsets.sum(0), [3, 1])  # common, challenge
    assert not (subsets[:, 0] & subsets[:, 1]).any()
    assert len(read_300w(tmp_path, "common")) == 3 and len(read_300w(tmp_path, "challenge")) == 1
    assert len(read_dataset("300w", tmp_path, "full")) == 4
    rec = next(r for r in test if r.image_path.parent.name == "ibug")
    lm = lms["ibug/img_0"]
    np.testing.assert_allclose(rec.landmarks, lm, atol=1e-3)
    # no boxes in 300W: the box is the landmarks' extent
    np.testing.assert_allclose(rec.bbox, [*lm.min(0), *lm.max(0)], atol=1e-3)
    assert rec.image_path.suffix == ".jpg" and rec.subsets.tolist() == [False, True]


def test_300w_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="helen/trainset"):
        read_300w(tmp_path / "missing", "train")
    _write_300w(tmp_path)
    pts = tmp_path / "afw" / "img_0.pts"
    lm = RNG.uniform(0, 10, (68, 2))
    pts.write_text(_pts_text(lm[:67], n_points=67))
    with pytest.raises(ValueError, match=re.escape(str(pts)) + ".*expected 68 landmarks.*n_points: 67"):
        read_300w(tmp_path, "train")
    text = _pts_text(lm).splitlines()
    text[5] = "12.5 x"
    pts.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{pts}:6:") + ".*'x'"):
        read_300w(tmp_path, "train")
    text[5] = "12.5"
    pts.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{pts}:6: expected 2 fields")):
        read_pts(pts)
    pts.write_text(_pts_text(lm))
    (tmp_path / "afw" / "img_0.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="no image for annotation"):
        read_300w(tmp_path, "train")


# ----------------------------------------------------------------------------- COFW


def _cofw_data(n: int = 3):
    images = [RNG.integers(0, 256, (10 + i, 14, 3), dtype=np.uint8) for i in range(n)]
    images[1] = images[1][:, :, 0].copy()  # COFW has grey images too
    lm = RNG.uniform(1, 9, (n, 29, 2))
    occ = (RNG.random((n, 29)) < 0.3).astype(np.float64)
    phis = np.concatenate([lm[:, :, 0], lm[:, :, 1], occ], axis=1)
    boxes = np.array([[1.5, 2.0, 8.0, 7.5]] * n) + np.arange(n)[:, None]
    return images, phis, boxes, lm, occ


def _write_mat5(path: Path, split: str, images, phis, boxes):
    from scipy.io import savemat

    names = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}[split]
    cell = np.empty((len(images), 1), dtype=object)
    for i, img in enumerate(images):
        cell[i, 0] = img
    savemat(path, {names[0]: cell, names[1]: phis, names[2]: boxes})


def _write_mat73(path: Path, split: str, images, phis, boxes):
    """MATLAB -v7.3 layout: HDF5 with a 512-byte MATLAB header, column-major arrays, cells as references."""
    import h5py

    names = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}[split]
    with h5py.File(path, "w", userblock_size=512) as f:
        refs_group = f.create_group("#refs#")
        refs = []
        for i, img in enumerate(images):
            d = refs_group.create_dataset(f"r{i}", data=img.T)
            d.attrs["MATLAB_class"] = np.bytes_("uint8")
            refs.append(d.ref)
        cell = f.create_dataset(names[0], data=np.array(refs, dtype=h5py.ref_dtype).reshape(1, -1))
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
        for name, arr in ((names[1], phis), (names[2], boxes)):
            f.create_dataset(name, data=arr.T).attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM")


@pytest.mark.parametrize("writer", [_write_mat5, _write_mat73], ids=["v5", "v7.3"])
def test_read_cofw(tmp_path, writer):
    images, phis, boxes, lm, occ = _cofw_data()
    writer(tmp_path / "COFW_train_color.mat", "train", images, phis, boxes)
    writer(tmp_path / "COFW_test_color.mat", "test", images[:2], phis[:2], boxes[:2])
    recs = read_cofw(tmp_path, "train")
    assert len(recs) == 3 and len(read_dataset("cofw", tmp_path, "test")) == 2
    for i, r in enumerate(recs):
        np.testing.assert_allclose(r.landmarks, lm[i], atol=1e-5)
        np.testing.assert_array_equal(r.occluded, occ[i].astype(bool))
        np.testing.assert_allclose(r.bbox, [*boxes[i, :2], *(boxes[i, :2] + boxes[i, 2:])])  # x, y, w, h -> x0 y0 x1 y1
        assert r.subsets.shape == (0,)
        assert r.image_path == tmp_path / "cofw_images" / "train" / f"{i:05d}.png"
        img = load_image(r.image_path)
        expected = images[i] if images[i].ndim == 3 else np.repeat(images[i][:, :, None], 3, axis=2)
        np.testing.assert_array_equal(img, expected)
    # a second read reuses the extracted images
    mtime = recs[0].image_path.stat().st_mtime_ns
    assert len(read_cofw(tmp_path, "train")) == 3
    assert recs[0].image_path.stat().st_mtime_ns == mtime


def test_cofw_never_overwrites_a_different_image(tmp_path):
    images, phis, boxes, *_ = _cofw_data()
    _write_mat5(tmp_path / "COFW_train_color.mat", "train", images, phis, boxes)
    stranger = tmp_path / "cofw_images" / "train" / "00001.png"
    _image(stranger, 5, 5)
    before = stranger.read_bytes()
    with pytest.raises(FileExistsError, match=re.escape(str(stranger))):
        read_cofw(tmp_path, "train")
    assert stranger.read_bytes() == before


def test_cofw_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="COFW_train_color.mat"):
        read_cofw(tmp_path / "nothing", "train")
    with pytest.raises(FileNotFoundError, match="COFW_test_color.mat"):
        read_cofw(tmp_path, "test")
    images, phis, boxes, *_ = _cofw_data()
    _write_mat5(tmp_path / "COFW_train_color.mat", "train", images, phis[:, :58], boxes)
    with pytest.raises(ValueError, match=r"phisTr must be n x 87 .*got 3x58"):
        read_cofw(tmp_path, "train")
    (tmp_path / "COFW_train_color.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="COFW_train_color.mat"):
        read_cofw(tmp_path, "train")


# ----------------------------------------------------------------------------- misc


def test_read_dataset_unknown_and_synthetic_missing(tmp_path):
    with pytest.raises(ValueError, match="300w, cofw, .*synthetic, synthetic_photos, wflw"):
        read_dataset("aflw", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="written on first use"):
        read_dataset("synthetic", tmp_path / "none", "train")


def test_load_image_errors_and_grey(tmp_path):
    with pytest.raises(ImageLoadError, match=re.escape(str(tmp_path / "missing.jpg"))):
        load_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ImageLoadError, match=re.escape(str(bad))):
        load_image(bad)
    grey = _image(tmp_path / "grey.png", grey=True)
    img = load_image(tmp_path / "grey.png")
    assert img.shape == (12, 16, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[:, :, 1], grey)
    rgb = _image(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png"), rgb)  # RGB order preserved


def test_face_record_validates_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"landmarks must be \(N, 2\)"):
        FaceRecord(tmp_path / "x.png", np.zeros((5, 3)), np.zeros(4), np.zeros(0))
    with pytest.raises(ValueError, match="one flag per landmark"):
        FaceRecord(tmp_path / "x.png", np.zeros((5, 2)), np.zeros(4), np.zeros(0), occluded=np.zeros(4))


def test_cofw_missing_variable(tmp_path):
    images, phis, boxes, *_ = _cofw_data()
    _write_mat73(tmp_path / "COFW_test_color.mat", "train", images, phis, boxes)  # train names in the test file
    with pytest.raises(ValueError, match=r"expected a variable 'IsT'.*found \['IsTr', 'bboxesTr', 'phisTr'\]"):
        read_cofw(tmp_path, "test")
