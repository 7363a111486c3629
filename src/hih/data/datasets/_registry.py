"""The dataset registry: one :class:`DatasetInfo` per dataset, looked up by name.

A dataset is one module in :mod:`hih.data.datasets` that calls :func:`register_dataset` (its reader,
its landmark layout with flip pairs, normalisation points and subsets, its splits, and how its
folder is made on first use) plus one ``conf/data/<name>.yaml``. The package imports every module
of the folder up front, so a new file is picked up without further edits (docs/adding_a_dataset.md).
Entries import this module, never the package face, so nothing is circular.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hih.data.layouts import Layout
from hih.data.records import FaceRecord

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

#: read(root, split) -> the split's faces; raises FileNotFoundError / ValueError naming the file.
Reader = Callable[[Path, str], list[FaceRecord]]


@dataclass(frozen=True)
class DatasetInfo:
    """What one dataset is made of.

    name: the dataset name (``data.datamodule.dataset``), lower case.
    layout: its landmark layout (points, flip pairs, NME normalisation, subsets).
    read: the reader, ``read(root, split) -> list[FaceRecord]``.
    splits: the split names the reader takes (``train_split`` / ``test_split``).
    prepare: ``prepare(root, **options)`` writes the dataset on first use (generated data), or None
        for data the user puts on disk (the root must then exist).
    options: the dataset's own DataModule options and their defaults (e.g. the synthetic set's
        ``n_train``); the DataModule refuses others.
    aliases: other names of the dataset (and of its layout in :func:`get_layout`).
    layout_aliases: other names of its layout alone (e.g. ``"wflw98"``).
    """

    name: str
    layout: Layout
    read: Reader
    splits: tuple[str, ...] = ("train", "test")
    prepare: Callable[..., Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    layout_aliases: tuple[str, ...] = ()

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The dataset's options: its defaults overlaid with ``options``; unknown keys raise."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = sorted(self.options) or "none"
            raise ValueError(f"dataset {self.name!r} does not take the option(s) {unknown}; its options: {accepted}")
        return {**self.options, **options}


_DATASETS: dict[str, DatasetInfo] = {}
_NAMES: dict[str, str] = {}  # every name and alias -> the dataset's name
_LAYOUTS: dict[str, Layout] = {}  # layout names, their aliases and dataset names -> layout


def _key(name: object) -> str:
    return str(name).strip().lower()


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add ``info``; a name or alias already taken by another dataset raises."""
    names = [_key(n) for n in (info.name, *info.aliases)]
    for n in names:
        if _NAMES.get(n, info.name) != info.name:
            raise ValueError(f"dataset name {n!r} is already registered by {_NAMES[n]!r}")
    layout_names_ = [_key(n) for n in (info.layout.name, *info.layout_aliases)]
    for n in (*layout_names_, *names):
        other = _LAYOUTS.get(n)
        if other is not None and other != info.layout:
            raise ValueError(f"dataset {info.name!r}: layout name {n!r} already names another layout ({other.name!r})")
    _DATASETS[info.name] = info
    for n in names:
        _NAMES[n] = info.name
    for n in (*layout_names_, *names):
        _LAYOUTS[n] = info.layout
    return info


def get_dataset(name: str) -> DatasetInfo:
    key = _key(name)
    if key not in _NAMES:
        raise ValueError(
            f"unknown dataset {name!r}; expected one of {', '.join(dataset_names())} "
            "(or a module in hih/data/datasets/ that registers it)"
        )
    return _DATASETS[_NAMES[key]]


def dataset_names() -> list[str]:
    return sorted(_DATASETS)


def read_dataset(name: str, root: str | Path, split: str) -> list[FaceRecord]:
    """Read ``split`` of dataset ``name`` under ``root`` (generated datasets: prepare them first)."""
    info = get_dataset(name)
    root = Path(root).expanduser()
    if info.prepare is not None and not root.is_dir():
        raise FileNotFoundError(
            f"{info.name} dataset root {root} does not exist; it is written on first use by "
            f"the DataModule (or call hih.data.datasets.get_dataset({info.name!r}).prepare(root))"
        )
    return info.read(root, split)


def get_layout(name: str) -> Layout:
    """A layout by its name, an alias, or the name of a dataset that uses it (case-insensitive)."""
    key = _key(name)
    if key not in _LAYOUTS:
        raise ValueError(f"unknown landmark layout {name!r}; expected one of {', '.join(layout_names())}")
    return _LAYOUTS[key]


def layout_names() -> list[str]:
    """The canonical names of the registered layouts."""
    return sorted({layout.name for layout in _LAYOUTS.values()})


def layout_for_num_landmarks(n: int) -> Layout:
    """The layout with ``n`` landmarks (98 -> WFLW, 68 -> 300W, 29 -> COFW)."""
    found = {layout.name: layout for layout in _LAYOUTS.values() if layout.num_landmarks == n}
    if len(found) != 1:
        have = ", ".join(
            f"{layout.num_landmarks} ({name})"
            for name, layout in sorted({lay.name: lay for lay in _LAYOUTS.values()}.items())
        )
        why = "no layout" if not found else f"several layouts ({sorted(found)})"
        raise ValueError(f"{why} with {n} landmarks; registered: {have}")
    return next(iter(found.values()))
