"""Figures people would rather look at than read: CED curves and sample predictions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

# Bare Figures, never pyplot: no global backend switch on import (a notebook keeps its own), headless-safe.
from matplotlib.figure import Figure

from hih.data.transforms import denormalize as _denormalize
from hih.metrics import auc_from_errors, ced


def plot_ced(
    errors: Mapping[str, np.ndarray], path: str | os.PathLike, threshold: float = 10.0, title: str = "CED"
) -> Path:
    """One curve per named set of per-face NMEs (percent), cut at ``threshold`` (percent).

    Curve and legend AUC come from :mod:`hih.metrics` (the exact integral of the step CED), so the
    legend shows the AUC of metrics.json.
    """
    fig = Figure(figsize=(6, 4.5), dpi=120)
    ax = fig.subplots()
    for name, err in errors.items():
        err = torch.as_tensor(np.asarray(err, dtype=np.float64))
        if err.numel() == 0:
            continue
        t, f = ced(err, threshold)
        auc = float(auc_from_errors(err, threshold / 100.0))
        ax.plot(t.numpy(), f.numpy(), label=f"{name} (NME {float(err.mean()):.2f}, AUC {auc:.3f})")
    ax.set_xlabel("NME (%)")
    ax.set_ylabel("fraction of faces")
    ax.set_xlim(0, threshold)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def denormalize(images: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) ImageNet-normalised -> (B, H, W, 3) in [0, 1], for imshow."""
    rgb = _denormalize(torch.as_tensor(np.asarray(images, dtype=np.float64)))
    return rgb.permute(0, 2, 3, 1).numpy()


def plot_predictions(
    images: np.ndarray,
    target: np.ndarray,
    pred: np.ndarray,
    path: str | os.PathLike,
    heatmaps: np.ndarray | None = None,
    decimals: np.ndarray | None = None,
    landmark: int = 0,
    nme: np.ndarray | None = None,
) -> Path:
    """A row per face: the input with ground truth (green) and prediction (red), then the
    integer heatmap and (for HIH) the decimal heatmap of landmark ``landmark``.

    images (B, 3, S, S) normalised; target, pred (B, N, 2) input pixels;
    heatmaps (B, H, W) and decimals (B, h_o, w_o) for the chosen landmark.
    """
    rgb = denormalize(images)
    cols = 1 + (heatmaps is not None) + (decimals is not None)
    rows = len(rgb)
    fig = Figure(figsize=(3 * cols, 3 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    size = rgb.shape[1]
    for i in range(rows):
        ax = axes[i, 0]
        # extent puts pixel i over [i, i + 1): the suite's coordinate convention.
        ax.imshow(rgb[i], extent=(0, size, size, 0))
        ax.scatter(target[i, :, 0], target[i, :, 1], s=6, c="lime", label="ground truth")
        ax.scatter(pred[i, :, 0], pred[i, :, 1], s=6, c="red", marker="x", label="prediction")
        ax.scatter(target[i, landmark, 0], target[i, landmark, 1], s=40, facecolors="none", edgecolors="yellow")
        ax.set_title(f"face {i}" + (f"  NME {nme[i]:.2f}%" if nme is not None else ""), fontsize=8)
        ax.axis("off")
        if i == 0:
            ax.legend(fontsize=6, loc="upper right")
        panels = []
        if heatmaps is not None:
            panels.append((heatmaps[i], "magma", f"integer heatmap, landmark {landmark}"))
        if decimals is not None:
            panels.append((decimals[i], "viridis", f"decimal heatmap {decimals.shape[1]}x{decimals.shape[2]}"))
        for ax, (grid, cmap, name) in zip(axes[i, 1:], panels):
            ax.imshow(grid, cmap=cmap, extent=(0, grid.shape[1], grid.shape[0], 0))
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
