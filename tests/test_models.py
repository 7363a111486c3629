"""Models: shapes for every head x decimal size x stacks, gradients, a few training steps, bf16 / channels_last."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from hih.methods import build_codec, build_net, get_method, method_names
from hih.models import count
from hih.models.output import ModelOutput

#: "none" plus every registered method with a head -> the key its output is written under.
HEAD_KEYS = {"none": None, **{m: get_method(m).output_key for m in method_names() if get_method(m).head is not None}}

N = 5  # landmarks
S = 128  # input size -> 32x32 heatmaps (the paper's 256 -> 64 scaled down)
H = S // 4
TINY = {  # widths small enough for CPU tests
    "none": {},
    "hih_c": {"width": 16},
    "hih_t": {"embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0, "regression_width": 8},
    "hih_l": {"width": 16, "reduced": 4},
    "wov": {"width": 8},
    "wom": {"width": 8},
    "hih_cp": {"width": 8, "pool_width": 8},
    "local_offset": {"width": 8},
}


def tiny_net(head: str, stacks: int = 1, decimal_size: int = 8, input_size: int = S, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_net(
        head, N, stacks=stacks, channels=16, decimal_size=decimal_size, input_size=input_size, **TINY[head], **kw
    )


def expected_head_shape(head: str, batch: int, decimal_size: int) -> tuple[int, ...] | None:
    """The shape the method's codec reads: its ideal outputs (targets fed back) for this geometry."""
    if head == "none":
        return None
    kw = (
        {"decimal_size": decimal_size} if "decimal_size" in inspect.signature(get_method(head).codec).parameters else {}
    )
    codec = build_codec(head, input_size=S, heatmap_size=H, **kw)
    ideal = codec.targets_as_outputs(codec.encode(torch.rand(batch, N, 2) * S))
    return tuple(ideal[codec.head_key].shape)


@pytest.mark.parametrize("stacks", [1, 2])
@pytest.mark.parametrize("decimal_size", [4, 8, 16])
@pytest.mark.parametrize("head", sorted(HEAD_KEYS))
def test_output_shapes(head: str, decimal_size: int, stacks: int) -> None:
    net = tiny_net(head, stacks, decimal_size).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, S, S))
    assert isinstance(out, ModelOutput)
    assert len(out.heatmaps) == stacks
    assert all(h.shape == (2, N, H, H) for h in out.heatmaps)
    assert out.head_key == HEAD_KEYS[head]
    shape = expected_head_shape(head, 2, decimal_size)
    assert (out.head is None) if shape is None else (out.head.shape == shape)
    codec_input = out.for_codec()
    assert codec_input["heatmap"] is out.heatmaps[-1]
    assert set(codec_input) == {"heatmap"} | ({HEAD_KEYS[head]} if HEAD_KEYS[head] else set())


def _loss(out: ModelOutput) -> torch.Tensor:
    # Weighted so that no term can cancel another's gradient by symmetry.
    loss = sum((h - 0.5).square().mean() for h in out.heatmaps)
    if out.head is not None:
        loss = loss + (out.head - 0.3).square().mean()
    return loss


@pytest.mark.parametrize("head", sorted(HEAD_KEYS))
def test_gradients_reach_every_parameter(head: str) -> None:
    net = tiny_net(head, stacks=2).train()
    _loss(net(torch.randn(2, 3, S, S))).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("head", sorted(HEAD_KEYS))
def test_loss_falls_with_adam(head: str) -> None:
    torch.manual_seed(1)
    net = tiny_net(head, input_size=64).train()
    image = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        shapes = net(image)
    # Fixed random targets: the net only has to fit one batch.
    targets = [torch.rand_like(h) for h in shapes.heatmaps]
    head_target = torch.rand_like(shapes.head) if shapes.head is not None else None
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = net(image)
        loss = sum(nn.functional.mse_loss(h, t) for h, t in zip(out.heatmaps, targets))
        if head_target is not None:
            loss = loss + nn.functional.mse_loss(out.head, head_target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("head", sorted(HEAD_KEYS))
def test_bf16_autocast_and_channels_last(head: str) -> None:
    net = tiny_net(head, stacks=2).to(memory_format=torch.channels_last)
    image = torch.randn(2, 3, S, S).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(image)
        loss = _loss(out)
    loss.float().backward()
    assert all(torch.isfinite(h).all() and h.shape == (2, N, H, H) for h in out.heatmaps)
    if out.head is not None:
        assert torch.isfinite(out.head).all()
        assert out.head.shape == expected_head_shape(head, 2, 8)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_timm_backbone() -> None:
    pytest.importorskip("timm")
    torch.manual_seed(0)
    net = build_net(
        "hih_c", N, channels=16, decimal_size=8, input_size=64, backbone="timm:mobilenetv3_small_050", width=8
    )
    out = net(torch.randn(2, 3, 64, 64))
    assert [h.shape for h in out.heatmaps] == [(2, N, 16, 16)]
    assert out.head.shape == (2, N, 8, 8)
    _loss(out).backward()
    assert all(p.grad is not None for p in net.parameters()), "a timm stage is off the gradient path"
    with pytest.raises(ValueError, match="single stack"):
        build_net("none", N, stacks=2, backbone="timm:mobilenetv3_small_050")


def test_count_matches_analytic_macs() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    c = count(conv, 16)
    assert c["gflops"] * 1e9 == pytest.approx(3 * 8 * 9 * 16 * 16 + 8 * 16 * 16 * 10)
    assert c["params_m"] * 1e6 == sum(p.numel() for p in conv.parameters())
    assert c["params_m_paper"] == c["params_m"] and c["gflops_paper"] == c["gflops"]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="unknown head"):
        build_net("hih_x", N)
    with pytest.raises(ValueError, match="decimal_size must divide"):
        build_net("hih_c", N, channels=16, decimal_size=6, input_size=S, width=8)
    with pytest.raises(ValueError, match="decimal_size must divide"):
        build_net("hih_t", N, channels=16, decimal_size=64, input_size=S, **TINY["hih_t"])
    with pytest.raises(ValueError, match="unknown backbone"):
        build_net("none", N, backbone="resnet")
    net = tiny_net("none")
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\)"):
        net(torch.randn(3, S, S))
    with pytest.raises(ValueError, match="divisible by 64"):
        net(torch.randn(1, 3, 96, 96))
