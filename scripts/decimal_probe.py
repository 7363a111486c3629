"""Can a decimal head learn the decimal heatmap when it is given a perfect input?

Each head reads the *ideal* integer heatmaps (the codec's targets for random landmarks, which hold
the sub-cell position exactly in their shape) and is trained alone, for a few hundred steps, to
predict the decimal heatmap (eq. 2-3). No backbone, no images: if a head fails here, it cannot
learn the decimal map in a short run on top of a backbone either, and the reason is the head.

The heads are the method registry's (every registered method whose head writes the decimal map:
hih_c, hih_t, hih_l, hih_cp, ...), each with its model config's head settings and codec
(conf/model/<name>.yaml, at ``--width``), its loss (the method's, with ``model.loss.decimal_loss`` =
``--loss``) and the package's decimal-cell hits (:func:`hih.metrics.decimal_hits`).

Prints, for each head and evaluation step: decimal-cell accuracy (chance is 1 / d^2), and the mean
localisation error in input pixels of the full HIH decode (ideal integer cell + predicted decimal
cell, eq. 4) next to the integer cell's centre alone and to a perfect decimal map.

    python scripts/decimal_probe.py                     # every decimal head at quickstart widths, 600 steps
    python scripts/decimal_probe.py --steps 2000 --loss kl --heads hih_c
"""

from __future__ import annotations

import argparse
import inspect
import time

import torch
from omegaconf import OmegaConf

from hih.codecs.common import MEAN_DIST_TO_CENTRE, MEAN_DIST_TO_CORNER, to_heatmap_coords
from hih.methods import build_net, get_method, method_names
from hih.methods.builtin import DECIMAL_LOSSES
from hih.metrics import decimal_hits
from hih.pipeline import compose


def decimal_heads() -> list[str]:
    """The registered methods whose head writes the decimal heatmap."""
    return [name for name in method_names() if get_method(name).output_key == "decimal"]


def probe_config(name: str, args):
    """Method ``name``'s model config at the probe's sizes (data=300w: 68 landmarks)."""
    return compose(
        "train",
        [
            "data=300w",
            f"model={name}",
            f"data.input_size={args.input_size}",
            f"data.heatmap_size={args.heatmap_size}",
            f"model.decimal_size={args.decimal_size}",
            f"model.channels={args.width}",
            f"model.head_width={args.width}",
        ],
    )


def build_head(cfg, n: int):
    """The method's head as its model config builds it, reading ``n`` channels (the integer heatmaps)."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    shared = set(inspect.signature(build_net).parameters) | {"_target_"}
    kwargs = {k: v for k, v in net.items() if k not in shared}
    return get_method(cfg.model.name).head(n, n, cfg.data.heatmap_size, cfg.model.decimal_size, **kwargs)


def run_head(name: str, args) -> dict[str, float]:
    from hydra.utils import instantiate

    cfg = probe_config(name, args)
    codec = instantiate(cfg.model.codec)
    n, s = cfg.data.num_landmarks, args.input_size
    torch.manual_seed(args.seed)
    head = build_head(cfg, n)
    opt = torch.optim.Adam(head.parameters(), args.lr)  # the head alone, outside any module: a bare loop
    loss_fn = get_method(name).loss(decimal_loss=args.loss)
    margin = 2 * s // args.heatmap_size  # keep landmarks two cells inside, like faces in a crop
    reads_heatmap = bool(getattr(head, "reads_heatmap", False))

    def sample(batch: int):
        landmarks = torch.rand(batch, n, 2) * (s - 2 * margin) + margin
        return landmarks, codec.encode(landmarks)

    def forward(t, cells=None):
        # LandmarkNet's call: heads that read the heatmap get it (and the cells in training) beside the input.
        return head(t["heatmap"], t["heatmap"], cells) if reads_heatmap else head(t["heatmap"])

    def evaluate() -> dict[str, float]:
        head.eval()
        with torch.no_grad():
            landmarks, t = sample(256)
            pred = forward(t)  # heads that read the heatmap read around its argmax = the true cell
            hits, count = decimal_hits(pred, t["decimal"], t["weight"])
            err = (codec.decode({"heatmap": t["heatmap"], "decimal": pred}) - landmarks).norm(dim=-1).mean()
        head.train()
        return {"acc": (hits / count).item(), "err_px": err.item()}

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
        # Heads that read the heatmap train with the true cells (teacher forcing, as FaceAlignmentModule does).
        cells = to_heatmap_coords(landmarks, s, args.heatmap_size).cell if reads_heatmap else None
        loss = loss_fn(forward(t, cells), t, t["weight"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    r = report(args.steps)
    stride, d = codec.stride, args.decimal_size
    corner = getattr(codec, "decimal_decode", "corner") == "corner"
    r["centre_px"] = MEAN_DIST_TO_CENTRE * stride
    r["perfect_px"] = (MEAN_DIST_TO_CORNER if corner else MEAN_DIST_TO_CENTRE) * stride / d
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--heads", nargs="+", default=decimal_heads(), choices=decimal_heads())
    p.add_argument("--steps", type=int, default=600, help="optimizer steps per head (the quickstart makes ~630)")
    p.add_argument("--loss", choices=list(DECIMAL_LOSSES), default="l2")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64, help="head width (the quickstart's model.head_width)")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--heatmap-size", type=int, default=32)
    p.add_argument("--decimal-size", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    d, stride = args.decimal_size, args.input_size / args.heatmap_size
    print(
        f"ideal integer heatmaps {args.heatmap_size}x{args.heatmap_size} (stride {stride:g}), decimal {d}x{d}, "
        f"batch {args.batch}, {args.loss} loss, lr {args.lr}"
    )
    print(
        f"reference errors: integer cell centre {MEAN_DIST_TO_CENTRE * stride:.3f} px; perfect decimal map "
        f"{MEAN_DIST_TO_CORNER * stride / d:.3f} px (corner decode), {MEAN_DIST_TO_CENTRE * stride / d:.3f} px "
        f"(centre decode); chance decimal-cell accuracy {1 / d**2:.3f}"
    )
    results = {name: run_head(name, args) for name in args.heads}
    print("\n| head | steps | decimal-cell accuracy | error (px) | cell centre (px) | perfect (px) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {args.steps} | {r['acc']:.3f} | {r['err_px']:.3f} | {r['centre_px']:.3f} "
            f"| {r['perfect_px']:.3f} |"
        )


if __name__ == "__main__":
    main()
