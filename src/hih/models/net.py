"""The assembled network: backbone (integer heatmaps + fusion) and an optional compensation head.

Built by name with :func:`hih.methods.build_net` (the method registry knows each head).
"""

from __future__ import annotations

from torch import Tensor, nn

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
