"""Exact-area anti-aliased rasterisation for the synthetic faces, in the suite's pixel convention
(pixel i covers [i, i + 1)).

Polygon coverage is exact along x and supersampled along y; discs and strokes are analytic ramps. A
landmark drawn with these sits on its feature to sub-pixel precision (the centroid of a shape's
coverage is the shape's centroid), which the synthetic set's landmark fidelity rests on.
"""

from __future__ import annotations

import cv2
import numpy as np


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


class Canvas:
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
