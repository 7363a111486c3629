"""Training-pipeline throughput per DataLoader worker: hih vs a typical PIL pipeline.

hih: ``FaceDataset(train=True)[key]``: decode, one affine warp (crop + flip + rotation +
scale/shift jitter) to 256 x 256, albumentations colour jitter / occlusion / blur, ImageNet
normalisation to a float32 CHW tensor. No heatmaps: the LightningModule encodes on its device.

Reference (what typical face-alignment code does per sample on the CPU): PIL open, crop
the scaled box, mirror, rotate, resize to 256, ImageEnhance brightness / contrast, a pasted
occlusion rectangle, ImageFilter Gaussian blur, numpy normalisation, and 98 Gaussian
heatmaps of 64 x 64 built in numpy one landmark at a time (the HRNet-style windowed
Gaussian). Same augmentation probabilities as hih's defaults.

Both run single-threaded in one process (num_workers=0), as one DataLoader worker does.

    python scripts/bench_data.py [--n 200] [--passes 5] [--root DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def reference_sample(rec, rng: np.random.Generator, flip_perm: np.ndarray, size: int = 256, hm: int = 64,
                     sigma: float = 1.5, crop_scale: float = 1.25):
    """One training sample the PIL way; returns (image (3, S, S) tensor, heatmaps (N, hm, hm), landmarks)."""
    import torch
    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

    img = Image.open(rec.image_path).convert("RGB")
    pts = rec.landmarks.astype(np.float64).copy()
    x0, y0, x1, y1 = rec.bbox.tolist()
    side = max(x1 - x0, y1 - y0) * crop_scale * rng.uniform(0.95, 1.05)
    cx = (x0 + x1) / 2 + rng.uniform(-0.05, 0.05) * side
    cy = (y0 + y1) / 2 + rng.uniform(-0.05, 0.05) * side
    box = (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)), int(round(cy + side / 2)))
    img = img.crop(box)
    pts -= box[:2]
    w = box[2] - box[0]
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
        pts[:, 0] = w - pts[:, 0]
        pts = pts[flip_perm]
    if rng.random() < 0.5:
        angle = rng.uniform(-30, 30)
        img = img.rotate(angle, resample=Image.BILINEAR)
        t = np.deg2rad(angle)
        c = np.array([w / 2, (box[3] - box[1]) / 2])
        rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        pts = (pts - c) @ rot.T + c
    img = img.resize((size, size), Image.BILINEAR)
    pts = pts * (size / w)
    if rng.random() < 0.5:
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    if rng.random() < 0.5:
        ow, oh = (rng.uniform(0.1, 0.4, size=2) * size).astype(int)
        ox, oy = rng.integers(0, size - ow), rng.integers(0, size - oh)
        ImageDraw.Draw(img).rectangle([ox, oy, ox + ow, oy + oh], fill=tuple(rng.integers(0, 256, 3).tolist()))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.5, 2.0)))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    image = torch.from_numpy(arr.transpose(2, 0, 1).copy())

    # HRNet-style target: a (6 sigma + 1)^2 Gaussian patch pasted per landmark
    stride = size / hm
    heatmaps = np.zeros((len(pts), hm, hm), np.float32)
    tmp = int(3 * sigma)
    g_size = 2 * tmp + 1
    xs = np.arange(g_size, dtype=np.float32)
    for i, (px, py) in enumerate(pts / stride):
        mu_x, mu_y = int(px + 0.5), int(py + 0.5)
        ul, br = (mu_x - tmp, mu_y - tmp), (mu_x + tmp + 1, mu_y + tmp + 1)
        if ul[0] >= hm or ul[1] >= hm or br[0] < 0 or br[1] < 0:
            continue
        g = np.exp(-((xs[None, :] - tmp) ** 2 + (xs[:, None] - tmp) ** 2) / (2 * sigma**2))
        gx, gy = (max(0, -ul[0]), min(br[0], hm) - ul[0]), (max(0, -ul[1]), min(br[1], hm) - ul[1])
        ix, iy = (max(0, ul[0]), min(br[0], hm)), (max(0, ul[1]), min(br[1], hm))
        heatmaps[i, iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
    return image, torch.from_numpy(heatmaps), torch.from_numpy(pts.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="synthetic set folder, generated there on first use (default .cache/bench_data/synthetic-N)")
    parser.add_argument("--n", type=int, default=200, help="images per pipeline and pass")
    parser.add_argument("--passes", type=int, default=5, help="timed passes; the best is reported")
    parser.add_argument("--input-size", type=int, default=256)
    args = parser.parse_args()

    import cv2
    import torch

    from hih.data.dataset import FaceDataset
    from hih.data.datasets import get_layout
    from hih.data.datasets import read_dataset
    from hih.data.synthetic import ensure_synthetic

    # one DataLoader worker is one single-threaded process
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    root = args.root or Path(f".cache/bench_data/synthetic-{args.n}")
    ensure_synthetic(root, n_train=args.n, n_test=1, seed=0)
    records = read_dataset("synthetic", root, "train")[: args.n]
    layout = get_layout("wflw")
    ds = FaceDataset(records, layout, input_size=args.input_size, train=True, seed=0)
    flip_perm = layout.flip_index

    def run_hih(epoch: int) -> None:
        for i in range(len(ds)):
            ds.get(i, epoch)

    def run_ref(epoch: int) -> None:
        for i, rec in enumerate(records):
            reference_sample(rec, np.random.default_rng([0, epoch, i]), flip_perm, size=args.input_size)

    # Interleave the two pipelines pass by pass and keep each one's best pass, so that load
    # from other processes on a shared machine hits both alike.
    run_hih(0), run_ref(0)  # warm-up: page cache, lazy imports
    best = {"hih": float("inf"), "ref": float("inf")}
    for p in range(args.passes):
        for name, fn in (("hih", run_hih), ("ref", run_ref)):
            t0 = time.perf_counter()
            fn(p + 1)
            best[name] = min(best[name], time.perf_counter() - t0)
    ours, ref = len(records) / best["hih"], len(records) / best["ref"]
    print(f"images: {len(records)} synthetic faces, input {args.input_size}, best of {args.passes} passes, 1 thread")
    print(f"hih pipeline (decode + warp + albumentations + tensor): {ours:8.1f} img/s per worker")
    print(f"reference PIL pipeline + numpy 64x64 heatmaps:          {ref:8.1f} img/s per worker")
    print(f"ratio: {ours / ref:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
