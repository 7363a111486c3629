"""Loss terms on tiny tensors: zero for a perfect prediction, positive otherwise, weight-0 landmarks ignored."""

from __future__ import annotations

import pytest
import torch

from hih.losses import resolve_loss_weights
from hih.methods import build_loss, compute_losses
from hih.models.output import ModelOutput

B, N, H, HO = 2, 3, 8, 4


def _targets(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, 1, H, H)
    mask[:, :, 2, 3] = 1
    mask[:, :, 5, 1] = 1
    return {
        "heatmap": torch.rand(B, N, H, H, generator=g),
        "decimal": torch.rand(B, N, HO, HO, generator=g) + 0.01,  # strictly positive: KL can reach 0
        "offset": torch.rand(B, N, 2, generator=g),
        "offset_map": torch.rand(B, 2, H, H, generator=g),
        "offset_mask": mask,
        "weight": torch.ones(B, N),
    }


def _perfect(t: dict[str, torch.Tensor], head_key: str | None, stacks: int = 2) -> ModelOutput:
    head = None if head_key is None else t[head_key].clone()
    return ModelOutput(heatmaps=[t["heatmap"].clone() for _ in range(stacks)], head=head, head_key=head_key)


@pytest.mark.parametrize("head_key", [None, "decimal", "offset", "offset_map"])
def test_zero_for_perfect_positive_otherwise(head_key):
    t = _targets()
    out = compute_losses(_perfect(t, head_key), t, {})
    expected = {"heatmap", "loss"} | ({head_key} if head_key else set())
    assert set(out) == expected
    assert all(v.ndim == 0 and v.item() == pytest.approx(0.0, abs=1e-7) for v in out.values())

    bad = _perfect(t, head_key)
    bad.heatmaps[0] = bad.heatmaps[0] + 0.5  # only the first stack is wrong: intermediate supervision sees it
    out = compute_losses(bad, t, {})
    assert out["heatmap"].item() == pytest.approx(0.25, rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.25, rel=1e-5)
    if head_key:
        bad.head = bad.head + 0.5
        out = compute_losses(bad, t, {"heatmap": 2.0, "head": 3.0})
        assert out[head_key].item() > 0
        assert out["loss"].item() == pytest.approx(2.0 * out["heatmap"].item() + 3.0 * out[head_key].item(), rel=1e-5)


def test_l2_values_by_hand():
    t = _targets()
    out = _perfect(t, "offset", stacks=1)
    out.head = out.head + torch.tensor([0.1, -0.3])  # squared errors 0.01 and 0.09 -> mean 0.05
    assert compute_losses(out, t)["offset"].item() == pytest.approx(0.05, rel=1e-5)
    out = _perfect(t, "decimal", stacks=1)
    out.head = out.head + 0.2
    assert compute_losses(out, t)["decimal"].item() == pytest.approx(0.04, rel=1e-5)


def test_weight_zero_landmarks_ignored():
    t = _targets()
    t["weight"][0, 1] = 0.0
    for head_key in ("decimal", "offset"):
        out = _perfect(t, head_key)
        # Garbage (even NaN) at an ignored landmark changes nothing.
        out.heatmaps[1][0, 1] = float("nan")
        out.head[0, 1] = 1e6
        losses = compute_losses(out, t, {})
        assert torch.isfinite(losses["loss"])
        assert losses["loss"].item() == pytest.approx(0.0, abs=1e-7)
        if head_key == "decimal":
            kl = compute_losses(out, t, {"decimal_loss": "kl"})["decimal"]
            out.head[0, 1] = -1e6
            assert compute_losses(out, t, {"decimal_loss": "kl"})["decimal"].item() == pytest.approx(kl.item())
        out.head[1, 1] += 1.0  # a counted landmark does count
        assert compute_losses(out, t)[head_key].item() > 0


def test_wom_smooth_l1_only_at_masked_cells():
    t = _targets()
    out = _perfect(t, "offset_map")
    out.head = out.head.clone()
    out.head[:, :, 0, 0] += 5.0  # unmasked cell
    assert compute_losses(out, t)["offset_map"].item() == pytest.approx(0.0, abs=1e-7)
    out.head[:, 0, 2, 3] += 0.5  # masked cell, channel x: smooth L1 = 0.5 * 0.5^2 = 0.125 (beta 1)
    # 2 samples * 2 cells * 2 channels = 8 masked values, 2 of them wrong -> mean 0.125 * 2 / 8
    assert compute_losses(out, t)["offset_map"].item() == pytest.approx(0.125 * 2 / 8, rel=1e-5)
    out.head[:, 0, 2, 3] += 2.5  # error 3 > beta: linear part, 3 - 0.5
    assert compute_losses(out, t)["offset_map"].item() == pytest.approx(2.5 * 2 / 8, rel=1e-5)


def test_kl_soft_classification():
    t = _targets()
    out = _perfect(t, "decimal")
    dist = t["decimal"] / t["decimal"].sum((-1, -2), keepdim=True)
    out.head = dist.log() + 7.0  # softmax is shift invariant: same distribution -> zero KL
    assert compute_losses(out, t, {"decimal_loss": "kl"})["decimal"].item() == pytest.approx(0.0, abs=1e-6)
    out.head = torch.zeros_like(out.head)  # uniform prediction: KL = sum p log p + log(16)
    p = dist.flatten(2)
    expected = ((p * p.log()).sum(-1) + torch.log(torch.tensor(16.0))).mean()
    assert compute_losses(out, t, {"decimal_loss": "KL"})["decimal"].item() == pytest.approx(expected.item(), rel=1e-5)
    # An all-zero target (a landmark outside the input) contributes 0, not NaN.
    t["decimal"][0, 0] = 0
    assert torch.isfinite(compute_losses(out, t, {"decimal_loss": "kl"})["decimal"])


def test_bad_configuration_and_shapes():
    with pytest.raises(ValueError, match=r"unknown loss option\(s\) \['haetmap'\] for method 'hih_c'"):
        build_loss("decimal", {"haetmap": 1.0})
    with pytest.raises(ValueError, match="belong to a compensation head"):
        build_loss(None, {"decimal_loss": "kl"})
    with pytest.raises(ValueError, match="smooth_l1_beta"):
        build_loss("decimal", {"smooth_l1_beta": 0.5})  # WOM's option, not HIH's
    with pytest.raises(ValueError, match="decimal_loss"):
        build_loss("decimal", {"decimal_loss": "ce"})
    t = _targets()
    out = ModelOutput(heatmaps=[torch.zeros(B, N, 4, 4)])
    with pytest.raises(ValueError, match="does not match target shape"):
        compute_losses(out, t)
    del t["offset"]
    with pytest.raises(KeyError, match="'offset'"):
        compute_losses(ModelOutput([t["heatmap"]], torch.zeros(B, N, 2), "offset"), t)


def _soft_cls_by_hand(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> float:
    """The authors' decimal loss, one landmark at a time in plain Python: p = softmax(target),
    q = softmax(pred) over the d * d cells, sum p (log p - log q) / (d * d), weighted mean."""
    import math

    total, wsum = 0.0, 0.0
    for b in range(pred.shape[0]):
        for n in range(pred.shape[1]):
            if float(weight[b, n]) == 0:
                continue  # not counted, and its maps may hold anything
            x = [float(v) for v in pred[b, n].flatten()]
            t = [float(v) for v in target[b, n].flatten()]
            zx, zt = sum(math.exp(v) for v in x), sum(math.exp(v) for v in t)
            kl = sum(math.exp(ti) / zt * ((ti - math.log(zt)) - (xi - math.log(zx))) for xi, ti in zip(x, t))
            total += float(weight[b, n]) * kl / len(x)
            wsum += float(weight[b, n])
    return total / wsum


def test_cls_soft_classification_by_hand():
    t = _targets()
    g = torch.Generator().manual_seed(3)
    out = _perfect(t, "decimal", stacks=1)
    # The prediction equal to the target, or shifted by a constant: softmax is the same -> zero.
    for shift in (0.0, 5.0):
        out.head = t["decimal"] + shift
        assert compute_losses(out, t, {"decimal_loss": "cls"})["decimal"].item() == pytest.approx(0.0, abs=1e-7)
    out.head = 3 * torch.randn(B, N, HO, HO, generator=g)
    got = compute_losses(out, t, {"decimal_loss": "CLS"})["decimal"].item()
    assert got > 0
    assert got == pytest.approx(_soft_cls_by_hand(out.head, t["decimal"], t["weight"]), rel=1e-5)
    # With every landmark counted it is torch's KL on the softmaxed rows over the element count.
    flat = lambda x: x.reshape(-1, HO * HO)  # noqa: E731
    ref = torch.nn.functional.kl_div(
        torch.log_softmax(flat(out.head), -1), torch.softmax(flat(t["decimal"]), -1), reduction="sum"
    )
    assert got == pytest.approx(ref.item() / out.head.numel(), rel=1e-5)
    # Not the sum-normalised KL of decimal_loss="kl": the target's softmax is much flatter.
    assert got != pytest.approx(compute_losses(out, t, {"decimal_loss": "kl"})["decimal"].item(), rel=1e-2)
    # A weight-0 landmark (outside the input) is ignored, whatever its maps hold.
    t["weight"][1, 2] = 0.0
    out.head[1, 2] = 1e4
    got = compute_losses(out, t, {"decimal_loss": "cls"})["decimal"].item()
    assert got == pytest.approx(_soft_cls_by_hand(out.head, t["decimal"], t["weight"]), rel=1e-5)


def test_stack_reduction_sum_or_mean():
    t = _targets()
    out = _perfect(t, None, stacks=3)
    out.heatmaps[0] = out.heatmaps[0] + 0.5  # 0.25 on stack 0
    out.heatmaps[2] = out.heatmaps[2] - 0.1  # 0.01 on stack 2
    assert compute_losses(out, t, {})["heatmap"].item() == pytest.approx(0.26, rel=1e-5)
    assert compute_losses(out, t, {"stack_reduction": "sum"})["heatmap"].item() == pytest.approx(0.26, rel=1e-5)
    assert compute_losses(out, t, {"stack_reduction": "mean"})["heatmap"].item() == pytest.approx(0.26 / 3, rel=1e-5)
    with pytest.raises(ValueError, match="stack_reduction"):
        resolve_loss_weights({"stack_reduction": "max"})
