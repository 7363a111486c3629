"""One-GPU paper-scale check: throughput of the GPU recipe on real-size photos, and do HIH_C / HIH_L learn?

Trains what ``hih-train experiment=paper/wflw model=<m>`` trains: each model is composed from the same
configs (:func:`hih.pipeline.compose` with ``experiment=paper/wflw model=<m> data=synthetic_photos``) and
built as hih-train builds it (``model.net``, ``model.codec``, ``module`` instantiated by Hydra), and every
step is :meth:`hih.module.FaceAlignmentModule.training_step` on a batch whose targets the codec encoded on
the device (:func:`hih.data.targets.add_targets`, as the DataModule does). Loss weights, clamps, model sizes,
labels and crops are therefore the configs'. Departures, for a check of minutes: ``module.optimizer.lr``
is ``--lr`` (1e-3; the paper's 1e-5 is for 150 epochs), no lr schedule, and the data are the WFLW-like
synthetic photos (1-4 faces in 800-1200 px JPEGs, hih.data.datasets.synthetic_photos) instead of WFLW.

On one CUDA GPU, within ``--budget-s`` (default 480 s = 8 min) of wall time in total:

(a) throughput, img/s, of the paper-size baseline, HIH_C and HIH_L at 256 px with the GPU recipe
    (bf16 autocast from ``trainer.precision``, channels-last and torch.compile through ``module.*``):
    a loop on fixed tensors already on the device (model-bound) against the whole pipeline: photos read
    through the crop cache (hih.data.crop_cache) by DataLoader workers with the loader settings a user
    would run (workers, pinned memory, persistent workers, prefetch), copied to the device, then the same
    step; and, beside it, the same pipeline reading the full photos (no cache). Also the loaders alone
    (no GPU step), cached and uncached.
(b) training, continuing in each model's slot: the same three models from a fresh initialisation, each
    for the same wall time, then on the test faces: NME, decimal_acc (chance 1/d^2) and decimal_gain =
    NME of the integer heatmap alone decoded at the cell centre - full NME.

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out`` (default outputs/gpu_check/). Without a
CUDA device it exits with status 2 and a message naming the missing device; ``--device cpu --tiny``
runs the same code on 64 px / 16-channel models and a few tiny photos in seconds (the smoke test).

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
import warnings
from pathlib import Path

import torch
from torch import Tensor

from hih.callbacks.timing import ZERO, StepClock, batch_size
from hih.data.targets import add_targets
from hih.metrics import decimal_hits, per_sample_nme

#: The configs' model names (conf/model/<name>.yaml) the check trains.
MODELS = ("baseline", "hih_c", "hih_l")
TINY_WIDTH = 16
#: Small photos for the smoke test (the real check uses the dataset's defaults: 800-1200 px).
TINY_PHOTOS = ["data.datamodule.photo_size=[120,160]", "data.datamodule.iod_range=[8.0,40.0]"]


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


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default, one GPU) or cpu (only with --tiny)")
    p.add_argument(
        "--tiny",
        action="store_true",
        help="64 px, 16-channel models, tiny photos, a few seconds per phase (smoke test)",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/gpu_check"))
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="paths.data_dir: the photos and their crop cache (default: <out>/data)",
    )
    p.add_argument("--budget-s", type=float, default=None, help="total wall time (default 480; tiny 20)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the paper config's; tiny 8)")
    p.add_argument(
        "--n-photos",
        type=int,
        default=None,
        help="training photos, 1-4 faces each (default 2200, about 4000 faces; tiny 8)",
    )
    p.add_argument("--n-test-photos", type=int, default=None, help="test photos (default 280, about 500 faces; tiny 4)")
    p.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: CPU count - 1, at most 16; tiny 0)"
    )
    p.add_argument("--prefetch", type=int, default=4, help="batches each worker loads ahead (prefetch_factor)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it is off on the CPU anyway)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    tiny = a.tiny
    a.budget_s = a.budget_s if a.budget_s is not None else (20.0 if tiny else 480.0)
    a.n_photos = a.n_photos or (8 if tiny else 2200)
    a.n_test_photos = a.n_test_photos or (4 if tiny else 280)
    if a.workers is None:
        a.workers = 0 if tiny else max(1, min(16, _cores() - 1))
    a.data_dir = a.data_dir or a.out / "data"
    return a


def require_device(args: argparse.Namespace) -> torch.device:
    """The device to run on, or exit 2 with a message naming what is missing."""
    if args.device == "cpu":
        if not args.tiny:
            sys.exit(
                "gpu_check: --device cpu runs only with --tiny (paper-size models on the CPU would take hours); "
                "run on a CUDA GPU, or add --tiny for the smoke test"
            )
        return torch.device("cpu")
    if not args.device.startswith("cuda"):
        sys.exit(f"gpu_check: --device must be 'cuda' or 'cpu', got {args.device!r}")
    if not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda}). This check needs one CUDA device; for the CPU smoke test run "
            f"`python scripts/gpu_check.py --device cpu --tiny`.",
            file=sys.stderr,
        )
        sys.exit(2)
    return torch.device(args.device)


def overrides(name: str, args: argparse.Namespace, device: torch.device) -> list[str]:
    """The hih-train overrides of this check: ``experiment=paper/wflw model=<name>`` on the synthetic photos."""
    cuda = device.type == "cuda"
    o = [
        "experiment=paper/wflw",
        f"model={name}",
        "data=synthetic_photos",
        f"paths.data_dir={Path(args.data_dir).resolve()}",
        f"data.datamodule.n_photos={args.n_photos}",
        f"data.datamodule.n_test_photos={args.n_test_photos}",
        f"data.datamodule.photos_seed={args.seed}",
        "data.datamodule.val_fraction=0.0",
        f"data.datamodule.num_workers={args.workers}",
        f"data.datamodule.pin_memory={cuda}",
        f"data.datamodule.persistent_workers={args.workers > 0}",
        f"data.datamodule.prefetch_factor={args.prefetch if args.workers > 0 else 'null'}",
        f"module.optimizer.lr={args.lr}",
        "module.scheduler=null",
        f"seed={args.seed}",
        f"module.compile={cuda and not args.no_compile}",
        f"module.channels_last={cuda}",
    ]
    if args.batch:
        o.append(f"data.datamodule.batch_size={args.batch}")
    if args.tiny:
        o += ["data.input_size=64", "data.heatmap_size=16", f"model.channels={TINY_WIDTH}", *TINY_PHOTOS]
        if name != "baseline":
            o.append(f"model.head_width={TINY_WIDTH}")
        if not args.batch:
            o.append("data.datamodule.batch_size=8")
    return o


def compose_model(name: str, args: argparse.Namespace, device: torch.device):
    from hih.pipeline import compose

    return compose("train", overrides(name, args, device), output_dir=args.out / "run" / name)


def build_module(cfg):
    """net, codec and FaceAlignmentModule exactly as :func:`hih.pipeline.build` makes them."""
    from hydra.utils import instantiate

    net = instantiate(cfg.model.net)
    codec = instantiate(cfg.model.codec)
    return instantiate(cfg.module, net=net, codec=codec, layout=cfg.data.layout, loss=cfg.model.loss, _recursive_=False)


def build_datamodule(cfg, cache: bool):
    from hydra.utils import instantiate

    return instantiate(cfg.data.datamodule, cache=cache, _convert_="all")


def autocast(cfg, device: torch.device):
    """bf16 autocast where the config's trainer asks for it (``trainer.precision: bf16-mixed``), on a GPU."""
    bf16 = str(cfg.trainer.get("precision", "32")).startswith("bf16")
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and bf16 else contextlib.nullcontext()


class Stepper:
    """One optimizer step as hih-train takes it: targets encoded on the device, the module's training_step
    (its forward, loss and head metric), backward, the module's optimizer."""

    def __init__(self, module, cfg, device: torch.device):
        self.module, self.cfg, self.device = module.to(device), cfg, device
        self.initial = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.opt = module.optimizer_factory(module.parameters())

    def reset(self) -> None:
        """Fresh weights (the same initialisation) and optimizer, keeping the compiled graph."""
        self.module.load_state_dict(self.initial)
        self.opt = self.module.optimizer_factory(self.module.parameters())

    def loss(self, batch: dict) -> Tensor:
        """The module's training loss on ``batch`` (already on the device)."""
        self.module.train()
        batch = add_targets(batch, self.module.codec)
        with autocast(self.cfg, self.device), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer here: the module's logging is off
            return self.module.training_step(batch, 0)

    def step(self, batch: dict) -> Tensor:
        loss = self.loss(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def batches(loader):
    """Endless training batches, a new augmentation epoch each pass."""
    for epoch in itertools.count():
        loader.sampler.set_epoch(epoch)
        yield from loader


def timed(step, source, seconds: float, warmup: int, device: torch.device, clock: Clock, label: str) -> dict:
    """Run ``warmup`` untimed steps, then steps for ``seconds``, measured by the training loop's own clock
    (:class:`hih.callbacks.timing.StepClock`, what hih-train's interval lines report): data time = waiting
    for the next batch, one device sync per read (every 10 steps), none per step."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step(next(source))
    sync(device)
    warm_s = time.perf_counter() - t0
    steps_clock, total, loss = StepClock(device), ZERO, None
    steps_clock.start()
    start = time.perf_counter()
    for batch in steps_clock.fetching(source):
        loss = step(batch)
        steps_clock.step_end(batch_size(batch))
        if steps_clock.steps >= 10 or time.perf_counter() - start >= seconds:
            total = total + steps_clock.read()
            if total.wall_s >= seconds:
                break
    r = {
        "img_per_s": total.samples_per_s,
        "steps": total.steps,
        "seconds": total.wall_s,
        "warmup_s": warm_s,
        "step_s": total.step_s,
        "data_share": total.data_share,
    }
    if loss is not None:
        r["loss"] = float(loss)
    clock.log(
        f"{label}: {r['img_per_s']:.1f} img/s ({total.steps} steps in {total.wall_s:.1f} s, "
        f"data {100 * total.data_share:.0f}% of the step; warm-up incl. compile {warm_s:.1f} s)"
    )
    return r


@torch.no_grad()
def evaluate(module, cfg, loader, device: torch.device) -> dict:
    """Test NME (the codec's full decode), NME of the integer heatmap alone at the cell centre, decimal accuracy."""
    module.eval()
    codec, norm_pair = module.codec, module.norm_pair
    full, centre, hits, count = [], [], 0.0, 0.0
    for batch in loader:
        image, lm = batch["image"].to(device), batch["landmarks"].to(device)
        with autocast(cfg, device):
            out = module(image)
        pred = codec.decode({k: v.float() for k, v in out.for_codec().items()}).float()
        full.append(per_sample_nme(pred, lm, norm_pair))
        centre.append(per_sample_nme(codec.decode_integer(out.heatmaps[-1].float(), anchor="centre"), lm, norm_pair))
        if out.head is not None and out.head_key == "decimal":
            targets = codec.encode(lm)
            h, c = decimal_hits(out.head.float(), targets["decimal"], targets["weight"])
            hits, count = hits + h.item(), count + c.item()
    nme, nme_int = torch.cat(full).mean().item(), torch.cat(centre).mean().item()
    r = {"nme": nme, "nme_integer_centre": nme_int, "faces": int(torch.cat(full).numel())}
    if count:
        d = codec.decimal_size
        r.update(decimal_acc=hits / count, decimal_chance=1.0 / d**2, decimal_gain=nme_int - nme)
    return r


def loader_rate(source, seconds: float, clock: Clock, label: str) -> dict:
    """Images per second of a loader's batches alone (no model): what the workers can feed."""
    next(source)  # workers started, first batch in
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += next(source)["image"].shape[0]
    r = {"img_per_s": images / (time.perf_counter() - start), "images": images}
    clock.log(f"{label}: {r['img_per_s']:.1f} img/s from the loader alone")
    return r


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = require_device(args)
    clock = Clock(args.budget_s)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # trainer=gpu's benchmark: true
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    clock.log(
        f"device {device} ({gpu}), torch {torch.__version__}, models {args.models}, "
        f"{'tiny' if args.tiny else 'paper size'}"
    )

    # Data: the photos are generated and their crops cached once (every core), then every model reads them.
    first = compose_model(args.models[0], args, device)
    dm = build_datamodule(first, cache=True)
    if not args.tiny:
        from hih.data.datasets.synthetic_photos import ensure_synthetic_photos

        o = dm.dataset_options
        ensure_synthetic_photos(
            dm.root,
            n_train=o["n_photos"],
            n_test=o["n_test_photos"],
            seed=o["photos_seed"],
            photo_size=tuple(o["photo_size"]),
            iod_range=tuple(o["iod_range"]),
            workers=min(16, _cores()),
        )
    t0 = time.perf_counter()
    dm.setup("fit")
    cache_s = time.perf_counter() - t0
    plain = build_datamodule(first, cache=False)
    plain.setup("fit")
    train_loader, test_loader = dm.train_dataloader(), dm.test_dataloader()
    cache = dm.train_set.crops
    clock.log(
        f"data ready: {len(dm.train_set)} train / {len(dm.test_set)} test faces at {dm.input_size} px, crop cache "
        f"{cache.nbytes / 2**20:.0f} MB ({cache.folder}), set-up {cache_s:.1f} s; {dm.num_workers} workers, "
        f"pin_memory {dm.pin_memory}, persistent {dm.persistent_workers}, prefetch {dm.prefetch_factor}"
    )

    batch_size = dm.batch_size
    results = {
        "device": str(device),
        "device_name": gpu,
        "torch": torch.__version__,
        "tiny": args.tiny,
        "input_size": dm.input_size,
        "batch": batch_size,
        "workers": dm.num_workers,
        "pin_memory": dm.pin_memory,
        "persistent_workers": dm.persistent_workers,
        "prefetch_factor": dm.prefetch_factor,
        "lr": args.lr,
        "compile": bool(first.module.compile),
        "bf16": device.type == "cuda" and str(first.trainer.precision).startswith("bf16"),
        "channels_last": bool(first.module.channels_last),
        "n_train": len(dm.train_set),
        "n_test": len(dm.test_set),
        "photos": {"train": args.n_photos, "test": args.n_test_photos},
        "budget_s": args.budget_s,
        "cache": {"mb": cache.nbytes / 2**20, "build_s": cache.build_s, "setup_s": cache_s, "format": cache.format},
        "overrides": overrides(args.models[0], args, device),
        "loader": {},
        "throughput": {},
        "training": {},
    }

    reserve = 2.0 if args.tiny else 15.0  # writing results, process teardown
    loader_s = 0.5 if args.tiny else 0.025 * args.budget_s
    # one loader each (persistent workers are started once and kept for every model)
    train_batches, uncached_batches = batches(train_loader), batches(plain.train_dataloader())
    results["loader"]["cached"] = loader_rate(train_batches, loader_s, clock, "loader, crop cache")
    results["loader"]["uncached"] = loader_rate(uncached_batches, loader_s, clock, "loader, full photos")

    # Fixed tensors on the device: the model-bound loop reads nothing from the host.
    g = torch.Generator().manual_seed(args.seed)
    s = dm.input_size
    fixed = {
        "image": torch.randn(batch_size, 3, s, s, generator=g).to(device),
        "landmarks": (torch.rand(batch_size, dm.num_landmarks, 2, generator=g) * 0.8 * s + 0.1 * s).to(device),
    }

    def synthetic():
        while True:
            yield fixed

    def pipeline(source):
        for batch in source:
            yield to_device(batch, device)

    warmup = 1 if args.tiny else 5
    for i, name in enumerate(args.models):
        # Each model gets an equal share of what is left; inside it 10 % model-bound, 10 % pipeline through the
        # cache, 8 % the full photos, the rest training. (At least 1 s: each loop still runs a step.)
        slot = max((clock.left() - reserve) / (len(args.models) - i), 1.0)
        slot_end = clock.now() + slot
        cfg = first if i == 0 else compose_model(name, args, device)
        clock.log(f"{name}: slot {slot:.0f} s")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        torch.manual_seed(args.seed)
        module = build_module(cfg)
        stepper = Stepper(module, cfg, device)
        bound = timed(stepper.step, synthetic(), 0.10 * slot, warmup, device, clock, f"{name} model-bound")
        piped = timed(
            stepper.step, pipeline(train_batches), 0.10 * slot, warmup, device, clock, f"{name} pipeline, crop cache"
        )
        uncached = timed(
            stepper.step, pipeline(uncached_batches), 0.08 * slot, 1, device, clock, f"{name} pipeline, full photos"
        )
        results["throughput"][name] = {
            "model_bound": bound,
            "pipeline": piped,
            "pipeline_uncached": uncached,
            "pipeline_over_model_bound": piped["img_per_s"] / bound["img_per_s"],
            "uncached_over_model_bound": uncached["img_per_s"] / bound["img_per_s"],
            "params_m": sum(p.numel() for p in module.net.parameters()) / 1e6,
            "loss_weights": dict(module.loss_weights),
        }

        # Training from the same fresh initialisation for the rest of the slot, minus the evaluation.
        stepper.reset()
        eval_reserve = max(0.08 * slot, 1.0)
        train_s = max(slot_end - eval_reserve - clock.now(), 0.0)
        t0, steps, losses = time.perf_counter(), 0, []
        for batch in pipeline(train_batches):
            losses.append(stepper.step(batch))
            steps += 1
            if steps % 50 == 0:
                sync(device)
                clock.log(f"{name} training: step {steps}, loss {float(losses[-1]):.5f}")
            if time.perf_counter() - t0 >= train_s:
                break
        sync(device)
        trained_s = time.perf_counter() - t0
        ev = evaluate(module, cfg, test_loader, device)
        tail = torch.stack(losses[-20:]).float().mean().item()
        results["training"][name] = {
            "steps": steps,
            "seconds": trained_s,
            "images": steps * batch_size,
            "epochs": steps * batch_size / len(dm.train_set),
            "final_loss": tail,
            **ev,
        }
        if device.type == "cuda":
            results["throughput"][name]["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        extra = (
            f", decimal_acc {ev['decimal_acc']:.3f} (chance {ev['decimal_chance']:.3f}), "
            f"decimal_gain {ev['decimal_gain']:+.3f}"
            if "decimal_acc" in ev
            else ""
        )
        clock.log(
            f"{name}: {steps} steps in {trained_s:.0f} s, test NME {ev['nme']:.3f} "
            f"(integer-only at the centre {ev['nme_integer_centre']:.3f}){extra}"
        )
        del module, stepper
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
        (
            f"# GPU check: {r['device_name']} ({'tiny' if r['tiny'] else 'paper size'}, "
            f"{r['input_size']} px, batch {r['batch']})"
        ),
        "",
        f"torch {r['torch']}; bf16 {r['bf16']}, channels-last {r['channels_last']}, compile {r['compile']}; "
        f"{r['workers']} loader workers, pinned memory {r['pin_memory']}, persistent {r['persistent_workers']}, "
        f"prefetch {r['prefetch_factor']}; wall time {r['wall_s']:.0f} s of {r['budget_s']:.0f} s.",
        f"Composed as `hih-train {' '.join(r['overrides'])}` (model=<each model>).",
        "",
        f"Data: {r['n_train']} training / {r['n_test']} test faces of WFLW-like synthetic photos; crop cache "
        f"{r['cache']['mb']:.0f} MB ({r['cache']['format']}), built in {f(r['cache']['build_s'], '.1f')} s.",
        "",
        "## Throughput (img/s)",
        "",
        (
            f"Loaders alone: crop cache {r['loader']['cached']['img_per_s']:.1f}, "
            f"full photos {r['loader']['uncached']['img_per_s']:.1f}."
        ),
        "",
        (
            "| model | params (M) | model-bound (fixed tensors) | pipeline, crop cache | pipeline, full photos "
            "| cached / model-bound |"
        ),
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in r["throughput"].items():
        lines.append(
            f"| {name} | {t['params_m']:.2f} | {t['model_bound']['img_per_s']:.1f} | "
            f"{t['pipeline']['img_per_s']:.1f} | "
            f"{t['pipeline_uncached']['img_per_s']:.1f} | {t['pipeline_over_model_bound']:.2f} |"
        )
    lines += [
        "",
        f"## Training on {r['n_train']} faces, tested on {r['n_test']}",
        "",
        (
            "| model | steps | epochs | test NME | NME - baseline | integer only (centre) | decimal_acc | chance "
            "| decimal_gain |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in r["training"].items():
        lines.append(
            f"| {name} | {t['steps']} | {t['epochs']:.1f} | {t['nme']:.3f} | "
            f"{f(t.get('nme_minus_baseline'), '+.3f')} | "
            f"{t['nme_integer_centre']:.3f} | {f(t.get('decimal_acc'), '.3f')} | "
            f"{f(t.get('decimal_chance'), '.4f')} | "
            f"{f(t.get('decimal_gain'), '+.3f')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
