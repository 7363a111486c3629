"""Rendering of a synthetic face: a cluttered background, then hair, skin, brows, eyes, nose, mouth,
occluder, illumination, blur and noise drawn at the fractional landmark positions.
"""

from __future__ import annotations

import cv2
import numpy as np

from hih.data.synthetic.face_model import FaceParams, lerp
from hih.data.synthetic.raster import Canvas, disc_coverage, ellipse_points, polygon_coverage


def background(rng, H: int, W: int) -> np.ndarray:
    """A cluttered (H, W, 3) float32 RGB background: a smooth colour field, blotches and a few shapes."""
    colours = rng.uniform(30, 225, (3, 3, 3))
    colours = lerp(colours, colours.mean(-1, keepdims=True), rng.uniform(0.3, 0.8))  # tame the saturation
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
    img = background(rng, H, W)
    cv = Canvas(img)
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
