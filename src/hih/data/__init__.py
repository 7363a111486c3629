"""Data: the dataset registry (each dataset's reader, layout and splits), the face record, synthetic
faces, transforms, the DataModule.

scipy and h5py (COFW) are imported only when a COFW file is read.
"""

from __future__ import annotations

from hih.data.datasets import (
    DatasetInfo,
    dataset_names,
    get_dataset,
    get_layout,
    layout_for_num_landmarks,
    layout_names,
    read_dataset,
)
from hih.data.layouts import Layout
from hih.data.readers import read_300w, read_cofw, read_wflw
from hih.data.records import FaceRecord, ImageLoadError, load_image, save_image
from hih.data.synthetic import ensure_synthetic

__all__ = [
    "DatasetInfo",
    "FaceRecord",
    "ImageLoadError",
    "Layout",
    "dataset_names",
    "ensure_synthetic",
    "get_dataset",
    "get_layout",
    "layout_for_num_landmarks",
    "layout_names",
    "load_image",
    "read_300w",
    "read_cofw",
    "read_dataset",
    "read_wflw",
    "save_image",
]

# Transforms, geometry, the Dataset and the DataModule belong to another part of the package and
# pull in torch / Lightning; they are resolved lazily (PEP 562) so that importing the readers,
# layouts or the synthetic generator stays cheap (and forked generator workers stay light).
_LAZY_MODULES = ("geometry", "transforms", "dataset", "datamodule", "targets")


def __getattr__(name: str):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f"hih.data.{name}")
    for mod_name in _LAZY_MODULES:
        try:
            mod = importlib.import_module(f"hih.data.{mod_name}")
        except ModuleNotFoundError as e:  # only "file not there yet"; errors inside the module propagate
            if e.name != f"hih.data.{mod_name}":
                raise
            continue
        if name in getattr(mod, "__all__", ()):
            return getattr(mod, name)
    raise AttributeError(f"module 'hih.data' has no attribute {name!r}")
