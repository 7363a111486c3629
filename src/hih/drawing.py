"""Landmarks drawn on photos and video frames, readable at any face size, and contact sheets.

Marker radius and line width follow each face's box (a 40 px face and a 2000 px face both read);
with ``lines=True`` the layout's contours (jaw, brows, nose, eyes, lips) are joined, for the
layouts listed in :data:`CONTOURS`. Images are RGB uint8 in, RGB uint8 out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["CONTOURS", "contact_sheet", "draw_faces", "draw_landmarks", "write_image"]


def _run(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b + 1))


#: Layout name -> (polyline indices, closed) for each contour; checked against the landmark count.
CONTOURS: dict[str, tuple[int, tuple[tuple[tuple[int, ...], bool], ...]]] = {
    # WFLW, 98 points: jaw 0-32, brows 33-41 / 42-50, nose 51-59, eyes 60-67 / 68-75, lips 76-95.
    "wflw": (
        98,
        (
            (_run(0, 32), False),
            (_run(33, 41), True),
            (_run(42, 50), True),
            (_run(51, 54), False),
            (_run(55, 59), False),
            (_run(60, 67), True),
            (_run(68, 75), True),
            (_run(76, 87), True),
            (_run(88, 95), True),
        ),
    ),
    # 300W (iBUG 68): jaw 0-16, brows 17-21 / 22-26, nose 27-35, eyes 36-41 / 42-47, lips 48-67.
    "300w": (
        68,
        (
            (_run(0, 16), False),
            (_run(17, 21), False),
            (_run(22, 26), False),
            (_run(27, 30), False),
            (_run(31, 35), False),
            (_run(36, 41), True),
            (_run(42, 47), True),
            (_run(48, 59), True),
            (_run(60, 67), True),
        ),
    ),
}

_POINT = (255, 40, 40)
_LINE = (255, 210, 0)
_BOX = (40, 220, 40)


def _face_size(landmarks: np.ndarray, box: np.ndarray | None) -> float:
    if box is not None:
        return float(max(box[2] - box[0], box[3] - box[1]))
    pts = landmarks[np.isfinite(landmarks).all(axis=1)]
    return float(np.ptp(pts, axis=0).max()) if len(pts) else 100.0


def _px(x: float, y: float) -> tuple[int, int]:
    # Continuous coordinates (pixel i covers [i, i + 1)) to the pixel index cv2 draws at.
    return round(x - 0.5), round(y - 0.5)


def draw_faces(
    image: np.ndarray,
    faces: Sequence[dict],
    layout: str | None = None,
    lines: bool = True,
    boxes: bool = True,
) -> np.ndarray:
    """A copy of ``image`` (RGB) with every face drawn. Each face: ``{"landmarks": (N, 2), "box":
    x0 y0 x1 y1 or None, "score": float or None}``. ``layout``: the landmark layout's name, for the
    contour lines."""
    canvas = np.ascontiguousarray(image.copy())
    for face in faces:
        pts = np.asarray(face["landmarks"], np.float64).reshape(-1, 2)
        box = None if face.get("box") is None else np.asarray(face["box"], np.float64)
        size = _face_size(pts, box)
        width = max(1, round(size / 150))
        radius = max(1, round(size / 110))
        if boxes and box is not None:
            cv2.rectangle(canvas, _px(box[0], box[1]), _px(box[2], box[3]), _BOX, width, cv2.LINE_AA)
            if face.get("score") is not None:
                scale = max(0.35, size / 400)
                cv2.putText(
                    canvas,
                    f"{face['score']:.2f}",
                    _px(box[0], box[1] - 3 * width),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    scale,
                    _BOX,
                    max(1, width),
                    cv2.LINE_AA,
                )
        if lines and layout in CONTOURS and CONTOURS[layout][0] == len(pts):
            for idx, closed in CONTOURS[layout][1]:
                poly = np.round(pts[list(idx)] - 0.5).astype(np.int32)
                cv2.polylines(canvas, [poly], closed, _LINE, max(1, width // 2 + (width > 2)), cv2.LINE_AA)
        for x, y in pts:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(canvas, _px(x, y), radius, _POINT, -1, cv2.LINE_AA)
    return canvas


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image (format from the suffix), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path}")
    buf.tofile(str(path))
    return path


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, path: str | Path, box: np.ndarray | None = None) -> Path:
    """Write ``image`` (RGB) with one face's landmarks (and box) to ``path``."""
    return write_image(path, draw_faces(image, [{"landmarks": landmarks, "box": box}], lines=False))


def thumbnail(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` scaled to fit a ``side`` x ``side`` square (aspect kept), on black."""
    h, w = image.shape[:2]
    s = side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    cell = np.zeros((side, side, 3), np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    cell[y : y + small.shape[0], x : x + small.shape[1]] = small
    return cell


def contact_sheet(thumbs: Sequence[tuple[str, np.ndarray]], path: str | Path, columns: int = 6) -> Path:
    """One image of labelled, equal-sized thumbnails (``(label, square RGB)``), row by row."""
    if not thumbs:
        raise ValueError("contact_sheet needs at least one thumbnail")
    side = thumbs[0][1].shape[0]
    label_h = max(14, side // 12)
    cols = min(columns, len(thumbs))
    rows = -(-len(thumbs) // cols)
    sheet = np.full((rows * (side + label_h), cols * side, 3), 255, np.uint8)
    for i, (label, thumb) in enumerate(thumbs):
        r, c = divmod(i, cols)
        y, x = r * (side + label_h), c * side
        sheet[y : y + side, x : x + side] = thumb
        cv2.putText(
            sheet,
            label[: max(4, side // 8)],
            (x + 3, y + side + label_h - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            label_h / 30,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return write_image(path, sheet)
