"""A worked example of adding a method (docs/adding_a_method.md): per-landmark local offset maps.

Not in the paper. Like WOV it recovers the decimal part o = u - floor(u) (eq. 1) of each landmark,
but from a 1x1-conv map per landmark, (B, N, 2, H, W), read at the integer heatmap's argmax cell
instead of a globally pooled vector. Everything the suite needs to train, test, plot and export it
is here; conf/model/local_offset.yaml selects it (``hih-train model=local_offset``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from hih.codecs.common import argmax_2d
from hih.codecs.offset import OffsetValueCodec
from hih.methods._registry import Method, register
from hih.metrics import HeadMetric, offset_error_map
from hih.models.heads import check_init_std
from hih.models.layers import init_small_normal

KEY = "local_offset"


class LocalOffsetHead(nn.Module):
    """(B, C, H, W) fused map -> (B, N, 2, H, W): each landmark's (dx, dy) offset at every cell."""

    def __init__(self, in_channels: int, num_landmarks: int, width: int = 64, init_std: float | None = None):
        super().__init__()
        self.num_landmarks = num_landmarks
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, 2 * num_landmarks, 1)
        )
        std = check_init_std(init_std)  # labels=authors: every head from N(0, 0.001^2), like theirs
        if std is not None:
            init_small_normal(self, std)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return torch.sigmoid(self.body(x)).view(b, self.num_landmarks, 2, h, w)  # offsets lie in [0, 1)


def _at_cells(maps: Tensor, cy: Tensor, cx: Tensor) -> Tensor:
    """maps (B, N, 2, H, W) read at cells (B, N) -> (B, N, 2)."""
    w = maps.shape[-1]
    flat = (cy * w + cx).long()[..., None, None].expand(*maps.shape[:3], 1)
    return maps.flatten(3).gather(-1, flat).squeeze(-1)


class LocalOffsetCodec(OffsetValueCodec):
    """WOV's targets under their own key plus the ground-truth cell the loss reads the map at.

    encode -> {"heatmap" (B, N, H, W), "local_offset" (B, N, 2) cells, "cell" (B, N, 2) long (x, y), "weight"}.
    decode({"heatmap", "local_offset": (B, N, 2, H, W)}) -> (argmax cell + map there) * stride.
    """

    head_key = KEY
    target_keys = ("heatmap", KEY, "cell", "weight")
    #: How hih-quantization's table names this decode (default: the codec's class name).
    decode_label = "offset map at the argmax"

    def encode(self, landmarks: Tensor) -> dict[str, Tensor]:
        t = super().encode(landmarks)
        return {"heatmap": t["heatmap"], KEY: t["offset"], "cell": t["cell"], "weight": t["weight"]}

    def decode(self, outputs: Mapping[str, Tensor]) -> Tensor:
        heatmap, maps = outputs["heatmap"], outputs[KEY]
        cy, cx, _ = argmax_2d(heatmap)
        return super().decode({"heatmap": heatmap, "offset": _at_cells(maps, cy, cx)})

    def targets_as_outputs(self, targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        # The ideal head predicts the landmark's offset at every cell.
        h = targets["heatmap"].shape[-1]
        return {"heatmap": targets["heatmap"], KEY: targets[KEY][..., None, None].expand(-1, -1, -1, h, h)}


def local_offset_l1(pred: Tensor, targets: Mapping[str, Tensor], weight: Tensor) -> Tensor:
    """L1 between the map read at the ground-truth cell and the offset; weighted mean over landmarks."""
    cell = targets["cell"]
    per_landmark = (_at_cells(pred.float(), cell[..., 1], cell[..., 0]) - targets[KEY].float()).abs().mean(-1)
    return (per_landmark * weight).sum() / weight.sum().clamp(min=1e-6)


def local_offset_loss():
    """The method's loss: no options of its own (``model.loss.head`` weighs it)."""
    return local_offset_l1


def _head(channels: int, num_landmarks: int, heatmap_size: int, decimal_size: int, **kw) -> nn.Module:
    return LocalOffsetHead(channels, num_landmarks, **kw)


def local_offset_error(pred: Tensor, targets: Mapping[str, Tensor], cells: Tensor) -> tuple[Tensor, Tensor]:
    """Dashboard score: offset error in cells of the map read at the ground-truth cell (B, N)."""
    return offset_error_map(
        _at_cells(pred.float(), cells[..., 1], cells[..., 0]), targets[KEY].float(), targets["weight"]
    )


register(
    Method(
        "local_offset",
        LocalOffsetCodec,
        head=_head,
        output_key=KEY,
        loss=local_offset_loss,
        head_metric=HeadMetric("offset_err", "offset_gain", local_offset_error, higher_is_better=False),
    )
)
