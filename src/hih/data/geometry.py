"""3x3 affine helpers in the suite's coordinate convention.

Convention (see ``hih/__init__.py`` and ``docs/contracts.md``): continuous pixel
coordinates, pixel ``i`` covers ``[i, i + 1)`` and its centre is at ``i + 0.5``. A matrix
``M`` (3, 3) maps a point ``(x, y, 1)`` of the source image to the destination image.

Every geometric augmentation of a sample (crop, scale, rotation, translation, flip) is
composed into one matrix by :func:`crop_matrix`; the image is resampled once by
:func:`warp_image` and the landmarks are moved exactly by :func:`apply_affine` with the same
matrix, so image and labels cannot drift apart.

OpenCV puts pixel centres at integers, so :func:`warp_image` conjugates by a half-pixel
shift: ``M_cv = T(-0.5) @ M @ T(+0.5)`` (equivalently ``M = T(+0.5) @ M_cv @ T(-0.5)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "apply_affine",
    "crop_matrix",
    "crop_box",
    "flip_matrix",
    "landmark_box",
    "rotation_matrix",
    "scale_matrix",
    "to_opencv",
    "translation_matrix",
    "warp_image",
]

_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}


def translation_matrix(tx: float, ty: float) -> np.ndarray:
    """(3, 3) float64 matrix of the translation ``p -> p + (tx, ty)``."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """(3, 3) float64 matrix scaling about the origin."""
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def rotation_matrix(degrees: float) -> np.ndarray:
    """(3, 3) float64 rotation about the origin by ``degrees``.

    Positive angles turn the content counter-clockwise *as displayed* (y points down), the
    same sense as ``cv2.getRotationMatrix2D``.
    """
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    # y axis points down: counter-clockwise on screen is the matrix [[c, s], [-s, c]].
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def flip_matrix(width: float) -> np.ndarray:
    """(3, 3) horizontal mirror of an image ``width`` pixels wide: ``x -> width - x``.

    With pixel i covering [i, i + 1), pixel i lands on pixel ``width - 1 - i`` exactly.
    """
    return np.array([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def crop_matrix(
    bbox: Sequence[float] | np.ndarray,
    input_size: int,
    scale: float = 1.25,
    rotation: float = 0.0,
    shift: Sequence[float] = (0.0, 0.0),
    flip: bool = False,
) -> np.ndarray:
    """The (3, 3) float64 matrix mapping original-image coordinates to the square input.

    bbox: (4,) face box ``x0, y0, x1, y1`` in original-image pixels (continuous coordinates;
        the box covers ``[x0, x1] x [y0, y1]``).
    input_size: S, the side of the square network input.
    scale: the crop's side is ``scale * max(box width, box height)``, centred on the box
        centre (so 1.25 keeps a 12.5 % margin on the long side). Scale jitter multiplies it.
    rotation: degrees, counter-clockwise on screen, about the crop centre.
    shift: (dx, dy) translation of the content in the input, as a fraction of S
        (``(0.1, 0)`` moves the face right by 0.1 * S pixels).
    flip: mirror horizontally about the input's vertical centre line (``x -> S - x``),
        applied last. Landmark re-indexing with the layout's ``flip_perm`` is the caller's
        job (see :meth:`hih.data.transforms.TrainTransform.__call__`).

    Composition (right to left): move the box centre to the origin, scale to S, rotate,
    mirror, move to the input centre plus the shift.
    """
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f"bbox must be 4 values x0, y0, x1, y1; got shape {box.shape}")
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * float(scale)
    if not np.isfinite(side) or side <= 0:
        raise ValueError(f"bbox {box.tolist()} with scale {scale} gives an empty crop; expected x1 > x0 or y1 > y0")
    if input_size <= 0:
        raise ValueError(f"input_size must be positive, got {input_size}")
    s = float(input_size)
    dx, dy = (float(v) for v in shift)
    m = scale_matrix(s / side) @ translation_matrix(-(x0 + x1) / 2.0, -(y0 + y1) / 2.0)
    m = rotation_matrix(rotation) @ m
    if flip:
        m = scale_matrix(-1.0, 1.0) @ m  # mirror about the crop centre, which is at the origin here
    return translation_matrix(s / 2.0 + dx * s, s / 2.0 + dy * s) @ m


#: Where the crop's box comes from (``crop_from`` of the datasets): the record's face box, or
#: the tight box of its ground-truth landmarks (the authors' oracle crop).
CROP_FROM = ("box", "landmarks")


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(4,) float64 ``x0, y0, x1, y1``: the tight box of the finite (N, 2) landmarks."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise ValueError("crop_from='landmarks' needs at least one finite landmark; got none")
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def crop_box(crop_from: str, bbox: Sequence[float] | np.ndarray, landmarks: np.ndarray) -> np.ndarray | Sequence[float]:
    """The box :func:`crop_matrix` crops around: ``bbox`` ("box") or :func:`landmark_box` ("landmarks")."""
    if crop_from == "box":
        return bbox
    if crop_from == "landmarks":
        return landmark_box(landmarks)
    raise ValueError(f"crop_from must be one of {CROP_FROM}, got {crop_from!r}")


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a (3, 3) or (2, 3) affine matrix; float32 out.

    Computed in float64 so the result is exact to float32 precision.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {pts.shape}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape not in ((3, 3), (2, 3)):
        raise ValueError(f"affine matrix must be (3, 3) or (2, 3), got {m.shape}")
    out = pts @ m[:2, :2].T + m[:2, 2]
    return out.astype(np.float32)


def to_opencv(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) float64 matrix for cv2.warpAffine: ``T(-0.5) @ M @ T(+0.5)``."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (2, 3):
        m = np.vstack([m, [0.0, 0.0, 1.0]])
    if m.shape != (3, 3):
        raise ValueError(f"affine matrix must be (3, 3) or (2, 3), got {m.shape}")
    return (translation_matrix(-0.5, -0.5) @ m @ translation_matrix(0.5, 0.5))[:2]


def warp_image(
    image: np.ndarray,
    matrix: np.ndarray,
    size: int | tuple[int, int],
    border: str = "constant",
    fill: float | Sequence[float] = 0,
) -> np.ndarray:
    """Resample ``image`` (H, W[, C]) into the destination frame of ``matrix`` with bilinear interpolation.

    size: S (square) or (width, height) of the output.
    border: "constant" fills the outside of the source with ``fill`` (default black, as
        the face crops of the reference implementations); "replicate" repeats the edge
        pixels, which avoids black corners after rotation.
    Returns an array of the image's dtype, (S, S[, C]) or (height, width[, C]).

    Strong downscaling (crop side much larger than S) aliases as bilinear warping always
    does; face crops of the supported datasets are at most a few times S.
    """
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {sorted(_BORDERS)}, got {border!r}")
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"image must be a non-empty (H, W) or (H, W, C) array, got shape {img.shape}")
    w, h = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if isinstance(fill, (int, float)):
        fill_value: float | tuple[float, ...] = float(fill)
    else:
        fill_value = tuple(float(v) for v in fill)
    return cv2.warpAffine(
        img,
        to_opencv(matrix),
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=_BORDERS[border],
        borderValue=fill_value,
    )
