"""300W reader (Sagonas et al. 2013, 68 landmarks) with the standard split of the paper (sec. 4.1).

train = lfpw/trainset + helen/trainset + afw (3148 faces); test: common = lfpw/testset +
helen/testset (554), challenge = ibug (135), full = both (689); private = the 300-W
competition's own test set (Table 6 "Test."): 600 faces, ``01_Indoor`` and ``02_Outdoor`` (300
each) as in the official release, under ``<root>/`` or ``<root>/300W/``. Each image ``X.jpg``
(or .png) has an annotation ``X.pts``::

    version: 1
    n_points:  68
    {
    x0 y0
    ...
    }

300W ships no face boxes, so the box is the landmarks' extent (x_min, y_min, x_max, y_max);
the crop pipeline adds its margin to it. Coordinates are taken as-is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hih.data.readers._common import check_split, line_error, missing, parse_floats, require_root, warn_far_outside
from hih.data.records import FaceRecord

NUM_LANDMARKS = 68
SPLITS = ("train", "test", "full", "common", "challenge", "private")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG", ".BMP")

# folder -> subset flag (common, challenge) of its faces
TRAIN_FOLDERS = ("lfpw/trainset", "helen/trainset", "afw")
COMMON_FOLDERS = ("lfpw/testset", "helen/testset")
CHALLENGE_FOLDERS = ("ibug",)
# The private test set; the official archive unpacks to 300W/01_Indoor, 300W/02_Outdoor.
PRIVATE_FOLDERS = ("01_Indoor", "02_Outdoor")
PRIVATE_PARENTS = ("", "300W")

TREE = """\
  <root>/
    afw/            1051618982_1.jpg  1051618982_1.pts ...
    helen/trainset/ ...jpg + .pts
    helen/testset/
    lfpw/trainset/
    lfpw/testset/
    ibug/
    300W/01_Indoor/  indoor_001.png  indoor_001.pts ...   (split=private only; also <root>/01_Indoor)
    300W/02_Outdoor/ outdoor_001.png outdoor_001.pts ..."""


def read_pts(path: str | Path, num_landmarks: int | None = NUM_LANDMARKS) -> np.ndarray:
    """Parse a ``.pts`` file into (n_points, 2) float32; checks n_points against ``num_landmarks``."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    # (line number, stripped text) of non-empty lines
    rows = [(i, s.strip()) for i, s in enumerate(lines, start=1) if s.strip()]
    header: dict[str, str] = {}
    k = 0
    while k < len(rows) and rows[k][1] != "{":
        line_no, text = rows[k]
        key, sep, value = text.partition(":")
        if not sep:
            raise line_error(
                path, line_no, f"expected a header 'key: value' (version: 1 / n_points: 68) or '{{', got {text!r}"
            )
        header[key.strip().lower()] = value.strip()
        k += 1
    if k == len(rows):
        raise line_error(path, len(lines), "expected '{' opening the point list")
    if "n_points" not in header:
        raise line_error(path, rows[0][0] if rows else 1, "expected an 'n_points: N' header line")
    try:
        n_points = int(header["n_points"])
    except ValueError:
        raise ValueError(f"{path}: expected an integer n_points, got {header['n_points']!r}") from None
    if num_landmarks is not None and n_points != num_landmarks:
        raise ValueError(
            f"{path}: expected {num_landmarks} landmarks for the 300W layout, file has n_points: {n_points}"
        )
    body = rows[k + 1 :]
    if not body or body[-1][1] != "}":
        raise line_error(path, len(lines), "expected '}' closing the point list")
    points = body[:-1]
    if len(points) != n_points:
        where = points[n_points][0] if len(points) > n_points else body[-1][0]
        raise line_error(
            path, where, f"expected {n_points} point lines 'x y' (n_points: {n_points}), got {len(points)}"
        )
    out = np.empty((n_points, 2), dtype=np.float32)
    for j, (line_no, text) in enumerate(points):
        tokens = text.split()
        if len(tokens) != 2:
            raise line_error(path, line_no, f"expected 2 fields 'x y', got {len(tokens)}")
        out[j] = parse_floats(tokens, path, line_no, "a point")
    if not np.isfinite(out).all():
        raise ValueError(f"{path}: expected finite coordinates")
    return out


def _find_dir(root: Path, rel: str) -> Path | None:
    """root/rel, matching each component case-insensitively (distributions differ: 'LFPW', 'testSet')."""
    cur = root
    for part in Path(rel).parts:
        exact = cur / part
        if exact.is_dir():
            cur = exact
            continue
        matches = [p for p in cur.iterdir() if p.is_dir() and p.name.lower() == part.lower()] if cur.is_dir() else []
        if not matches:
            return None
        cur = matches[0]
    return cur


def _image_for(pts: Path) -> Path:
    for ext in IMAGE_EXTS:
        cand = pts.with_suffix(ext)
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"300W: no image for annotation {pts} (looked for {pts.stem}.jpg/.png/.jpeg/.bmp)")


def _read_folder(root: Path, rel: str, flags: tuple[bool, bool]) -> list[FaceRecord]:
    folder = _find_dir(root, rel)
    if folder is None:
        raise missing(root / rel, "300W", TREE, "folder")
    pts_files = sorted(folder.glob("*.pts"))
    if not pts_files:
        raise missing(folder / "*.pts", "300W", TREE, "annotation files")
    records = []
    for pts in pts_files:
        landmarks = read_pts(pts)
        bbox = np.concatenate([landmarks.min(0), landmarks.max(0)])
        records.append(
            FaceRecord(
                image_path=_image_for(pts), landmarks=landmarks, bbox=bbox, subsets=np.asarray(flags, dtype=bool)
            )
        )
    warn_far_outside(folder, ((pts.name, r.landmarks, r.image_path) for pts, r in zip(pts_files, records)))
    return records


def _private_folder(root: Path, name: str) -> str:
    """``name`` or ``300W/name``, whichever exists under root (the first when neither does)."""
    for parent in PRIVATE_PARENTS:
        rel = str(Path(parent) / name) if parent else name
        if _find_dir(root, rel) is not None:
            return rel
    return name


def read_300w(root: str | Path, split: str) -> list[FaceRecord]:
    """Read a 300W split into FaceRecords with subset flags (common, challenge).

    split: ``"train"``; ``"test"`` or ``"full"`` (common + challenge, flagged); ``"common"``;
    ``"challenge"``; ``"private"`` (01_Indoor + 02_Outdoor, 600 faces in the official release).
    Training and private faces have both flags False.
    """
    root = require_root(root, "300W", TREE)
    split = check_split(split, SPLITS, "300W")
    plan: list[tuple[str, tuple[bool, bool]]] = []
    if split == "train":
        plan += [(f, (False, False)) for f in TRAIN_FOLDERS]
    if split in ("test", "full", "common"):
        plan += [(f, (True, False)) for f in COMMON_FOLDERS]
    if split in ("test", "full", "challenge"):
        plan += [(f, (False, True)) for f in CHALLENGE_FOLDERS]
    if split == "private":
        plan += [(_private_folder(root, f), (False, False)) for f in PRIVATE_FOLDERS]
    records: list[FaceRecord] = []
    for rel, flags in plan:
        records += _read_folder(root, rel, flags)
    return records
