"""COFW (Burgos-Artizzu et al. 2013): 1345 train / 507 test faces, 29 points, own face boxes,
occlusion flags."""

from __future__ import annotations

from hih.data.datasets._registry import DatasetInfo, register_dataset
from hih.data.layouts import Layout, load_mean_shape, perm_from_pairs
from hih.data.readers.cofw import SPLITS, read_cofw

# Brow corners 0-3, brow tops 4-7, eye corners 8-11 (8 / 9 outer), eye lids 12-15, pupils 16 / 17,
# nose 18-21, mouth 22-27, chin 28.
_PAIRS = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)]

COFW_LAYOUT = Layout(
    name="cofw",
    num_landmarks=29,
    flip_perm=perm_from_pairs(29, _PAIRS),
    norm_pair=(8, 9),
    pupil_pair=(16, 17),
    subset_names=(),
    mean_shape=load_mean_shape("cofw29.txt").copy(),
)

register_dataset(DatasetInfo("cofw", COFW_LAYOUT, read_cofw, splits=SPLITS, layout_aliases=("cofw29",)))
