"""Numerical faults: a non-finite loss term or gradient stops training with a message naming the step
and the term, and the last good checkpoint survives; a non-finite state is never written."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from hih.callbacks import LastCheckpoint, NonFiniteError, NonFiniteGuard
from hih.codecs import HIHCodec
from hih.data.targets import EncodedLoaders
from hih.methods import build_net
from hih.module import FaceAlignmentModule

N, S, DEC = 5, 64, 4
pytestmark = pytest.mark.slow  # every test here runs Trainer.fit


class RandomFaces(Dataset):
    def __init__(self, size: int = 10):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(size, 3, S, S, generator=g)
        self.landmarks = torch.rand(size, N, 2, generator=g) * (S - 16) + 8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.images[i],
            "landmarks": self.landmarks[i],
            "subsets": torch.zeros(0, dtype=torch.bool),
            "index": torch.tensor(i),
        }


class BreaksAt(FaceAlignmentModule):
    """Turns the decimal head's output into NaN from global step ``bad_step`` on (the integer heatmaps stay finite)."""

    def __init__(self, *args, bad_step: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_step = bad_step

    def forward(self, image):
        out = super().forward(image)
        if self.training and self.global_step >= self.bad_step:
            out.head = out.head * float("nan")
        return out


def _module(cls=FaceAlignmentModule, **kwargs) -> FaceAlignmentModule:
    net = build_net("hih_c", N, channels=16, input_size=S, hourglass_depth=2, decimal_size=DEC, width=16)
    codec = HIHCodec(S, S // 4, decimal_size=DEC)
    return cls(net, codec, norm_pair=(0, 1), subset_names=(), **kwargs)


def _fit(trainer: L.Trainer, module: FaceAlignmentModule, loader: DataLoader) -> None:
    trainer.fit(module, datamodule=EncodedLoaders(module.codec, train=loader))  # targets added on the device


def _trainer(tmp_path, guard: bool = True, **kwargs) -> L.Trainer:
    """A trainer with the NonFiniteGuard callback (as conf/callbacks/default.yaml) unless guard=False."""
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), *([NonFiniteGuard()] if guard else [])]
    return L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        **kwargs,
    )


def test_nan_loss_term_stops_with_step_and_term_and_keeps_last_good_checkpoint(tmp_path):
    ckdir = tmp_path / "checkpoints"
    module = _module(BreaksAt, bad_step=3)
    trainer = _trainer(tmp_path, callbacks=[LastCheckpoint(dirpath=str(ckdir), every_n_train_steps=1)])
    loader = DataLoader(RandomFaces(10), batch_size=2)
    with pytest.raises(NonFiniteError) as info:
        _fit(trainer, module, loader)
    message = str(info.value)
    assert "global step 3 (epoch 0, batch 3)" in message
    assert "term(s) decimal" in message and "heatmap" not in message.split("term(s)")[1].split(")")[0]
    assert str(ckdir / "last.ckpt") in message

    ckpt = torch.load(ckdir / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3  # written after the third good step, never after the bad one
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert all(torch.isfinite(p).all() for p in module.parameters())  # the bad step never reached the weights


def test_non_finite_gradient_is_caught_before_the_optimizer_step(tmp_path):
    module = _module()
    before = {k: v.clone() for k, v in module.state_dict().items()}

    class InfGrad(L.Callback):
        def on_after_backward(self, trainer, pl_module):
            next(p for p in pl_module.parameters() if p.grad is not None).grad[0].fill_(math.inf)

    trainer = _trainer(tmp_path, callbacks=[InfGrad()], max_steps=1)
    with pytest.raises(NonFiniteError, match=r"non-finite gradient at global step 0 .* in 1 parameter\(s\): net\."):
        _fit(trainer, module, DataLoader(RandomFaces(4), batch_size=2))
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point() and "running" not in k)


def test_checkpoint_with_non_finite_weights_is_refused(tmp_path):
    module = _module()
    trainer = _trainer(tmp_path, max_steps=1)
    _fit(trainer, module, DataLoader(RandomFaces(4), batch_size=2))
    good = tmp_path / "good.ckpt"
    trainer.save_checkpoint(good)
    with torch.no_grad():
        next(module.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteError, match="refusing to write a checkpoint"):
        trainer.save_checkpoint(good)
    ckpt = torch.load(good, map_location="cpu", weights_only=True)  # the good one is untouched
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_the_guard_can_be_left_out(tmp_path):
    module = _module(BreaksAt, bad_step=0)
    trainer = _trainer(tmp_path, guard=False, max_steps=1)
    _fit(trainer, module, DataLoader(RandomFaces(4), batch_size=2))  # no error: the user opted out
    assert trainer.global_step == 1
