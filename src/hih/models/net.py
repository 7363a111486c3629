"""The assembled network: backbone (integer heatmaps + fusion) and an optional compensation head."""

from __future__ import annotations

from torch import Tensor, nn

from hih.models.hourglass import StackedHourglass, TimmBackbone
from hih.models.layers import init_small_normal
from hih.models.output import ModelOutput

class LandmarkNet(nn.Module):
    """forward(image (B, 3, S, S), cells=None) -> ModelOutput(heatmaps=[stacks x (B, N, S/4, S/4)], head, head_key).

    ``cells`` (B, N, 2) long: ground-truth integer cells for heads that read around them
    (``reads_heatmap``, HIH_L); other heads ignore it.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module | None, head_key: str | None, input_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.head_key = head_key
        self.input_size = input_size

    @property
    def wants_cells(self) -> bool:
        """True when training should pass the ground-truth integer cells (teacher forcing)."""
        return bool(getattr(self.head, "reads_heatmap", False))

    def forward(self, image: Tensor, cells: Tensor | None = None) -> ModelOutput:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an image batch (B, 3, S, S), got shape {tuple(image.shape)}")
        heatmaps, fused = self.backbone(image)
        if self.head is None:
            head = None
        elif self.wants_cells:
            head = self.head(fused, heatmaps[-1], cells)
        else:
            head = self.head(fused)
        return ModelOutput(heatmaps=heatmaps, head=head, head_key=self.head_key)


def build_net(
    head: str,
    num_landmarks: int,
    stacks: int = 1,
    channels: int = 256,
    decimal_size: int = 8,
    input_size: int = 256,
    backbone: str = "hourglass",
    hourglass_depth: int = 4,
    **head_kwargs,
) -> LandmarkNet:
    """Build backbone + compensation head.

    head: "none" (baseline / WSM / DARK / soft-argmax) or the name of a registered method with a
    head (:mod:`hih.methods`: "hih_c", "hih_t", "hih_l" (local decimal head, not in the paper),
    "wov", "wom", ...); the registry gives the head class and its output key.
    backbone: "hourglass" (``stacks`` stacked hourglasses of ``hourglass_depth`` and ``channels``
    features) or "timm:<model name>" (that model's features of stride >= 4 aggregated at stride 4,
    randomly initialised since there is no internet, 1 stack; see :class:`TimmBackbone`).
    head_kwargs: the head's widths (HIH_C ``width``; HIH_L ``width``, ``window``, ``reduced``; HIH_T ``embed_dim``, ``depth``, ``num_heads``,
    ``mlp_ratio``, ``regression_width``; WOV / WOM ``width``, ``num_convs``).
    """
    from hih.methods import get_method  # the registry imports the heads of this package

    head = head.lower()
    try:
        method = None if head == "none" else get_method(head)
    except ValueError as err:
        raise ValueError(f"unknown head {head!r}: {err}") from None
    if method is not None and method.head is None:
        raise ValueError(f"method {head!r} has no head; use head='none'")
    if method is None and head_kwargs:
        raise ValueError(f"head 'none' takes no head arguments, got {sorted(head_kwargs)}")
    if input_size % 4:
        raise ValueError(f"input_size must be a multiple of 4 (the heatmap is input_size / 4), got {input_size}")
    heatmap_size = input_size // 4
    fuse = method is not None
    if backbone == "hourglass":
        body: nn.Module = StackedHourglass(num_landmarks, stacks, channels, hourglass_depth, fuse_last=fuse)
        init_small_normal(body)
    elif backbone.startswith("timm:"):
        if stacks != 1:
            raise ValueError(f"timm backbones have a single stack, got stacks={stacks}")
        body = TimmBackbone(backbone.removeprefix("timm:"), num_landmarks, channels, fuse_last=fuse)
        init_small_normal(body.output)  # timm keeps its own initialisation for the backbone proper
        init_small_normal(body.projections)
    else:
        raise ValueError(f"unknown backbone {backbone!r}; expected 'hourglass' or 'timm:<model name>'")

    module = None if method is None else method.head(channels, num_landmarks, heatmap_size, decimal_size, **head_kwargs)
    return LandmarkNet(body, module, None if method is None else method.output_key, input_size)
