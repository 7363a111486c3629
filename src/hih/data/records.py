"""One annotated face, as every reader returns it, and the image loader that goes with it.

Coordinates follow the suite's convention (pixel ``i`` covers ``[i, i + 1)``, centre at
``i + 0.5``). Annotation files are taken as-is: readers do not shift the coordinates a
dataset ships (WFLW, 300W and COFW annotations are used with their published values; any
0- vs 1-based offset a dataset may carry is below the annotation noise and is left to the
data, as the reference implementations do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class FaceRecord:
    """One face of a dataset split.

    image_path: the image file (absolute, or as resolved by the reader).
    landmarks: (N, 2) float32, (x, y) in original-image pixels.
    bbox: (4,) float32 face box x0, y0, x1, y1 in original-image pixels.
    subsets: (K,) bool, one flag per ``layout.subset_names`` (K = 0 for COFW).
    occluded: (N,) bool occlusion flags (COFW), else None.
    """

    image_path: Path
    landmarks: np.ndarray
    bbox: np.ndarray
    subsets: np.ndarray
    occluded: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32)
        self.bbox = np.asarray(self.bbox, dtype=np.float32).reshape(-1)
        self.subsets = np.asarray(self.subsets, dtype=bool).reshape(-1)
        if self.landmarks.ndim != 2 or self.landmarks.shape[1] != 2:
            raise ValueError(f"{self.image_path}: landmarks must be (N, 2), got {self.landmarks.shape}")
        if self.bbox.shape != (4,):
            raise ValueError(f"{self.image_path}: bbox must be 4 values x0 y0 x1 y1, got {self.bbox.shape}")
        if self.occluded is not None:
            self.occluded = np.asarray(self.occluded, dtype=bool).reshape(-1)
            if self.occluded.shape[0] != self.landmarks.shape[0]:
                raise ValueError(
                    f"{self.image_path}: occluded must have one flag per landmark "
                    f"({self.landmarks.shape[0]}), got {self.occluded.shape[0]}"
                )

    def __repr__(self) -> str:
        occ = "" if self.occluded is None else f", occluded={int(self.occluded.sum())}/{self.occluded.size}"
        return (
            f"FaceRecord({str(self.image_path)!r}, landmarks={self.num_landmarks}x2, "
            f"bbox={np.round(self.bbox, 1).tolist()}, subsets={self.subsets.astype(int).tolist()}{occ})"
        )

    @property
    def num_landmarks(self) -> int:
        return int(self.landmarks.shape[0])


class ImageLoadError(OSError):
    """An image file is missing or its content cannot be decoded."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (grey images are expanded, alpha is dropped).

    Raises ImageLoadError (an OSError) naming the file when it is missing or undecodable.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"image file not found: {path}")
    # imdecode on the bytes handles non-ASCII paths, which cv2.imread does not on every platform.
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ImageLoadError(f"cannot decode image {path} ({data.size} bytes): expected a PNG/JPEG/BMP/... image file")
    if img.dtype != np.uint8:
        # 16-bit PNG/TIFF: scale to 8 bits rather than clip
        img = (
            (img.astype(np.float32) * (255.0 / np.iinfo(img.dtype).max)).round().astype(np.uint8)
            if np.issubdtype(img.dtype, np.integer)
            else np.clip(img, 0, 255).astype(np.uint8)
        )
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise ImageLoadError(f"image {path} has {img.shape[2]} channels; expected 1, 3 or 4")


def save_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write an (H, W, 3) uint8 RGB or (H, W) grey image; the format follows the suffix."""
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"save_image {path}: expected uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ext = path.suffix.lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    buf.tofile(str(path))
