"""Building blocks shared by the hourglass backbone and the compensation heads.

All blocks keep the spatial size unless a stride says otherwise ("same" padding for odd kernels),
so every map in the network is an exact power-of-two fraction of the input.
"""

from __future__ import annotations

from torch import Tensor, nn


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, BN follows) -> BatchNorm -> optional ReLU. (B, C_in, H, W) -> (B, C_out, H/s, W/s)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """Newell et al.'s residual module: 1x1 (C/2) -> 3x3 (C/2) -> 1x1 (C), each with BN.

    (B, C_in, H, W) -> (B, C_out, H, W).

    The shortcut is a 1x1 projection only when the channel count changes. (The official HIH code
    allocates that projection in every module and skips it at run time; we do not carry dead
    weights. :func:`hih.models.complexity.count` reports the paper's convention separately.)
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        if mid < 1:
            raise ValueError(f"Bottleneck needs out_channels >= 2, got {out_channels}")
        self.body = nn.Sequential(
            ConvBNReLU(in_channels, mid, 1),
            ConvBNReLU(mid, mid, 3),
            ConvBNReLU(mid, out_channels, 1, relu=False),
        )
        self.shortcut = (
            nn.Identity() if in_channels == out_channels else ConvBNReLU(in_channels, out_channels, 1, relu=False)
        )
        self.relu = nn.ReLU(inplace=True)

    @property
    def identity_shortcut(self) -> bool:
        return isinstance(self.shortcut, nn.Identity)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class DownBlock(nn.Module):
    """ResNet basic block as modified by HIH_C (sec. 3.2.2): stride in the first 3x3 conv, a 3x3 second conv.

    (B, C_in, H, W) -> (B, C_out, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(in_channels, out_channels, 3, stride),
            ConvBNReLU(out_channels, out_channels, 3, relu=False),
        )
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (
            ConvBNReLU(in_channels, out_channels, 1, stride, relu=False) if needs_projection else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def init_small_normal(module: nn.Module, std: float = 0.001) -> None:
    """The official HIH initialisation: conv/linear weights ~ N(0, std), zero biases, BN at identity.

    Small output layers start every heatmap near zero, so the first L2 losses are bounded by the targets.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
