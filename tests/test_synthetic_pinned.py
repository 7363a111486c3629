"""The synthetic generators' output, pinned: a tiny canvas set written to disk and two synthetic photos hash
to the values recorded from the code before ``hih.data.synthetic`` was split into modules (commit 0e32684).

The hashes cover the decoded pixels (the canvases are written as PNG, lossless) and the list files' bytes, so
they pin what the generators draw and write, not an image encoder's version. A change to the faces must bump
``GENERATOR_VERSION`` (or ``PHOTOS_VERSION``) and record new hashes here.
"""

from __future__ import annotations

import hashlib

import numpy as np

from hih.data.datasets.synthetic_photos import make_photo
from hih.data.readers.wflw import format_wflw_line
from hih.data.records import load_image
from hih.data.synthetic import GENERATOR_VERSION, ensure_synthetic

CANVASES = "df6f9dc5a4bdd59eba56ccd4aa1d61671e5e1a6200c44e13b9cad620bc62cd0e"
PHOTOS = "f84fac29d745c776e8fb142d848a40b3e545e44283db3a489aef2fd5b98de989"


def canvas_set_digest(root) -> str:
    """sha256 over a tiny synthetic set: every file's relative path and bytes (images: decoded pixels)."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(np.ascontiguousarray(load_image(f)).tobytes() if f.suffix == ".png" else f.read_bytes())
    return h.hexdigest()


def photos_digest() -> str:
    """sha256 over two synthetic photos: pixels before JPEG encoding, the JPEG quality, the list lines."""
    h = hashlib.sha256()
    for split, index in (("train", 0), ("test", 1)):
        image, faces, quality = make_photo(5, split, index, photo_size=(150, 190), iod_range=(10.0, 40.0))
        h.update(image.tobytes())
        h.update(str(quality).encode())
        for lms, box, flags in faces:
            h.update(format_wflw_line(lms, box, flags, f"{split}/{index:05d}.jpg").encode())
    return h.hexdigest()


def test_canvases_are_the_pinned_ones(tmp_path):
    root = ensure_synthetic(
        tmp_path / "s",
        n_train=3,
        n_test=2,
        seed=11,
        image_size=(64, 96),
        progress=False,
        workers=1,
        image_format="png",
    )
    assert GENERATOR_VERSION == 1, "a new generator version needs new pinned hashes"
    assert canvas_set_digest(root) == CANVASES


def test_photos_are_the_pinned_ones():
    assert photos_digest() == PHOTOS
