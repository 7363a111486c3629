"""WFLW reader (Wu et al. 2018, 98 landmarks, six attribute subsets); also reads the synthetic faces.

List file format, one face per line, whitespace separated, 207 fields:
196 landmark coordinates ``x0 y0 ... x97 y97``, the face box ``x_min y_min x_max y_max``,
six 0/1 attribute flags (pose, expression, illumination, make-up, occlusion, blur) and the
image path relative to ``WFLW_images/``. Coordinates are taken as-is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hih.data.readers._common import check_split, line_error, missing, parse_floats, require_root, warn_far_outside
from hih.data.records import FaceRecord

NUM_LANDMARKS = 98
NUM_ATTRIBUTES = 6  # pose, expression, illumination, make-up, occlusion, blur: the layout's subsets
NUM_FIELDS = 2 * NUM_LANDMARKS + 4 + NUM_ATTRIBUTES + 1  # 207
SPLITS = ("train", "test")
LIST_DIR = Path("WFLW_annotations") / "list_98pt_rect_attr_train_test"

TREE = """\
  <root>/
    WFLW_annotations/list_98pt_rect_attr_train_test/
      list_98pt_rect_attr_train.txt   (or directly <root>/list_98pt_rect_attr_train.txt)
      list_98pt_rect_attr_test.txt
    WFLW_images/                       (or images directly under <root>/)
      0--Parade/0_Parade_marchingband_1_116.jpg
      ..."""


def list_file_name(split: str) -> str:
    return f"list_98pt_rect_attr_{split}.txt"


def find_list_file(root: Path, split: str) -> Path:
    """The annotation list of ``split`` under ``root`` (official sub-folder, or directly under root)."""
    name = list_file_name(split)
    candidates = [root / LIST_DIR / name, root / name]
    for c in candidates:
        if c.is_file():
            return c
    raise missing(candidates[0], "WFLW", TREE, f"annotation list for split {split!r} (also looked for {candidates[1]})")


def read_wflw(root: str | Path, split: str, check_images: bool = True) -> list[FaceRecord]:
    """Read a WFLW split (``"train"`` or ``"test"``) into FaceRecords with six subset flags.

    Images are looked up under ``root/WFLW_images/`` first, then relative to ``root``.
    ``check_images`` tests that every image file exists (a stat per face, cheap).
    Raises FileNotFoundError for a missing root, list file or image (naming file and line),
    ValueError for a malformed line (``<file>:<line>: expected 207 fields, got 205``).
    """
    root = require_root(root, "WFLW", TREE)
    split = check_split(split, SPLITS, "WFLW")
    list_file = find_list_file(root, split)
    image_dirs = [root / "WFLW_images", root]

    records: list[FaceRecord] = []
    line_nos: list[int] = []
    with open(list_file, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != NUM_FIELDS:
                raise line_error(
                    list_file,
                    line_no,
                    f"expected {NUM_FIELDS} fields (196 landmark coordinates, 4 box values, 6 attribute flags, "
                    f"image path), got {len(tokens)}",
                )
            values = parse_floats(tokens[:-1], list_file, line_no, "landmarks, box and attributes")
            landmarks = np.asarray(values[: 2 * NUM_LANDMARKS], dtype=np.float32).reshape(NUM_LANDMARKS, 2)
            bbox = np.asarray(values[2 * NUM_LANDMARKS : 2 * NUM_LANDMARKS + 4], dtype=np.float32)
            flags = values[2 * NUM_LANDMARKS + 4 : 2 * NUM_LANDMARKS + 4 + NUM_ATTRIBUTES]
            if any(f not in (0.0, 1.0) for f in flags):
                raise line_error(list_file, line_no, f"expected attribute flags 0 or 1, got {flags}")
            if not np.isfinite(landmarks).all() or not np.isfinite(bbox).all():
                raise line_error(list_file, line_no, "expected finite landmark and box coordinates")
            if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
                raise line_error(
                    list_file,
                    line_no,
                    f"expected a box x_min y_min x_max y_max with x_max > x_min and y_max > y_min, got {bbox.tolist()}",
                )
            rel = tokens[-1]
            image_path = image_dirs[0] / rel
            if check_images and not image_path.is_file():
                alt = image_dirs[1] / rel
                if alt.is_file():
                    image_path = alt
                else:
                    raise FileNotFoundError(
                        f"{list_file}:{line_no}: image {rel!r} not found (looked for {image_path} and {alt})"
                    )
            records.append(
                FaceRecord(image_path=image_path, landmarks=landmarks, bbox=bbox, subsets=np.asarray(flags, dtype=bool))
            )
            line_nos.append(line_no)
    if not records:
        raise ValueError(f"{list_file}: no faces in the annotation list (expected lines of {NUM_FIELDS} fields)")
    warn_far_outside(list_file, ((f"line {n}", r.landmarks, r.image_path) for n, r in zip(line_nos, records)))
    return records


def format_wflw_line(landmarks: np.ndarray, bbox: np.ndarray, flags: np.ndarray, rel_path: str) -> str:
    """One list-file line in the WFLW format (the inverse of the parser above); used by the synthetic writer."""
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1)
    if landmarks.size != 2 * NUM_LANDMARKS:
        raise ValueError(f"expected {NUM_LANDMARKS} landmarks, got {landmarks.size // 2}")
    if any(c.isspace() for c in rel_path):
        raise ValueError(f"WFLW image paths cannot contain whitespace: {rel_path!r}")
    coords = " ".join(f"{v:.6f}" for v in landmarks)
    box = " ".join(f"{v:.3f}" for v in np.asarray(bbox, dtype=np.float64).reshape(4))
    attrs = " ".join(str(int(bool(f))) for f in np.asarray(flags).reshape(-1))
    return f"{coords} {box} {attrs} {rel_path}"
