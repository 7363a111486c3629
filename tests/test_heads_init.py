"""init_std on the compensation heads: None keeps today's init, a float re-draws every conv / linear."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hih.models.heads import HIHCHead, HIHLHead, HIHTHead, WOMHead, WOVHead

BUILDERS = {
    "hih_c": lambda **kw: HIHCHead(32, 5, 16, decimal_size=4, width=24, **kw),
    "hih_t": lambda **kw: HIHTHead(
        32, 5, 16, decimal_size=4, embed_dim=32, depth=1, num_heads=2, regression_width=24, **kw
    ),
    "hih_l": lambda **kw: HIHLHead(32, 5, decimal_size=4, width=24, **kw),
    "wov": lambda **kw: WOVHead(32, 5, width=24, **kw),
    "wom": lambda **kw: WOMHead(32, width=24, **kw),
}


def _layers(head: nn.Module) -> list[nn.Module]:
    # The transformer blocks keep timm's init in HIH_T (as in the authors' ViT head): only its eq. 6 head.
    root = head.head if isinstance(head, HIHTHead) else head
    return [m for m in root.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_init_std_draws_every_conv_and_linear(name):
    torch.manual_seed(0)
    head = BUILDERS[name](init_std=0.05)
    weights = torch.cat([m.weight.detach().flatten() for m in _layers(head)])
    assert abs(weights.std().item() - 0.05) < 0.005, weights.std()
    assert abs(weights.mean().item()) < 0.005
    for m in _layers(head):
        assert m.bias is None or not m.bias.any(), m


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_default_init_is_unchanged(name):
    torch.manual_seed(0)
    a = BUILDERS[name]()
    torch.manual_seed(0)
    b = BUILDERS[name](init_std=None)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    if name in ("hih_c", "wov", "wom"):  # these were already N(0, 0.001): the same draw at init_std=0.001
        torch.manual_seed(0)
        c = BUILDERS[name](init_std=0.001)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_init_std_is_named(bad):
    with pytest.raises(ValueError, match="init_std"):
        WOVHead(8, 2, init_std=bad)
