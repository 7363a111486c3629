"""Every dataset the suite reads, one module each (see :mod:`hih.data.datasets._registry`).

Importing this package imports each of its modules, so that listings, the DataModule and the tests
see every registered dataset whatever was imported before.
"""

from __future__ import annotations

import importlib
import pkgutil

from hih.data.datasets._registry import (
    DatasetInfo,
    dataset_names,
    get_dataset,
    get_layout,
    layout_for_num_landmarks,
    layout_names,
    read_dataset,
    register_dataset,
)

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = [
    "DatasetInfo",
    "dataset_names",
    "get_dataset",
    "get_layout",
    "layout_for_num_landmarks",
    "layout_names",
    "read_dataset",
    "register_dataset",
]
