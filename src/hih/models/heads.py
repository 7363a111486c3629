"""Compensation heads: they read the fused map (B, C, H, W) and recover what the integer heatmap loses.

- :class:`HIHCHead` / :class:`HIHTHead`: decimal heatmaps (B, N, h_o, w_o) (sec. 3.2.2, CNN / Transformer);
- :class:`HIHLHead`: decimal heatmaps read from a window around each landmark's integer cell (not in the paper);
- :class:`WOVHead`: offset values (B, N, 2) in heatmap cells ("with offset value", sec. 3.3);
- :class:`WOMHead`: a shared x/y offset map (B, 2, H, W) ("with offset map", sec. 3.3).

Architectures follow the official implementation (starhiking/HeatmapInHeatmap); widths are plain
constructor arguments, the paper-matching values live in conf/model/*.yaml.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from hih.models.layers import ConvBNReLU, DownBlock, init_small_normal
from hih.ops import argmax_2d


def _halvings(heatmap_size: int, decimal_size: int) -> int:
    """How many stride-2 steps take the heatmap to the decimal resolution; both powers of two apart."""
    ratio = heatmap_size / decimal_size
    k = int(round(math.log2(ratio))) if ratio > 0 else -1
    if decimal_size < 1 or k < 0 or 2**k * decimal_size != heatmap_size:
        raise ValueError(
            f"decimal_size must divide the {heatmap_size}x{heatmap_size} heatmap by a power of two "
            f"(e.g. {', '.join(str(heatmap_size >> i) for i in range(1, 5) if heatmap_size >> i)}), got {decimal_size}"
        )
    return k


def check_init_std(init_std: float | None) -> float | None:
    """``init_std`` of every head: None keeps the head's own initialisation; a positive std draws
    every conv / linear weight of the head from N(0, std^2) with zero bias (:func:`init_small_normal`),
    the authors' initialisation at std 0.001 (their code leaves biases at PyTorch's default; the
    biases here are zeroed)."""
    if init_std is None:
        return None
    std = float(init_std)
    if not math.isfinite(std) or std <= 0:
        raise ValueError(f"init_std must be None (the head's own init) or a positive float, got {init_std!r}")
    return std


def regression_head(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """Eq. 6: Conv1x1 -> BN -> ReLU -> Conv1x1. (B, C_in, h, w) -> (B, C_out, h, w)."""
    return nn.Sequential(ConvBNReLU(in_channels, hidden, 1), nn.Conv2d(hidden, out_channels, 1))


class HIHCHead(nn.Module):
    """CNN decimal-heatmap head. (B, C, H, W) -> (B, N, decimal_size, decimal_size).

    conv-BN-ReLU (stride 1) -> 3x3/2 max-pool -> (k-1) modified basic blocks (stride 2) -> eq. 6,
    where H = 2**k * decimal_size. ``width`` is the official ``target_o`` (384 matches Table 1).
    ``pool_padding``: 1 (default) halves exactly (64 -> 32 -> 16 -> 8); 0 is the authors' released
    pool (64 -> 31 -> 16 -> 8, landing on d only through the stride-2 blocks' rounding).
    Init: every conv N(0, 0.001^2), zero bias; ``init_std`` changes the std (see :func:`check_init_std`).
    """

    def __init__(
        self,
        in_channels: int,
        num_landmarks: int,
        heatmap_size: int,
        decimal_size: int = 8,
        width: int = 384,
        init_std: float | None = None,
        pool_padding: int = 1,
    ):
        super().__init__()
        std = check_init_std(init_std)
        k = _halvings(heatmap_size, decimal_size)
        if pool_padding not in (0, 1):
            raise ValueError(f"pool_padding must be 0 (the authors' pool) or 1, got {pool_padding!r}")
        if k >= 1:
            size = (heatmap_size - 3 + 2 * pool_padding) // 2 + 1
            for _ in range(k - 1):
                size = (size + 1) // 2  # each stride-2 block: ceil(size / 2)
            if size != decimal_size:
                raise ValueError(
                    f"pool_padding={pool_padding} gives a {size}x{size} map, not {decimal_size}x{decimal_size}, "
                    f"for a {heatmap_size}x{heatmap_size} heatmap (without padding the blocks must round it back)"
                )
        self.decimal_size = decimal_size
        self.conv = ConvBNReLU(in_channels, width, 1)
        # padding=1 so 64 -> 32 exactly (the official unpadded pool gives 31 and only lands on 8 by rounding).
        self.pool = nn.MaxPool2d(3, 2, padding=int(pool_padding)) if k >= 1 else nn.Identity()
        self.blocks = nn.Sequential(*(DownBlock(width, width, 2) for _ in range(max(k - 1, 0))))
        self.head = regression_head(width, width, num_landmarks)
        init_small_normal(self, 0.001 if std is None else std)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.pool(self.conv(x))))


class HIHTHead(nn.Module):
    """Transformer decimal-heatmap head (eq. 5-6). (B, C, H, W) -> (B, N, decimal_size, decimal_size).

    Patches of p = H / decimal_size pixels (a p x p conv with stride p is the linear projection E),
    learnable position embeddings, ``depth`` pre-norm timm ``Block`` layers, a final LayerNorm,
    reshape to (B, D, h_o, w_o) and eq. 6 with ``regression_width`` hidden channels.
    Init: the transformer keeps timm's ViT init and the eq. 6 head is N(0, 0.001^2), as in the
    authors' code (their ViT head re-initialises only its output convs); ``init_std`` changes that
    head's std.
    """

    def __init__(
        self,
        in_channels: int,
        num_landmarks: int,
        heatmap_size: int,
        decimal_size: int = 8,
        embed_dim: int = 512,
        depth: int = 4,
        num_heads: int = 2,
        mlp_ratio: float = 3.0,
        regression_width: int = 256,
        qkv_bias: bool = True,
        init_std: float | None = None,
    ):
        super().__init__()
        std = check_init_std(init_std)
        from timm.models.vision_transformer import Block

        k = _halvings(heatmap_size, decimal_size)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        patch = 2**k
        self.decimal_size = decimal_size
        self.embed_dim = embed_dim
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, decimal_size * decimal_size, embed_dim))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(
            *(Block(embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, norm_layer=norm) for _ in range(depth))
        )
        self.norm = norm(embed_dim)
        self.head = regression_head(embed_dim, regression_width, num_landmarks)
        # timm's ViT initialisation (what the official VisionTransformer-based head trains from).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        init_small_normal(self.head, 0.001 if std is None else std)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(x)  # (B, D, h_o, w_o)
        b, d, h, w = tokens.shape
        y = self.norm(self.blocks(tokens.flatten(2).transpose(1, 2) + self.pos_embed))  # (B, h_o*w_o, D)
        return self.head(y.transpose(1, 2).reshape(b, d, h, w))


class HIHLHead(nn.Module):
    """Local decimal-heatmap head (an extension, not in the paper). -> (B, N, decimal_size, decimal_size).

    The paper's heads must map "landmark n is somewhere in the H x W map" to a d x d map whose cells
    mean sub-cell offsets, not places: the CNN's output cell (i, j) sees only part of the map, so the
    backbone has to broadcast every landmark's offset everywhere (scripts/decimal_probe.py measures
    what that costs to learn). This head instead reads, for landmark n, a ``window`` x ``window``
    patch centred on its integer cell: ``reduced`` 1x1-compressed fusion channels plus landmark n's
    own integer heatmap, through a shared MLP with a per-landmark bias -> d*d logits.

    forward(fused (B, C, H, W), heatmap (B, N, H, W), cells (B, N, 2) long (x, y) or None).
    ``cells`` None reads around argmax(heatmap) (inference); training passes the ground-truth cells
    floor(u) (teacher forcing) so each target offset is relative to the window's centre cell,
    exactly as the decimal target (eq. 1-3) is relative to floor(u).
    ``init_std`` (not None) draws every conv / linear of the head from N(0, std^2) with zero bias.
    """

    reads_heatmap = True

    def __init__(
        self,
        in_channels: int,
        num_landmarks: int,
        decimal_size: int = 8,
        width: int = 128,
        window: int = 5,
        reduced: int = 16,
        init_std: float | None = None,
    ):
        super().__init__()
        std = check_init_std(init_std)
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd number of cells, got {window}")
        self.decimal_size = decimal_size
        self.window = window
        self.reduce = ConvBNReLU(in_channels, reduced, 1)
        self.fc1 = nn.Linear((reduced + 1) * window * window, width)
        self.landmark_bias = nn.Parameter(torch.zeros(num_landmarks, width))
        self.fc2 = nn.Linear(width, decimal_size * decimal_size)
        if std is None:  # default: fc1 keeps PyTorch's init, only the output layer starts small
            init_small_normal(self.reduce)
            nn.init.normal_(self.fc2.weight, std=0.001)
            nn.init.zeros_(self.fc2.bias)
        else:
            init_small_normal(self, std)

    def _windows(self, maps: Tensor, cells: Tensor) -> Tensor:
        """maps (B, K, H, W), cells (B, N, 2) -> (B, N, K, window * window), zero outside the map."""
        r = self.window // 2
        b, k, h, w = maps.shape
        padded = nn.functional.pad(maps, (r, r, r, r)).flatten(2)  # (B, K, (H+2r)(W+2r))
        steps = torch.arange(self.window, device=maps.device)
        ys = cells[..., 1, None, None] + steps[:, None]  # (B, N, win, 1), already offset by the padding
        xs = cells[..., 0, None, None] + steps[None, :]
        index = (ys * (w + 2 * r) + xs).flatten(2)  # (B, N, win*win)
        n = cells.shape[1]
        return padded.unsqueeze(1).expand(b, n, k, -1).gather(3, index.unsqueeze(2).expand(b, n, k, -1))

    def forward(self, fused: Tensor, heatmap: Tensor, cells: Tensor | None = None) -> Tensor:
        b, n, h, w = heatmap.shape
        if cells is None:
            # The codec's own argmax, so the window sits on the very cell the decode adds the offset to.
            cy, cx, _ = argmax_2d(heatmap.detach())
            cells = torch.stack((cx, cy), dim=-1)
        cells = cells.long()
        feats = self._windows(self.reduce(fused), cells).flatten(2)  # (B, N, reduced * win^2)
        own = self._windows(heatmap.reshape(b * n, 1, h, w), cells.reshape(b * n, 1, 2)).reshape(b, n, -1)
        z = torch.relu(self.fc1(torch.cat((feats, own), dim=-1)) + self.landmark_bias)
        return self.fc2(z).view(b, n, self.decimal_size, self.decimal_size)


class _ConvStack(nn.Module):
    """1x1 in -> ``num_convs`` 3x3 -> 1x1, with a 1x1 shortcut: the shared trunk of the official WOV / WOM heads.

    (B, C_in, H, W) -> (B, width, H, W).
    """

    def __init__(self, in_channels: int, width: int, num_convs: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(in_channels, width, 1),
            *(ConvBNReLU(width, width, 3) for _ in range(num_convs)),
            ConvBNReLU(width, width, 1),
        )
        self.shortcut = ConvBNReLU(in_channels, width, 1) if in_channels != width else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class WOVHead(nn.Module):
    """Offset-value head. (B, C, H, W) -> (B, N, 2): per landmark (dx, dy) in heatmap cells.

    Conv trunk -> 1x1 -> 3x3/2 max-pool -> 3x3/2 conv -> 1x1 to 2*width -> global average pool -> linear.
    Init: every conv / linear N(0, 0.001^2), zero bias; ``init_std`` changes the std.
    """

    def __init__(
        self, in_channels: int, num_landmarks: int, width: int = 128, num_convs: int = 1, init_std: float | None = None
    ):
        super().__init__()
        std = check_init_std(init_std)
        self.num_landmarks = num_landmarks
        self.trunk = _ConvStack(in_channels, width, num_convs)
        self.reduce = nn.Sequential(
            ConvBNReLU(width, width, 1),
            nn.MaxPool2d(3, 2, padding=1),
            ConvBNReLU(width, width, 3, 2),
            ConvBNReLU(width, 2 * width, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
        )
        self.fc = nn.Linear(2 * width, 2 * num_landmarks)
        init_small_normal(self, 0.001 if std is None else std)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.reduce(self.trunk(x))).view(x.shape[0], self.num_landmarks, 2)


class WOMHead(nn.Module):
    """Offset-map head. (B, C, H, W) -> (B, 2, H, W): one x- and one y-offset map shared by all landmarks.

    Init: every conv N(0, 0.001^2), zero bias; ``init_std`` changes the std.
    """

    def __init__(self, in_channels: int, width: int = 128, num_convs: int = 1, init_std: float | None = None):
        super().__init__()
        std = check_init_std(init_std)
        self.trunk = _ConvStack(in_channels, width, num_convs)
        self.head = regression_head(width, width, 2)
        init_small_normal(self, 0.001 if std is None else std)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))
