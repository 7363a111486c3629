"""Landmark layouts: how many points a dataset annotates, how they mirror, how NME normalises.

Each layout is a frozen :class:`Layout`, declared by its dataset's module in
:mod:`hih.data.datasets` (``get_layout`` looks them up there). Flip permutations are written out by hand
from each dataset's published landmark order (left/right pairs, self-symmetric points
omitted) and verified in the tests against the mean shape: mirroring the mean shape
(``x -> 1 - x``) and permuting lands on the mean shape again.

Flip convention: after a horizontal flip of image and landmarks, landmark ``i`` of the
flipped face is landmark ``flip_perm[i]`` of the mirrored coordinates, i.e.
``flipped = mirrored[flip_perm]``. Every permutation is an involution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class Layout:
    """A landmark layout.

    name: canonical lower-case name ("wflw", "300w", "cofw").
    num_landmarks: N.
    flip_perm: tuple of N ints, an involution (see module docstring).
    norm_pair: (i, j) landmark indices whose distance normalises NME (outer eye
        corners: inter-ocular).
    pupil_pair: (i, j) pupil landmarks, or None when the layout has no single pupil
        point (300W: pupils are the mean of each 6-point eye contour, see
        :meth:`pupils`).
    subset_names: names of the evaluation subsets, one bool column each in
        ``FaceRecord.subsets`` and in the batch's ``"subsets"``.
    mean_shape: (N, 2) float64 mean landmark positions in a square face crop, 0..1.
    """

    name: str
    num_landmarks: int
    flip_perm: tuple[int, ...]
    norm_pair: tuple[int, int]
    pupil_pair: tuple[int, int] | None
    subset_names: tuple[str, ...]
    mean_shape: np.ndarray = field(repr=False, compare=False)
    #: For layouts without pupil points: landmark indices of each eye's contour, (left-in-image, right-in-image).
    eye_contours: tuple[tuple[int, ...], tuple[int, ...]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        perm = np.asarray(self.flip_perm)
        n = self.num_landmarks
        if perm.shape != (n,) or sorted(perm.tolist()) != list(range(n)):
            raise ValueError(
                f"layout {self.name!r}: flip_perm must be a permutation of 0..{n - 1}, got {self.flip_perm}"
            )
        if not np.array_equal(perm[perm], np.arange(n)):
            raise ValueError(f"layout {self.name!r}: flip_perm must be an involution")
        if self.mean_shape.shape != (n, 2):
            raise ValueError(f"layout {self.name!r}: mean_shape must be ({n}, 2), got {self.mean_shape.shape}")
        for i in (*self.norm_pair, *(self.pupil_pair or ())):
            if not 0 <= i < n:
                raise ValueError(f"layout {self.name!r}: landmark index {i} out of range 0..{n - 1}")
        self.mean_shape.setflags(write=False)

    @property
    def flip_index(self) -> np.ndarray:
        """flip_perm as an int64 array (N,), ready for fancy indexing of numpy arrays or tensors."""
        return np.asarray(self.flip_perm, dtype=np.int64)

    def flip_landmarks(self, landmarks: np.ndarray, width: float) -> np.ndarray:
        """Mirror (..., N, 2) landmarks in an image of the given width and re-order them.

        With pixel i covering [i, i+1), a horizontal flip maps x -> width - x.
        """
        out = np.array(landmarks, copy=True)
        out[..., 0] = width - out[..., 0]
        return out[..., self.flip_index, :]

    def pupils(self, landmarks: np.ndarray) -> np.ndarray:
        """(..., N, 2) -> (..., 2, 2) pupil positions: the pupil landmarks, or the eye contour means."""
        landmarks = np.asarray(landmarks)
        if self.pupil_pair is not None:
            return landmarks[..., list(self.pupil_pair), :]
        assert self.eye_contours is not None
        return np.stack([landmarks[..., list(idx), :].mean(-2) for idx in self.eye_contours], axis=-2)


def perm_from_pairs(n: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    """The involution of ``n`` points that swaps each (left, right) pair."""
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


def mirror_range(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    """Pairs of two equally long index runs that mirror each other."""
    if len(a) != len(b):
        raise ValueError("mirror ranges must have equal length")
    return list(zip(a, b))


@cache
def load_mean_shape(filename: str) -> np.ndarray:
    """Read a packaged mean shape (``hih/data/meanfaces/<filename>``) as (N, 2) float64 in 0..1."""
    text = resources.files("hih.data").joinpath("meanfaces", filename).read_text()
    values = np.array(text.split(), dtype=np.float64)
    if values.size % 2:
        raise ValueError(f"mean shape {filename}: expected an even number of values (x y pairs), got {values.size}")
    return values.reshape(-1, 2)
