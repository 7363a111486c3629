"""The synthetic faces' model: a 3-D lift of the WFLW mean shape varied by identity, expression and
head pose, plus appearance (skin, hair, make-up), illumination, occlusion and blur, each of the six
WFLW variations flagged when it exceeds its threshold.

:func:`sample_face` draws a face's :class:`FaceParams` from a generator; the renderer
(:mod:`hih.data.synthetic.render`) draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hih.data.layouts import load_mean_shape
from hih.data.synthetic.raster import ellipse_points

ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
#: Probability that a face gets a strong (flagged) variation of each attribute.
STRONG_RATE = {"pose": 0.18, "expression": 0.2, "illumination": 0.22, "makeup": 0.15, "occlusion": 0.2, "blur": 0.18}
#: Flag thresholds: pose angles in degrees (yaw, pitch, roll).
POSE_THRESHOLD = (30.0, 20.0, 25.0)
EXPRESSION_THRESHOLD = {"mouth_open": 0.5, "smile": 0.5, "eye_close": 0.6}
MAKEUP_THRESHOLD = 0.5
OCCLUSION_THRESHOLD = 0.1  # fraction of landmarks under the occluder
BLUR_THRESHOLD = 0.012  # Gaussian sigma as a fraction of the face box size

_N = 98
_CENTRE3 = np.array([0.5, 0.5, 0.2])  # rotation centre of the head (crop units)


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
    params.skin = lerp(_SKIN[int(k)], _SKIN[min(int(k) + 1, len(_SKIN) - 1)], k % 1) * rng.uniform(0.93, 1.05, 3)
    params.hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2)
    params.brow = lerp(params.hair, params.skin * 0.35, rng.uniform(0, 0.4))
    natural_lip = params.skin * np.array([0.8, 0.5, 0.52]) + [20, 0, 0]
    params.iris = rng.choice(
        [[70, 45, 25], [110, 75, 40], [60, 100, 140], [80, 110, 70], [120, 120, 110]]
    ) * rng.uniform(0.85, 1.15)
    params.clothes = rng.uniform(20, 235, 3)
    params.makeup = float(rng.uniform(MAKEUP_THRESHOLD + 0.1, 1.0) if _strong(rng, "makeup") else rng.uniform(0, 0.35))
    params.lip = lerp(natural_lip, _MAKEUP_LIP[rng.integers(len(_MAKEUP_LIP))], params.makeup)
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


def lerp(a, b, t):
    """Linear interpolation of colours (float64)."""
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
