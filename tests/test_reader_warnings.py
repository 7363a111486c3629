"""Readers warn (once per annotation file, naming file, line and distance) about landmarks far outside
their image, and still read them; image sizes come from the file headers."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hih.data.readers import read_300w, read_wflw
from hih.data.readers._common import beyond_image, image_size
from hih.data.records import save_image

W, H = 40, 30  # image size of every face below


def _faces_wflw(root, offsets):
    """A WFLW tree with one face per offset: landmarks inside the image, shifted right by the offset."""
    lines, beyond = [], []
    rng = np.random.default_rng(0)
    for i, dx in enumerate(offsets):
        rel = f"0--x/{i}.jpg"
        (root / "WFLW_images" / "0--x").mkdir(parents=True, exist_ok=True)
        save_image(root / "WFLW_images" / rel, np.zeros((H, W, 3), np.uint8))
        lm = rng.uniform(2, 28, (98, 2)) + [dx, 0]
        lines.append(" ".join([*(f"{v:.3f}" for v in lm.reshape(-1)), "1 1 30 28", "0 0 0 0 0 0", rel]))
        beyond.append(lm[:, 0].max() - W)
    list_dir = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    list_dir.mkdir(parents=True)
    (list_dir / "list_98pt_rect_attr_test.txt").write_text("\n".join(lines) + "\n")
    return list_dir / "list_98pt_rect_attr_test.txt", beyond


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("hih.data")]


def test_wflw_warns_once_naming_file_line_and_distance(tmp_path, caplog):
    # Line 2 is slightly outside (WFLW has such faces): no warning; lines 3 and 4 are thousands of pixels out.
    list_file, beyond = _faces_wflw(tmp_path, [0, 20, 3000, 5000])
    with caplog.at_level(logging.WARNING):
        records = read_wflw(tmp_path, "test")
    assert len(records) == 4  # read anyway
    (message,) = _warnings(caplog)
    assert message.startswith(f"{list_file}: 2 face(s) with landmarks far outside the image")
    assert f"line 3: up to {beyond[2]:.0f} px outside its {W}x{H} image" in message
    assert f"line 4: up to {beyond[3]:.0f} px" in message
    assert "line 2" not in message


def test_clean_files_do_not_warn(tmp_path, caplog):
    _faces_wflw(tmp_path, [0, 5])
    with caplog.at_level(logging.WARNING):
        read_wflw(tmp_path, "test")
    assert _warnings(caplog) == []


def test_300w_warns_per_folder_naming_the_pts_file(tmp_path, caplog):
    for folder in ("lfpw/testset", "helen/testset", "ibug"):
        for i, dx in enumerate([0, 4000] if folder == "ibug" else [0]):
            stem = tmp_path / folder / f"img_{i}"
            stem.parent.mkdir(parents=True, exist_ok=True)
            save_image(stem.with_suffix(".png"), np.zeros((H, W, 3), np.uint8))
            lm = np.random.default_rng(i).uniform(2, 28, (68, 2)) + [dx, 0]
            far = lm[:, 0].max() - W
            body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in lm)
            stem.with_suffix(".pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    with caplog.at_level(logging.WARNING):
        assert len(read_300w(tmp_path, "test")) == 4
    (message,) = _warnings(caplog)
    assert message.startswith(f"{tmp_path / 'ibug'}: 1 face(s)") and f"img_1.pts: up to {far:.0f} px" in message


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_image_size_from_header(tmp_path, ext):
    path = tmp_path / f"a{ext}"
    save_image(path, np.zeros((37, 53, 3), np.uint8))
    assert image_size(path) == (53, 37)
    assert image_size(tmp_path / "missing.jpg") is None
    (tmp_path / "x.txt").write_text("not an image")
    assert image_size(tmp_path / "x.txt") is None


def test_beyond_image():
    assert beyond_image(np.array([[1.0, 2.0], [39.0, 29.0]]), W, H) == 0
    assert beyond_image(np.array([[-7.0, 2.0], [39.0, 31.0]]), W, H) == 7
