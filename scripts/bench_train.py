"""Training throughput on the CPU: images/s of full training steps, and the Lightning loop's overhead.

    .venv/bin/python scripts/bench_train.py [--steps 20] [--paper-steps 3] [--threads 2]

For each model (tiny: HIH_C 64 px / 16 channels, batch 8; paper: HIH_C 1-stack 256 px / 256 channels
/ decimal 8x8, batch 2) it times the same optimizer steps on the same in-memory batches twice:
a bare PyTorch loop (forward, codec encode, loss, backward, Adam) and Lightning's ``Trainer.fit`` on
the FaceAlignmentModule (default callbacks off, no logger, no validation; the loader wrapped in
``EncodedLoaders``, which encodes after the batch transfer as FaceDataModule does), with and without the
non-finite checks (the ``NonFiniteGuard`` callback), and prints each one's overhead over the bare loop.
Both are timed by :class:`hih.callbacks.StepClock`, the measurement behind the training logs'
``time/step_s`` (``StepTimer`` feeds it in the Lightning loop). The batches are in memory, so data
loading is negligible here (scripts/bench_data.py measures it). Prints the load average: on a shared
machine the numbers move with it.
"""

from __future__ import annotations

import argparse
import functools
import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from hih.callbacks import NonFiniteGuard, StepClock, StepTimer
from hih.codecs import HIHCodec
from hih.data.targets import EncodedLoaders
from hih.methods import build_net, compute_losses
from hih.module import FaceAlignmentModule

N = 98


class Faces(Dataset):
    """``count`` fixed random images and landmarks, in the DataModule's batch format."""

    def __init__(self, count: int, size: int):
        g = torch.Generator().manual_seed(0)
        self.image = torch.randn(count, 3, size, size, generator=g)
        self.landmarks = torch.rand(count, N, 2, generator=g) * size * 0.8 + size * 0.1

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.image[i],
            "landmarks": self.landmarks[i],
            "subsets": torch.zeros(6, dtype=torch.bool),
            "index": torch.tensor(i),
        }


def make(size: int, channels: int, width: int, decimal: int):
    net = build_net("hih_c", N, channels=channels, input_size=size, decimal_size=decimal, width=width)
    return net, HIHCodec(size, size // 4, decimal_size=decimal)


def bare_loop(net, codec, loader, warmup: int) -> float:
    """Seconds for the timed steps (after ``warmup`` untimed ones) of a plain PyTorch loop, timed by
    the same StepClock as the training callbacks."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    net.train()
    clock = StepClock()
    clock.start()
    for step, batch in enumerate(clock.fetching(loader)):
        if step == warmup:
            clock.read()  # the warm-up steps, dropped
        out = net(batch["image"])
        with torch.no_grad():
            targets = codec.encode(batch["landmarks"])
        loss = compute_losses(out, targets)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clock.step_end(len(batch["image"]))
    return clock.read().wall_s


def lightning_loop(net, codec, loader, warmup: int, check_finite: bool = True) -> float:
    """Seconds for the timed steps of ``Trainer.fit``, from :class:`hih.callbacks.StepTimer` (the
    measurement behind the training logs' time/step_s), without its ``warmup`` steps."""
    module = FaceAlignmentModule(net, codec, layout="wflw", optimizer=functools.partial(torch.optim.Adam, lr=1e-4))
    timer = StepTimer(warmup=warmup)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer, *([NonFiniteGuard()] if check_finite else [])],
    )
    trainer.fit(module, datamodule=EncodedLoaders(codec, train=loader))
    return timer.total.wall_s


def bench(
    name: str, size: int, channels: int, width: int, decimal: int, batch: int, steps: int, warmup: int, repeats: int
) -> None:
    data = Faces(batch * (steps + warmup), size)
    loader = DataLoader(data, batch_size=batch, shuffle=False)
    loops = {
        "bare": bare_loop,
        "lightning": lightning_loop,
        "no_check": lambda *a: lightning_loop(*a, check_finite=False),
    }
    results = dict.fromkeys(loops, float("inf"))
    for _ in range(repeats):  # alternate, keep each loop's best: the least disturbed by other load
        for kind, loop in loops.items():
            torch.manual_seed(0)
            net, codec = make(size, channels, width, decimal)
            results[kind] = min(results[kind], loop(net, codec, loader, warmup))
    ips = {k: steps * batch / v for k, v in results.items()}
    overhead = 100 * (results["lightning"] / results["bare"] - 1)
    overhead_nc = 100 * (results["no_check"] / results["bare"] - 1)
    print(
        f"{name:<6} {size:>3}px ch={channels:<3} batch={batch:<2} steps={steps:<3} best of {repeats} "
        f"| bare {ips['bare']:7.2f} img/s "
        f"| lightning {ips['lightning']:7.2f} img/s ({overhead:+5.1f}%) | lightning, check_finite off "
        f"{ips['no_check']:7.2f} img/s ({overhead_nc:+5.1f}%) | load avg {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps, tiny model")
    parser.add_argument("--paper-steps", type=int, default=3, help="timed steps, paper-size model (0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats per loop; the best time counts")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no per-fit banners between result lines
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()}")
    bench("tiny", 64, 16, 16, 4, 8, args.steps, warmup=3, repeats=args.repeats)
    if args.paper_steps:
        bench("paper", 256, 256, 384, 8, 2, args.paper_steps, warmup=1, repeats=args.repeats)


if __name__ == "__main__":
    main()
