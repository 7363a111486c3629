"""Landmark layouts: flip permutations, normalisation pairs, mean shapes."""

from __future__ import annotations

import numpy as np
import pytest

from hih.data.datasets import get_layout, layout_for_num_landmarks, layout_names

EXPECTED = {
    "wflw": dict(n=98, norm=(60, 72), pupils=(96, 97), subsets=6),
    "300w": dict(n=68, norm=(36, 45), pupils=None, subsets=2),
    "cofw": dict(n=29, norm=(8, 9), pupils=(16, 17), subsets=0),
}


@pytest.mark.parametrize("name", ["wflw", "300w", "cofw"])
def test_layout_fields(name):
    layout = get_layout(name)
    exp = EXPECTED[name]
    assert layout.name == name
    assert layout.num_landmarks == exp["n"] == len(layout.flip_perm)
    assert layout.norm_pair == exp["norm"]
    assert layout.pupil_pair == exp["pupils"]
    assert len(layout.subset_names) == exp["subsets"]
    assert layout.mean_shape.shape == (exp["n"], 2)
    assert layout.mean_shape.min() > 0 and layout.mean_shape.max() < 1
    assert layout_for_num_landmarks(exp["n"]) is layout


def test_get_layout_case_insensitive_and_unknown():
    assert get_layout("WFLW") is get_layout("wflw")
    assert get_layout(" 300W ") is get_layout("300w")
    with pytest.raises(ValueError, match="300w, cofw, .*wflw"):
        get_layout("aflw")
    with pytest.raises(ValueError, match="98 \\(wflw\\)"):
        layout_for_num_landmarks(21)


def test_wflw_subset_names():
    assert get_layout("wflw").subset_names == ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
    assert get_layout("300w").subset_names == ("common", "challenge")


@pytest.mark.parametrize("name", layout_names())
def test_flip_perm_is_involution(name):
    perm = get_layout(name).flip_index
    assert sorted(perm.tolist()) == list(range(len(perm)))
    np.testing.assert_array_equal(perm[perm], np.arange(len(perm)))


@pytest.mark.parametrize("name", layout_names())
def test_flip_maps_outer_eye_corners_and_pupils(name):
    layout = get_layout(name)
    a, b = layout.norm_pair
    assert layout.flip_perm[a] == b and layout.flip_perm[b] == a
    if layout.pupil_pair:
        a, b = layout.pupil_pair
        assert layout.flip_perm[a] == b
    # the left outer eye corner (smaller x in the mean shape) maps to the right one
    ms = layout.mean_shape
    left, right = sorted(layout.norm_pair, key=lambda i: ms[i, 0])
    assert ms[left, 0] < 0.5 < ms[right, 0]


@pytest.mark.parametrize("name", layout_names())
def test_mirrored_mean_shape_matches(name):
    """Mirroring the mean shape and permuting it lands on the mean shape (each point on its partner)."""
    layout = get_layout(name)
    ms = layout.mean_shape
    # mirror about the shape's own vertical axis (the crops are not perfectly centred)
    flipped = layout.flip_landmarks(ms, width=2 * ms[:, 0].mean())
    err = np.linalg.norm(flipped - ms, axis=1)
    # the averaged shapes are near-symmetric: every point within 3.5 % of the crop, the median within 1.2 %
    assert err.max() < 0.035, err.argmax()
    assert np.median(err) < 0.012
    # and the permutation is the best one: a wrong pair (e.g. swapping two neighbours) would be far off
    nearest = np.linalg.norm(flipped[:, None] - ms[None], axis=-1).argmin(axis=1)
    np.testing.assert_array_equal(nearest, np.arange(layout.num_landmarks))


def test_flip_landmarks_pixel_convention():
    layout = get_layout("wflw")
    lm = layout.mean_shape * 100 + 3.25
    flipped = layout.flip_landmarks(lm, width=120)
    # pixel i covers [i, i+1): flipping twice is the identity, and x -> W - x
    np.testing.assert_allclose(layout.flip_landmarks(flipped, width=120), lm)
    assert flipped[72, 0] == pytest.approx(120 - lm[60, 0])
    batch = layout.flip_landmarks(np.stack([lm, lm]), width=120)
    np.testing.assert_allclose(batch[1], flipped)


def test_pupils_300w_from_eye_contours():
    layout = get_layout("300w")
    lm = layout.mean_shape
    pupils = layout.pupils(lm)
    np.testing.assert_allclose(pupils[0], lm[36:42].mean(0))
    np.testing.assert_allclose(pupils[1], lm[42:48].mean(0))
    wflw = get_layout("wflw")
    np.testing.assert_allclose(wflw.pupils(wflw.mean_shape), wflw.mean_shape[[96, 97]])


def test_mean_shape_is_read_only_and_packaged():
    layout = get_layout("cofw")
    with pytest.raises(ValueError):
        layout.mean_shape[0, 0] = 0.0
    from importlib import resources

    assert resources.files("hih.data").joinpath("meanfaces", "wflw98.txt").is_file()
