"""300W (Sagonas et al. 2013): 3148 train / 689 test (common 554 + challenge 135), 68 points; the
300-W private test set (01_Indoor + 02_Outdoor) as the split ``private``."""

from __future__ import annotations

from hih.data.datasets._registry import DatasetInfo, register_dataset
from hih.data.layouts import Layout, load_mean_shape, perm_from_pairs
from hih.data.readers.w300 import SPLITS, read_300w

# iBUG 68 points: contour 0-16, brows 17-21 / 22-26, nose 27-35, eyes 36-41 / 42-47, outer lips
# 48-59, inner lips 60-67.
_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    + [(60, 64), (61, 63), (65, 67)]
)

W300_LAYOUT = Layout(
    name="300w",
    num_landmarks=68,
    flip_perm=perm_from_pairs(68, _PAIRS),
    norm_pair=(36, 45),
    pupil_pair=None,  # the pupils are the means of the 6-point eye contours
    subset_names=("common", "challenge"),
    mean_shape=load_mean_shape("300w68.txt").copy(),
    eye_contours=(tuple(range(36, 42)), tuple(range(42, 48))),
)

register_dataset(
    DatasetInfo("300w", W300_LAYOUT, read_300w, splits=SPLITS, aliases=("w300",), layout_aliases=("300w68", "ibug"))
)
