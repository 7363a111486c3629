"""Stacked hourglass backbone (Newell et al. 2016) as used by HIH, plus the timm-backbone variant.

Both backbones map an image (B, 3, S, S) to one integer heatmap per stack (B, N, S/4, S/4) and the
*fusion* map (B, C, S/4, S/4) that the compensation heads read: the stack's input features plus
1x1 projections of its features and of its predicted heatmap (sec. 3.2.2, "the fusion of the
backbone and integer heatmap"). The same fusion feeds the next stack.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from hih.models.layers import Bottleneck, ConvBNReLU


class Hourglass(nn.Module):
    """Recursive hourglass: (B, C, H, W) -> (B, C, H, W); H and W divisible by 2**depth.

    ``align_corners``: the bilinear upsampling's convention; True is the authors' released code.
    """

    def __init__(self, channels: int, depth: int = 4, align_corners: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"hourglass depth must be >= 1, got {depth}")
        self.depth = depth
        self.align_corners = bool(align_corners)
        self.skip = Bottleneck(channels, channels)
        self.down = Bottleneck(channels, channels)
        self.inner = Hourglass(channels, depth - 1, align_corners) if depth > 1 else Bottleneck(channels, channels)
        self.up = Bottleneck(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        # align_corners=False keeps the pixel-area convention of hih: a 2x2 pooled cell maps back onto
        # exactly the four pixels it came from (align_corners=True would shift features by up to half a cell).
        return self.skip(x) + F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=self.align_corners)


class StackOutput(nn.Module):
    """Per-stack integer-heatmap branch and fusion.

    features (B, C, H, W) from the hourglass, x (B, C, H, W) the stack input ->
    heatmap (B, N, H, W), fused (B, C, H, W) or None when ``fuse`` is False.
    """

    def __init__(self, channels: int, num_landmarks: int, fuse: bool = True):
        super().__init__()
        self.res = Bottleneck(channels, channels)
        self.lin = ConvBNReLU(channels, channels, 1)
        self.pred = nn.Conv2d(channels, num_landmarks, 1)
        # The last stack of a head-less net needs no fusion: leaving it out avoids parameters without gradients.
        self.merge_features = ConvBNReLU(channels, channels, 1) if fuse else None
        self.merge_heatmap = ConvBNReLU(num_landmarks, channels, 1) if fuse else None

    def forward(self, features: Tensor, x: Tensor) -> tuple[Tensor, Tensor | None]:
        features = self.lin(self.res(features))
        heatmap = self.pred(features)
        if self.merge_features is None or self.merge_heatmap is None:
            return heatmap, None
        return heatmap, x + self.merge_features(features) + self.merge_heatmap(heatmap)


class StackedHourglass(nn.Module):
    """Stem (stride 4) + ``stacks`` hourglasses with intermediate supervision.

    forward(image (B, 3, S, S)) -> (heatmaps: list of ``stacks`` tensors (B, N, S/4, S/4),
    fused (B, C, S/4, S/4) after the last stack, or None when ``fuse_last`` is False).
    ``align_corners``: each hourglass's upsampling convention (see :class:`Hourglass`).
    """

    def __init__(
        self,
        num_landmarks: int,
        stacks: int = 1,
        channels: int = 256,
        depth: int = 4,
        fuse_last: bool = True,
        align_corners: bool = False,
    ):
        super().__init__()
        if stacks < 1:
            raise ValueError(f"stacks must be >= 1, got {stacks}")
        if channels % 4:
            raise ValueError(f"hourglass channels must be a multiple of 4 (the stem uses C/4 and C/2), got {channels}")
        self.channels = channels
        self.depth = depth
        self.stem = nn.Sequential(
            ConvBNReLU(3, channels // 4, 7, 2),
            Bottleneck(channels // 4, channels // 2),
            nn.MaxPool2d(2, 2),
            Bottleneck(channels // 2, channels // 2),
            Bottleneck(channels // 2, channels),
        )
        self.hourglasses = nn.ModuleList(Hourglass(channels, depth, align_corners) for _ in range(stacks))
        self.outputs = nn.ModuleList(
            StackOutput(channels, num_landmarks, fuse=fuse_last or i < stacks - 1) for i in range(stacks)
        )

    def forward(self, image: Tensor) -> tuple[list[Tensor], Tensor | None]:
        need = 2 ** (self.depth + 2)
        if image.shape[-1] % need or image.shape[-2] % need:
            raise ValueError(
                f"hourglass of depth {self.depth} needs an input size divisible by {need}, "
                f"got {tuple(image.shape[-2:])}"
            )
        x = self.stem(image)
        heatmaps = []
        fused: Tensor | None = x
        for hourglass, output in zip(self.hourglasses, self.outputs):
            heatmap, fused = output(hourglass(fused), fused)
            heatmaps.append(heatmap)
        return heatmaps, fused


class TimmBackbone(nn.Module):
    """Any timm backbone (``features_only``, random init) reduced to a stride-4 map -> one integer-heatmap stack.

    Every feature level of stride >= 4 is projected to ``channels`` (1x1 conv + BN at its own
    resolution), upsampled to stride 4 and summed (HRNetV2-style aggregation, done before the
    upsampling because 1x1 projections commute with it). Using all levels keeps every backbone
    parameter on the gradient path; a stride-4-only tap would leave deeper stages dead.

    forward(image (B, 3, S, S)) -> ([heatmap (B, N, S/4, S/4)], fused (B, C, S/4, S/4) or None).
    """

    def __init__(self, name: str, num_landmarks: int, channels: int = 256, fuse_last: bool = True, **timm_kwargs):
        super().__init__()
        import timm

        self.body = timm.create_model(name, pretrained=False, features_only=True, **timm_kwargs)
        reductions = list(self.body.feature_info.reduction())
        if 4 not in reductions:
            raise ValueError(
                f"timm model {name!r} has no stride-4 feature map (its feature reductions are {reductions})"
            )
        # Levels finer than stride 4 lie on the path to the kept ones, so they are computed but not returned.
        self.keep = [i for i, r in enumerate(reductions) if r >= 4]
        channels_in = [self.body.feature_info.channels()[i] for i in self.keep]
        self.max_stride = max(reductions)
        self.projections = nn.ModuleList(ConvBNReLU(c, channels, 1, relu=False) for c in channels_in)
        self.relu = nn.ReLU(inplace=True)
        self.output = StackOutput(channels, num_landmarks, fuse=fuse_last)
        self.channels = channels

    def forward(self, image: Tensor) -> tuple[list[Tensor], Tensor | None]:
        if image.shape[-1] % self.max_stride or image.shape[-2] % self.max_stride:
            raise ValueError(
                f"this timm backbone needs an input size divisible by {self.max_stride}, got {tuple(image.shape[-2:])}"
            )
        size = (image.shape[-2] // 4, image.shape[-1] // 4)
        features = self.body(image)
        levels = [features[i] for i in self.keep]
        x = self.projections[0](levels[0])
        if tuple(x.shape[-2:]) != size:
            raise ValueError(
                f"timm backbone's first kept level is {tuple(x.shape[-2:])} for a {tuple(image.shape[-2:])} input; "
                "expected stride 4"
            )
        for projection, level in zip(self.projections[1:], levels[1:]):
            x = x + F.interpolate(projection(level), size=size, mode="bilinear", align_corners=False)
        x = self.relu(x)
        heatmap, fused = self.output(x, x)
        return [heatmap], fused
