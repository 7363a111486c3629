"""HIH_L: the local decimal head reads the right window, falls back to argmax, and learns from ideal heatmaps."""

from __future__ import annotations

import pytest
import torch

from hih.codecs import HIHCodec
from hih.codecs.common import to_heatmap_coords
from hih.losses import heatmap_l2
from hih.methods import build_net
from hih.models.heads import HIHLHead
from hih.module import FaceAlignmentModule


def test_windows_are_the_cells_around_each_landmark() -> None:
    head = HIHLHead(3, 2, decimal_size=4, width=8, window=3, reduced=2)
    maps = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    cells = torch.tensor([[[2, 3], [0, 5]], [[5, 0], [4, 4]]])  # (x, y)
    win = head._windows(maps, cells)  # (B, N, K, 9)
    assert win.shape == (2, 2, 3, 9)
    # Interior: exactly the 3x3 slice around (x=2, y=3).
    assert torch.equal(win[0, 0].view(3, 3, 3), maps[0, :, 2:5, 1:4])
    # Corner (x=0, y=5): the part outside the map reads zero, the rest is the map.
    corner = win[0, 1].view(3, 3, 3)
    assert torch.equal(corner[:, :2, 1:], maps[0, :, 4:6, 0:2])
    assert corner[:, 2, :].abs().sum() == 0 and corner[:, :, 0].abs().sum() == 0
    assert torch.equal(win[1, 1].view(3, 3, 3), maps[1, :, 3:6, 3:6])


def test_without_cells_it_reads_around_the_argmax() -> None:
    torch.manual_seed(0)
    head = HIHLHead(4, 3, decimal_size=4, width=8).eval()
    fused, heatmap = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8, 8)
    flat = heatmap.flatten(2).argmax(-1)
    cells = torch.stack((flat % 8, flat // 8), dim=-1)
    with torch.no_grad():
        assert torch.equal(head(fused, heatmap), head(fused, heatmap, cells))
        moved = head(fused, heatmap, (cells + 1).clamp(max=7))
    assert not torch.equal(moved, head(fused, heatmap, cells))  # the window position matters


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a training step called without a Trainer
def test_training_passes_the_true_cells_only_to_local_heads() -> None:
    codec = HIHCodec(64, 16, decimal_size=4)
    landmarks = torch.tensor([[[5.0, 63.9], [17.2, 0.1]]])
    targets = codec.encode(landmarks)  # the cells come with the targets: computed once per batch
    assert targets["cell"].dtype == torch.long
    assert torch.equal(targets["cell"], torch.tensor([[[1, 15], [4, 0]]]))
    assert torch.equal(targets["cell"], to_heatmap_coords(landmarks, 64, 16).cell)
    local = FaceAlignmentModule(
        build_net("hih_l", 2, channels=8, decimal_size=4, input_size=64, hourglass_depth=2, width=8),
        codec,
        norm_pair=(0, 1),
    )
    seen = []
    local.net.register_forward_pre_hook(lambda _, args: seen.append(args))
    local.training_step({"image": torch.randn(1, 3, 64, 64), "landmarks": landmarks, "targets": targets}, 0)
    assert len(seen) == 1 and seen[0][1] is targets["cell"]  # teacher-forced with the target cells
    paper = FaceAlignmentModule(
        build_net("hih_c", 2, channels=8, decimal_size=4, input_size=64, hourglass_depth=2, width=8),
        codec,
        norm_pair=(0, 1),
    )
    assert paper._train_cells(targets) is None


def test_learns_the_decimal_map_from_ideal_heatmaps() -> None:
    """What scripts/decimal_probe.py measures, small: far above the 1/16 chance in 150 steps."""
    torch.manual_seed(0)
    n, s, h, d = 4, 64, 16, 4
    codec = HIHCodec(s, h, decimal_size=d)
    head = HIHLHead(n, n, decimal_size=d, width=32, reduced=4)
    opt = torch.optim.Adam(head.parameters(), 3e-3)
    for _ in range(150):
        landmarks = torch.rand(16, n, 2) * (s - 16) + 8
        t = codec.encode(landmarks)
        loss = heatmap_l2(head(t["heatmap"], t["heatmap"], t["cell"]), t["decimal"], t["weight"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    landmarks = torch.rand(128, n, 2) * (s - 16) + 8
    t = codec.encode(landmarks)
    with torch.no_grad():
        pred = head.eval()(t["heatmap"], t["heatmap"])
    hit = (pred.flatten(2).argmax(-1) == t["decimal"].flatten(2).argmax(-1)).float().mean().item()
    assert hit > 0.5, hit
    err = (codec.decode({"heatmap": t["heatmap"], "decimal": pred}) - landmarks).norm(dim=-1).mean()
    centre = (
        (codec.decode({"heatmap": t["heatmap"], "decimal": torch.zeros_like(pred)}) + 0.5 * codec.stride - landmarks)
        .norm(dim=-1)
        .mean()
    )
    assert err < 0.6 * centre, (err, centre)


def test_bad_window() -> None:
    with pytest.raises(ValueError, match="odd"):
        HIHLHead(4, 2, window=4)
