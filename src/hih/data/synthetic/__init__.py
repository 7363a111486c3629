"""Procedural synthetic faces in the WFLW format: the suite's embedded default dataset.

Every face starts from the WFLW mean shape (98 landmarks) and varies identity (regional and
per-landmark shape noise), head pose (a 3-D lift of the shape with per-region depth, rotated
and projected), expression (mouth opening, smile, eye closing), illumination, make-up,
occlusion and blur. Each of the six variations is recorded as an attribute flag when it
exceeds a threshold, so the six WFLW subsets exist (each 15-22 % of the faces).

Rendering is done with exact-area anti-aliasing written here (polygon coverage exact along
x and supersampled along y, analytic discs and strokes) at the fractional landmark
positions, in the suite's convention (pixel i covers [i, i + 1)): landmarks are exact to
sub-pixel precision and each sits on its drawn feature (contour on the skin edge, eye
corners at the eye polygon's corners, pupils at the centre of the pupil discs, ...).

The parts: :mod:`~hih.data.synthetic.raster` (coverage masks), :mod:`~hih.data.synthetic.face_model`
(shape, pose, appearance and flags of a face), :mod:`~hih.data.synthetic.render` (drawing it),
:mod:`~hih.data.synthetic.faces` (a face from (seed, split, index), the set on disk); the on-disk
writing itself is :mod:`hih.data.generated_set`, shared with the synthetic photos.

``ensure_synthetic(root)`` writes the set once (WFLW list files + images) and reuses it
afterwards; ``read_wflw(root, split)`` reads it.
"""

from __future__ import annotations

from hih.data.generated_set import MANIFEST, read_manifest, write_once, write_wflw_set
from hih.data.synthetic.face_model import (
    ATTRIBUTES,
    BLUR_THRESHOLD,
    EXPRESSION_THRESHOLD,
    MAKEUP_THRESHOLD,
    OCCLUSION_THRESHOLD,
    POSE_THRESHOLD,
    STRONG_RATE,
    FaceParams,
    attribute_flags,
    sample_face,
)
from hih.data.synthetic.faces import (
    GENERATOR_VERSION,
    SPLIT_IDS,
    SyntheticFace,
    ensure_synthetic,
    face_bbox,
    face_rng,
    make_face,
)
from hih.data.synthetic.raster import disc_coverage, ellipse_points, polygon_coverage, stroke_coverage
from hih.data.synthetic.render import background, render_face

__all__ = [
    "ATTRIBUTES",
    "BLUR_THRESHOLD",
    "EXPRESSION_THRESHOLD",
    "GENERATOR_VERSION",
    "MAKEUP_THRESHOLD",
    "MANIFEST",
    "OCCLUSION_THRESHOLD",
    "POSE_THRESHOLD",
    "SPLIT_IDS",
    "STRONG_RATE",
    "FaceParams",
    "SyntheticFace",
    "attribute_flags",
    "background",
    "disc_coverage",
    "ellipse_points",
    "ensure_synthetic",
    "face_bbox",
    "face_rng",
    "make_face",
    "polygon_coverage",
    "read_manifest",
    "render_face",
    "sample_face",
    "stroke_coverage",
    "write_once",
    "write_wflw_set",
]
