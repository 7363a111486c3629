"""WFLW (Wu et al. 2018, "Look at Boundary"): 7500 train / 2500 test faces, 98 points, six test subsets."""

from __future__ import annotations

from hih.data.datasets._registry import DatasetInfo, register_dataset
from hih.data.layouts import Layout, load_mean_shape, mirror_range, perm_from_pairs
from hih.data.readers.wflw import SPLITS, read_wflw

# Contour 0-32, brows 33-41 / 42-50, nose bridge 51-54, nostrils 55-59, eyes 60-67 / 68-75, outer
# lips 76-87, inner lips 88-95, pupils 96 / 97.
_PAIRS = (
    [(i, 32 - i) for i in range(16)]
    # brow upper arcs run outer->inner on both sides, lower arcs inner->outer
    + mirror_range([33, 34, 35, 36, 37, 38, 39, 40, 41], [46, 45, 44, 43, 42, 50, 49, 48, 47])
    + [(55, 59), (56, 58)]
    + mirror_range([60, 61, 62, 63, 64, 65, 66, 67], [72, 71, 70, 69, 68, 75, 74, 73])
    + [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86)]
    + [(88, 92), (89, 91), (93, 95)]
    + [(96, 97)]
)

WFLW_LAYOUT = Layout(
    name="wflw",
    num_landmarks=98,
    flip_perm=perm_from_pairs(98, _PAIRS),
    norm_pair=(60, 72),
    pupil_pair=(96, 97),
    subset_names=("pose", "expression", "illumination", "makeup", "occlusion", "blur"),
    mean_shape=load_mean_shape("wflw98.txt").copy(),
)

register_dataset(DatasetInfo("wflw", WFLW_LAYOUT, read_wflw, splits=SPLITS, layout_aliases=("wflw98",)))
