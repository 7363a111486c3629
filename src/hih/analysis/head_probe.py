"""Head probes on a trained, frozen backbone: can a compensation head learn when its input is fixed?

With the backbone frozen (``module.freeze=backbone``, eval mode), the head's input for a face is a
fixed tensor: the fused map (B, C, H, W) and the integer heatmap (B, N, H, W) of the last stack. So
:func:`cache_features` runs a trained backbone once over the training and test faces (the
evaluation crops, no augmentation), and :func:`train_head` trains one head on those tensors for
thousands of steps in minutes on a CPU, with the same codec targets, loss term and metrics as
hih-train: decimal-cell accuracy (chance 1/d^2) or offset error, and the gain in NME over the
integer heatmap decoded at the cell centre, on the test faces through the codec's own decode.

Each head is built from the same config hih-train composes (``model=<head>`` plus the caller's
overrides, e.g. ``recipe=authors_release``), so its widths, codec and loss options are the run's.
:func:`gradient_at_last_layer` measures the gradient norm that reaches the head's last layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from hih.methods import build_loss, get_method
from hih.metrics import per_sample_nme
from hih.models.output import ModelOutput
from hih.warm_start import load_backbone

__all__ = [
    "FeatureCache",
    "HeadSetup",
    "ProbeResult",
    "build_head",
    "cache_features",
    "gradient_at_last_layer",
    "last_layer",
    "train_head",
]


@dataclass
class FeatureCache:
    """A frozen backbone's output per face: fused (F, C, H, W), heatmap (F, N, H, W), landmarks (F, N, 2)."""

    fused: Tensor
    heatmap: Tensor
    landmarks: Tensor

    def __len__(self) -> int:
        return len(self.landmarks)

    def save(self, path: str | Path) -> None:
        torch.save({"fused": self.fused, "heatmap": self.heatmap, "landmarks": self.landmarks}, path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureCache:
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(d["fused"], d["heatmap"], d["landmarks"])


@torch.no_grad()
def cache_features(backbone: nn.Module, dataset, batch_size: int = 32, progress: bool = False) -> FeatureCache:
    """Run ``backbone`` (eval mode) over every face of ``dataset`` (items with "image", "landmarks")."""
    backbone.eval()
    fused, heatmap, landmarks = [], [], []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        heatmaps, f = backbone(batch["image"])
        fused.append(f)
        heatmap.append(heatmaps[-1])
        landmarks.append(batch["landmarks"].float())
        if progress and i % 10 == 0:
            print(f"  features: {(i + 1) * batch_size}/{len(dataset)} faces, {time.perf_counter() - start:.0f} s")
    return FeatureCache(torch.cat(fused), torch.cat(heatmap), torch.cat(landmarks))


@dataclass
class HeadSetup:
    """One head as hih-train would build it: its module, codec and loss options (``model.loss``)."""

    name: str
    head: nn.Module
    codec: object
    loss: dict
    head_key: str


def build_head(cfg, seed: int) -> HeadSetup:
    """The head, codec and loss options of a composed hih-train config (``cfg.model``), seeded."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    net = instantiate(cfg.model.net)
    codec = instantiate(cfg.model.codec)
    loss = OmegaConf.to_container(cfg.model.loss, resolve=True)
    if net.head is None:
        raise ValueError(f"model {cfg.model.name!r} has no compensation head to probe")
    return HeadSetup(str(cfg.model.name), net.head, codec, loss, net.head_key)


def load_frozen_backbone(cfg, ckpt: str | Path) -> nn.Module:
    """``cfg.model.net``'s backbone with the checkpoint's weights (strict, as ``module.init_from``), eval mode."""
    from hydra.utils import instantiate

    net = instantiate(cfg.model.net)
    load_backbone(net, ckpt)
    return net.backbone.eval().requires_grad_(False)


def last_layer(head: nn.Module) -> nn.Module:
    """The head's output layer: its last registered conv / linear (eq. 6's last conv, HIH_L's fc2, WOV's fc)."""
    layers = [m for m in head.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return layers[-1]


def _forward(setup: HeadSetup, fused: Tensor, heatmap: Tensor, cells: Tensor | None) -> Tensor:
    if getattr(setup.head, "reads_heatmap", False):
        return setup.head(fused, heatmap, cells)
    return setup.head(fused)


def _loss_fn(setup: HeadSetup, loss: dict | None = None) -> Callable:
    # The heatmap is the frozen backbone's: its term has no gradient, weight 0 keeps the total the head's.
    options = {**(loss if loss is not None else setup.loss), "heatmap": 0.0}
    return build_loss(setup.head_key, options)


def gradient_at_last_layer(
    setup: HeadSetup, cache: FeatureCache, loss: dict, batches: int = 20, batch_size: int = 32, seed: int = 0
) -> float:
    """Mean L2 norm of the gradient reaching the head's last layer (weight and bias) over ``batches``
    random training batches, at the head's current weights, under the loss options ``loss``."""
    criterion = _loss_fn(setup, loss)
    layer = last_layer(setup.head)
    g = torch.Generator().manual_seed(seed)
    setup.head.train()
    norms = []
    for _ in range(batches):
        idx = torch.randint(len(cache), (batch_size,), generator=g)
        targets = setup.codec.encode(cache.landmarks[idx])
        cells = targets["cell"] if getattr(setup.head, "reads_heatmap", False) else None
        pred = _forward(setup, cache.fused[idx], cache.heatmap[idx], cells)
        out = ModelOutput(heatmaps=[cache.heatmap[idx]], head=pred, head_key=setup.head_key)
        setup.head.zero_grad(set_to_none=True)
        criterion(out, targets)["loss"].backward()
        norms.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in layer.parameters() if p.grad is not None)))
    setup.head.zero_grad(set_to_none=True)
    return sum(norms) / len(norms)


@dataclass
class ProbeResult:
    """One head trained on cached features; metrics on the test faces (and a slice of the training faces)."""

    name: str
    seed: int
    steps: int
    loss: dict
    signal: str  # decimal_acc or offset_err
    chance: float | None  # 1/d^2 for decimal_acc
    test_signal: float
    train_signal: float
    test_nme: float
    test_nme_integer: float
    gain: float
    grad_last_layer: float  # mean over the first steps of training
    wall_s: float
    curve: list = field(default_factory=list)  # (step, test signal, gain)

    def row(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate(setup: HeadSetup, cache: FeatureCache, norm_pair: Sequence[int], batch_size: int = 64) -> dict:
    """The head's signal (its registry metric), NME and integer-only NME (cell centre) over ``cache``'s faces."""
    method = get_method(setup.name)
    metric = method.head_metric
    setup.head.eval()
    total, count, nme, nme_int = 0.0, 0.0, [], []
    for start in range(0, len(cache), batch_size):
        sl = slice(start, start + batch_size)
        heatmap, landmarks = cache.heatmap[sl], cache.landmarks[sl]
        targets = setup.codec.encode(landmarks)
        pred = _forward(setup, cache.fused[sl], heatmap, None)  # HIH_L reads at the argmax, as at test time
        value, visible = metric.score(pred, targets, targets["cell"])
        total += float(value[visible].sum())
        count += float(visible.sum())
        decoded = setup.codec.decode({"heatmap": heatmap, setup.head_key: pred}).float()
        nme.append(per_sample_nme(decoded, landmarks, norm_pair))
        nme_int.append(per_sample_nme(setup.codec.decode_integer(heatmap, anchor="centre"), landmarks, norm_pair))
    full, integer = float(torch.cat(nme).mean()), float(torch.cat(nme_int).mean())
    return {"signal": total / max(count, 1.0), "nme": full, "nme_integer": integer, "gain": integer - full}


def train_head(
    setup: HeadSetup,
    train: FeatureCache,
    test: FeatureCache,
    norm_pair: Sequence[int],
    steps: int,
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 32,
    eval_every: int = 0,
    grad_steps: int = 50,
    train_eval_faces: int = 500,
    log: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Train ``setup.head`` alone on the cached training features (Adam, constant lr, its own loss as
    hih-train builds it) and evaluate it on the test features; ``eval_every`` > 0 adds a curve."""
    criterion = _loss_fn(setup)
    layer = last_layer(setup.head)
    opt = torch.optim.Adam(setup.head.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    reads = getattr(setup.head, "reads_heatmap", False)
    grads, curve = [], []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        setup.head.train()
        idx = torch.randint(len(train), (batch_size,), generator=g)
        targets = setup.codec.encode(train.landmarks[idx])
        pred = _forward(setup, train.fused[idx], train.heatmap[idx], targets["cell"] if reads else None)
        out = ModelOutput(heatmaps=[train.heatmap[idx]], head=pred, head_key=setup.head_key)
        loss = criterion(out, targets)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step <= grad_steps:
            grads.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in layer.parameters() if p.grad is not None)))
        opt.step()
        if eval_every and (step % eval_every == 0 or step == steps):
            ev = evaluate(setup, test, norm_pair)
            curve.append((step, round(ev["signal"], 5), round(ev["gain"], 4)))
            if log:
                log(
                    f"  {setup.name} seed {seed} step {step}: test {_signal_name(setup)} {ev['signal']:.4f} "
                    f"gain {ev['gain']:+.3f} loss {loss.item():.5f} ({time.perf_counter() - start:.0f} s)"
                )
    ev = evaluate(setup, test, norm_pair)
    tr = evaluate(
        setup, FeatureCache(*(t[:train_eval_faces] for t in (train.fused, train.heatmap, train.landmarks))), norm_pair
    )
    d = getattr(setup.codec, "decimal_size", None)
    return ProbeResult(
        name=setup.name,
        seed=seed,
        steps=steps,
        loss={k: v for k, v in setup.loss.items() if k != "heatmap"},
        signal=_signal_name(setup),
        chance=1.0 / d**2 if d and _signal_name(setup) == "decimal_acc" else None,
        test_signal=ev["signal"],
        train_signal=tr["signal"],
        test_nme=ev["nme"],
        test_nme_integer=ev["nme_integer"],
        gain=ev["gain"],
        grad_last_layer=sum(grads) / max(len(grads), 1),
        wall_s=time.perf_counter() - start,
        curve=curve,
    )


def _signal_name(setup: HeadSetup) -> str:
    return get_method(setup.name).head_metric.name
