"""Drawings that read at any face size: markers and lines scale with the face; contour lines; contact sheets."""

from __future__ import annotations

import numpy as np

from hih.data.layouts import load_mean_shape
from hih.drawing import _LINE, _POINT, CONTOURS, contact_sheet, draw_faces, thumbnail


def _count(image: np.ndarray, colour) -> int:
    return int((np.abs(image.astype(int) - np.asarray(colour)).sum(axis=2) < 30).sum())


def _face(side: float) -> dict:
    """WFLW's mean shape scaled into a face box of ``side`` pixels at (10, 10)."""
    pts = load_mean_shape("wflw98.txt") * side + 10
    return {"landmarks": pts, "box": np.array([10, 10, 10 + side, 10 + side]), "score": 0.9}


def test_markers_grow_with_the_face():
    canvas = np.zeros((1100, 1100, 3), np.uint8)
    small = draw_faces(canvas, [_face(100)], lines=False, boxes=False)
    large = draw_faces(canvas, [_face(1000)], lines=False, boxes=False)
    per_point_small, per_point_large = _count(small, _POINT) / 98, _count(large, _POINT) / 98
    assert per_point_large > 20 * per_point_small  # radius ~10x: area ~100x (overlaps aside)
    assert canvas.max() == 0  # the input is not drawn on


def test_contour_lines_per_layout():
    canvas = np.zeros((300, 300, 3), np.uint8)
    with_lines = draw_faces(canvas, [_face(250)], layout="wflw", lines=True)
    without = draw_faces(canvas, [_face(250)], layout="wflw", lines=False)
    drawn_by_lines = int((with_lines != without).any(axis=2).sum())
    assert drawn_by_lines > 300 and _count(with_lines, _LINE) > 0 and _count(without, _LINE) == 0
    # A layout without contours (or a landmark count that does not match) draws points only.
    assert _count(draw_faces(canvas, [_face(250)], layout="cofw", lines=True), _LINE) == 0
    assert _count(draw_faces(canvas, [_face(250)], layout="300w", lines=True), _LINE) == 0
    for n, polylines in CONTOURS.values():
        flat = [i for idx, _ in polylines for i in idx]
        assert len(flat) == len(set(flat)) and max(flat) < n  # each landmark on at most one contour


def test_contact_sheet(tmp_path):
    import cv2

    thumbs = [(f"img{i}.jpg", thumbnail(np.full((50 + 10 * i, 80, 3), 40 * i, np.uint8), 64)) for i in range(5)]
    path = contact_sheet(thumbs, tmp_path / "sheet.jpg", columns=3)
    sheet = cv2.imread(str(path))
    assert sheet.shape[1] == 3 * 64 and sheet.shape[0] > 2 * 64
