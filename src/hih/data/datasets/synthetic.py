"""The built-in synthetic faces: procedural faces in WFLW's list format (98 points, six subsets),
written to the dataset folder on first use (:func:`hih.data.synthetic.ensure_synthetic`)."""

from __future__ import annotations

from pathlib import Path

from hih.data.datasets._registry import DatasetInfo, register_dataset
from hih.data.datasets.wflw import WFLW_LAYOUT
from hih.data.readers.wflw import SPLITS, read_wflw
from hih.data.synthetic import ensure_synthetic


def _prepare(root: Path, n_train: int, n_test: int, synthetic_seed: int) -> None:
    ensure_synthetic(root, n_train=n_train, n_test=n_test, seed=synthetic_seed)


register_dataset(
    DatasetInfo(
        "synthetic",
        WFLW_LAYOUT,
        read_wflw,
        splits=SPLITS,
        prepare=_prepare,
        options={"n_train": 2000, "n_test": 500, "synthetic_seed": 0},
    )
)
