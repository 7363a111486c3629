"""Benchmark the batched torch codecs against the straightforward per-landmark NumPy way.

Two timings, CPU, best of several repeats (torch keeps its default thread count):

- HIH encode: ``HIHCodec.encode`` vs a reference that loops over samples and landmarks and pastes
  a Gaussian patch into a zero integer heatmap and a zero decimal heatmap (as typical
  ``Dataset.__getitem__`` target generators do), then stacks the samples into a batch (what the
  DataLoader's collate does), so both produce the same (B, N, H, W) + (B, N, d, d) arrays.
- WSM decode: ``HeatmapCodec(decoder="wsm").decode`` vs a Python loop over samples and landmarks
  (argmax, then a quarter-pixel step toward the higher neighbour).

It checks that the two agree (same integer and decimal argmax cells, heatmaps equal to float
tolerance; same decoded points) and prints ms per batch, ms per sample and the speed-ups.
``--thp`` sets PyTorch's ``THP_MEM_ALLOC_ENABLE=1`` (2 MB transparent huge pages for large CPU
tensors) before torch is imported: encode writes a 100 MB heatmap per default batch, and on a
fresh allocation the 4 kB page faults cost more than computing it.

    python scripts/bench_codecs.py [--batch 64 --landmarks 98 --input-size 256 --heatmap-size 64
                                    --decimal-size 8 --sigma 1.5 --repeats 10 --ref-repeats 3 --thp --threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

TARGET_SPEEDUP = 20.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="faces per batch")
    p.add_argument("--landmarks", type=int, default=98, help="landmarks per face")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--heatmap-size", type=int, default=64)
    p.add_argument("--decimal-size", type=int, default=8)
    p.add_argument("--sigma", type=float, default=1.5)
    p.add_argument("--decimal-sigma", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=10, help="timed repeats of the torch version (best is kept)")
    p.add_argument("--ref-repeats", type=int, default=3, help="timed repeats of the NumPy reference (best is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--thp", action="store_true", help="set THP_MEM_ALLOC_ENABLE=1 for torch's CPU allocator")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave torch's default)")
    p.add_argument("--check", action="store_true", help=f"exit 1 if a speed-up is below {TARGET_SPEEDUP:g}x")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------
# Reference implementations: per sample, per landmark, NumPy
# ------------------------------------------------------------------------------------------------


def ref_hih_encode(lm: np.ndarray, input_size: int, hm: int, sigma: float, d: int, dsigma: float):
    """lm (B, N, 2) -> heatmap (B, N, hm, hm), decimal (B, N, d, d); pixel i covers [i, i + 1)."""
    b, n, _ = lm.shape
    stride = input_size / hm
    r = 3.0 * sigma
    heatmaps, decimals = [], []
    for i in range(b):
        target = np.zeros((n, hm, hm), np.float32)
        decimal = np.zeros((n, d, d), np.float32)
        for k in range(n):
            ux = min(max(lm[i, k, 0] / stride, 0.0), np.nextafter(hm, 0))
            uy = min(max(lm[i, k, 1] / stride, 0.0), np.nextafter(hm, 0))
            cx, cy = math.floor(ux), math.floor(uy)
            # Patch of the cells whose centre (j + 0.5) lies within 3 sigma of u.
            x0, x1 = max(0, math.ceil(ux - 0.5 - r)), min(hm - 1, math.floor(ux - 0.5 + r))
            y0, y1 = max(0, math.ceil(uy - 0.5 - r)), min(hm - 1, math.floor(uy - 0.5 + r))
            gx = np.exp(-((np.arange(x0, x1 + 1) + 0.5 - ux) ** 2) / (2 * sigma**2))
            gy = np.exp(-((np.arange(y0, y1 + 1) + 0.5 - uy) ** 2) / (2 * sigma**2))
            target[k, y0 : y1 + 1, x0 : x1 + 1] = gy[:, None] * gx[None, :]
            ox, oy = min(math.floor((ux - cx) * d), d - 1), min(math.floor((uy - cy) * d), d - 1)
            a = np.arange(d)
            dist = np.maximum(np.abs(a[None, :] - ox), np.abs(a[:, None] - oy))
            g = np.exp(-((a[None, :] - ox) ** 2 + (a[:, None] - oy) ** 2) / (2 * dsigma**2))
            decimal[k] = np.where(dist <= 3 * dsigma, g, 0.0)
        heatmaps.append(target)
        decimals.append(decimal)
    return np.stack(heatmaps), np.stack(decimals)


def ref_wsm_decode(heatmaps: np.ndarray, stride: float) -> np.ndarray:
    """heatmaps (B, N, H, W) -> (B, N, 2) input pixels: argmax cell centre + quarter step per axis."""
    b, n, h, w = heatmaps.shape
    out = np.zeros((b, n, 2), np.float32)
    for i in range(b):
        for k in range(n):
            hmap = heatmaps[i, k]
            py, px = divmod(int(hmap.argmax()), w)
            x, y = px + 0.5, py + 0.5
            if 0 < px < w - 1:
                x += 0.25 * np.sign(hmap[py, px + 1] - hmap[py, px - 1])
            if 0 < py < h - 1:
                y += 0.25 * np.sign(hmap[py + 1, px] - hmap[py - 1, px])
            out[i, k] = (x * stride, y * stride)
    return out


# ------------------------------------------------------------------------------------------------


def best_of(fn, repeats: int) -> tuple[float, float, object]:
    """Best and median wall time in seconds over ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times)), result


def report(name: str, ref: tuple, torch_: tuple, batch: int) -> float:
    """Print best (and median) timings; the speed-up compares the best times."""
    (t_ref, m_ref), (t_torch, m_torch) = ref, torch_
    ratio = t_ref / t_torch
    print(f"{name}")
    print(
        f"  reference (NumPy loop): {t_ref * 1e3:9.2f} ms/batch  {t_ref * 1e3 / batch:8.3f} ms/sample  "
        f"(median {m_ref * 1e3:.2f} ms/batch)"
    )
    print(
        f"  torch (batched)       : {t_torch * 1e3:9.2f} ms/batch  {t_torch * 1e3 / batch:8.3f} ms/sample  "
        f"(median {m_torch * 1e3:.2f} ms/batch)"
    )
    verdict = "meets" if ratio >= TARGET_SPEEDUP else "BELOW"
    print(f"  speed-up              : {ratio:9.1f}x  ({verdict} the {TARGET_SPEEDUP:g}x target)")
    return ratio


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.thp:
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"  # read once, at torch's first large allocation

    import torch

    from hih.codecs import HeatmapCodec, HIHCodec

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    size = (args.batch, args.landmarks, 2)
    lm_np = (rng.random(size) * args.input_size).astype(np.float32)
    lm = torch.from_numpy(lm_np)
    hih = HIHCodec(args.input_size, args.heatmap_size, args.sigma, args.decimal_size, args.decimal_sigma)
    wsm = HeatmapCodec(args.input_size, args.heatmap_size, args.sigma, decoder="wsm")

    print(
        f"{args.batch} faces x {args.landmarks} landmarks, input {args.input_size}, "
        f"heatmap {args.heatmap_size}x{args.heatmap_size}, "
        f"decimal {args.decimal_size}x{args.decimal_size}, sigma {args.sigma}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}; "
        f"best of {args.repeats} (torch) / {args.ref_repeats} (reference)"
    )

    # --- HIH encode ---
    hih.encode(lm)  # warm-up
    *t_torch, targets = best_of(lambda: hih.encode(lm), args.repeats)
    *t_ref, (ref_hm, ref_dec) = best_of(
        lambda: ref_hih_encode(
            lm_np, args.input_size, args.heatmap_size, args.sigma, args.decimal_size, args.decimal_sigma
        ),
        args.ref_repeats,
    )
    hm, dec = targets["heatmap"].numpy(), targets["decimal"].numpy()
    b, n = args.batch, args.landmarks
    same_cells = np.array_equal(hm.reshape(b, n, -1).argmax(-1), ref_hm.reshape(b, n, -1).argmax(-1))
    same_dec = np.array_equal(dec.reshape(b, n, -1).argmax(-1), ref_dec.reshape(b, n, -1).argmax(-1))
    # The torch targets keep the Gaussian's centre 1/1024 cell inside its cell (EDGE_GUARD).
    hm_diff, dec_diff = float(np.abs(hm - ref_hm).max()), float(np.abs(dec - ref_dec).max())
    r_enc = report("HIH encode (integer + decimal heatmap)", t_ref, t_torch, b)
    print(
        f"  agreement             : integer argmax cells {'identical' if same_cells else 'DIFFER'}, "
        f"decimal argmax cells {'identical' if same_dec else 'DIFFER'}; "
        f"max |diff| heatmap {hm_diff:.2e}, decimal {dec_diff:.2e}"
    )

    # --- WSM decode (on the encoded heatmaps) ---
    heat = targets["heatmap"]
    wsm.decode({"heatmap": heat})  # warm-up
    *t_torch, pts = best_of(lambda: wsm.decode({"heatmap": heat}), args.repeats)
    *t_ref, ref_pts = best_of(lambda: ref_wsm_decode(hm, wsm.stride), args.ref_repeats)
    pt_diff = float(np.abs(pts.numpy() - ref_pts).max())
    r_dec = report("WSM decode", t_ref, t_torch, b)
    agreement = "identical" if pt_diff == 0 else "DIFFER" if pt_diff > 1e-4 else "equal to float rounding"
    print(f"  agreement             : decoded points max |diff| {pt_diff:.2e} px ({agreement})")

    ok = same_cells and same_dec and hm_diff < 1e-2 and dec_diff < 1e-6 and pt_diff <= 1e-4
    if not ok:
        print("ERROR: torch and reference disagree", file=sys.stderr)
        return 2
    if args.check and min(r_enc, r_dec) < TARGET_SPEEDUP:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
