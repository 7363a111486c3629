"""Dataset readers: each returns ``list[FaceRecord]`` for a split of a dataset on disk."""

from __future__ import annotations

from pathlib import Path

from hih.data.readers.cofw import read_cofw
from hih.data.readers.w300 import read_300w, read_pts
from hih.data.readers.wflw import read_wflw
from hih.data.records import FaceRecord

#: dataset name -> landmark layout name (see hih.data.layouts.get_layout)
DATASET_LAYOUTS = {"wflw": "wflw", "300w": "300w", "cofw": "cofw", "synthetic": "wflw"}
DATASET_NAMES: tuple[str, ...] = tuple(DATASET_LAYOUTS)


def read_dataset(name: str, root: str | Path, split: str) -> list[FaceRecord]:
    """Read ``split`` of dataset ``name`` ("wflw", "300w", "cofw", "synthetic") under ``root``.

    "synthetic" is the WFLW reader on a folder written by :func:`hih.data.synthetic.ensure_synthetic`
    (call that first; this function does not generate).
    """
    key = str(name).strip().lower()
    if key == "wflw":
        return read_wflw(root, split)
    if key == "synthetic":
        if not Path(root).expanduser().is_dir():
            raise FileNotFoundError(
                f"synthetic dataset root {root} does not exist; create it with "
                f"hih.data.synthetic.ensure_synthetic({str(root)!r})"
            )
        return read_wflw(root, split)
    if key in ("300w", "w300"):
        return read_300w(root, split)
    if key == "cofw":
        return read_cofw(root, split)
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")


__all__ = ["DATASET_LAYOUTS", "DATASET_NAMES", "read_300w", "read_cofw", "read_dataset", "read_pts", "read_wflw"]
