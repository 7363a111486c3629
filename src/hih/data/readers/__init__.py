"""Dataset file-format readers: each returns ``list[FaceRecord]`` for a split of a dataset on disk.

The datasets that use them (name, layout, splits) are declared in :mod:`hih.data.datasets`.
"""

from __future__ import annotations

from hih.data.readers.cofw import read_cofw
from hih.data.readers.w300 import read_300w, read_pts
from hih.data.readers.wflw import read_wflw

__all__ = ["read_300w", "read_cofw", "read_pts", "read_wflw"]
