"""HIH_CP (extension): HIH_C's CNN + a pooled per-landmark path; shapes, gradients, the pooling, and
that the pooled path reads a landmark's local features wherever the landmark is.

The module is imported inside the tests (through the registry), not at collection: test_models
lists the registered methods when it is collected.
"""

from __future__ import annotations

import pytest
import torch

from hih.codecs import HIHCodec
from hih.codecs.common import to_heatmap_coords
from hih.losses import heatmap_l2
from hih.methods import build_net, compute_losses, get_method


def _net(decimal_size: int = 4, n: int = 5):
    torch.manual_seed(0)
    return build_net(
        "hih_cp", n, channels=16, decimal_size=decimal_size, input_size=64, hourglass_depth=2, width=8, pool_width=8
    )


def test_registered_as_a_decimal_method_with_hih_cs_codec() -> None:
    method = get_method("hih_cp")
    assert method.codec is HIHCodec and method.output_key == "decimal" and method.head_is_heatmap
    assert method.head_metric is get_method("hih_c").head_metric  # decimal_acc / decimal_gain on the dashboards
    assert method.loss is get_method("hih_c").loss


@pytest.mark.parametrize("decimal_size", [2, 4, 8])
def test_output_shape(decimal_size: int) -> None:
    net = _net(decimal_size).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert out.head_key == "decimal" and out.head.shape == (2, 5, decimal_size, decimal_size)


def test_gradients_reach_both_paths_but_not_the_heatmap_through_the_pooling() -> None:
    from hih.methods.hih_cp import HIHCPHead

    net = _net()
    codec = HIHCodec(64, 16, decimal_size=4)
    landmarks = torch.rand(2, 5, 2) * 48 + 8
    out = net(torch.randn(2, 3, 64, 64))
    compute_losses(out, codec.encode(landmarks))["loss"].backward()
    head = net.head
    assert isinstance(head, HIHCPHead)
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # The pooling weights are the heatmap detached: the decimal loss does not move the heatmap through them.
    fused, heatmap = torch.randn(2, 6, 16, 16, requires_grad=True), torch.rand(2, 5, 16, 16, requires_grad=True)
    head = HIHCPHead(6, 5, 16, 4, width=8, pool_width=8)
    head(fused, heatmap).sum().backward()
    assert heatmap.grad is None and fused.grad.abs().sum() > 0


def test_heatmap_pool_weights() -> None:
    from hih.methods.hih_cp import heatmap_pool

    fused = torch.randn(1, 3, 4, 4)
    heatmap = torch.full((1, 3, 4, 4), -1.0)  # negative everywhere: weight 0
    heatmap[0, 0, 1, 2] = 2.0  # one cell: its features exactly
    heatmap[0, 1, 0, 0] = heatmap[0, 1, 3, 3] = 1.0  # two cells: their mean
    pooled = heatmap_pool(fused, heatmap)
    assert pooled.shape == (1, 3, 3)
    torch.testing.assert_close(pooled[0, 0], fused[0, :, 1, 2])
    torch.testing.assert_close(pooled[0, 1], (fused[0, :, 0, 0] + fused[0, :, 3, 3]) / 2)
    assert torch.equal(pooled[0, 2], torch.zeros(3))  # no positive weight: zeros, not NaN


def test_heatmap_pool_moments_say_where_around_the_landmark_a_feature_fires() -> None:
    from hih.methods.hih_cp import heatmap_pool

    heatmap = torch.zeros(1, 1, 3, 3)
    heatmap[0, 0, 0, 0] = heatmap[0, 0, 0, 2] = 1.0  # centroid (x, y) = (1, 0)
    fused = torch.zeros(1, 2, 3, 3)
    fused[0, 0, 0, 2] = 1.0  # channel 0 fires right of the centroid
    fused[0, 1] = 1.0  # channel 1 everywhere: no moment
    pooled = heatmap_pool(fused, heatmap, moments=True)[0, 0]  # [mean (2), x moment (2), y moment (2)]
    torch.testing.assert_close(pooled, torch.tensor([0.5, 1.0, 0.5, 0.0, 0.0, 0.0]))
    fused[0, 0] = fused[0, 0].flip(-1)  # now left of it
    torch.testing.assert_close(heatmap_pool(fused, heatmap, moments=True)[0, 0, 2], torch.tensor(-0.5))


def test_reads_a_landmarks_local_features_wherever_it_is() -> None:
    """Features that hold each landmark's sub-cell offset at its own cell (what a backbone can learn
    locally) and a heatmap on that cell: the pooled path turns them into the decimal cell, far above
    the 1/16 chance, for landmarks anywhere in the map."""
    from hih.methods.hih_cp import HIHCPHead

    torch.manual_seed(0)
    n, s, h, d = 4, 64, 16, 4
    codec = HIHCodec(s, h, decimal_size=d, integer_target="cell", decimal_quantizer="round")
    head = HIHCPHead(2, n, h, d, width=4, pool_width=32)
    opt = torch.optim.Adam(head.parameters(), 1e-2)

    def sample(batch: int):
        landmarks = torch.rand(batch, n, 2) * (s - 8) + 4
        coords = to_heatmap_coords(landmarks, s, h)
        cx, cy = coords.cell[..., 0], coords.cell[..., 1]
        onehot = torch.zeros(batch, n, h, h)
        onehot[torch.arange(batch)[:, None], torch.arange(n)[None, :], cy, cx] = 1.0
        frac = coords.offset  # (B, N, 2) in [0, 1)
        fused = torch.einsum("bnyx,bnc->bcyx", onehot, frac)  # each landmark's offset at its cell (sums on collisions)
        return fused, onehot, codec.encode(landmarks)

    for _ in range(300):
        fused, heatmap, t = sample(32)
        loss = heatmap_l2(head(fused, heatmap), t["decimal"], t["weight"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    fused, heatmap, t = sample(128)
    with torch.no_grad():
        pred = head.eval()(fused, heatmap)
    hit = (pred.flatten(2).argmax(-1) == t["decimal"].flatten(2).argmax(-1)).float().mean().item()
    assert hit > 0.5, hit


def test_teacher_sigma_pools_around_the_true_cell_in_training_only() -> None:
    from hih.methods.hih_cp import HIHCPHead, heatmap_pool

    torch.manual_seed(0)
    head = HIHCPHead(3, 2, 16, 4, width=4, pool_width=8, teacher_sigma=1.0)
    fused, heatmap = torch.randn(1, 3, 16, 16), torch.rand(1, 2, 16, 16)
    cells = torch.tensor([[[3, 5], [12, 0]]])  # (x, y)
    gauss = torch.zeros(1, 2, 16, 16)
    for k, (x, y) in enumerate(cells[0].tolist()):
        yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        gauss[0, k] = torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2)
    with torch.no_grad():
        expected = head.cnn(fused) + head.pool_mlp(heatmap_pool(fused, gauss, moments=True)).view(1, 2, 4, 4)
        torch.testing.assert_close(head(fused, heatmap, cells), expected)
        without = head.cnn(fused) + head.pool_mlp(heatmap_pool(fused, heatmap, moments=True)).view(1, 2, 4, 4)
        torch.testing.assert_close(head(fused, heatmap), without)  # inference: the predicted heatmap
    with pytest.raises(ValueError, match="teacher_sigma"):
        HIHCPHead(3, 2, 16, 4, teacher_sigma=0.0)
    with pytest.raises(ValueError, match="needs teacher_sigma"):
        HIHCPHead(3, 2, 16, 4, cell_at_inference=True)
    # cell_at_inference: without cells, the same Gaussian on the heatmap's argmax cell.
    head.cell_at_inference = True
    peaked = torch.zeros(1, 2, 16, 16)
    peaked[0, 0, 5, 3] = peaked[0, 1, 0, 12] = 1.0  # argmax at the cells above
    with torch.no_grad():
        torch.testing.assert_close(head(fused, peaked), expected)


def test_bad_pool_is_named() -> None:
    from hih.methods.hih_cp import HIHCPHead

    with pytest.raises(ValueError, match="pool must be one of"):
        HIHCPHead(4, 2, 16, 4, pool="max")


def test_composes_from_its_config() -> None:
    from hydra.utils import instantiate

    from hih.pipeline import compose

    cfg = compose("train", ["model=hih_cp", "data.input_size=64", "data.heatmap_size=16", "model.decimal_size=4"])
    assert cfg.model.net.head == "hih_cp" and type(instantiate(cfg.model.codec)).__name__ == "HIHCodec"
    assert cfg.model.net.pool_width == cfg.model.pool_width and cfg.model.net.pool == "moments"
    assert cfg.model.net.teacher_sigma == 1.5 and cfg.model.net.cell_at_inference  # the variant that learned
