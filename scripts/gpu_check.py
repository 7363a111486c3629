"""One-GPU paper-scale check: throughput of the GPU recipe on real-size photos, and do HIH_C / HIH_L learn?

Trains what ``hih-train experiment=paper/wflw model=<m>`` trains, through the same code: each model is
composed from the same configs (:func:`hih.pipeline.compose` with ``experiment=paper/wflw model=<m>
data=synthetic_photos``), built by :func:`hih.pipeline.build_module`, and fitted by the config's Lightning
``Trainer`` (its precision, accelerator and devices; the module's optimizer, lr schedule and
``training_step``; hih-train's non-finite guard and interval log lines) through
:func:`hih.bench.timed_fit`, which times the steps with :class:`hih.callbacks.StepTimer`. The test numbers
are ``trainer.test``'s, the metrics hih-train reports. Departures, for a check of minutes:
``module.optimizer.lr`` is ``--lr`` (1e-3; the paper's 1e-5 is for 150 epochs), no validation or
checkpoints, and the data are the WFLW-like synthetic photos (1-4 faces in 800-1200 px JPEGs,
hih.data.datasets.synthetic_photos) instead of WFLW.

On one CUDA GPU, within ``--budget-s`` (default 480 s = 8 min) of wall time in total:

(a) throughput, img/s, of the paper-size baseline, HIH_C and HIH_L at 256 px with the GPU recipe
    (bf16 from ``trainer.precision``, channels-last and torch.compile through ``module.*``): fits on one
    fixed batch already on the device (model-bound) against the whole pipeline: photos read through the
    crop cache (hih.data.crop_cache) by DataLoader workers with the loader settings a user would run
    (workers, pinned memory, persistent workers, prefetch); and, beside it, the same pipeline reading the
    full photos (no cache). Also the loaders alone (no model), cached and uncached.
(b) training, continuing in each model's slot: the same three models from their fresh initialisation, each
    for the same wall time, then ``trainer.test`` on the test faces: NME, the NME of the integer heatmap
    alone decoded at the cell centre, and the method's head metric and gain (for HIH: decimal_acc, chance
    1/d^2, and decimal_gain = integer-only NME - full NME).

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out`` (default outputs/gpu_check/). Without a
CUDA device it exits with status 2 and a message naming the missing device; ``--tiny`` runs the same code
on the CPU (``debug=tiny``: 64 px / 16-channel models) with a few tiny photos in seconds (the smoke test).

    python scripts/gpu_check.py                                  # on a GPU node; make gpu-check
    python scripts/gpu_check.py --tiny --out /tmp/gc
"""

from __future__ import annotations

import time

_START = time.perf_counter()  # the budget counts from here, imports (torch, Lightning) included

import argparse
import copy
import json
import math
import platform
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hih.bench import Budget, FixedBatches, endless, loader_rate, timed_fit, usable_cores
from hih.data.targets import EncodedLoaders
from hih.methods import get_method
from hih.pipeline import build_module, compose

#: The configs' model names (conf/model/<name>.yaml) the check trains.
MODELS = ("baseline", "hih_c", "hih_l")
#: The smoke test: the debug group's tiny widths and small photos (the real check uses the dataset's defaults).
TINY = ["debug=tiny", "data.datamodule.photo_size=[120,160]", "data.datamodule.iod_range=[8.0,40.0]"]
#: hih-train's callbacks that take part in a training step (the rest write checkpoints, bars, summaries).
STEP_CALLBACKS = ("non_finite_guard", "interval_log")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None, help="cuda (default, one GPU) or cpu (default with --tiny)")
    p.add_argument(
        "--tiny",
        action="store_true",
        help="debug=tiny models, tiny photos, a few seconds per phase, on the CPU (smoke test)",
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
    a.device = a.device or ("cpu" if tiny else "cuda")
    a.budget_s = a.budget_s if a.budget_s is not None else (20.0 if tiny else 480.0)
    a.n_photos = a.n_photos or (8 if tiny else 2200)
    a.n_test_photos = a.n_test_photos or (4 if tiny else 280)
    if a.workers is None:
        a.workers = 0 if tiny else max(1, min(16, usable_cores() - 1))
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
            f"`python scripts/gpu_check.py --tiny`.",
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
        f"module.optimizer.lr={args.lr}",
        f"seed={args.seed}",
        f"module.compile={cuda and not args.no_compile}",
        f"module.channels_last={cuda}",
        "~logger",
    ]
    if not cuda:
        o.append("trainer=cpu")
    if args.tiny:
        o += TINY
    # after debug=tiny, which sets the loader to the main process
    o += [
        f"data.datamodule.num_workers={args.workers}",
        f"data.datamodule.pin_memory={cuda}",
        f"data.datamodule.persistent_workers={args.workers > 0}",
        f"data.datamodule.prefetch_factor={args.prefetch if args.workers > 0 else 'null'}",
    ]
    if args.batch:
        o.append(f"data.datamodule.batch_size={args.batch}")
    return o


def compose_model(name: str, args: argparse.Namespace, device: torch.device):
    return compose("train", overrides(name, args, device), output_dir=args.out / "run" / name)


def build_datamodule(cfg, cache: bool):
    from hydra.utils import instantiate

    return instantiate(cfg.data.datamodule, cache=cache, _convert_="all")


def step_callbacks(cfg) -> list:
    """hih-train's callbacks that act on each training step (:data:`STEP_CALLBACKS`), from the config."""
    from hydra.utils import instantiate

    return [instantiate(cfg.callbacks[k]) for k in STEP_CALLBACKS if cfg.get("callbacks") and k in cfg.callbacks]


def test_metrics(cfg, module, datamodule) -> dict[str, float]:
    """``trainer.test`` with the config's trainer: the ``test/*`` metrics hih-train reports."""
    from hydra.utils import instantiate

    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_progress_bar=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = require_device(args)
    clock = Budget(args.budget_s, "gpu_check", start=_START)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
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
            workers=min(16, usable_cores()),
        )
    t0 = time.perf_counter()
    dm.setup("fit")
    cache_s = time.perf_counter() - t0
    plain = build_datamodule(first, cache=False)
    plain.setup("fit")
    cache = dm.train_set.crops
    clock.log(
        f"data ready: {len(dm.train_set)} train faces at {dm.input_size} px, crop cache "
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
        "precision": str(first.trainer.get("precision", "32")),
        "channels_last": bool(first.module.channels_last),
        "n_train": len(dm.train_set),
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
    for key, label, source in (("cached", "crop cache", dm), ("uncached", "full photos", plain)):
        results["loader"][key] = loader_rate(endless(source.train_dataloader()), loader_s)
        clock.log(f"loader, {label}: {results['loader'][key]['img_per_s']:.1f} img/s from the loader alone")

    # One fixed batch on the device: the model-bound fit reads nothing from the host.
    g = torch.Generator().manual_seed(args.seed)
    s = dm.input_size
    fixed = {
        "image": torch.randn(batch_size, 3, s, s, generator=g).to(device),
        "landmarks": (torch.rand(batch_size, dm.num_landmarks, 2, generator=g) * 0.8 * s + 0.1 * s).to(device),
    }

    warmup = 1 if args.tiny else 5
    for i, name in enumerate(args.models):
        # Each model gets an equal share of what is left; inside it 10 % model-bound, 10 % pipeline through the
        # cache, 8 % the full photos, the rest training. (At least 1 s: each fit still takes a timed step.)
        slot = max((clock.left() - reserve) / (len(args.models) - i), 1.0)
        slot_end = clock.now() + slot
        cfg = first if i == 0 else compose_model(name, args, device)
        clock.log(f"{name}: slot {slot:.0f} s")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        torch.manual_seed(args.seed)
        module = build_module(cfg)
        initial = copy.deepcopy(module.state_dict())
        # The model's own DataModules (they encode with its codec), reading the crops cached above.
        cached, uncached = (dm, plain) if i == 0 else (build_datamodule(cfg, cache=True), build_datamodule(cfg, False))
        model_bound = EncodedLoaders(module.codec, train=DataLoader(FixedBatches(fixed, 10**6), batch_size=None))
        phases = (
            ("model_bound", "model-bound (one batch on the device)", model_bound, 0.10, warmup),
            ("pipeline", "pipeline, crop cache", cached, 0.10, warmup),
            ("pipeline_uncached", "pipeline, full photos", uncached, 0.08, 1),
        )
        t = results["throughput"][name] = {}
        for key, label, data, share, steps in phases:
            t[key] = r = timed_fit(cfg.trainer, module, data, share * slot, steps)
            clock.log(
                f"{name} {label}: {r['img_per_s']:.1f} img/s ({r['steps']} steps in {r['seconds']:.1f} s, "
                f"data {100 * r['data_share']:.0f}% of the step; warm-up incl. compile {r['warmup_s']:.1f} s)"
            )
        t["pipeline_over_model_bound"] = t["pipeline"]["img_per_s"] / t["model_bound"]["img_per_s"]
        t["uncached_over_model_bound"] = t["pipeline_uncached"]["img_per_s"] / t["model_bound"]["img_per_s"]
        t["params_m"] = sum(p.numel() for p in module.net.parameters()) / 1e6
        t["loss_weights"] = dict(module.loss_weights)

        # Training from the same fresh initialisation for the rest of the slot, minus the evaluation.
        module.load_state_dict(initial)
        eval_reserve = max(0.08 * slot, 1.0)
        train_s = max(slot_end - eval_reserve - clock.now(), 0.0)
        fit = timed_fit(cfg.trainer, module, cached, train_s, 1, callbacks=step_callbacks(cfg))
        tested = test_metrics(cfg, module, cached)
        ev = {"nme": tested["test/nme"], "nme_integer_centre": tested.get("test/nme_integer")}
        head = get_method(cfg.model.name).head_metric
        if head is not None and f"test/{head.name}" in tested:
            ev["head_metric"] = head.name
            ev[head.name] = tested[f"test/{head.name}"]
            ev[head.gain] = tested.get(f"test/{head.gain}")
        decimal_size = getattr(module.codec, "decimal_size", None)
        if decimal_size:
            ev["decimal_chance"] = 1.0 / decimal_size**2
        steps = fit["steps"] + 1  # the untimed first step trained too
        results["training"][name] = {
            "steps": steps,
            "seconds": fit["seconds"] + fit["warmup_s"],
            "images": steps * batch_size,
            "epochs": steps * batch_size / len(dm.train_set),
            "final_loss": fit.get("loss"),
            "faces": len(cached.test_set),
            **ev,
        }
        if device.type == "cuda":
            t["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        extra = "".join(
            f", {k} {ev[k]:+.3f}" if k == getattr(head, "gain", None) else f", {k} {ev[k]:.3f}"
            for k in (getattr(head, "name", None), getattr(head, "gain", None))
            if k in ev and ev[k] is not None
        )
        clock.log(
            f"{name}: {steps} steps in {results['training'][name]['seconds']:.0f} s, test NME {ev['nme']:.3f}"
            + (f" (integer-only at the centre {ev['nme_integer_centre']:.3f})" if ev["nme_integer_centre"] else "")
            + extra
        )
        results["n_test"] = len(cached.test_set)
        del module, cached, uncached
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
        f"torch {r['torch']}; precision {r['precision']}, channels-last {r['channels_last']}, compile {r['compile']}; "
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
            "| model | steps | epochs | test NME | NME - baseline | integer only (centre) | head metric | value "
            "| chance | gain |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in r["training"].items():
        metric = t.get("head_metric")
        gain = next((k for k in t if k.endswith("_gain")), None)
        lines.append(
            f"| {name} | {t['steps']} | {t['epochs']:.1f} | {t['nme']:.3f} | "
            f"{f(t.get('nme_minus_baseline'), '+.3f')} | {f(t.get('nme_integer_centre'), '.3f')} | "
            f"{metric or '-'} | {f(t.get(metric), '.3f')} | {f(t.get('decimal_chance'), '.4f')} | "
            f"{f(t.get(gain), '+.3f')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
