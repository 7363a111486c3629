"""Heatmap decoders: (B, N, H, W) heatmaps -> (B, N, 2) (x, y) positions in heatmap coordinates.

Heatmap coordinates: cell j covers [j, j + 1), its centre is j + 0.5 (multiply by the stride for
input pixels). All decoders are batched over samples and landmarks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hih.codecs.common import argmax_2d, coord_dtype

ANCHORS = {"centre": 0.5, "corner": 0.0}


def anchor_value(anchor: str) -> float:
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {sorted(ANCHORS)}, got {anchor!r}")
    return ANCHORS[anchor]


def _xy(cy: Tensor, cx: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.stack((cx, cy), dim=-1).to(dtype)


def decode_argmax(heatmap: Tensor, anchor: str = "centre") -> Tensor:
    """Cell of maximal activation plus the anchor (0.5 cell for "centre", 0 for "corner").

    Ideal-condition error (landmark uniform in its cell of side b = stride): mean distance
    0.383 b ("centre"), 0.765 b ("corner"); max 0.707 b and 1.414 b.
    """
    cy, cx, _ = argmax_2d(heatmap)
    return _xy(cy, cx, coord_dtype(heatmap)) + anchor_value(anchor)


def decode_wsm(heatmap: Tensor, anchor: str = "centre") -> Tensor:
    """Argmax plus a quarter-cell shift toward the higher neighbour on each axis (Newell et al.).

    Ties (equal neighbours) give no shift; on an axis where the argmax sits on the border (one
    neighbour missing) there is no shift either, as in the common implementations. Ideal-condition
    per-axis error is uniform on [-b/4, b/4]: mean distance 0.191 b, max 0.354 b.
    """
    _, _, h, w = heatmap.shape
    cy, cx, flat = argmax_2d(heatmap)
    hm = heatmap.flatten(-2)

    def neighbour_diff(pos: Tensor, size: int, step: int) -> Tensor:
        # Read both neighbours at clamped indices, then drop the shift where one is out of the map.
        lo = hm.gather(-1, (flat - step).clamp(0, h * w - 1).unsqueeze(-1)).squeeze(-1)
        hi = hm.gather(-1, (flat + step).clamp(0, h * w - 1).unsqueeze(-1)).squeeze(-1)
        inner = (pos > 0) & (pos < size - 1)
        return torch.where(inner, torch.sign(hi - lo), torch.zeros((), dtype=hm.dtype, device=hm.device))

    shift = torch.stack((neighbour_diff(cx, w, 1), neighbour_diff(cy, h, w)), dim=-1)
    dtype = coord_dtype(heatmap)
    return _xy(cy, cx, dtype) + anchor_value(anchor) + 0.25 * shift.to(dtype)


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    a = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (a / sigma) ** 2)
    return k / k.sum()


def decode_dark(heatmap: Tensor, sigma: float = 1.5, eps: float = 1e-10) -> Tensor:
    """DARK (Zhang et al., CVPR 2020): smooth, log, one second-order Taylor (Newton) step at the argmax.

    The heatmap is smoothed with a Gaussian of the encoding ``sigma`` (zero padding, radius
    ceil(3 sigma)); only the 3 x 3 smoothed values around each argmax are needed, so they are
    computed from the (2r + 3)^2 window around it, which is the same as smoothing the whole map and
    reading there, at a fraction of the cost. Gradient and Hessian of log(max(smoothed, eps)) come
    from central finite differences; the step -H^-1 g is taken only where the Hessian is negative
    definite (a real maximum; otherwise the step is 0), clamped to one cell per axis, and only
    where the 3 x 3 stencil lies inside the map (border argmaxes keep the cell centre).
    heatmap: (B, N, H, W). Returns (B, N, 2) heatmap coordinates.
    """
    b, n, h, w = heatmap.shape
    dtype = coord_dtype(heatmap)
    hm = heatmap.to(dtype).flatten(-2)
    cy, cx, _ = argmax_2d(heatmap)
    k = _gaussian_kernel(float(sigma), dtype, heatmap.device)
    r = (k.numel() - 1) // 2
    reach = r + 1
    off = torch.arange(-reach, reach + 1, device=heatmap.device)
    py = cy[..., None, None] + off[:, None]  # (B, N, P, 1)
    px = cx[..., None, None] + off[None, :]  # (B, N, 1, P)
    inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
    idx = (py.clamp(0, h - 1) * w + px.clamp(0, w - 1)).flatten(-2)
    window = hm.gather(-1, idx).view(b, n, off.numel(), off.numel()) * inside
    # smoothed[i, j] = sum_ab k[a] k[b] window[i + a, j + b] for i, j in 0..2: S @ window @ S^T.
    s = torch.zeros(3, off.numel(), dtype=dtype, device=heatmap.device)
    rows = torch.arange(3, device=heatmap.device)[:, None]
    s[rows, rows + torch.arange(k.numel(), device=heatmap.device)] = k
    logv = torch.log((s @ window @ s.T).clamp(min=eps))
    gx = 0.5 * (logv[..., 1, 2] - logv[..., 1, 0])
    gy = 0.5 * (logv[..., 2, 1] - logv[..., 0, 1])
    dxx = logv[..., 1, 2] - 2 * logv[..., 1, 1] + logv[..., 1, 0]
    dyy = logv[..., 2, 1] - 2 * logv[..., 1, 1] + logv[..., 0, 1]
    dxy = 0.25 * (logv[..., 2, 2] - logv[..., 2, 0] - logv[..., 0, 2] + logv[..., 0, 0])
    det = dxx * dyy - dxy * dxy
    ok = (dxx < 0) & (det > 1e-12) & (cx >= 1) & (cx <= w - 2) & (cy >= 1) & (cy <= h - 2)
    safe_det = torch.where(ok, det, torch.ones_like(det))
    step_x = -(dyy * gx - dxy * gy) / safe_det
    step_y = -(dxx * gy - dxy * gx) / safe_det
    step = torch.stack((step_x, step_y), dim=-1).clamp(-1.0, 1.0)
    step = torch.where(ok.unsqueeze(-1), step, torch.zeros((), dtype=dtype, device=heatmap.device))
    return _xy(cy, cx, dtype) + 0.5 + step


def decode_soft_argmax(heatmap: Tensor, beta: float) -> Tensor:
    """Integral regression: expectation of the pixel centres under softmax(beta * heatmap).

    heatmap: (B, N, H, W). Returns (B, N, 2) heatmap coordinates.
    """
    b, n, h, w = heatmap.shape
    dtype = coord_dtype(heatmap)
    p = torch.softmax(heatmap.to(dtype).flatten(-2) * beta, dim=-1).view(b, n, h, w)
    xs = torch.arange(w, dtype=dtype, device=heatmap.device) + 0.5
    ys = torch.arange(h, dtype=dtype, device=heatmap.device) + 0.5
    return torch.stack((p.sum(-2) @ xs, p.sum(-1) @ ys), dim=-1)
