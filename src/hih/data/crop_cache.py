"""The face-crop cache: every face of a split decoded once, its crop stored with the affine back to the photo.

Why: a real photo (WFLW: about 1024 px, often several faces) costs far more to decode than the crop the
network sees; decoding it for every face, every epoch, makes the loader, not the GPU, set the pace.

What is stored, per face: a crop of the photo that covers every input the transform can ask for, and the
(3, 3) matrix ``A`` mapping photo pixels to crop pixels. :class:`hih.data.dataset.FaceDataset` then warps
the crop with ``M @ inv(A)`` where ``M`` is the usual photo -> input matrix, and moves the landmarks with
``M`` itself, so labels are those of the full-photo path exactly and pixels differ only by interpolation.

- Training settings (:class:`CropSettings` with augmentation margins): the region is the square around
  the crop box's centre that the largest crop (scale jitter), rotated by up to ``max_rotation`` and shifted
  by up to ``shift_jitter`` of it, can reach; it is stored at ``min(1, S / smallest crop side)`` crop pixels
  per photo pixel (no more pixels than the transform can use; never upsampled): an exact copy of the photo
  for small faces, an area-averaged reduction for large ones.
- Evaluation settings (no augmentation): the crop *is* the evaluation input (S x S), so evaluating from the
  cache gives the very pixels of the full-photo path.

Storage (chosen by measurement, docs/performance.md "Data speed"): one file of raw uint8 crops read through
a memory map plus a small index (offsets, shapes, matrices), or JPEG-encoded crops in the same container
(``fmt="jpeg"``, ~10x smaller, slower to read). A cache folder is keyed by the dataset, split, crop settings,
input size, format, version and a hash of the annotations (image paths, boxes, landmarks, image file sizes),
so it is rebuilt whenever any of them changes.

Concurrency and integrity: the cache is built into a temporary folder under an exclusive file lock and
renamed into place; processes that start together (DDP ranks, multirun jobs, two sweeps) wait on the lock
and then open what the first one built. A folder whose manifest is missing, unreadable, of another version
or key, or whose files do not match the sizes and checksums it records (half-written, truncated) is
rebuilt, never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from hih.bench import usable_cores
from hih.data.geometry import crop_box, crop_matrix, scale_matrix, translation_matrix, warp_image
from hih.data.records import FaceRecord, ImageLoadError, load_image

__all__ = ["CACHE_VERSION", "FORMATS", "CropCache", "CropSettings", "ensure_crop_cache"]

log = logging.getLogger("hih.data.crop_cache")

#: Bump when what is stored changes: older caches are then rebuilt.
CACHE_VERSION = 3  # 2: evaluation crops decoded at full size; 3: reduced decodes ignore EXIF orientation
FORMATS = ("raw", "jpeg")
JPEG_QUALITY = 95
MANIFEST = "manifest.json"
DATA = "crops.bin"
INDEX = "index.npz"
_CHECK_BYTES = 1 << 20  # head and tail of the data file checksummed at every open (truncation, overwrite)


@dataclass(frozen=True)
class CropSettings:
    """What decides a face's crop: the DataModule's crop options and the augmentation's geometric reach.

    ``max_rotation`` / ``scale_jitter`` / ``shift_jitter`` are the margins the cache must cover (0 for
    evaluation); :meth:`for_dataset` reads them from a :class:`~hih.data.dataset.FaceDataset`.
    """

    input_size: int
    crop_scale: float = 1.25
    crop_from: str = "box"
    round_labels: bool = False
    border: str = "constant"
    max_rotation: float = 0.0
    scale_jitter: float = 0.0
    shift_jitter: float = 0.0

    @classmethod
    def for_dataset(
        cls, input_size: int, crop_scale: float, crop_from: str, round_labels: bool, aug, train: bool
    ) -> CropSettings:
        """The settings a dataset needs: with ``aug``'s geometric reach when ``train``, none otherwise."""
        rotation = float(aug.max_rotation) if train and aug.rotation_prob > 0 else 0.0
        return cls(
            int(input_size),
            float(crop_scale),
            str(crop_from),
            bool(round_labels),
            str(aug.border),
            rotation,
            float(aug.scale_jitter) if train else 0.0,
            float(aug.shift_jitter) if train else 0.0,
        )

    @property
    def eval_only(self) -> bool:
        return self.max_rotation == 0 and self.scale_jitter == 0 and self.shift_jitter == 0

    def covers(self, needed: CropSettings) -> bool:
        """True when crops made with these settings serve a dataset that needs ``needed``."""
        same = (self.input_size, self.crop_scale, self.crop_from, self.round_labels, self.border) == (
            needed.input_size,
            needed.crop_scale,
            needed.crop_from,
            needed.round_labels,
            needed.border,
        )
        if self.eval_only:  # the stored crop is the evaluation input itself
            return same and needed.eval_only
        return (
            same
            and min(45.0, self.max_rotation) >= min(45.0, needed.max_rotation)
            and self.scale_jitter >= needed.scale_jitter
            and self.shift_jitter >= needed.shift_jitter
        )

    def box(self, rec: FaceRecord) -> np.ndarray:
        landmarks = np.round(rec.landmarks) if self.round_labels else rec.landmarks
        return np.asarray(crop_box(self.crop_from, rec.bbox, landmarks), dtype=np.float64)

    def density(self, box: np.ndarray) -> float:
        """Crop pixels per photo pixel: what the sharpest input the transform can make needs (at most 1)."""
        if self.eval_only:
            return self.input_size / (self.crop_scale * max(box[2] - box[0], box[3] - box[1]))
        side_min = self.crop_scale * (1.0 - self.scale_jitter) * max(box[2] - box[0], box[3] - box[1])
        return min(1.0, self.input_size / side_min)

    def region(self, box: np.ndarray) -> tuple[int, int, int]:
        """The photo region of a training crop: ``(x0, y0, side)`` in whole photo pixels."""
        long = max(box[2] - box[0], box[3] - box[1])
        side_max = self.crop_scale * (1.0 + self.scale_jitter) * long
        t = math.radians(min(45.0, self.max_rotation))
        # a square rotated by t reaches (cos t + sin t) / 2 of its side along each axis; the shift, rotated too
        half = side_max * (0.5 + self.shift_jitter) * (math.cos(t) + math.sin(t)) + 2.0  # + bilinear reach
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        x0, y0 = math.floor(cx - half), math.floor(cy - half)
        return x0, y0, math.ceil(cx + half) - x0

    def plan(self, rec: FaceRecord) -> tuple[np.ndarray, tuple[int, int]]:
        """``(A (3, 3) photo -> crop, (height, width) of the crop)`` of one face."""
        box = self.box(rec)
        if self.eval_only:
            return crop_matrix(box, self.input_size, scale=self.crop_scale), (self.input_size, self.input_size)
        x0, y0, side = self.region(box)
        n = max(1, math.ceil(side * self.density(box)))
        return scale_matrix(n / side) @ translation_matrix(-x0, -y0), (n, n)


def make_crop(
    photo: np.ndarray, rec: FaceRecord, settings: CropSettings, photo_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """One face's crop from its decoded photo: ``(crop (h, w, 3) uint8, A photo -> crop)``.

    photo_scale: pixels of ``photo`` per photo pixel (< 1 when decoded reduced, JPEG draft mode).
    """
    a, (h, w) = settings.plan(rec)
    if settings.eval_only:
        return warp_image(photo, a @ scale_matrix(1.0 / photo_scale), (w, h), border=settings.border), a
    x0, y0, side = settings.region(settings.box(rec))
    if photo_scale == 1.0:
        # whole photo pixels: an exact copy (integer translation), padded by the border rule
        patch = warp_image(photo, translation_matrix(-x0, -y0), side, border=settings.border)
    else:
        m = math.ceil(side * photo_scale)
        patch = warp_image(
            photo,
            scale_matrix(m / (side * photo_scale)) @ translation_matrix(-x0 * photo_scale, -y0 * photo_scale),
            m,
            border=settings.border,
        )
    if patch.shape[0] != h:
        patch = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA)  # area average: no aliasing
    return np.ascontiguousarray(patch), a


# IGNORE_ORIENTATION: like load_image (IMREAD_UNCHANGED), never apply the EXIF rotation the labels were not made on.
_REDUCED = {
    k: flag | cv2.IMREAD_IGNORE_ORIENTATION
    for k, flag in {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}.items()
}


def _decode(path: Path, density: float, draft: bool) -> tuple[np.ndarray, float]:
    """The photo as RGB uint8 and its scale: reduced by 2, 4 or 8 inside the JPEG decoder (libjpeg's DCT
    scaling, PIL's "draft mode"; OpenCV's IMREAD_REDUCED_* gives the same pixels faster) when every face of
    it needs at most that resolution, else full size."""
    k = 1
    while draft and k < 8 and density * k * 2 <= 1.0:
        k *= 2
    if k > 1 and path.suffix.lower() in (".jpg", ".jpeg"):
        data = np.fromfile(str(path), dtype=np.uint8)
        bgr = cv2.imdecode(data, _REDUCED[k]) if data.size else None
        if bgr is None:
            raise ImageLoadError(f"cannot decode image {path} ({data.size} bytes)")
        # the decoder's pixel j covers photo pixels [k j, k (j + 1)): a pure scaling by 1 / k
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 1.0 / k
    return load_image(path), 1.0


def _hash_records(records: Sequence[FaceRecord]) -> str:
    """The annotations' content: image paths and file sizes, boxes, landmarks (and occlusion flags)."""
    h = hashlib.sha256()
    for r in records:
        try:
            size = r.image_path.stat().st_size
        except OSError:
            size = -1
        h.update(f"{r.image_path}\0{size}\0".encode())
        h.update(np.ascontiguousarray(r.bbox, np.float32).tobytes())
        h.update(np.ascontiguousarray(r.landmarks, np.float32).tobytes())
        if r.occluded is not None:
            h.update(np.ascontiguousarray(r.occluded, bool).tobytes())
    return h.hexdigest()


def cache_key(
    records: Sequence[FaceRecord], settings: CropSettings, dataset: str, split: str, fmt: str, draft: bool = True
) -> dict:
    return {
        "version": CACHE_VERSION,
        "draft": bool(draft),
        "dataset": str(dataset),
        "split": str(split),
        "format": fmt,
        "settings": asdict(settings),
        "faces": len(records),
        "annotations": _hash_records(records),
    }


def _folder_name(key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    kind = "eval" if CropSettings(**key["settings"]).eval_only else "train"
    return f"{key['dataset']}-{key['split']}-{kind}-{key['settings']['input_size']}px-{digest}"


def _crc_ends(path: Path, size: int) -> int:
    with open(path, "rb") as fh:
        crc = zlib.crc32(fh.read(_CHECK_BYTES))
        if size > _CHECK_BYTES:
            fh.seek(max(_CHECK_BYTES, size - _CHECK_BYTES))
            crc = zlib.crc32(fh.read(_CHECK_BYTES), crc)
    return crc


def _file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(16 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def problem(folder: Path, key: dict) -> str | None:
    """Why ``folder`` is not a usable cache for ``key`` (None: it is)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return "no manifest (missing or half-written)"
    except (OSError, ValueError) as e:
        return f"unreadable manifest ({e})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("key"), dict):
        return "malformed manifest"
    if manifest.get("key", {}).get("version") != CACHE_VERSION:
        return f"cache version {manifest.get('key', {}).get('version')} (this code writes {CACHE_VERSION})"
    if manifest.get("key") != key:
        return "built for other annotations or settings"
    try:
        return _files_problem(folder, manifest)
    except (KeyError, TypeError, OSError) as e:
        return f"malformed manifest or unreadable files ({e!r})"


def _files_problem(folder: Path, manifest: dict) -> str | None:
    for name in (DATA, INDEX):
        f = folder / name
        if not f.is_file() or f.stat().st_size != manifest["bytes"][name]:
            return f"{name} is missing or has the wrong size (truncated?)"
    if _crc_ends(folder / DATA, manifest["bytes"][DATA]) != manifest["crc_ends"]:
        return f"{DATA} does not match its checksum"
    if _file_crc(folder / INDEX) != manifest["crc_index"]:
        return f"{INDEX} does not match its checksum"
    return None


class CropCache:
    """The stored crops of one split, in the order of its records; ``read(i) -> (crop, A photo -> crop)``.

    Pickles without its memory map (DataLoader workers map the file themselves on first read).
    """

    def __init__(self, folder: Path, indices: np.ndarray | None = None):
        self.folder = Path(folder)
        manifest = json.loads((self.folder / MANIFEST).read_text())
        self.key = manifest["key"]
        self.settings = CropSettings(**self.key["settings"])
        self.format = self.key["format"]
        self.build_s = float(manifest.get("build_s", float("nan")))
        with np.load(self.folder / INDEX) as z:
            self.starts, self.sizes, self.shapes, self.matrices = z["starts"], z["sizes"], z["shapes"], z["matrices"]
        self.indices = np.arange(len(self.shapes)) if indices is None else np.asarray(indices, dtype=np.int64)
        self._data: np.memmap | None = None
        #: True when this process built the cache (ensure_crop_cache), False when it found it built.
        self.built = False

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def nbytes(self) -> int:
        return int(self.sizes.sum())

    def subset(self, indices: Sequence[int]) -> CropCache:
        """The crops of ``indices`` (positions in this cache), sharing its files."""
        sub = object.__new__(CropCache)
        sub.__dict__.update(self.__getstate__())
        sub.indices = self.indices[np.asarray(indices, dtype=np.int64)]
        return sub

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_data"] = None
        return state

    def verify(self) -> bool:
        """Checksum the whole data file against the one recorded at build time (opening checks only its ends)."""
        manifest = json.loads((self.folder / MANIFEST).read_text())
        return _file_crc(self.folder / DATA) == manifest["crc_data"]

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._data is None:
            self._data = np.memmap(self.folder / DATA, dtype=np.uint8, mode="r")
        j = int(self.indices[i])
        buf = self._data[int(self.starts[j]) : int(self.starts[j] + self.sizes[j])]
        h, w = (int(v) for v in self.shapes[j])
        if self.format == "raw":
            crop = buf.reshape(h, w, 3)
        else:
            bgr = cv2.imdecode(np.asarray(buf), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ImageLoadError(
                    f"crop cache {self.folder}: face {j} does not decode; delete the folder to rebuild it"
                )
            crop = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return crop, self.matrices[j]


def _build(
    folder: Path,
    records: Sequence[FaceRecord],
    settings: CropSettings,
    key: dict,
    fmt: str,
    workers: int,
    progress: bool,
    draft: bool,
) -> None:
    """Decode each photo once (several faces share it), crop its faces, write data + index + manifest (last)."""
    from tqdm.auto import tqdm

    by_image: dict[Path, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_image[r.image_path].append(i)
    groups = list(by_image.items())

    def work(group: tuple[Path, list[int]]) -> list[tuple[int, bytes, tuple[int, int], np.ndarray]]:
        path, faces = group
        density = max(settings.density(settings.box(records[i])) for i in faces)
        # Evaluation crops are the network input itself: decoded at full size, they are the uncached
        # path's pixels exactly (a reduced decode shifts NME measurably on small inputs).
        photo, scale = _decode(path, density, draft and not settings.eval_only)
        out = []
        for i in faces:
            crop, a = make_crop(photo, records[i], settings, scale)
            if fmt == "raw":
                data = crop.tobytes()
            else:
                ok, enc = cv2.imencode(
                    ".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
                )
                if not ok:
                    raise OSError(f"cannot JPEG-encode the crop of face {i} ({path})")
                data = enc.tobytes()
            out.append((i, data, crop.shape[:2], a))
        return out

    n = len(records)
    sizes = np.zeros(n, dtype=np.int64)
    shapes = np.zeros((n, 2), dtype=np.int32)
    matrices = np.zeros((n, 3, 3), dtype=np.float64)
    positions = np.zeros(n, dtype=np.int64)
    written = 0
    crc = 0
    t0 = time.perf_counter()
    bar = tqdm(total=n, desc=f"crop cache {key['dataset']}/{key['split']}", unit="face", disable=not progress)
    threads = max(1, int(workers))
    prev = cv2.getNumThreads()
    cv2.setNumThreads(1)  # parallel over photos instead
    try:
        with open(folder / DATA, "wb") as fh, ThreadPoolExecutor(threads) as pool:
            # a bounded window of photos in flight keeps memory flat on large splits
            window = max(4 * threads, 16)
            for start in range(0, len(groups), window):
                for result in pool.map(work, groups[start : start + window]):
                    for i, data, shape, a in result:
                        fh.write(data)
                        crc = zlib.crc32(data, crc)
                        positions[i], sizes[i] = written, len(data)
                        written += len(data)
                        shapes[i], matrices[i] = shape, a
                    bar.update(len(result))
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        cv2.setNumThreads(prev)
        bar.close()
    # faces are written photo by photo: the index gives each face (in record order) its bytes
    np.savez(folder / INDEX, starts=positions, sizes=sizes, shapes=shapes, matrices=matrices)
    build_s = time.perf_counter() - t0
    manifest = {
        "key": key,
        "bytes": {DATA: written, INDEX: (folder / INDEX).stat().st_size},
        "crc_ends": _crc_ends(folder / DATA, written),
        "crc_data": crc,
        "crc_index": _file_crc(folder / INDEX),
        "build_s": build_s,
        "workers": threads,
        "draft": bool(draft),
    }
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)


def ensure_crop_cache(
    records: Sequence[FaceRecord],
    settings: CropSettings,
    cache_dir: str | Path,
    dataset: str,
    split: str,
    fmt: str = "raw",
    workers: int | None = None,
    progress: bool = True,
    draft: bool = True,
) -> CropCache:
    """The crop cache of ``records`` (one split) under ``cache_dir``, built on first use; see the module doc.

    workers: decoding threads (default: every core this process may use). draft: decode JPEGs reduced in
    the decoder (DCT scaling by 2, 4 or 8) when every face of a photo needs at most that resolution
    (training crops only; evaluation crops are always decoded at full size).
    """
    if fmt not in FORMATS:
        raise ValueError(f"crop cache format must be one of {FORMATS}, got {fmt!r}")
    if not records:
        raise ValueError("crop cache: no faces to cache")
    from filelock import FileLock

    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(records, settings, dataset, split, fmt, draft)
    folder = cache_dir / _folder_name(key)
    if problem(folder, key) is None:
        return CropCache(folder)
    with FileLock(str(cache_dir / f"{folder.name}.lock")):
        why = problem(folder, key)  # another process may have built it while this one waited
        if why is None:
            return CropCache(folder)
        if folder.exists():
            log.warning(f"crop cache {folder}: {why}; rebuilding it")
            shutil.rmtree(folder)
        if workers is None:
            workers = usable_cores()
        tmp = cache_dir / f".{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _build(tmp, records, settings, key, fmt, workers, progress, draft)
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    cache = CropCache(folder)
    cache.built = True
    if progress:
        print(
            f"[hih] crop cache {folder}: {len(cache)} faces, {cache.nbytes / 2**20:.1f} MB, "
            f"built in {cache.build_s:.1f} s "
            f"with {workers} threads"
        )
    return cache
