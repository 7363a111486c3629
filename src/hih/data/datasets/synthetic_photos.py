"""WFLW-like synthetic photos: 1-4 synthetic faces in photos 800-1200 px on a side, in WFLW's list format.

Real WFLW photos are about 1024 px wide, a face fills a small part of one and many hold several faces;
the synthetic canvases (``data=synthetic``) are 256-384 px with one face filling 40-70 % of the frame.
This set gives the data pipeline (decode, crop cache, loaders) real-size input: each face is rendered by
the synthetic renderer (:func:`hih.data.synthetic.sample_face` / :func:`~hih.data.synthetic.render_face`)
on a tile sized for an inter-ocular distance drawn log-uniformly in ``iod_range`` (WFLW's spread, about
20 to 250 px), the tiles are feathered into a cluttered background at places where no two overlap, and
the photo is saved as a JPEG of quality ``jpeg_quality`` (drawn per photo). The list files carry one
line per face (several lines per image, each with its own box), read by the WFLW reader.

Generated on first use (:func:`ensure_synthetic_photos`) with a progress bar, like the canvases.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hih.bench import usable_cores
from hih.data.datasets._registry import DatasetInfo, register_dataset
from hih.data.datasets.wflw import WFLW_LAYOUT
from hih.data.generated_set import read_manifest, write_once, write_wflw_set
from hih.data.readers.wflw import SPLITS, format_wflw_line, read_wflw
from hih.data.records import save_image
from hih.data.synthetic.face_model import sample_face
from hih.data.synthetic.faces import SPLIT_IDS, face_bbox
from hih.data.synthetic.render import background, render_face

#: Bump when the photos' generator changes, so cached sets are regenerated.
PHOTOS_VERSION = 1
#: Share of photos holding 1, 2, 3 or 4 faces.
FACES_PER_PHOTO = (0.55, 0.25, 0.12, 0.08)
#: Inter-ocular distance (outer eye corners) over the landmarks' extent on the synthetic faces (mean shape).
_IOD_OVER_EXTENT = 0.6
_FACE_OVER_TILE = 0.55  # sample_face makes the landmark extent 40-70 % of its canvas


def photo_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one photo: depends only on (seed, split, index); another stream than the canvases'."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 100 + SPLIT_IDS[split], int(index)]))


def make_photo(seed: int, split: str, index: int, photo_size=(800, 1200), iod_range=(20.0, 250.0)):
    """Photo ``index`` of ``split``: ``(image (H, W, 3) uint8 RGB, faces, jpeg quality)`` with ``faces`` a list of
    ``(landmarks (98, 2), bbox (4,), flags (6,))`` in photo pixels."""
    rng = photo_rng(seed, split, index)
    H, W = (int(rng.integers(photo_size[0], photo_size[1] + 1)) for _ in range(2))
    image = background(rng, H, W)
    n = int(rng.choice(len(FACES_PER_PHOTO), p=FACES_PER_PHOTO)) + 1
    taken: list[tuple[int, int, int]] = []  # placed tiles: x, y, side
    faces = []
    for _ in range(n):
        iod = float(np.exp(rng.uniform(np.log(iod_range[0]), np.log(iod_range[1]))))
        side = int(np.clip(iod / _IOD_OVER_EXTENT / _FACE_OVER_TILE, 48, 0.9 * min(H, W)))
        spot = None
        for _attempt in range(40):  # shrink the tile until it fits beside the others
            for _ in range(10):
                x, y = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
                if all(x + side <= tx or tx + ts <= x or y + side <= ty or ty + ts <= y for tx, ty, ts in taken):
                    spot = (x, y)
                    break
            if spot is not None or side <= 48:
                break
            side = max(48, int(side * 0.8))
        if spot is None:
            continue
        face_rng = np.random.default_rng(rng.integers(2**63))
        p = sample_face(face_rng, (side, side))
        tile = render_face(p).astype(np.float32)
        x, y = spot
        # feathered edges: the tile's own background fades into the photo's
        ramp = max(2.0, 0.12 * side)
        d = np.minimum(np.arange(side) + 0.5, side - np.arange(side) - 0.5)
        alpha = np.clip(np.minimum(d[:, None], d[None, :]) / ramp, 0.0, 1.0)[..., None]
        roi = image[y : y + side, x : x + side]
        roi += (tile - roi) * alpha
        shift = np.array([x, y], dtype=np.float64)  # tile pixel i is photo pixel x + i: an exact shift
        box = face_bbox(p, face_rng) + np.r_[shift, shift]
        faces.append((p.landmarks + shift, box, p.flags.copy()))
        taken.append((x, y, side))
    # sensor-like noise: real photos carry fine detail, which sets their JPEG size and decode cost
    image += rng.normal(0.0, rng.uniform(2.0, 6.0), image.shape).astype(np.float32)
    quality = int(rng.integers(75, 96))
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), faces, quality


def _manifest(n_train: int, n_test: int, seed: int, photo_size, iod_range) -> dict:
    return {
        "generator": "hih.data.datasets.synthetic_photos",
        "version": PHOTOS_VERSION,
        "layout": "wflw",
        "n_train": int(n_train),
        "n_test": int(n_test),
        "seed": int(seed),
        "photo_size": [int(s) for s in photo_size],
        "iod_range": [float(v) for v in iod_range],
    }


def _work(args) -> list[str]:
    seed, split, index, photo_size, iod_range, out_dir = args
    image, faces, quality = make_photo(seed, split, index, photo_size, iod_range)
    rel = f"{split}/{index:05d}.jpg"
    save_image(Path(out_dir) / "WFLW_images" / rel, image, jpeg_quality=quality)
    return [format_wflw_line(lms, box, flags, rel) for lms, box, flags in faces]


def ensure_synthetic_photos(
    root: str | Path,
    n_train: int = 300,
    n_test: int = 100,
    seed: int = 0,
    photo_size=(800, 1200),
    iod_range=(20.0, 250.0),
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Make sure ``root`` holds these photos (``n_train`` / ``n_test`` photos, 1-4 faces each); generate them if not.

    Written to a temporary folder and renamed into place (:func:`hih.data.generated_set.write_once`), so
    concurrent first uses never see a half-written set. Returns ``root``.
    """
    root = Path(root).expanduser().resolve()
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1 photos, got {n_train}, {n_test}")
    lo, hi = (int(v) for v in photo_size)
    if not 64 <= lo <= hi:
        raise ValueError(f"photo_size must be a range (lo, hi) with 64 <= lo <= hi pixels, got {photo_size}")
    if not 0 < iod_range[0] <= iod_range[1]:
        raise ValueError(f"iod_range must be a range (lo, hi) of positive pixels, got {iod_range}")
    manifest = _manifest(n_train, n_test, seed, (lo, hi), iod_range)
    if read_manifest(root) == manifest:
        return root
    workers = min(2, usable_cores()) if workers is None else int(workers)

    def generate(tmp: Path) -> None:
        t0 = time.perf_counter()
        jobs = {
            split: [(seed, split, i, (lo, hi), tuple(iod_range), str(tmp)) for i in range(manifest[f"n_{split}"])]
            for split in ("train", "test")
        }
        write_wflw_set(tmp, manifest, jobs, _work, progress, workers, desc="synthetic photos", unit="photo")
        if progress:
            print(f"[hih] wrote {n_train} + {n_test} synthetic photos to {root} in {time.perf_counter() - t0:.1f} s")

    return write_once(root, manifest, generate, progress)


def _prepare(root: Path, n_photos: int, n_test_photos: int, photos_seed: int, photo_size, iod_range) -> None:
    ensure_synthetic_photos(
        root,
        n_train=n_photos,
        n_test=n_test_photos,
        seed=photos_seed,
        photo_size=tuple(photo_size),
        iod_range=tuple(iod_range),
    )


register_dataset(
    DatasetInfo(
        "synthetic_photos",
        WFLW_LAYOUT,
        read_wflw,
        splits=SPLITS,
        prepare=_prepare,
        options={
            "n_photos": 300,
            "n_test_photos": 100,
            "photos_seed": 0,
            "photo_size": (800, 1200),
            "iod_range": (20.0, 250.0),
        },
    )
)
