"""Five-point faces from a CSV file: the worked example of docs/adding_a_dataset.md.

A dataset is this one module (reader, layout, splits, registration) plus ``conf/data/face5.yaml``.
The five points are the keypoints face detectors give (eye centres, nose tip, mouth corners), so
any landmark set that includes them can be converted to this format.

File format, one CSV per split under the dataset's root: ``<root>/<split>.csv`` with a header line
``image,x0,y0,x1,y1,x2,y2,x3,y3,x4,y4`` and one face per line; ``image`` is relative to the root;
coordinates in image pixels (pixel ``i`` covers ``[i, i + 1)``). The face box is the points' extent
enlarged :data:`BOX_SCALE` times about its centre (the five points span only the inner face).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from hih.data.datasets._registry import DatasetInfo, register_dataset
from hih.data.layouts import Layout, perm_from_pairs
from hih.data.readers._common import check_split, line_error, missing, parse_floats, require_root
from hih.data.records import FaceRecord

SPLITS = ("train", "test")
HEADER = ["image"] + [f"{axis}{i}" for i in range(5) for axis in "xy"]
BOX_SCALE = 2.0
TREE = """\
  <root>/
    train.csv     image,x0,y0,...,x4,y4   (one face per line)
    test.csv
    <images, at the paths the CSV names>"""

FACE5_LAYOUT = Layout(
    name="face5",
    num_landmarks=5,
    # 0 left eye, 1 right eye, 2 nose tip, 3 left mouth corner, 4 right mouth corner (left = smaller x)
    flip_perm=perm_from_pairs(5, [(0, 1), (3, 4)]),
    norm_pair=(0, 1),  # inter-pupil distance
    pupil_pair=(0, 1),
    subset_names=(),
    # the WFLW mean shape's pupils (96, 97), nose tip (54) and mouth corners (76, 82)
    mean_shape=np.array([[0.3220, 0.4038], [0.6751, 0.4002], [0.4981, 0.5703], [0.3392, 0.6969], [0.6587, 0.6932]]),
)


def read_face5(root: str | Path, split: str) -> list[FaceRecord]:
    """Read ``<root>/<split>.csv``; errors name the file and line."""
    root = require_root(root, "face5", TREE)
    split = check_split(split, SPLITS, "face5")
    path = root / f"{split}.csv"
    if not path.is_file():
        raise missing(path, "face5", TREE, f"CSV file of split {split!r}")
    records = []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header != HEADER:
            raise line_error(path, 1, f"expected the header {','.join(HEADER)}, got {header}")
        for line_no, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(HEADER):
                raise line_error(
                    path, line_no, f"expected {len(HEADER)} fields (image and 10 coordinates), got {len(row)}"
                )
            points = np.asarray(parse_floats(row[1:], path, line_no, "coordinates"), dtype=np.float32).reshape(5, 2)
            image = root / row[0]
            if not image.is_file():
                raise FileNotFoundError(f"{path}:{line_no}: image {row[0]!r} not found (looked for {image})")
            centre, half = (points.min(0) + points.max(0)) / 2, (points.max(0) - points.min(0)) * BOX_SCALE / 2
            records.append(FaceRecord(image, points, np.concatenate([centre - half, centre + half]), np.zeros(0, bool)))
    if not records:
        raise ValueError(f"{path}: no faces (expected lines of {len(HEADER)} fields after the header)")
    return records


register_dataset(DatasetInfo("face5", FACE5_LAYOUT, read_face5, splits=SPLITS))
