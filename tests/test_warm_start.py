"""module.init_from / freeze / head_lr: another run's backbone, kept frozen (weights and BN statistics),
and the head's own learning rate, also under a schedule."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch

from hih.checkpoints import CheckpointMismatchError
from hih.codecs import HIHCodec
from hih.methods import build_net
from hih.module import FaceAlignmentModule
from hih.optim import onecycle, step_decay
from hih.warm_start import load_backbone, parse_freeze

N, S, D = 3, 64, 4
TINY = {"num_landmarks": N, "channels": 8, "input_size": S, "hourglass_depth": 2, "decimal_size": D}


def _net(head: str = "hih_c", seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_net(head=head, **{**TINY, **kw}, **({"width": 8} if head != "none" else {}))


def _module(net=None, **kw) -> FaceAlignmentModule:
    kw.setdefault("optimizer", functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.1))
    return FaceAlignmentModule(net or _net(), HIHCodec(S, S // 4, decimal_size=D), norm_pair=(0, 1), **kw)


def _save(net, path, prefix="net."):
    torch.save({"state_dict": {prefix + k: v for k, v in net.state_dict().items()}, "epoch": 3}, path)
    return path


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    landmarks = torch.rand(4, N, 2, generator=g) * (S - 16) + 8
    return torch.randn(4, 3, S, S, generator=g), landmarks


def _steps(module: FaceAlignmentModule, steps: int = 3) -> None:
    """A few optimizer steps as Lightning takes them: train mode, the module's own optimizer and loss."""
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    module.train()
    for i in range(steps):
        image, landmarks = _batch(i)
        targets = module.codec.encode(landmarks)
        loss = module.criterion(module(image), targets)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_init_from_loads_the_backbone_and_leaves_the_head(tmp_path):
    source = _net("hih_l", seed=1, reduced=4)  # another head, same backbone
    with torch.no_grad():
        for p in source.backbone.parameters():
            p.add_(0.5)
        next(m for m in source.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_mean.fill_(0.25)
    path = _save(source, tmp_path / "src.ckpt")
    module = _module(init_from=str(path))
    head_before = {k: v.clone() for k, v in module.net.head.state_dict().items()}
    assert not torch.equal(next(module.net.backbone.parameters()), next(source.backbone.parameters()))
    module.setup("fit")
    for (k, a), b in zip(module.net.backbone.state_dict().items(), source.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    for k, v in module.net.head.state_dict().items():
        assert torch.equal(v, head_before[k]), k
    module.setup("test")  # evaluation never reloads (a resumed or tested run keeps its own weights)


def test_init_from_is_strict_and_names_what_does_not_fit(tmp_path):
    wide = _save(_net(channels=16), tmp_path / "wide.ckpt")
    with pytest.raises(
        CheckpointMismatchError, match=r"shapes differ: stem\.0\.0\.weight: checkpoint \(4, 3, 7, 7\) vs model \(2, 3"
    ):
        load_backbone(_net(), wide)
    headless = _save(_net("none"), tmp_path / "baseline.ckpt")
    with pytest.raises(CheckpointMismatchError, match="missing from the checkpoint: .*merge_.*fusion"):
        load_backbone(_net(), headless)
    two = _save(_net(stacks=2), tmp_path / "two.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"not in this backbone: hourglasses\.1"):
        load_backbone(_net(), two)
    torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, tmp_path / "none.ckpt")
    with pytest.raises(CheckpointMismatchError, match="no backbone weights"):
        load_backbone(_net(), tmp_path / "none.ckpt")


def test_init_from_refuses_pickled_code(tmp_path):
    path = tmp_path / "code.ckpt"
    torch.save({"state_dict": {}, "hook": SimpleNamespace(a=1)}, path)
    with pytest.raises(RuntimeError, match="weights_only"):
        load_backbone(_net(), path)


def test_a_frozen_backbone_keeps_weights_and_batchnorm_statistics():
    torch.set_num_threads(1)
    module = _module(freeze="backbone")
    backbone = {k: v.clone() for k, v in module.net.backbone.state_dict().items()}
    head = {k: v.clone() for k, v in module.net.head.state_dict().items()}
    _steps(module)
    assert not module.net.backbone.training and module.net.head.training
    for k, v in module.net.backbone.state_dict().items():
        assert torch.equal(v, backbone[k]), k  # weights, BN running stats and counters
    assert any(not torch.equal(v, head[k]) for k, v in module.net.head.state_dict().items())
    # Without freeze the same steps move the backbone (the test can fail).
    unfrozen = _module()
    _steps(unfrozen)
    assert any(not torch.equal(v, backbone[k]) for k, v in unfrozen.net.backbone.state_dict().items())


def test_freeze_names_are_checked():
    assert parse_freeze(None) == () and parse_freeze("none") == () and parse_freeze("backbone") == ("backbone",)
    with pytest.raises(ValueError, match="unknown part"):
        parse_freeze("head")


@pytest.mark.parametrize("scheduler", [None, "onecycle", "step"])
def test_head_lr_is_the_head_groups_lr(scheduler):
    factory = {"onecycle": onecycle, "step": functools.partial(step_decay, step_size=1, gamma=0.5)}.get(scheduler)
    module = _module(head_lr=1e-2, scheduler=factory)
    module._trainer = SimpleNamespace(estimated_stepping_batches=10, train_dataloader=[0, 1], num_training_batches=2)
    module._trainer.accumulate_grad_batches = 1
    config = module.configure_optimizers()
    opt = config["optimizer"] if scheduler else config
    rest, head = opt.param_groups
    assert {id(p) for p in head["params"]} == {id(p) for p in module.net.head.parameters()}
    assert len(rest["params"]) + len(head["params"]) == len(list(module.parameters()))
    if scheduler is None:
        assert (rest["lr"], head["lr"]) == (1e-3, 1e-2)
        return
    sched = config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(4):
        lrs.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
        opt.step()
        sched.step()
    for backbone_lr, head_lr in lrs:  # the schedule scales both groups alike: the ratio stays 10
        assert head_lr == pytest.approx(10 * backbone_lr)
    if scheduler == "onecycle":
        assert sched.optimizer.param_groups[1]["max_lr"] == 1e-2 and sched.optimizer.param_groups[0]["max_lr"] == 1e-3


def test_head_lr_with_a_frozen_backbone_and_without_a_head():
    module = _module(head_lr=5e-3, freeze="backbone")
    (group,) = module.configure_optimizers().param_groups
    assert group["lr"] == 5e-3 and len(group["params"]) == len(list(module.net.head.parameters()))
    with pytest.raises(ValueError, match="positive"):
        _module(head_lr=-1.0).configure_optimizers()
