"""Landmark layouts: how many points a dataset annotates, how they mirror, how NME normalises.

Each layout is a frozen :class:`Layout`. Flip permutations are written out by hand
from each dataset's published landmark order (left/right pairs, self-symmetric points
omitted) and verified in the tests against the mean shape: mirroring the mean shape
(``x -> 1 - x``) and permuting lands on the mean shape again.

Flip convention: after a horizontal flip of image and landmarks, landmark ``i`` of the
flipped face is landmark ``flip_perm[i]`` of the mirrored coordinates, i.e.
``flipped = mirrored[flip_perm]``. Every permutation is an involution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
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
            raise ValueError(f"layout {self.name!r}: flip_perm must be a permutation of 0..{n - 1}, got {self.flip_perm}")
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


def _perm_from_pairs(n: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


def _mirror_range(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    if len(a) != len(b):
        raise ValueError("mirror ranges must have equal length")
    return list(zip(a, b))


# WFLW 98 points (Wu et al., "Look at Boundary"): contour 0-32, brows 33-41 / 42-50,
# nose bridge 51-54, nostrils 55-59, eyes 60-67 / 68-75, outer lips 76-87, inner lips 88-95,
# pupils 96 / 97.
_WFLW_PAIRS = (
    [(i, 32 - i) for i in range(16)]
    # brow upper arcs run outer->inner on both sides, lower arcs inner->outer
    + _mirror_range([33, 34, 35, 36, 37, 38, 39, 40, 41], [46, 45, 44, 43, 42, 50, 49, 48, 47])
    + [(55, 59), (56, 58)]
    + _mirror_range([60, 61, 62, 63, 64, 65, 66, 67], [72, 71, 70, 69, 68, 75, 74, 73])
    + [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86)]
    + [(88, 92), (89, 91), (93, 95)]
    + [(96, 97)]
)

# 300W / iBUG 68 points (Sagonas et al.): contour 0-16, brows 17-21 / 22-26, nose 27-35,
# eyes 36-41 / 42-47, outer lips 48-59, inner lips 60-67.
_300W_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    + [(60, 64), (61, 63), (65, 67)]
)

# COFW 29 points (Burgos-Artizzu et al.): brow corners 0-3, brow tops 4-7, eye corners 8-11
# (8/9 outer), eye lids 12-15, pupils 16/17, nose 18-21, mouth 22-27, chin 28.
_COFW_PAIRS = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)]


@lru_cache(maxsize=None)
def load_mean_shape(filename: str) -> np.ndarray:
    """Read a packaged mean shape (``hih/data/meanfaces/<filename>``) as (N, 2) float64 in 0..1."""
    text = resources.files("hih.data").joinpath("meanfaces", filename).read_text()
    values = np.array(text.split(), dtype=np.float64)
    if values.size % 2:
        raise ValueError(f"mean shape {filename}: expected an even number of values (x y pairs), got {values.size}")
    return values.reshape(-1, 2)


def _build(name: str) -> Layout:
    if name == "wflw":
        return Layout(
            name="wflw",
            num_landmarks=98,
            flip_perm=_perm_from_pairs(98, _WFLW_PAIRS),
            norm_pair=(60, 72),
            pupil_pair=(96, 97),
            subset_names=("pose", "expression", "illumination", "makeup", "occlusion", "blur"),
            mean_shape=load_mean_shape("wflw98.txt").copy(),
        )
    if name == "300w":
        return Layout(
            name="300w",
            num_landmarks=68,
            flip_perm=_perm_from_pairs(68, _300W_PAIRS),
            norm_pair=(36, 45),
            pupil_pair=None,
            subset_names=("common", "challenge"),
            mean_shape=load_mean_shape("300w68.txt").copy(),
            eye_contours=(tuple(range(36, 42)), tuple(range(42, 48))),
        )
    if name == "cofw":
        return Layout(
            name="cofw",
            num_landmarks=29,
            flip_perm=_perm_from_pairs(29, _COFW_PAIRS),
            norm_pair=(8, 9),
            pupil_pair=(16, 17),
            subset_names=(),
            mean_shape=load_mean_shape("cofw29.txt").copy(),
        )
    raise AssertionError(name)


LAYOUT_NAMES: tuple[str, ...] = ("wflw", "300w", "cofw")
_ALIASES = {"wflw": "wflw", "wflw98": "wflw", "300w": "300w", "300w68": "300w", "w300": "300w", "ibug": "300w",
            "cofw": "cofw", "cofw29": "cofw", "synthetic": "wflw"}


@lru_cache(maxsize=None)
def _cached(name: str) -> Layout:
    return _build(name)


def get_layout(name: str) -> Layout:
    """The layout for ``"wflw"``, ``"300w"`` or ``"cofw"`` (case-insensitive; ``"synthetic"`` is WFLW)."""
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown landmark layout {name!r}; expected one of {', '.join(LAYOUT_NAMES)}")
    return _cached(_ALIASES[key])


def layout_for_num_landmarks(n: int) -> Layout:
    """The layout with ``n`` landmarks (98 -> WFLW, 68 -> 300W, 29 -> COFW)."""
    for name in LAYOUT_NAMES:
        layout = get_layout(name)
        if layout.num_landmarks == n:
            return layout
    raise ValueError(f"no layout has {n} landmarks; expected 98 (wflw), 68 (300w) or 29 (cofw)")
