"""COFW reader (Burgos-Artizzu et al. 2013, 29 landmarks with occlusion flags).

``COFW_train_color.mat`` / ``COFW_test_color.mat`` (``COFW_train.mat`` / ``COFW_test.mat``
accepted too), MATLAB v5 (scipy.io.loadmat) or v7.3 (HDF5, h5py):

- ``IsTr`` / ``IsT``: n x 1 cell of H x W x 3 (or H x W) uint8 images;
- ``phisTr`` / ``phisT``: n x 87 doubles, 29 x, 29 y, 29 occlusion flags (1 = occluded);
- ``bboxesTr`` / ``bboxesT``: n x 4 face boxes x, y, w, h (the paper crops COFW by these).

Images are embedded in the .mat, so they are written out once to
``<root>/cofw_images/<split>/<i:05d>.png`` (or ``cache_dir``) and the records point there.
An existing file with different pixels is never overwritten: that raises FileExistsError.
Coordinates are taken as-is.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from hih.data.readers._common import check_split, missing, require_root, warn_far_outside
from hih.data.records import FaceRecord, load_image, save_image

NUM_LANDMARKS = 29
NUM_COLUMNS = 3 * NUM_LANDMARKS  # 87
SPLITS = ("train", "test")
_VARS = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}
_FILES = {"train": ("COFW_train_color.mat", "COFW_train.mat"), "test": ("COFW_test_color.mat", "COFW_test.mat")}

TREE = """\
  <root>/
    COFW_train_color.mat   (IsTr, phisTr, bboxesTr)
    COFW_test_color.mat    (IsT, phisT, bboxesT)
    cofw_images/           (written by the reader: images extracted from the .mat)"""


def find_mat_file(root: Path, split: str) -> Path:
    for name in _FILES[split]:
        if (root / name).is_file():
            return root / name
    raise missing(
        root / _FILES[split][0], "COFW", TREE, f".mat file for split {split!r} (also looked for {_FILES[split][1]})"
    )


def _is_hdf5(path: Path) -> bool:
    import h5py

    return bool(h5py.is_hdf5(str(path)))


class _MatContent:
    """Landmarks, boxes and lazily read images of one COFW .mat file (v5 or v7.3)."""

    def __init__(self, path: Path, split: str):
        self.path = path
        self.split = split
        self.img_var, self.phis_var, self.box_var = _VARS[split]
        self.hdf5 = _is_hdf5(path)
        if not self.hdf5:
            self._load_v5()
            self._validate()
            return
        import h5py

        self._h5 = h5py.File(path, "r")  # stays open for lazy image reads; close() releases it
        try:
            self._load_hdf5()
            self._validate()
        except BaseException:
            self._h5.close()
            raise

    def _missing_var(self, var: str, found) -> ValueError:
        return ValueError(
            f"{self.path}: expected a variable {var!r} (the COFW {self.split} set has "
            f"{', '.join(_VARS[self.split])}), found {sorted(found)}"
        )

    def _load_hdf5(self) -> None:
        names = [k for k in self._h5 if not k.startswith("#")]
        for var in _VARS[self.split]:
            if var not in self._h5:
                raise self._missing_var(var, names)
        # MATLAB writes column-major: an n x 87 matrix is stored as (87, n), an n x 1 cell as (1, n).
        self.phis = np.asarray(self._h5[self.phis_var][()], dtype=np.float64).T
        self.bboxes = np.asarray(self._h5[self.box_var][()], dtype=np.float64).T
        self._refs = np.asarray(self._h5[self.img_var][()]).T.reshape(-1)

    def _load_v5(self) -> None:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        try:
            mat = loadmat(str(self.path), variable_names=list(_VARS[self.split]))
        except (MatReadError, ValueError, OSError) as e:
            raise ValueError(f"{self.path}: cannot read as a MATLAB v5 or v7.3 .mat file: {e}") from e
        for var in _VARS[self.split]:
            if var not in mat:
                raise self._missing_var(var, [k for k in mat if not k.startswith("__")])
        self.phis = np.asarray(mat[self.phis_var], dtype=np.float64)
        self.bboxes = np.asarray(mat[self.box_var], dtype=np.float64)
        self._cells = np.asarray(mat[self.img_var], dtype=object).reshape(-1)

    def _validate(self) -> None:
        path = self.path
        n = self.phis.shape[0]
        if self.phis.ndim != 2 or self.phis.shape[1] != NUM_COLUMNS:
            raise ValueError(
                f"{path}: {self.phis_var} must be n x {NUM_COLUMNS} ({NUM_LANDMARKS} x, {NUM_LANDMARKS} y, "
                f"{NUM_LANDMARKS} occlusion flags for the COFW layout), got {'x'.join(map(str, self.phis.shape))}"
            )
        if self.bboxes.shape != (n, 4):
            raise ValueError(
                f"{path}: {self.box_var} must be {n} x 4 (x, y, w, h), got {'x'.join(map(str, self.bboxes.shape))}"
            )
        if len(self) != n:
            raise ValueError(f"{path}: {self.img_var} holds {len(self)} images but {self.phis_var} has {n} rows")

    def __len__(self) -> int:
        return len(self._refs) if self.hdf5 else len(self._cells)

    def image(self, i: int) -> np.ndarray:
        """Image i as stored: (H, W) or (H, W, 3) uint8."""
        if self.hdf5:
            img = np.asarray(self._h5[self._refs[i]][()]).T  # (3, W, H) -> (H, W, 3)
        else:
            img = np.asarray(self._cells[i])
        if img.dtype != np.uint8:
            if img.size and (img.min() < 0 or img.max() > 255):
                raise ValueError(f"{self.path}: {self.img_var}{{{i + 1}}} has values outside 0..255")
            img = img.astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise ValueError(f"{self.path}: {self.img_var}{{{i + 1}}} must be H x W or H x W x 3, got {img.shape}")
        return np.ascontiguousarray(img)

    def close(self) -> None:
        if self.hdf5:
            self._h5.close()


def _source_stamp(mat: Path) -> dict:
    st = mat.stat()
    return {"source": mat.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_atomic(path: Path, image: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        save_image(tmp, image)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _extract_images(content: _MatContent, cache: Path) -> list[Path]:
    """Write every image of the .mat to cache/<i:05d>.png once; verify existing files instead of overwriting."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = [cache / f"{i:05d}.png" for i in range(len(content))]
    manifest = cache / "manifest.json"
    stamp = {**_source_stamp(content.path), "count": len(paths)}
    if manifest.is_file() and all(p.is_file() for p in paths):
        try:
            if json.loads(manifest.read_text()) == stamp:
                return paths
        except json.JSONDecodeError:
            pass
    for i, p in enumerate(paths):
        img = content.image(i)
        if p.exists():
            old = load_image(p)
            new = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
            if old.shape != new.shape or not np.array_equal(old, new):
                raise FileExistsError(
                    f"COFW image cache {p} exists with different content than image {i + 1} of {content.path}; "
                    f"not overwriting it. Delete {cache} (or pass another cache_dir) to re-extract."
                )
            continue
        _write_atomic(p, img)
    manifest.write_text(json.dumps(stamp))
    return paths


def read_cofw(root: str | Path, split: str, cache_dir: str | Path | None = None) -> list[FaceRecord]:
    """Read a COFW split (``"train"`` or ``"test"``) into FaceRecords with occlusion flags.

    Boxes are converted from (x, y, w, h) to (x0, y0, x1, y1). ``cache_dir`` (default
    ``<root>/cofw_images/<split>``) receives the extracted images.
    """
    root = require_root(root, "COFW", TREE)
    split = check_split(split, SPLITS, "COFW")
    mat = find_mat_file(root, split)
    cache = Path(cache_dir) if cache_dir is not None else root / "cofw_images" / split
    try:
        content = _MatContent(mat, split)
    except OSError as e:  # h5py/scipy I/O errors on a damaged file
        raise ValueError(f"{mat}: cannot read the COFW .mat file: {e}") from e
    try:
        paths = _extract_images(content, cache)
        phis, boxes = content.phis, content.bboxes
    finally:
        content.close()
    n = NUM_LANDMARKS
    landmarks = np.stack([phis[:, :n], phis[:, n : 2 * n]], axis=-1).astype(np.float32)
    flags = phis[:, 2 * n :]
    if not np.isin(flags, (0.0, 1.0)).all():
        raise ValueError(f"{mat}: occlusion flags (columns {2 * n + 1}..{3 * n} of {_VARS[split][1]}) must be 0 or 1")
    if not (np.isfinite(landmarks).all() and np.isfinite(boxes).all()):
        raise ValueError(f"{mat}: expected finite landmark and box values")
    if (boxes[:, 2:] <= 0).any():
        bad = int(np.nonzero((boxes[:, 2:] <= 0).any(1))[0][0])
        raise ValueError(
            f"{mat}: {_VARS[split][2]} row {bad + 1}: expected x, y, w, h with w, h > 0, got {boxes[bad].tolist()}"
        )
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1).astype(np.float32)
    warn_far_outside(mat, ((f"{_VARS[split][1]} row {i + 1}", landmarks[i], paths[i]) for i in range(len(paths))))
    return [
        FaceRecord(
            image_path=paths[i],
            landmarks=landmarks[i],
            bbox=xyxy[i],
            subsets=np.zeros(0, dtype=bool),
            occluded=flags[i].astype(bool),
        )
        for i in range(len(paths))
    ]
