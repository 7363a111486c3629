"""Helpers shared by the dataset readers: clear errors for a missing root or a bad line, and a warning
for landmarks far outside their image."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger("hih.data.readers")

# Landmarks may lie a little outside the image (WFLW has some on cropped faces); beyond this fraction
# of the image's longer side the annotation is corrupt or mis-scaled.
OUTSIDE_MARGIN = 0.25


def require_root(root: str | Path, dataset: str, tree: str) -> Path:
    """Return ``root`` as a Path, or raise FileNotFoundError naming it and showing the expected layout."""
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise FileNotFoundError(f"{dataset} root {root} {what}; expected a folder laid out as:\n{tree}")
    return root


def missing(path: Path, dataset: str, tree: str, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{dataset}: {what} not found: {path}\nexpected a folder laid out as:\n{tree}")


def line_error(file: Path, line_no: int, message: str) -> ValueError:
    """ValueError for a malformed annotation: ``<file>:<line>: <message>`` (line numbers are 1-based)."""
    return ValueError(f"{file}:{line_no}: {message}")


def parse_floats(tokens: list[str], file: Path, line_no: int, what: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise line_error(file, line_no, f"expected numbers for {what}, got {bad!r}") from None


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def check_split(split: str, choices: tuple[str, ...], dataset: str) -> str:
    key = str(split).strip().lower()
    if key not in choices:
        raise ValueError(f"{dataset}: unknown split {split!r}; expected one of {', '.join(choices)}")
    return key


def warn_far_outside(
    source: str | Path, faces: Iterable[tuple[str | Path, np.ndarray, Path]], margin: float = OUTSIDE_MARGIN
) -> int:
    """Warn once for ``source`` (an annotation file or folder) about faces whose landmarks lie more
    than ``margin`` x the image's longer side outside the image; the faces are still read.

    faces: ``(where, landmarks (N, 2) x y in pixels, image path)``, ``where`` naming the file and line.
    Images whose size cannot be read from the header (missing, not PNG/JPEG/BMP) are not checked.
    Returns the number of such faces.
    """
    bad: list[tuple[str, float, int, int]] = []
    for where, landmarks, image in faces:
        size = image_size(image)
        if size is None:
            continue
        w, h = size
        outside = float(beyond_image(np.asarray(landmarks, dtype=np.float64), w, h))
        if outside > margin * max(w, h):
            bad.append((str(where), outside, w, h))
    if bad:
        shown = "; ".join(f"{where}: up to {dist:.0f} px outside its {w}x{h} image" for where, dist, w, h in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        log.warning(
            f"{source}: {len(bad)} face(s) with landmarks far outside the image (more than "
            f"{margin:.0%} of its longer side), a corrupt or mis-scaled annotation? {shown}{more}. "
            f"They are read as they are; fix or drop them."
        )
    return len(bad)


def beyond_image(landmarks: np.ndarray, width: int, height: int) -> float:
    """How far (pixels) the farthest landmark of ``landmarks`` (N, 2) lies outside [0, width] x [0, height]."""
    x, y = landmarks[:, 0], landmarks[:, 1]
    return float(np.max(np.stack([-x, x - width, -y, y - height, np.zeros_like(x)]), initial=0.0))


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG or BMP file from its header (no decoding); None if unknown."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
                return struct.unpack(">II", head[16:24])
            if head[:2] == b"BM" and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                return w, abs(h)
            if head[:2] != b"\xff\xd8":
                return None
            fh.seek(2)
            while True:  # JPEG: walk the segments to the frame header (SOFn)
                marker = fh.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                if marker[1] in (0x01, 0xFF) or 0xD0 <= marker[1] <= 0xD8:
                    if marker[1] == 0xFF:
                        fh.seek(-1, 1)  # fill byte
                    continue
                (length,) = struct.unpack(">H", fh.read(2))
                if marker[1] in _SOF:
                    h, w = struct.unpack(">xHH", fh.read(5))
                    return w, h
                fh.seek(length - 2, 1)
    except (OSError, struct.error):
        return None
