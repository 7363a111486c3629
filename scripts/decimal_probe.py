"""Can a decimal head learn the decimal heatmap when it is given a perfect input?

Each head reads the *ideal* integer heatmaps (the codec's targets for random landmarks, which hold
the sub-cell position exactly in their shape) and is trained alone, for a few hundred steps, to
predict the decimal heatmap (eq. 2-3). No backbone, no images: if a head fails here, it cannot
learn the decimal map in a short run on top of a backbone either, and the reason is the head.

Prints, for each head and evaluation step: decimal-cell accuracy (chance is 1 / d^2), and the mean
localisation error in input pixels of the full HIH decode (ideal integer cell + predicted decimal
cell, eq. 4) next to the integer cell's centre alone and to a perfect decimal map.

    python scripts/decimal_probe.py                     # HIH_C, HIH_T, HIH_L at quickstart widths, 600 steps
    python scripts/decimal_probe.py --steps 2000 --loss kl --heads hih_c
"""

from __future__ import annotations

import argparse
import time

import torch

from hih.codecs import HIHCodec
from hih.codecs.common import to_heatmap_coords
from hih.losses import decimal_kl, heatmap_l2
from hih.models.heads import HIHCHead, HIHLHead, HIHTHead


def build_head(name: str, n: int, heatmap_size: int, d: int, width: int):
    if name == "hih_c":
        return HIHCHead(n, n, heatmap_size, d, width=width)
    if name == "hih_t":
        return HIHTHead(n, n, heatmap_size, d, embed_dim=width, depth=2, num_heads=2, regression_width=width)
    if name == "hih_l":
        return HIHLHead(n, n, d, width=width)
    raise SystemExit(f"unknown head {name!r}; expected hih_c, hih_t or hih_l")


def run_head(name: str, args, codec: HIHCodec) -> dict[str, float]:
    torch.manual_seed(args.seed)
    n, s = args.landmarks, args.input_size
    head = build_head(name, n, args.heatmap_size, args.decimal_size, args.width)
    opt = torch.optim.Adam(head.parameters(), args.lr)
    loss_fn = decimal_kl if args.loss == "kl" else heatmap_l2
    margin = 2 * s // args.heatmap_size  # keep landmarks two cells inside, like faces in a crop

    def sample(batch: int):
        landmarks = torch.rand(batch, n, 2) * (s - 2 * margin) + margin
        return landmarks, codec.encode(landmarks)

    local = isinstance(head, HIHLHead)

    def forward(t, cells=None):
        return head(t["heatmap"], t["heatmap"], cells) if local else head(t["heatmap"])

    def evaluate() -> dict[str, float]:
        head.eval()
        with torch.no_grad():
            landmarks, t = sample(256)
            pred = forward(t)  # HIH_L reads around argmax of the ideal heatmap = the true cell
            hit = pred.flatten(2).argmax(-1) == t["decimal"].flatten(2).argmax(-1)
            err = (codec.decode({"heatmap": t["heatmap"], "decimal": pred}) - landmarks).norm(dim=-1).mean()
        head.train()
        return {"acc": hit.float().mean().item(), "err_px": err.item()}

    t0 = time.perf_counter()

    def report(step: int) -> dict[str, float]:
        r = evaluate()
        print(
            f"  {name} step {step:5d}: decimal-cell accuracy {r['acc']:.3f}, error {r['err_px']:.3f} px  "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        return r

    for step in range(args.steps):
        if step % args.eval_every == 0:
            report(step)
        landmarks, t = sample(args.batch)
        # HIH_L trains with the true cells (teacher forcing, as FaceAlignmentModule does).
        cells = to_heatmap_coords(landmarks, s, args.heatmap_size).cell if local else None
        loss = loss_fn(forward(t, cells), t["decimal"], t["weight"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return report(args.steps)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--heads", nargs="+", default=["hih_c", "hih_t", "hih_l"])
    p.add_argument("--steps", type=int, default=600, help="optimizer steps per head (the quickstart makes ~630)")
    p.add_argument("--loss", choices=["l2", "kl"], default="l2")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64, help="head width (the quickstart's model.head_width)")
    p.add_argument("--landmarks", type=int, default=68)
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--heatmap-size", type=int, default=32)
    p.add_argument("--decimal-size", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    codec = HIHCodec(args.input_size, args.heatmap_size, 1.5, args.decimal_size, 1.0)
    d, stride = args.decimal_size, args.input_size / args.heatmap_size
    # Uniform offsets: mean distance to a square's centre is 0.3826 of its side, to its corner 0.7652.
    centre_px, perfect_px = 0.3826 * stride, 0.7652 * stride / d
    print(
        f"ideal integer heatmaps {args.heatmap_size}x{args.heatmap_size} (stride {stride:g}), decimal {d}x{d}, "
        f"{args.landmarks} landmarks, batch {args.batch}, {args.loss} loss, lr {args.lr}"
    )
    print(
        f"reference errors: integer cell centre {centre_px:.3f} px; "
        f"perfect decimal map (corner decode) {perfect_px:.3f} px; "
        f"chance decimal-cell accuracy {1 / d**2:.3f}"
    )
    results = {name: run_head(name, args, codec) for name in args.heads}
    print("\n| head | steps | decimal-cell accuracy | error (px) | cell centre (px) | perfect (px) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {args.steps} | {r['acc']:.3f} | {r['err_px']:.3f} | {centre_px:.3f} | {perfect_px:.3f} |")


if __name__ == "__main__":
    main()
