"""Parameter and FLOP counts, as the paper reports them (Tables 1, 5, 6).

FLOPs are multiply-accumulates of one forward pass on a single 3 x S x S image, counted with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions, linear layers, attention). That mode
counts 2 FLOPs per MAC, so its total is halved. Element-wise ops (BN, ReLU, pooling, upsampling)
are not counted.

The official HIH code allocates weights it never uses: a 1x1 projection + BN in every hourglass
residual module whose shortcut is the identity, the fusion convolutions of the last stack of a
head-less net (which it also runs, output discarded), and timm's ``VisionTransformer`` class
token, extra position row and 1000-way classifier in HIH_T. The paper's counts include them (its
baseline's 5.33M / 6.67G are only reached that way). ``hih`` builds no dead weights (every
parameter gets a gradient), so :func:`count` reports both conventions: ``params_m`` / ``gflops``
for this network, ``params_m_paper`` / ``gflops_paper`` with the official code's unused weights and
discarded computation added back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hih.models.heads import HIHTHead
from hih.models.hourglass import StackOutput
from hih.models.layers import Bottleneck


def official_unused(net: nn.Module, heatmap_size: int) -> tuple[int, int]:
    """(parameters, MACs) the official implementation would allocate / compute without using, for this architecture."""
    extra, macs = 0, 0
    for m in net.modules():
        if isinstance(m, Bottleneck) and m.identity_shortcut:
            c = m.body[-1][0].out_channels
            extra += c * c + 2 * c  # 1x1 conv without bias + BN affine
        elif isinstance(m, StackOutput) and m.merge_features is None:
            c, n = m.pred.in_channels, m.pred.out_channels
            extra += (c * c + 2 * c) + (n * c + 2 * c)
            macs += (c * c + n * c) * heatmap_size * heatmap_size
        elif isinstance(m, HIHTHead):
            d = m.embed_dim
            extra += d + d + (d * 1000 + 1000)  # cls token, its position row, ImageNet classifier
    return extra, macs


def count(net: nn.Module, input_size: int = 256) -> dict[str, float]:
    """{"params_m", "gflops", "params_m_paper", "gflops_paper"} for one (1, 3, S, S) image.

    Parameters in millions, FLOPs in GMACs; ``*_paper`` follow the official code's convention (module docstring).

    The net is run once in eval mode without gradients; its training mode is restored afterwards.
    """
    params = sum(p.numel() for p in net.parameters())
    was_training = net.training
    device = next(net.parameters()).device
    net.eval()
    try:
        image = torch.zeros(1, 3, input_size, input_size, device=device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            net(image)
    finally:
        net.train(was_training)
    macs = counter.get_total_flops() / 2
    unused_params, unused_macs = official_unused(net, input_size // 4)
    return {
        "params_m": params / 1e6,
        "gflops": macs / 1e9,
        "params_m_paper": (params + unused_params) / 1e6,
        "gflops_paper": (macs + unused_macs) / 1e9,
    }
