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

``ensure_synthetic(root)`` writes the set once (WFLW list files + images) and reuses it
afterwards; ``read_wflw(root, split)`` reads it.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hih.data.layouts import load_mean_shape
from hih.data.readers.wflw import LIST_DIR, format_wflw_line, list_file_name
from hih.data.records import save_image

#: Bump when the generator's output changes, so cached sets are regenerated.
GENERATOR_VERSION = 1
ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
#: Probability that a face gets a strong (flagged) variation of each attribute.
STRONG_RATE = {"pose": 0.18, "expression": 0.2, "illumination": 0.22, "makeup": 0.15, "occlusion": 0.2, "blur": 0.18}
#: Flag thresholds: pose angles in degrees (yaw, pitch, roll).
POSE_THRESHOLD = (30.0, 20.0, 25.0)
EXPRESSION_THRESHOLD = {"mouth_open": 0.5, "smile": 0.5, "eye_close": 0.6}
MAKEUP_THRESHOLD = 0.5
OCCLUSION_THRESHOLD = 0.1  # fraction of landmarks under the occluder
BLUR_THRESHOLD = 0.012  # Gaussian sigma as a fraction of the face box size
SPLIT_IDS = {"train": 0, "test": 1}
MANIFEST = "synthetic_manifest.json"

_N = 98
_CENTRE3 = np.array([0.5, 0.5, 0.2])  # rotation centre of the head (crop units)


# ----------------------------------------------------------------------------- rasterisation


def polygon_coverage(pts: np.ndarray, x0: int, y0: int, w: int, h: int, sub: int = 4) -> np.ndarray:
    """Area coverage (h, w) in [0, 1] of a polygon (K, 2) over pixels [x0, x0 + w) x [y0, y0 + h).

    Exact along x (each scanline's spans are integrated analytically over the pixel), midpoint
    supersampled with ``sub`` scanlines per pixel along y. Even-odd fill rule.
    """
    p = np.asarray(pts, dtype=np.float64) - (x0, y0)
    rows = h * sub
    ys = (np.arange(rows) + 0.5) / sub
    a, b = p, np.roll(p, -1, axis=0)
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    Y = ys[:, None]
    cross = (Y >= lo) & (Y < hi)  # half-open: a vertex is counted once
    dy = b[:, 1] - a[:, 1]
    t = (Y - a[:, 1]) / np.where(dy != 0, dy, 1.0)
    X = np.where(cross, a[:, 0] + t * (b[:, 0] - a[:, 0]), np.inf)
    X.sort(axis=1)
    if X.shape[1] % 2:
        X = np.concatenate([X, np.full((rows, 1), np.inf)], axis=1)
    xa, xb = X[:, 0::2], X[:, 1::2]
    valid = np.isfinite(xb)
    pixel_row = np.broadcast_to((np.arange(rows) // sub)[:, None], xa.shape)[valid]
    width = w + 2
    # A span [xa, xb] covers pixel i by G(xb, i) - G(xa, i) with G(x, i) = clip(x - i, 0, 1). The
    # cumulative sum over i of the deltas below is G(x, i) - 1 (times the sign); the -1 terms of a span's
    # two ends cancel. Sub-scanlines are summed before the cumulative sum (it is linear).
    xs = np.concatenate([np.clip(xb[valid], 0, w), np.clip(xa[valid], 0, w)])
    sign = np.concatenate([np.ones(valid.sum()), -np.ones(valid.sum())])
    rr = np.concatenate([pixel_row, pixel_row]) * width
    fl = np.floor(xs).astype(np.int64)
    fr = xs - fl
    acc = np.bincount(
        np.concatenate([rr + fl, rr + fl + 1]),
        weights=np.concatenate([-sign * (1.0 - fr), -sign * fr]),
        minlength=h * width,
    )
    cov = np.cumsum(acc.reshape(h, width), axis=1)[:, :w] / sub
    return np.clip(cov, 0.0, 1.0).astype(np.float32)


def _pixel_centres(x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(x0, x0 + w) + 0.5, np.arange(y0, y0 + h) + 0.5)


def disc_coverage(centre, radius: float, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Approximate area coverage of a disc: a 1-px linear ramp across the circle (symmetric, so the
    coverage's centroid is the disc centre)."""
    xx, yy = _pixel_centres(x0, y0, w, h)
    d = np.hypot(xx - centre[0], yy - centre[1])
    return np.clip(radius + 0.5 - d, 0.0, 1.0).astype(np.float32)


def stroke_coverage(pts: np.ndarray, width: float, closed: bool, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Coverage of a polyline of the given width (round caps/joins) centred on the points."""
    p = np.asarray(pts, dtype=np.float64) - (x0, y0)  # ROI-relative keeps float32 precise
    if closed:
        p = np.concatenate([p, p[:1]])
    a = p[:-1].astype(np.float32)
    ab = (p[1:] - p[:-1]).astype(np.float32)
    inv = (1.0 / np.maximum((ab * ab).sum(-1), 1e-12)).astype(np.float32)
    px = (np.arange(w, dtype=np.float32) + 0.5)[None, :, None] - a[:, 0]  # (1, w, S)
    py = (np.arange(h, dtype=np.float32) + 0.5)[:, None, None] - a[:, 1]  # (h, 1, S)
    t = np.clip((px * ab[:, 0] + py * ab[:, 1]) * inv, 0.0, 1.0)  # (h, w, S)
    dx = px - t * ab[:, 0]
    dy = py - t * ab[:, 1]
    d = np.sqrt((dx * dx + dy * dy).min(axis=-1))
    return np.clip(np.float32(width / 2 + 0.5) - d, 0.0, 1.0)


def ellipse_points(
    centre, axes, angle: float = 0.0, n: int = 48, t0: float = 0.0, t1: float = 2 * np.pi, endpoint: bool = False
) -> np.ndarray:
    t = np.linspace(t0, t1, n, endpoint=endpoint)
    ca, sa = np.cos(angle), np.sin(angle)
    x, y = axes[0] * np.cos(t), axes[1] * np.sin(t)
    return np.stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y], axis=1)


class _Canvas:
    """Float RGB image with region-limited painting of coverage masks."""

    def __init__(self, image: np.ndarray):
        self.img = image
        self.h, self.w = image.shape[:2]

    def roi(self, pts: np.ndarray, pad: float) -> tuple[int, int, int, int] | None:
        p = np.asarray(pts).reshape(-1, 2)
        x0 = max(int(np.floor(p[:, 0].min() - pad)), 0)
        y0 = max(int(np.floor(p[:, 1].min() - pad)), 0)
        x1 = min(int(np.ceil(p[:, 0].max() + pad)) + 1, self.w)
        y1 = min(int(np.ceil(p[:, 1].max() + pad)) + 1, self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1 - x0, y1 - y0

    def paint(self, cov: np.ndarray, roi, color, alpha: float = 1.0) -> None:
        x0, y0, w, h = roi
        sub = self.img[y0 : y0 + h, x0 : x0 + w]
        a = (cov * alpha)[..., None]
        sub += (np.asarray(color, np.float32) - sub) * a

    def polygon(self, pts, color, alpha: float = 1.0, soften: float = 0.0, sub: int = 4) -> None:
        roi = self.roi(pts, 2 + 3 * soften)
        if roi is None:
            return
        cov = polygon_coverage(pts, *roi, sub=sub)
        if soften > 0:
            cov = cv2.GaussianBlur(cov, (0, 0), soften)
        self.paint(cov, roi, color, alpha)

    def stroke(self, pts, width: float, color, alpha: float = 1.0, closed: bool = False, soften: float = 0.0) -> None:
        roi = self.roi(pts, width + 2 + 3 * soften)
        if roi is None:
            return
        cov = stroke_coverage(pts, width, closed, *roi)
        if soften > 0:
            cov = cv2.GaussianBlur(cov, (0, 0), soften)
        self.paint(cov, roi, color, alpha)

    def disc(self, centre, radius: float, color, alpha: float = 1.0) -> None:
        roi = self.roi(np.asarray(centre)[None], radius + 2)
        if roi is not None:
            self.paint(disc_coverage(centre, radius, *roi), roi, color, alpha)


# ----------------------------------------------------------------------------- face model


def _mean_shape3d() -> np.ndarray:
    """WFLW mean shape lifted to 3-D: depth from a head ellipsoid plus per-region offsets (crop units)."""
    xy = load_mean_shape("wflw98.txt").astype(np.float64)
    z = _head_depth(xy)
    bump = np.zeros(_N)
    bump[51:55] = [0.03, 0.06, 0.10, 0.14]  # nose bridge rising to the tip
    bump[55:60] = [0.03, 0.06, 0.08, 0.06, 0.03]  # nostril base
    bump[60:76] = -0.035  # eyes sit in their sockets
    bump[96:98] = -0.025
    bump[76:96] = 0.02
    return np.concatenate([xy, (z + bump)[:, None]], axis=1)


def _head_depth(xy: np.ndarray) -> np.ndarray:
    u = (xy[:, 0] - 0.5) / 0.44
    v = (xy[:, 1] - 0.55) / 0.55
    return 0.33 * np.sqrt(np.clip(1 - u**2, 0, 1)) * np.sqrt(np.clip(1 - 0.6 * v**2, 0, 1))


def _lift(xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    return np.concatenate([xy, _head_depth(xy)[:, None]], axis=1)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass
class FaceParams:
    """Everything that determines one synthetic face (sampled by :func:`sample_face`).

    Shapes are in crop units (the mean shape's 0..1 square), mapped to the image by
    ``origin + scale * projected``; colours are RGB 0..255.
    """

    canvas_hw: tuple[int, int]
    shape3d: np.ndarray  # (98, 3) landmarks after identity + expression, before pose
    aux3d: dict  # name -> (K, 3): forehead, hair, fringe, ears, neck, clothes
    yaw: float
    pitch: float
    roll: float
    scale: float
    origin: np.ndarray  # (2,)
    skin: np.ndarray
    hair: np.ndarray
    brow: np.ndarray
    lip: np.ndarray
    iris: np.ndarray
    clothes: np.ndarray
    eye_shadow: np.ndarray
    makeup: float
    mouth_open: float
    smile: float
    eye_close: float
    brightness: float
    gradient: float
    gradient_dir: float
    cast: np.ndarray  # (3,) per-channel gain
    occluder: dict | None
    blur_sigma: float
    noise_sigma: float
    texture_seed: int
    flags: np.ndarray = field(default_factory=lambda: np.zeros(6, bool))

    def project(self, pts3: np.ndarray) -> np.ndarray:
        """(K, 3) crop-unit points -> (K, 2) image pixels."""
        q = (pts3 - _CENTRE3) @ _rotation(self.yaw, self.pitch, self.roll).T
        return self.origin + self.scale * (q[:, :2] + 0.5)

    @property
    def landmarks(self) -> np.ndarray:
        return self.project(self.shape3d)


def _strong(rng: np.random.Generator, name: str) -> bool:
    return bool(rng.random() < STRONG_RATE[name])


def _identity(rng: np.random.Generator) -> np.ndarray:
    s = _mean_shape3d()
    xy = s[:, :2]
    eyes_l, eyes_r = np.r_[60:68, 96], np.r_[68:76, 97]
    for idx in (eyes_l, eyes_r):
        c = xy[idx[:-1]].mean(0)
        k = rng.uniform(0.88, 1.12)
        xy[idx] = c + (xy[idx] - c) * [k, k * rng.uniform(0.85, 1.3)]
    spacing = rng.uniform(-0.015, 0.015)
    xy[eyes_l, 0] -= spacing
    xy[eyes_r, 0] += spacing
    brows = np.r_[33:51]
    xy[brows, 1] += rng.uniform(-0.02, 0.012)
    thick = rng.uniform(0.7, 1.4)  # brow thickness: move lower arcs relative to upper
    for lower, upper in ((np.r_[38:42], [37, 36, 35, 34]), (np.r_[47:51], [45, 44, 43, 42])):
        xy[lower, 1] = xy[upper, 1] + (xy[lower, 1] - xy[upper, 1]) * thick
    nose = np.r_[53:60]
    xy[nose, 1] += rng.uniform(-0.012, 0.02) * np.array([0.5, 1, 1, 1, 1, 1, 1])
    nc = xy[57, 0]
    xy[55:60, 0] = nc + (xy[55:60, 0] - nc) * rng.uniform(0.85, 1.2)
    mouth = np.r_[76:96]
    mc = xy[mouth].mean(0)
    xy[mouth] = mc + (xy[mouth] - mc) * [rng.uniform(0.88, 1.12), rng.uniform(0.85, 1.2)]
    xy[mouth, 1] += rng.uniform(-0.01, 0.015)
    jaw = rng.uniform(0.9, 1.06)  # lower face width
    wgt = np.clip((xy[:33, 1] - 0.45) / 0.45, 0, 1)
    xy[:33, 0] = 0.5 + (xy[:33, 0] - 0.5) * (1 + (jaw - 1) * wgt)
    xy[:96] += rng.normal(0, 0.0025, (96, 2))
    xy[:] = (0.5, 0.6) + (xy - (0.5, 0.6)) * [rng.uniform(0.9, 1.1), rng.uniform(0.92, 1.08)]
    return s


def _apply_expression(s: np.ndarray, mouth_open: float, smile: float, eye_close: float, rng) -> None:
    xy = s[:, :2]
    # close the mean mouth (it is slightly open on average), then open it by the jaw drop
    up, lo = [89, 90, 91], [95, 94, 93]
    mid = (xy[up, 1] + xy[lo, 1]) / 2
    gap = mouth_open * 0.11
    new_lo = mid + gap * np.array([0.85, 1.0, 0.85])
    new_up = mid - 0.12 * gap * np.array([0.85, 1.0, 0.85])
    d_lo = new_lo - xy[lo, 1]
    d_up = new_up - xy[up, 1]
    xy[lo, 1] = new_lo
    xy[up, 1] = new_up
    # corners (where the lips meet) drop a little with the jaw; the lower lip follows the inner lower lip
    xy[[88, 92, 76, 82], 1] += 0.3 * gap
    xs = np.r_[xy[88, 0], xy[lo, 0], xy[92, 0]]  # left to right
    outer_lo = np.r_[83:88]
    xy[outer_lo, 1] += np.interp(xy[outer_lo, 0], xs, np.r_[0.3 * gap, d_lo, 0.3 * gap])
    xy[77:82, 1] += np.interp(xy[77:82, 0], xy[up, 0], d_up)
    chin = np.arange(5, 28)
    drop = max(float(d_lo[1]), 0.0)
    xy[chin, 1] += 0.9 * drop * np.cos(np.clip((chin - 16) / 11.5, -1, 1) * np.pi / 2) ** 1.5
    # surprise: brows go up with a wide-open mouth
    xy[33:51, 1] -= 0.02 * max(mouth_open - 0.4, 0) * rng.uniform(0.5, 1.5)
    # smile: corners out and up, neighbours half-way
    for idx, k in (([76, 88, 82, 92], 1.0), ([77, 87, 89, 95, 81, 83, 91, 93], 0.45)):
        side = np.sign(xy[idx, 0] - xy[79, 0])
        xy[idx, 0] += smile * k * 0.025 * side
        xy[idx, 1] -= smile * k * 0.03
    # eye closing: the upper lid comes down to the lower lid
    for upper, lower in (([61, 62, 63], [67, 66, 65]), ([69, 70, 71], [75, 74, 73])):
        xy[upper] += 0.95 * eye_close * (xy[lower] - xy[upper])


def _aux_shapes(s: np.ndarray, rng) -> dict:
    xy = s[:, :2]
    p0, p32 = xy[0], xy[32]
    mid, half = (p0 + p32) / 2, np.linalg.norm(p32 - p0) / 2
    top = rng.uniform(0.36, 0.42)
    t = np.linspace(0, np.pi, 25)[1:-1]
    forehead = np.stack([mid[0] + half * np.cos(t), mid[1] - top * np.sin(t)], 1)  # from 32 over the top to 0
    hair_axes = (half * rng.uniform(1.08, 1.18), top * rng.uniform(1.12, 1.25))
    long_hair = rng.random() < 0.45
    th = np.linspace(np.pi, 2 * np.pi, 33)
    arc = np.stack([mid[0] + hair_axes[0] * np.cos(th), mid[1] - 0.02 + hair_axes[1] * np.sin(th)], 1)
    hair_bottom = rng.uniform(0.95, 1.15) if long_hair else mid[1] + rng.uniform(0.05, 0.15)
    hair = np.concatenate([arc, [[arc[-1, 0] + 0.02, hair_bottom], [arc[0, 0] - 0.02, hair_bottom]]])
    hairline = mid[1] - top * rng.uniform(0.5, 0.72)
    fringe_low = np.stack(
        [
            mid[0] + half * 1.02 * np.cos(th[::-1]),
            np.maximum(
                mid[1] - top * 1.02 * np.abs(np.sin(th[::-1])),
                hairline + 0.03 * np.sin(np.linspace(0, rng.uniform(2, 6) * np.pi, 33)),
            ),
        ],
        1,
    )
    fringe = np.concatenate([arc, fringe_low])
    ear_y = (xy[60, 1] + xy[55, 1]) / 2
    ears = [
        ellipse_points((xy[1, 0] - 0.025, ear_y), (0.045, 0.085), n=24),
        ellipse_points((xy[31, 0] + 0.025, ear_y), (0.045, 0.085), n=24),
    ]
    nw = rng.uniform(0.2, 0.26)
    neck = np.array([[0.5 - nw, 0.7], [0.5 + nw, 0.7], [0.5 + nw * 1.1, 1.6], [0.5 - nw * 1.1, 1.6]])
    sh = rng.uniform(1.02, 1.12)
    clothes = np.array(
        [
            [-0.6, sh + 0.35],
            [0.5 - nw * 1.3, sh],
            [0.5, sh + rng.uniform(0.03, 0.12)],
            [0.5 + nw * 1.3, sh],
            [1.6, sh + 0.35],
            [1.6, 3.0],
            [-0.6, 3.0],
        ]
    )
    out = {
        "forehead": forehead,
        "hair": hair,
        "fringe": fringe,
        "ear_l": ears[0],
        "ear_r": ears[1],
        "neck": neck,
        "clothes": clothes,
    }
    return {k: _lift(v) for k, v in out.items()}


_SKIN = np.array(
    [[240, 210, 185], [232, 190, 158], [224, 172, 128], [198, 134, 96], [141, 85, 50], [96, 60, 40]], np.float64
)
_HAIR = np.array(
    [[20, 16, 14], [60, 40, 28], [110, 75, 45], [200, 160, 100], [150, 150, 150], [120, 40, 20]], np.float64
)
_MAKEUP_LIP = np.array([[200, 20, 50], [170, 30, 90], [120, 20, 60], [230, 90, 120], [150, 40, 30]], np.float64)
_SHADOW = np.array([[90, 60, 140], [60, 110, 150], [150, 90, 60], [60, 40, 40], [170, 120, 150]], np.float64)


def sample_face(rng: np.random.Generator, image_size=(256, 384)) -> FaceParams:
    """Draw one face's parameters (shape, pose, appearance, the six variations and their flags)."""
    lo_size, hi_size = (image_size, image_size) if np.isscalar(image_size) else image_size
    H, W = (int(rng.integers(int(lo_size), int(hi_size) + 1)) for _ in range(2))

    # expression
    strong_expr = _strong(rng, "expression")
    mouth_open, smile, eye_close = rng.uniform(0, 0.25), rng.uniform(0, 0.35), rng.uniform(0, 0.3) ** 1.5
    if strong_expr:
        kind = rng.choice(3, p=[0.45, 0.35, 0.2])
        if kind == 0:
            mouth_open = rng.uniform(0.55, 1.0)
        elif kind == 1:
            smile = rng.uniform(0.6, 1.0)
            mouth_open = max(mouth_open, rng.uniform(0, 0.45))
        else:
            eye_close = rng.uniform(0.7, 1.0)
    shape = _identity(rng)
    _apply_expression(shape, mouth_open, smile, eye_close, rng)
    aux = _aux_shapes(shape, rng)

    # pose
    ty, tp, tr = POSE_THRESHOLD
    yaw = float(np.clip(rng.normal(0, 11), -0.9 * ty, 0.9 * ty))
    pitch = float(np.clip(rng.normal(0, 7), -0.9 * tp, 0.9 * tp))
    roll = float(np.clip(rng.normal(0, 8), -0.9 * tr, 0.9 * tr))
    if _strong(rng, "pose"):
        sign = rng.choice([-1.0, 1.0])
        kind = rng.choice(3, p=[0.55, 0.2, 0.25])
        if kind == 0:
            yaw = sign * rng.uniform(1.07 * ty, 45.0)
        elif kind == 1:
            pitch = sign * rng.uniform(1.07 * tp, 30.0)
        else:
            roll = sign * rng.uniform(1.07 * tr, 42.0)

    # placement: landmark extent = 40-70 % of the canvas' shorter side
    params = FaceParams(
        canvas_hw=(H, W),
        shape3d=shape,
        aux3d=aux,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        scale=1.0,
        origin=np.zeros(2),
        skin=np.zeros(3),
        hair=np.zeros(3),
        brow=np.zeros(3),
        lip=np.zeros(3),
        iris=np.zeros(3),
        clothes=np.zeros(3),
        eye_shadow=np.zeros(3),
        makeup=0.0,
        mouth_open=mouth_open,
        smile=smile,
        eye_close=eye_close,
        brightness=1.0,
        gradient=0.0,
        gradient_dir=0.0,
        cast=np.ones(3),
        occluder=None,
        blur_sigma=0.0,
        noise_sigma=0.0,
        texture_seed=int(rng.integers(2**31)),
    )
    unit = params.landmarks  # origin 0, scale 1: crop units after pose
    ext = unit.max(0) - unit.min(0)
    box = rng.uniform(0.4, 0.7) * min(H, W)
    params.scale = float(box / ext.max())
    margin = 0.03 * min(H, W)
    lo = margin - params.scale * unit.min(0)
    hi = np.array([W, H]) - margin - params.scale * unit.max(0)
    params.origin = rng.uniform(lo, np.maximum(hi, lo))

    # appearance
    k = rng.uniform(0, len(_SKIN) - 1)
    params.skin = _lerp(_SKIN[int(k)], _SKIN[min(int(k) + 1, len(_SKIN) - 1)], k % 1) * rng.uniform(0.93, 1.05, 3)
    params.hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2)
    params.brow = _lerp(params.hair, params.skin * 0.35, rng.uniform(0, 0.4))
    natural_lip = params.skin * np.array([0.8, 0.5, 0.52]) + [20, 0, 0]
    params.iris = rng.choice(
        [[70, 45, 25], [110, 75, 40], [60, 100, 140], [80, 110, 70], [120, 120, 110]]
    ) * rng.uniform(0.85, 1.15)
    params.clothes = rng.uniform(20, 235, 3)
    params.makeup = float(rng.uniform(MAKEUP_THRESHOLD + 0.1, 1.0) if _strong(rng, "makeup") else rng.uniform(0, 0.35))
    params.lip = _lerp(natural_lip, _MAKEUP_LIP[rng.integers(len(_MAKEUP_LIP))], params.makeup)
    params.eye_shadow = _SHADOW[rng.integers(len(_SHADOW))]

    # illumination
    params.brightness = float(np.exp(rng.uniform(-0.25, 0.25)))
    params.gradient = float(rng.uniform(0, 0.3))
    params.gradient_dir = float(rng.uniform(0, 2 * np.pi))
    params.cast = 1 + rng.uniform(-0.08, 0.08, 3)
    if _strong(rng, "illumination"):
        kind = rng.choice(3, p=[0.5, 0.3, 0.2])
        if kind == 0:
            params.gradient = float(rng.uniform(0.5, 0.9))
        elif kind == 1:
            params.brightness = float(
                np.exp(rng.uniform(-1.0, -0.6) if rng.random() < 0.5 else rng.uniform(0.55, 0.75))
            )
        else:
            c = int(rng.integers(3))
            params.cast[c] = 1 + rng.choice([-1, 1]) * rng.uniform(0.22, 0.35)

    # occlusion
    lms = params.landmarks
    if _strong(rng, "occlusion"):
        for _ in range(20):
            occ = _sample_occluder(rng, lms, box)
            if occ["covered"] >= OCCLUSION_THRESHOLD + 0.02:
                params.occluder = occ
                break

    # blur
    thr = BLUR_THRESHOLD * box
    params.blur_sigma = float(rng.uniform(1.15, 2.3) * thr if _strong(rng, "blur") else rng.uniform(0, 0.6) * thr)
    params.noise_sigma = float(rng.uniform(0.5, 3.0))
    params.flags = attribute_flags(params)
    return params


def _lerp(a, b, t):
    return np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t


def _sample_occluder(rng, lms: np.ndarray, box: float) -> dict:
    centre = lms[rng.integers(_N)] + rng.normal(0, 0.08 * box, 2)
    axes = box * rng.uniform(0.14, 0.3, 2)
    kind = str(rng.choice(["rect", "ellipse"]))
    angle = float(rng.uniform(0, np.pi))
    d = lms - centre
    ca, sa = np.cos(-angle), np.sin(-angle)
    u = np.stack([ca * d[:, 0] - sa * d[:, 1], sa * d[:, 0] + ca * d[:, 1]], 1) / axes
    inside = (np.abs(u).max(1) <= 1) if kind == "rect" else ((u**2).sum(1) <= 1)
    return {
        "kind": kind,
        "centre": centre,
        "axes": axes,
        "angle": angle,
        "color": rng.uniform(10, 245, 3),
        "stripes": float(rng.uniform(0, 1)),
        "covered": float(inside.mean()),
    }


def attribute_flags(p: FaceParams) -> np.ndarray:
    """The six WFLW attribute flags (pose, expression, illumination, makeup, occlusion, blur) of a face."""
    box = np.ptp(p.landmarks, axis=0).max()  # landmark extent in pixels (the blur scale)
    pose = abs(p.yaw) > POSE_THRESHOLD[0] or abs(p.pitch) > POSE_THRESHOLD[1] or abs(p.roll) > POSE_THRESHOLD[2]
    expr = (
        p.mouth_open > EXPRESSION_THRESHOLD["mouth_open"]
        or p.smile > EXPRESSION_THRESHOLD["smile"]
        or p.eye_close > EXPRESSION_THRESHOLD["eye_close"]
    )
    illum = p.gradient > 0.45 or abs(np.log(p.brightness)) > 0.5 or np.abs(p.cast - 1).max() > 0.18
    makeup = p.makeup > MAKEUP_THRESHOLD
    occl = p.occluder is not None and p.occluder["covered"] >= OCCLUSION_THRESHOLD
    blur = p.blur_sigma > BLUR_THRESHOLD * box
    return np.array([pose, expr, illum, makeup, occl, blur], dtype=bool)


# ----------------------------------------------------------------------------- rendering


def _background(rng, H: int, W: int) -> np.ndarray:
    colours = rng.uniform(30, 225, (3, 3, 3))
    colours = _lerp(colours, colours.mean(-1, keepdims=True), rng.uniform(0.3, 0.8))  # tame the saturation
    # smooth colour field plus mid-frequency blotches, built at 1/4 resolution and upsampled once
    h4, w4 = (H + 3) // 4, (W + 3) // 4
    low = cv2.resize(colours.astype(np.float32), (w4, h4), interpolation=cv2.INTER_CUBIC)
    low += cv2.resize(rng.normal(0, 18, (12, 12, 3)).astype(np.float32), (w4, h4), interpolation=cv2.INTER_CUBIC)
    img = np.clip(cv2.resize(low, (W, H), interpolation=cv2.INTER_LINEAR), 0, 255)
    # clutter: no landmark sits on it, so OpenCV's (slightly dilated) anti-aliasing is good enough here
    layer = img.copy()
    for _ in range(int(rng.integers(3, 9))):
        c = rng.uniform(0, [W, H])
        col = tuple(float(v) for v in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            axes = rng.uniform(8, 0.3 * max(H, W), 2)
            cv2.ellipse(
                layer,
                (int(c[0]), int(c[1])),
                (int(axes[0]), int(axes[1])),
                float(rng.uniform(0, 180)),
                0,
                360,
                col,
                -1,
                cv2.LINE_AA,
            )
        else:
            q = (c + rng.uniform(-0.4, 0.4, (2, 2)) * [W, H]).astype(int)
            cv2.line(layer, tuple(map(int, q[0])), tuple(map(int, q[1])), col, int(rng.integers(1, 10)), cv2.LINE_AA)
    a = float(rng.uniform(0.5, 0.9))
    img = cv2.addWeighted(layer, a, img, 1 - a, 0.0)
    return img


def render_face(p: FaceParams) -> np.ndarray:
    """Render a face as (H, W, 3) uint8 RGB; its landmarks are ``p.landmarks``."""
    H, W = p.canvas_hw
    rng = np.random.default_rng(p.texture_seed)
    img = _background(rng, H, W)
    cv = _Canvas(img)
    L = p.landmarks
    aux = {k: p.project(v) for k, v in p.aux3d.items()}
    box = p.scale * 0.83
    lw = max(1.0, box / 110)

    # no landmark lies on these: one scanline per pixel row is enough
    cv.polygon(aux["hair"], p.hair, sub=1)
    cv.polygon(aux["neck"], p.skin * 0.72, sub=1)
    cv.polygon(aux["clothes"], p.clothes, sub=1)
    cv.polygon(aux["ear_l"], p.skin * 0.88, sub=1)
    cv.polygon(aux["ear_r"], p.skin * 0.88, sub=1)

    # skin: contour 0..32 closed over the forehead; shaded towards its edge, with a little texture
    face = np.concatenate([L[:33], aux["forehead"]])  # forehead runs from point 32 over the top to 0
    roi = cv.roi(face, 4)
    if roi is not None:
        cov = polygon_coverage(face, *roi)
        x0, y0, w, h = roi
        edge = np.clip(cov - cv2.GaussianBlur(cov, (0, 0), 0.07 * box), 0, 1)
        tex = cv2.resize(rng.normal(0, 1, (6, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        shade = (1 - 0.9 * edge) * (1 + 0.04 * tex)
        skin = np.asarray(p.skin, np.float32) * shade[..., None]
        sub = cv.img[y0 : y0 + h, x0 : x0 + w]
        sub += (skin - sub) * cov[..., None]
    cv.polygon(aux["fringe"], p.hair, sub=1)

    # brows
    cv.polygon(L[33:42], p.brow, 0.9)
    cv.polygon(L[42:51], p.brow, 0.9)

    # eyes: make-up shadow, sclera, iris, pupil, lids
    for eye, brow_low, pupil in ((np.r_[60:68], [41, 41, 40, 39, 38], 96), (np.r_[68:76], [50, 49, 48, 47, 47], 97)):
        pts = L[eye]
        upper = pts[:5]
        lifted = upper + (L[brow_low] - upper) * 0.55
        if p.makeup > 0.05:
            cv.polygon(np.concatenate([upper, lifted[::-1]]), p.eye_shadow, 0.6 * p.makeup, soften=lw)
        eye_w = np.linalg.norm(pts[4] - pts[0])
        roi = cv.roi(pts, 3)
        if roi is None:
            continue
        sclera = polygon_coverage(pts, *roi)
        cv.paint(sclera, roi, np.array([235, 232, 225]) * 0.95)
        r_iris, r_pupil = 0.21 * eye_w, 0.085 * eye_w
        iris = disc_coverage(L[pupil], r_iris, *roi)
        cv.paint(iris * sclera, roi, p.iris)
        ring = np.clip(iris - disc_coverage(L[pupil], 0.8 * r_iris, *roi), 0, 1)
        cv.paint(ring * sclera, roi, p.iris * 0.55)
        cv.paint(disc_coverage(L[pupil], r_pupil, *roi) * sclera, roi, (12, 10, 10))
        liner = lw * (1 + 1.2 * max(p.makeup - 0.3, 0))
        cv.stroke(pts, 0.8 * lw, (40, 25, 20), 0.9, closed=True)
        cv.stroke(upper, liner, (25, 15, 12), 0.95)

    # nose: bridge shadow, base, nostrils, tip highlight
    cv.stroke(L[51:55], 1.6 * lw, p.skin * 0.7, 0.5, soften=0.5 * lw)
    base = L[55:60]
    cv.polygon(np.concatenate([base, L[[54]]]), p.skin * 0.93, 0.6, soften=0.3 * lw)
    for a, b in ((55, 56), (59, 58)):
        c = L[b] * 0.6 + L[a] * 0.4 + (L[54] - L[57]) * 0.25
        r = np.linalg.norm(L[b] - L[a])
        ang = float(np.arctan2(*(L[b] - L[a])[::-1]))
        cv.polygon(ellipse_points(c, (0.45 * r, 0.22 * r), ang, n=16), p.skin * 0.3, 0.8)
    cv.stroke(base, 0.9 * lw, p.skin * 0.45, 0.85)
    cv.disc(L[54], 0.06 * box, p.skin * 1.15 + 15, 0.3)

    # mouth: lips, cavity, teeth, lip line
    cv.polygon(L[76:88], p.lip)
    cv.stroke(L[76:88], 0.6 * lw, p.lip * 0.8, 0.6, closed=True)
    inner = L[88:96]
    gap = np.linalg.norm(L[94] - L[90])
    if gap > 0.5:
        roi = cv.roi(inner, 2)
        if roi is not None:
            cav = polygon_coverage(inner, *roi)
            cv.paint(cav, roi, (70, 20, 25))
            t = np.array([0, 0.35 * gap])
            teeth = np.concatenate([L[88:93], (L[[91, 90, 89]] + t)])
            cv.paint(polygon_coverage(teeth, *roi) * cav, roi, (235, 230, 215))
    cv.stroke(inner, 0.7 * lw, p.lip * 0.4, 0.9, closed=True)

    # occluder, lit like the rest of the scene
    if p.occluder is not None:
        o = p.occluder
        if o["kind"] == "rect":
            a, b = o["axes"]
            poly = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
            ca, sa = np.cos(o["angle"]), np.sin(o["angle"])
            poly = o["centre"] + poly @ np.array([[ca, sa], [-sa, ca]])
        else:
            poly = ellipse_points(o["centre"], o["axes"], o["angle"], n=40)
        cv.polygon(poly, o["color"])
        if o["stripes"] > 0.5:
            for k in np.linspace(-0.8, 0.8, 5):
                seg = np.array([[-1.0, k], [1.0, k]]) * o["axes"]
                ca, sa = np.cos(o["angle"]), np.sin(o["angle"])
                seg = o["centre"] + seg @ np.array([[ca, sa], [-sa, ca]])
                cv.stroke(seg, 0.08 * min(o["axes"]), 255 - o["color"], 0.7)

    # illumination: brightness, directional gradient across the face, colour cast
    if p.gradient > 0 or p.brightness != 1 or np.any(p.cast != 1):
        c = L.mean(0)
        xx = (np.arange(W, dtype=np.float32) + 0.5 - c[0])[None, :]
        yy = (np.arange(H, dtype=np.float32) + 0.5 - c[1])[:, None]
        lin = (xx * np.cos(p.gradient_dir) + yy * np.sin(p.gradient_dir)) / (0.5 * box)
        field_ = np.clip(p.brightness * (1 + p.gradient * np.clip(lin, -1.5, 1.5)), 0.1, 3.0).astype(np.float32)
        img = cv2.multiply(img, cv2.merge([field_ * np.float32(g) for g in p.cast]))
    if p.blur_sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), p.blur_sigma)
    if p.noise_sigma > 0:
        noise = np.empty_like(img)
        cv2.setRNGSeed(p.texture_seed)  # OpenCV's RNG is fast; seeding it keeps the face deterministic
        cv2.randn(noise, 0.0, float(p.noise_sigma))
        img += noise
    img += 0.5
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def face_bbox(p: FaceParams, rng: np.random.Generator) -> np.ndarray:
    """A detector-like face box: the landmark extent with per-side jitter (5 % of its size), in the image."""
    L = p.landmarks
    lo, hi = L.min(0), L.max(0)
    size = (hi - lo).max()
    j = rng.normal(0, 0.05 * size, 4)
    box = np.r_[lo + j[:2], hi + j[2:]]
    H, W = p.canvas_hw
    box = np.clip(box, 0, [W, H, W, H])
    return box


def face_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one face: depends only on (seed, split, index)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"synthetic split must be one of {', '.join(SPLIT_IDS)}, got {split!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)]))


@dataclass
class SyntheticFace:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (98, 2) float64 image pixels
    bbox: np.ndarray  # (4,) x0 y0 x1 y1
    flags: np.ndarray  # (6,) bool, ATTRIBUTES order
    params: FaceParams


def make_face(seed: int, split: str, index: int, image_size=(256, 384), **overrides) -> SyntheticFace:
    """Sample and render face ``index`` of ``split``; ``overrides`` replace FaceParams fields before rendering."""
    rng = face_rng(seed, split, index)
    p = sample_face(rng, image_size)
    if overrides:
        p = dataclasses.replace(p, **overrides)
    bbox = face_bbox(p, rng)
    return SyntheticFace(render_face(p), p.landmarks, bbox, p.flags.copy(), p)


# ----------------------------------------------------------------------------- dataset on disk


def _manifest(n_train: int, n_test: int, seed: int, image_size, image_format: str) -> dict:
    size = [int(image_size), int(image_size)] if np.isscalar(image_size) else [int(s) for s in image_size]
    return {
        "generator": "hih.data.synthetic",
        "version": GENERATOR_VERSION,
        "layout": "wflw",
        "n_train": int(n_train),
        "n_test": int(n_test),
        "seed": int(seed),
        "image_size": size,
        "image_format": image_format,
    }


def _work(args) -> list[str]:
    seed, split, index, image_size, out_dir, ext = args
    face = make_face(seed, split, index, image_size)
    rel = f"{split}/{index:05d}.{ext}"
    save_image(Path(out_dir) / "WFLW_images" / rel, face.image, jpeg_quality=95)
    return [format_wflw_line(face.landmarks, face.bbox, face.flags, rel)]


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _generate(tmp: Path, manifest: dict, progress: bool, workers: int) -> None:
    ext = manifest["image_format"]
    size = tuple(manifest["image_size"])
    jobs = {
        split: [(manifest["seed"], split, i, size, str(tmp), ext) for i in range(manifest[f"n_{split}"])]
        for split in ("train", "test")
    }
    write_wflw_set(tmp, manifest, jobs, _work, progress, workers, desc="synthetic faces", unit="face")


def write_wflw_set(
    tmp: Path, manifest: dict, jobs: dict[str, list], work, progress: bool, workers: int, desc: str, unit: str
) -> None:
    """Run ``work(job) -> list of WFLW list lines`` (it writes its images under ``tmp/WFLW_images/<split>/``)
    for every job of every split, then write the list files and the manifest into ``tmp``.

    ``work`` must be a module-level function (it runs in spawned processes when ``workers > 1``).
    """
    for split in jobs:
        (tmp / "WFLW_images" / split).mkdir(parents=True, exist_ok=True)
    (tmp / LIST_DIR).mkdir(parents=True, exist_ok=True)
    flat = [(split, job) for split, js in jobs.items() for job in js]
    from hih.progress import track

    def done(outputs):  # a bar on a terminal; a few plain lines in a log file (a SLURM job's .err)
        return track(outputs, desc, total=len(flat), unit=unit) if progress else outputs

    lines: dict[str, list[str]] = {split: [] for split in jobs}
    if workers > 1 and len(flat) > 32 and not mp.current_process().daemon:
        # spawn, never fork: forking a process whose torch/OpenMP threads are running can
        # deadlock the children (seen when a trainer generates the set on first use).
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for (split, _), out in done(zip(flat, pool.imap(work, [j for _, j in flat], chunksize=4))):
                lines[split] += out
    else:
        for split, out in done((split, work(job)) for split, job in flat):
            lines[split] += out
    for split, chunk in lines.items():
        (tmp / LIST_DIR / list_file_name(split)).write_text("\n".join(chunk) + ("\n" if chunk else ""))
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))


def read_manifest(root: str | Path) -> dict | None:
    f = Path(root) / MANIFEST
    try:
        return json.loads(f.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_synthetic(
    root: str | Path,
    n_train: int = 2000,
    n_test: int = 500,
    seed: int = 0,
    image_size: int | tuple[int, int] = (256, 384),
    progress: bool = True,
    workers: int | None = None,
    image_format: str = "jpg",
) -> Path:
    """Make sure ``root`` holds the synthetic set with these parameters; generate it if not.

    image_size: canvas side range (min, max) in pixels (height and width drawn independently),
    or one int for square canvases. image_format: "jpg" (quality 95, small) or "png" (lossless).
    The set is written to a temporary folder next to ``root`` and renamed into place, so
    ``root`` never holds a half-written set. A set with a different manifest (parameters or
    generator version) is replaced; a non-empty ``root`` without a manifest is never touched
    (FileExistsError). Returns ``root``.
    """
    root = Path(root).expanduser().resolve()
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train}, {n_test}")
    manifest = _manifest(n_train, n_test, seed, image_size, image_format)
    if read_manifest(root) == manifest:
        return root
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)

    def generate(tmp: Path) -> None:
        t0 = time.perf_counter()
        _generate(tmp, manifest, progress, workers)
        if progress:
            print(f"[hih] wrote {n_train} + {n_test} synthetic faces to {root} in {time.perf_counter() - t0:.1f} s")

    return write_once(root, manifest, generate, progress)


def write_once(root: Path, manifest: dict, generate, progress: bool = True) -> Path:
    """Make ``root`` hold the set that ``manifest`` describes: reuse it when its manifest matches, else call
    ``generate(tmp)`` on a temporary folder next to ``root`` (it writes the set and the manifest) and rename
    it into place, so ``root`` never holds a half-written set. A non-empty ``root`` without a manifest is
    never touched (FileExistsError). Processes that start together on an empty folder build it once
    (:func:`hih.data.build_lock.build_lock`): the others wait and reuse it. Returns ``root``.
    """
    from hih.data.build_lock import build_lock

    if read_manifest(root) == manifest:
        return root
    with build_lock(root):  # decided again under the lock: another process may have built it meanwhile
        return _write_once_locked(root, manifest, generate, progress)


def _write_once_locked(root: Path, manifest: dict, generate, progress: bool) -> Path:
    old = read_manifest(root)
    if old == manifest:
        return root
    if root.exists() and old is None and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and is not a generated set written by hih (no {MANIFEST}); "
            f"refusing to overwrite it. Choose another folder for the generated data."
        )
    if old is not None and progress:
        print(f"[hih] generated set at {root} was made with {old}; regenerating with {manifest}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset is not
    try:
        generate(tmp)
        backup = None
        if root.exists():
            if old is None:  # empty folder
                root.rmdir()
            else:
                backup = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                backup.rmdir()
                os.rename(root, backup)
        try:
            os.rename(tmp, root)
        except OSError:
            # another process finished first: keep its set if it is the one asked for
            if read_manifest(root) == manifest:
                return root
            if backup is not None and not root.exists():
                os.rename(backup, root)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
