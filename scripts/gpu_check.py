"""One-GPU paper-scale check (issue 15): throughput of the GPU recipe, and do HIH_C / HIH_L learn?

On one CUDA GPU, within ``--budget-s`` (default 480 s = 8 min) of wall time in total:

(a) throughput, img/s, of the paper-size baseline (1-stack hourglass, 280 channels), HIH_C (256
    channels, CNN head 384, 8x8 decimal) and HIH_L (256 channels, local head) at 256 px with the GPU
    recipe (bf16 autocast, channels-last, torch.compile): a loop on fixed synthetic tensors already on
    the device (forward, on-device label encoding, loss, backward, Adam: model-bound) against the
    whole pipeline (synthetic faces read, augmented and collated by DataLoader workers, copied to the
    device, then the same step). ``pipeline / model-bound`` says how close training is to model-bound.
(b) training, continuing in each model's slot: the same three models from a fresh initialisation on
    synthetic faces generated for the check (hih.data.synthetic), each for the same wall time, then on
    the test faces: NME, decimal_acc (hih.metrics.decimal_accuracy; chance 1/d^2) and decimal_gain =
    NME of the integer heatmap alone decoded at the cell centre - full NME.

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out`` (default outputs/gpu_check/). Without a
CUDA device it exits with status 2 and a message naming the missing device; ``--device cpu --tiny``
runs the same code on 64 px / 16-channel models in seconds (the smoke test).

A plain PyTorch loop (no LightningModule) with a plain L2 loss: 1 x heatmap (every stack) + 1 x
decimal map, weighted by visibility, as the configs' defaults. Adam at ``--lr`` (1e-3: a few minutes
of training; the paper's 1e-5 is for 100+ epochs).

    python scripts/gpu_check.py                                  # on a GPU node; make gpu-check
    python scripts/gpu_check.py --device cpu --tiny --out /tmp/gc
"""

from __future__ import annotations

import time

_START = time.perf_counter()  # the budget counts from here, imports (torch, Lightning) included

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import sys
from pathlib import Path

import torch
from torch import Tensor

from hih.codecs import build_codec
from hih.data.datamodule import FaceDataModule
from hih.data.synthetic import ensure_synthetic
from hih.metrics import decimal_hits, per_sample_nme
from hih.methods import build_net

#: name -> (build_net kwargs, codec name, codec kwargs); paper sizes (conf/model/*.yaml).
MODELS = {
    "baseline": ({"head": "none", "channels": 280}, "baseline", {}),
    "hih_c": ({"head": "hih_c", "channels": 256, "width": 384}, "hih", {"decimal_decode": "corner"}),
    "hih_l": ({"head": "hih_l", "channels": 256, "width": 256, "window": 5, "reduced": 16}, "hih", {"decimal_decode": "centre"}),
}
TINY_WIDTH = 16


class Clock:
    """Wall time since the start of the check, and progress lines stamped with it."""

    def __init__(self, budget: float):
        self.t0 = _START
        self.budget = budget

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget - self.now()

    def log(self, msg: str) -> None:
        print(f"[gpu_check {self.now():6.1f} s / {self.budget:.0f} s] {msg}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default, one GPU) or cpu (only with --tiny)")
    p.add_argument("--tiny", action="store_true", help="64 px, 16-channel models, a few seconds per phase (smoke test)")
    p.add_argument("--out", type=Path, default=Path("outputs/gpu_check"))
    p.add_argument("--data-dir", type=Path, default=None, help="synthetic faces (default: <out>/synthetic)")
    p.add_argument("--budget-s", type=float, default=None, help="total wall time (default 480; tiny 20)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch", type=int, default=None, help="batch size (default 32; tiny 8)")
    p.add_argument("--n-train", type=int, default=None, help="synthetic training faces (default 4000; tiny 24)")
    p.add_argument("--n-test", type=int, default=None, help="synthetic test faces (default 500; tiny 12)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU count - 1, at most 16; tiny 0)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it is off on the CPU anyway)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    tiny = a.tiny
    a.budget_s = a.budget_s if a.budget_s is not None else (20.0 if tiny else 480.0)
    a.batch = a.batch or (8 if tiny else 32)
    a.n_train = a.n_train or (24 if tiny else 4000)
    a.n_test = a.n_test or (12 if tiny else 500)
    if a.workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
        a.workers = 0 if tiny else max(1, min(16, cores - 1))
    a.input_size = 64 if tiny else 256
    a.data_dir = a.data_dir or a.out / "synthetic"
    return a


def require_device(args: argparse.Namespace) -> torch.device:
    """The device to run on, or exit 2 with a message naming what is missing."""
    if args.device == "cpu":
        if not args.tiny:
            sys.exit("gpu_check: --device cpu runs only with --tiny (paper-size models on the CPU would take hours); "
                     "run on a CUDA GPU, or add --tiny for the smoke test")
        return torch.device("cpu")
    if not args.device.startswith("cuda"):
        sys.exit(f"gpu_check: --device must be 'cuda' or 'cpu', got {args.device!r}")
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda}). This check needs one CUDA device; for the CPU smoke test run "
              f"`python scripts/gpu_check.py --device cpu --tiny`.", file=sys.stderr)
        sys.exit(2)
    return torch.device(args.device)


def make_model(name: str, args: argparse.Namespace, n_landmarks: int, device: torch.device):
    net_kw, codec_name, codec_kw = MODELS[name]
    net_kw = dict(net_kw)
    if args.tiny:
        net_kw["channels"] = TINY_WIDTH
        if "width" in net_kw:
            net_kw["width"] = TINY_WIDTH
    torch.manual_seed(args.seed)
    net = build_net(num_landmarks=n_landmarks, input_size=args.input_size, **net_kw).to(device)
    cuda = device.type == "cuda"
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    codec = build_codec(codec_name, input_size=args.input_size, heatmap_size=args.input_size // 4, **codec_kw)
    # Train through a compiled wrapper; evaluate the plain module (no recompile for eval mode).
    train_net = torch.compile(net) if cuda and not args.no_compile else net
    return net, train_net, codec


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def weighted_l2(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean squared error per landmark map, averaged over visible landmarks. pred, target (B, N, ...); weight (B, N)."""
    per = (pred.float() - target.float()).square().flatten(2).mean(-1)
    return (per * weight).sum() / weight.sum().clamp(min=1.0)


class Stepper:
    """One optimizer step of the recipe: encode on the device, forward under autocast, L2, backward, Adam."""

    def __init__(self, net, train_net, codec, device: torch.device, lr: float):
        self.net, self.train_net, self.codec, self.device = net, train_net, codec, device
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)
        self.initial = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def reset(self, lr: float) -> None:
        """Fresh weights (the same initialisation) and optimizer, keeping the compiled graph."""
        self.net.load_state_dict(self.initial)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)

    def step(self, image: Tensor, landmarks: Tensor) -> Tensor:
        self.net.train()
        with torch.no_grad():
            targets = self.codec.encode(landmarks)
        cells = targets["cell"] if self.net.wants_cells else None  # the codec's integer cells (HIH_L teacher forcing)
        with autocast(self.device):
            out = self.train_net(image, cells) if cells is not None else self.train_net(image)
        w = targets["weight"]
        loss = sum(weighted_l2(h, targets["heatmap"], w) for h in out.heatmaps)
        if out.head is not None:
            loss = loss + weighted_l2(out.head, targets[out.head_key], w)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_device(batch: dict, device: torch.device) -> tuple[Tensor, Tensor]:
    image = batch["image"].to(device, non_blocking=True)
    if device.type == "cuda":
        image = image.contiguous(memory_format=torch.channels_last)
    return image, batch["landmarks"].to(device, non_blocking=True)


def batches(loader):
    """Endless training batches, a new augmentation epoch each pass."""
    for epoch in itertools.count():
        loader.sampler.set_epoch(epoch)
        yield from loader


def timed(step, source, seconds: float, warmup: int, device: torch.device, clock: Clock, label: str) -> dict:
    """Run ``warmup`` untimed steps, then steps for ``seconds``; img/s of the timed part."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step(*next(source))
    sync(device)
    warm_s = time.perf_counter() - t0
    steps, images, start = 0, 0, time.perf_counter()
    while True:
        image, lm = next(source)
        loss = step(image, lm)
        steps += 1
        images += image.shape[0]
        if steps % 10 == 0 or time.perf_counter() - start >= seconds:
            sync(device)
            if time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    r = {"img_per_s": images / elapsed, "steps": steps, "seconds": elapsed, "warmup_s": warm_s, "loss": float(loss)}
    clock.log(f"{label}: {r['img_per_s']:.1f} img/s ({steps} steps in {elapsed:.1f} s; warm-up incl. compile {warm_s:.1f} s)")
    return r


@torch.no_grad()
def evaluate(net, codec, loader, norm_pair, device: torch.device) -> dict:
    """Test NME (full decode), NME of the integer heatmap alone at the cell centre, decimal accuracy."""
    net.eval()
    integer = build_codec("hih_c", input_size=codec.input_size, heatmap_size=codec.heatmap_size, integer_only=True)
    full, centre, hits, count = [], [], 0.0, 0.0
    for batch in loader:
        image, lm = to_device(batch, device)
        with autocast(device):
            out = net(image)
        outputs = {k: v.float() for k, v in out.for_codec().items()}
        full.append(per_sample_nme(codec.decode(outputs), lm, norm_pair))
        centre.append(per_sample_nme(integer.decode({"heatmap": outputs["heatmap"]}), lm, norm_pair))
        if "decimal" in outputs:
            targets = codec.encode(lm)
            h, c = decimal_hits(outputs["decimal"], targets["decimal"], targets["weight"])
            hits, count = hits + h.item(), count + c.item()
    nme, nme_int = torch.cat(full).mean().item(), torch.cat(centre).mean().item()
    r = {"nme": nme, "nme_integer_centre": nme_int, "faces": int(torch.cat(full).numel())}
    if count:
        d = codec.decimal_size
        r.update(decimal_acc=hits / count, decimal_chance=1.0 / d**2, decimal_gain=nme_int - nme)
    return r


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = require_device(args)
    clock = Clock(args.budget_s)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    clock.log(f"device {device} ({gpu}), torch {torch.__version__}, models {args.models}, {'tiny' if args.tiny else 'paper size'}")

    # Data: generate with every core here (the DataModule's default uses two), then reuse.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ensure_synthetic(args.data_dir, n_train=args.n_train, n_test=args.n_test, seed=args.seed, progress=not args.tiny,
                     workers=1 if args.tiny else max(1, min(16, cores)))
    dm = FaceDataModule("synthetic", root=args.data_dir, input_size=args.input_size, batch_size=args.batch,
                        num_workers=args.workers, pin_memory=device.type == "cuda", persistent_workers=args.workers > 0,
                        n_train=args.n_train, n_test=args.n_test, synthetic_seed=args.seed, val_fraction=0.0)
    dm.setup("fit")
    train_batches = batches(dm.train_dataloader())
    test_loader = dm.test_dataloader()
    norm_pair = dm.layout.norm_pair
    clock.log(f"data ready: {args.n_train} train / {args.n_test} test faces at {args.input_size} px, {args.workers} workers")

    # Fixed synthetic tensors on the device: the model-bound loop reads nothing from the host.
    g = torch.Generator().manual_seed(args.seed)
    s = args.input_size
    fixed_image = torch.randn(args.batch, 3, s, s, generator=g).to(device)
    if device.type == "cuda":
        fixed_image = fixed_image.contiguous(memory_format=torch.channels_last)
    fixed_lm = (torch.rand(args.batch, dm.num_landmarks, 2, generator=g) * 0.8 * s + 0.1 * s).to(device)

    def synthetic():
        while True:
            yield fixed_image, fixed_lm

    def pipeline():
        for batch in train_batches:
            yield to_device(batch, device)

    results = {"device": str(device), "device_name": gpu, "torch": torch.__version__, "tiny": args.tiny,
               "input_size": s, "batch": args.batch, "workers": args.workers, "lr": args.lr,
               "compile": device.type == "cuda" and not args.no_compile, "bf16": device.type == "cuda",
               "channels_last": device.type == "cuda", "n_train": args.n_train, "n_test": args.n_test,
               "budget_s": args.budget_s, "throughput": {}, "training": {}}
    warmup = 1 if args.tiny else 5
    reserve = 2.0 if args.tiny else 15.0  # writing results, process teardown
    for i, name in enumerate(args.models):
        # Each model gets an equal share of what is left; inside it 12 % + 12 % throughput, the rest training.
        # (At least 1 s: each loop still runs a step, so an overrun shows in wall_s, never as a missing entry.)
        slot = max((clock.left() - reserve) / (len(args.models) - i), 1.0)
        slot_end = clock.now() + slot
        clock.log(f"{name}: slot {slot:.0f} s")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        net, train_net, codec = make_model(name, args, dm.num_landmarks, device)
        stepper = Stepper(net, train_net, codec, device, args.lr)
        bound = timed(stepper.step, synthetic(), 0.12 * slot, warmup, device, clock, f"{name} model-bound")
        piped = timed(stepper.step, pipeline(), 0.12 * slot, warmup, device, clock, f"{name} pipeline")
        results["throughput"][name] = {"model_bound": bound, "pipeline": piped,
                                       "pipeline_over_model_bound": piped["img_per_s"] / bound["img_per_s"]}

        # Training from the same fresh initialisation for the rest of the slot, minus the evaluation.
        stepper.reset(args.lr)
        eval_reserve = max(0.08 * slot, 1.0)
        train_s = max(slot_end - eval_reserve - clock.now(), 0.0)
        t0, steps, losses = time.perf_counter(), 0, []
        for image, lm in pipeline():
            losses.append(stepper.step(image, lm))
            steps += 1
            if steps % 50 == 0:
                sync(device)
                clock.log(f"{name} training: step {steps}, loss {float(losses[-1]):.5f}")
            if time.perf_counter() - t0 >= train_s:
                break
        sync(device)
        trained_s = time.perf_counter() - t0
        ev = evaluate(net, codec, test_loader, norm_pair, device)
        tail = torch.stack(losses[-20:]).float().mean().item()
        results["training"][name] = {"steps": steps, "seconds": trained_s, "images": steps * args.batch,
                                     "epochs": steps * args.batch / len(dm.train_set), "final_loss": tail, **ev}
        if device.type == "cuda":
            results["throughput"][name]["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        extra = f", decimal_acc {ev['decimal_acc']:.3f} (chance {ev['decimal_chance']:.3f}), decimal_gain {ev['decimal_gain']:+.3f}" if "decimal_acc" in ev else ""
        clock.log(f"{name}: {steps} steps in {trained_s:.0f} s, test NME {ev['nme']:.3f} (integer-only at the centre {ev['nme_integer_centre']:.3f}){extra}")
        del net, train_net, stepper
        if device.type == "cuda":
            torch.cuda.empty_cache()

    base = results["training"].get("baseline")
    if base:
        for r in results["training"].values():
            r["nme_minus_baseline"] = r["nme"] - base["nme"]
    results["wall_s"] = clock.now()
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(summary(results))
    clock.log(f"wrote {args.out / 'gpu_check.json'} and gpu_check.md")
    return 0


def summary(r: dict) -> str:
    def f(x, fmt):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    lines = [
        f"# GPU check: {r['device_name']} ({'tiny' if r['tiny'] else 'paper size'}, {r['input_size']} px, batch {r['batch']})",
        "",
        f"torch {r['torch']}; bf16 {r['bf16']}, channels-last {r['channels_last']}, compile {r['compile']}; "
        f"{r['workers']} loader workers; wall time {r['wall_s']:.0f} s of {r['budget_s']:.0f} s.",
        "",
        "## Throughput (img/s)",
        "",
        "| model | model-bound (synthetic tensors) | whole pipeline | pipeline / model-bound |",
        "| --- | --- | --- | --- |",
    ]
    for name, t in r["throughput"].items():
        lines.append(f"| {name} | {t['model_bound']['img_per_s']:.1f} | {t['pipeline']['img_per_s']:.1f} | {t['pipeline_over_model_bound']:.2f} |")
    lines += ["", f"## Training on {r['n_train']} synthetic faces, tested on {r['n_test']}", "",
              "| model | steps | epochs | test NME | NME - baseline | integer only (centre) | decimal_acc | chance | decimal_gain |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, t in r["training"].items():
        lines.append(
            f"| {name} | {t['steps']} | {t['epochs']:.1f} | {t['nme']:.3f} | {f(t.get('nme_minus_baseline'), '+.3f')} | "
            f"{t['nme_integer_centre']:.3f} | {f(t.get('decimal_acc'), '.3f')} | {f(t.get('decimal_chance'), '.4f')} | "
            f"{f(t.get('decimal_gain'), '+.3f')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
