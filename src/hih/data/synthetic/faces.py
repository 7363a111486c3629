"""Synthetic faces in the WFLW format: one face from (seed, split, index), and the set on disk.

``ensure_synthetic(root)`` writes the set once (WFLW list files + images, through
:func:`hih.data.generated_set.write_once`) and reuses it afterwards; ``read_wflw(root, split)`` reads it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hih.bench import usable_cores
from hih.data.generated_set import read_manifest, write_once, write_wflw_set
from hih.data.readers.wflw import format_wflw_line
from hih.data.records import save_image
from hih.data.synthetic.face_model import FaceParams, sample_face
from hih.data.synthetic.render import render_face

#: Bump when the generator's output changes, so cached sets are regenerated.
GENERATOR_VERSION = 1
SPLIT_IDS = {"train": 0, "test": 1}


def face_bbox(p: FaceParams, rng: np.random.Generator) -> np.ndarray:
    """A detector-like face box: the landmark extent with per-side jitter (5 % of its size), in the image."""
    L = p.landmarks
    lo, hi = L.min(0), L.max(0)
    size = (hi - lo).max()
    j = rng.normal(0, 0.05 * size, 4)
    box = np.r_[lo + j[:2], hi + j[2:]]
    H, W = p.canvas_hw
    box = np.clip(box, 0, [W, H, W, H])
    return box


def face_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one face: depends only on (seed, split, index)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"synthetic split must be one of {', '.join(SPLIT_IDS)}, got {split!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)]))


@dataclass
class SyntheticFace:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (98, 2) float64 image pixels
    bbox: np.ndarray  # (4,) x0 y0 x1 y1
    flags: np.ndarray  # (6,) bool, ATTRIBUTES order
    params: FaceParams


def make_face(seed: int, split: str, index: int, image_size=(256, 384), **overrides) -> SyntheticFace:
    """Sample and render face ``index`` of ``split``; ``overrides`` replace FaceParams fields before rendering."""
    rng = face_rng(seed, split, index)
    p = sample_face(rng, image_size)
    if overrides:
        p = dataclasses.replace(p, **overrides)
    bbox = face_bbox(p, rng)
    return SyntheticFace(render_face(p), p.landmarks, bbox, p.flags.copy(), p)


def _manifest(n_train: int, n_test: int, seed: int, image_size, image_format: str) -> dict:
    size = [int(image_size), int(image_size)] if np.isscalar(image_size) else [int(s) for s in image_size]
    return {
        "generator": "hih.data.synthetic",
        "version": GENERATOR_VERSION,
        "layout": "wflw",
        "n_train": int(n_train),
        "n_test": int(n_test),
        "seed": int(seed),
        "image_size": size,
        "image_format": image_format,
    }


def _work(args) -> list[str]:
    seed, split, index, image_size, out_dir, ext = args
    face = make_face(seed, split, index, image_size)
    rel = f"{split}/{index:05d}.{ext}"
    save_image(Path(out_dir) / "WFLW_images" / rel, face.image, jpeg_quality=95)
    return [format_wflw_line(face.landmarks, face.bbox, face.flags, rel)]


def _generate(tmp: Path, manifest: dict, progress: bool, workers: int) -> None:
    ext = manifest["image_format"]
    size = tuple(manifest["image_size"])
    jobs = {
        split: [(manifest["seed"], split, i, size, str(tmp), ext) for i in range(manifest[f"n_{split}"])]
        for split in ("train", "test")
    }
    write_wflw_set(tmp, manifest, jobs, _work, progress, workers, desc="synthetic faces", unit="face")


def ensure_synthetic(
    root: str | Path,
    n_train: int = 2000,
    n_test: int = 500,
    seed: int = 0,
    image_size: int | tuple[int, int] = (256, 384),
    progress: bool = True,
    workers: int | None = None,
    image_format: str = "jpg",
) -> Path:
    """Make sure ``root`` holds the synthetic set with these parameters; generate it if not.

    image_size: canvas side range (min, max) in pixels (height and width drawn independently),
    or one int for square canvases. image_format: "jpg" (quality 95, small) or "png" (lossless).
    The set is written to a temporary folder next to ``root`` and renamed into place, so
    ``root`` never holds a half-written set. A set with a different manifest (parameters or
    generator version) is replaced; a non-empty ``root`` without a manifest is never touched
    (FileExistsError). Returns ``root``.
    """
    root = Path(root).expanduser().resolve()
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train}, {n_test}")
    manifest = _manifest(n_train, n_test, seed, image_size, image_format)
    if read_manifest(root) == manifest:
        return root
    workers = min(2, usable_cores()) if workers is None else int(workers)

    def generate(tmp: Path) -> None:
        t0 = time.perf_counter()
        _generate(tmp, manifest, progress, workers)
        if progress:
            print(f"[hih] wrote {n_train} + {n_test} synthetic faces to {root} in {time.perf_counter() - t0:.1f} s")

    return write_once(root, manifest, generate, progress)
