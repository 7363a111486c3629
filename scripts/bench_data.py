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

``--photos``: the same training transform on WFLW-like photos (hih.data.datasets.synthetic_photos: 1-4
faces in 800-1200 px JPEGs): the full-photo path (decode the photo for every face) against the crop cache
(hih.data.crop_cache, raw and JPEG storage), and the small synthetic canvases for reference; best of
``--passes`` passes, one thread; the cache's size and build time (with and without PIL's JPEG draft
decode). Prints the ratio last and writes the figures to ``--json``.

    python scripts/bench_data.py [--n 200] [--passes 5] [--root DIR]
    python scripts/bench_data.py --photos [--n-photos 200] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hih.bench import usable_cores


def reference_sample(
    rec,
    rng: np.random.Generator,
    flip_perm: np.ndarray,
    size: int = 256,
    hm: int = 64,
    sigma: float = 1.5,
    crop_scale: float = 1.25,
):
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
        heatmaps[i, iy[0] : iy[1], ix[0] : ix[1]] = g[gy[0] : gy[1], gx[0] : gx[1]]
    return image, torch.from_numpy(heatmaps), torch.from_numpy(pts.astype(np.float32))


def best_rate(pipelines: dict, n: int, passes: int) -> dict[str, float]:
    """Samples per second of each ``fn(epoch)`` over ``n`` samples: best pass, passes interleaved so that
    load from other processes on a shared machine hits every pipeline alike."""
    for fn in pipelines.values():
        fn(0)  # warm-up: page cache, lazy imports
    best = {name: float("inf") for name in pipelines}
    for p in range(passes):
        for name, fn in pipelines.items():
            t0 = time.perf_counter()
            fn(p + 1)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: n / t for name, t in best.items()}


def bench_draft(records, settings, passes: int) -> dict:
    """Decode time of the photos the cache build decodes reduced (every face needs <= 1/2 resolution):
    full decode vs the decoder's DCT scaling (what PIL calls draft mode)."""
    from collections import defaultdict

    from hih.data.crop_cache import _decode

    need: dict = defaultdict(float)
    for r in records:
        need[r.image_path] = max(need[r.image_path], settings.density(settings.box(r)))
    eligible = [(p, d) for p, d in need.items() if d <= 0.5]
    out = {"draft_photos": len(eligible), "photos_checked": len(need)}
    if eligible:
        for name, draft in (("full_decode_ms", False), ("draft_decode_ms", True)):
            best = float("inf")
            for _ in range(max(1, passes)):
                t0 = time.perf_counter()
                for p, d in eligible:
                    _decode(p, d, draft)
                best = min(best, time.perf_counter() - t0)
            out[name] = best / len(eligible) * 1000
    return out


def bench_photos(args) -> dict:
    """Full photo vs crop cache vs canvases, per worker; see the module docstring."""
    from hih.data.crop_cache import ensure_crop_cache
    from hih.data.dataset import FaceDataset
    from hih.data.datasets import get_layout, read_dataset
    from hih.data.datasets.synthetic_photos import ensure_synthetic_photos
    from hih.data.synthetic import ensure_synthetic

    cores = usable_cores()
    root = args.root or Path(f".cache/bench_data/synthetic_photos-{args.n_photos}")
    ensure_synthetic_photos(root, n_train=args.n_photos, n_test=1, seed=0, workers=min(2, cores))
    records = read_dataset("synthetic_photos", root, "train")
    layout = get_layout("wflw")
    n = len(records)
    photo_ds = FaceDataset(records, layout, input_size=args.input_size, train=True, seed=0)
    settings = photo_ds.crop_settings()
    builds, caches = {}, {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-crop-cache-"))
    try:
        for fmt, draft in (("raw", False), ("raw", True), ("jpeg", True)):
            t0 = time.perf_counter()
            cache = ensure_crop_cache(
                records,
                settings,
                tmp / f"{fmt}-{draft}",
                "synthetic_photos",
                "train",
                fmt=fmt,
                workers=args.build_workers or cores,
                progress=False,
                draft=draft,
            )
            builds[f"{fmt}{'_draft' if draft and fmt == 'raw' else ''}"] = {
                "build_s": time.perf_counter() - t0,
                "mb": cache.nbytes / 2**20,
            }
            caches[fmt] = cache
        canvas_root = Path(f".cache/bench_data/synthetic-{n}")
        ensure_synthetic(canvas_root, n_train=n, n_test=1, seed=0)
        canvas_ds = FaceDataset(
            read_dataset("synthetic", canvas_root, "train")[:n], layout, input_size=args.input_size, train=True, seed=0
        )
        sets = {
            "photo": photo_ds,
            "cached": FaceDataset(records, layout, args.input_size, train=True, seed=0, crops=caches["raw"]),
            "cached_jpeg": FaceDataset(records, layout, args.input_size, train=True, seed=0, crops=caches["jpeg"]),
            "canvas": canvas_ds,
        }

        def runner(ds):
            def run(epoch: int) -> None:
                for i in range(n):
                    ds.get(i, epoch)

            return run

        rates = best_rate({name: runner(ds) for name, ds in sets.items()}, n, args.passes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    photos = len({r.image_path for r in records})
    draft = bench_draft(records, settings, args.passes)
    result = {
        "photos": photos,
        "faces": n,
        "input_size": args.input_size,
        "passes": args.passes,
        "threads": 1,
        "photo_img_s": rates["photo"],
        "cached_img_s": rates["cached"],
        "cached_jpeg_img_s": rates["cached_jpeg"],
        "canvas_img_s": rates["canvas"],
        "cached_cost_over_canvas": rates["canvas"] / rates["cached"],
        "cache_mb": builds["raw"]["mb"],
        "cache_mb_per_1000_faces": builds["raw"]["mb"] / n * 1000,
        "cache_jpeg_mb": builds["jpeg"]["mb"],
        "build_s": builds["raw"]["build_s"],
        "build_s_draft": builds["raw_draft"]["build_s"],
        "build_s_jpeg": builds["jpeg"]["build_s"],
        "build_workers": args.build_workers or cores,
        **draft,
        "ratio_cached_vs_photo": rates["cached"] / rates["photo"],
    }
    print(
        f"images: {photos} WFLW-like photos (800-1200 px), {n} faces, input {args.input_size}, "
        f"best of {args.passes} passes, 1 thread"
    )
    print(f"full photo (decode per face + warp + albumentations):  {rates['photo']:8.1f} img/s per worker")
    print(f"crop cache, raw memory map:                             {rates['cached']:8.1f} img/s per worker")
    print(f"crop cache, JPEG crops:                                 {rates['cached_jpeg']:8.1f} img/s per worker")
    print(f"synthetic canvases (256-384 px, today's benchmarks):    {rates['canvas']:8.1f} img/s per worker")
    print(
        f"cache: raw {result['cache_mb']:.1f} MB ({result['cache_mb_per_1000_faces']:.0f} MB per 1000 faces), built in "
        f"{result['build_s']:.1f} s ({result['build_s_draft']:.1f} s with JPEG draft decode) "
        f"on {result['build_workers']} threads; "
        f"JPEG {result['cache_jpeg_mb']:.1f} MB, built in {result['build_s_jpeg']:.1f} s"
    )
    if draft["draft_photos"]:
        print(
            f"JPEG draft (DCT-scaled) decode on the {draft['draft_photos']} photo(s) whose every face needs <= 1/2 "
            f"resolution: {draft['draft_decode_ms']:.1f} ms vs {draft['full_decode_ms']:.1f} ms full"
        )
    else:
        print("JPEG draft decode: no photo has only faces that need <= 1/2 of its resolution at this input size")
    print(f"per-sample cost, cached / canvas: {result['cached_cost_over_canvas']:.2f}x (goal <= 1.3x)")
    print(f"ratio cached / full photo: {result['ratio_cached_vs_photo']:.2f}x (goal >= 5x)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="synthetic set folder, generated there on first use (default .cache/bench_data/synthetic-N)",
    )
    parser.add_argument("--n", type=int, default=200, help="images per pipeline and pass")
    parser.add_argument("--passes", type=int, default=5, help="timed passes; the best is reported")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--photos", action="store_true", help="full photos vs the crop cache on WFLW-like photos")
    parser.add_argument("--n-photos", type=int, default=200, help="--photos: WFLW-like photos (1-4 faces each)")
    parser.add_argument(
        "--build-workers", type=int, default=None, help="--photos: cache build threads (default: every core)"
    )
    parser.add_argument("--json", type=Path, default=None, help="--photos: write the figures to this JSON file")
    args = parser.parse_args()
    if args.photos:
        import cv2
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        result = bench_photos(args)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
            print(f"wrote {args.json}")
        return

    import cv2
    import torch

    from hih.data.dataset import FaceDataset
    from hih.data.datasets import get_layout, read_dataset
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
