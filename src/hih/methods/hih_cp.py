"""HIH_CP: the paper's CNN decimal head (HIH_C) plus a per-landmark pooling path. An extension, not in the paper.

Why: HIH_C's output cell (i, j) of the d x d decimal map means "landmark n sits at sub-cell offset
(j, i) / d", wherever landmark n is; a translation-equivariant CNN with a limited receptive field
has to carry that offset from the landmark's place to output cell (i, j), which it did not learn in
the CPU budgets (scripts/decimal_probe.py, docs/decimal_heads.md). A small addition that makes
the decimal map position-independent: pool the fused features with landmark n's own integer heatmap
as weights (soft attention on where landmark n is) and map the pooled vector through eq. 6's
regression head in vector form (Linear -> ReLU -> Linear, shared by all landmarks) to d*d logits,
added to the CNN's logits. The CNN, the codec (HIHCodec), the decimal target and loss are HIH_C's.

The pooling weights are the integer heatmap detached (the decimal loss does not move the integer
heatmap through them), ReLU-ed and normalised to sum 1 per landmark. ``pool="mean"`` pools the
features only (the weighted mean); ``pool="moments"`` (default) adds their first moments about the
heatmap's centroid, sum_p w_p f_p (x_p - x_c) and the same in y: where around the landmark each
feature fires, i.e. a pooled CoordConv. The learning-curve study (docs/decimal_heads.md) measured the
mean alone stay at chance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hih.codecs.hih import HIHCodec
from hih.methods._registry import Method, register
from hih.methods.builtin import DECIMAL_ACC, decimal_loss
from hih.models.heads import HIHCHead, check_init_std
from hih.models.layers import init_small_normal
from hih.ops import argmax_2d

POOLS = ("mean", "moments")


def heatmap_pool(fused: Tensor, heatmap: Tensor, moments: bool = False, eps: float = 1e-6) -> Tensor:
    """fused (B, C, H, W) pooled with each landmark's heatmap (B, N, H, W) as weights.

    Weights w: relu(heatmap) normalised per landmark (an all-zero heatmap pools to zeros).
    Returns (B, N, C): sum_p w_p f_p; with ``moments`` (B, N, 3C): that, then sum_p w_p f_p (x_p - x_c)
    and sum_p w_p f_p (y_p - y_c), with (x_c, y_c) = sum_p w_p (x_p, y_p) in cells.
    """
    b, c, h, wd = fused.shape
    w = heatmap.detach().float().clamp(min=0).flatten(2)  # (B, N, HW)
    w = w / (w.sum(-1, keepdim=True) + eps)
    f = fused.float().flatten(2)  # (B, C, HW)
    pooled = [torch.einsum("bnp,bcp->bnc", w, f)]
    if moments:
        ys, xs = torch.meshgrid(
            torch.arange(h, device=f.device, dtype=f.dtype),
            torch.arange(wd, device=f.device, dtype=f.dtype),
            indexing="ij",
        )
        for grid in (xs.flatten(), ys.flatten()):
            rel = grid - (w * grid).sum(-1, keepdim=True)  # (B, N, HW): cells from the centroid
            pooled.append(torch.einsum("bnp,bcp->bnc", w * rel, f))
    return torch.cat(pooled, dim=-1).to(fused.dtype)


class HIHCPHead(nn.Module):
    """HIH_C's CNN + the pooled path. forward(fused (B, C, H, W), heatmap (B, N, H, W), cells=None)
    -> (B, N, decimal_size, decimal_size) logits. ``cells`` (B, N, 2) long (x, y): the ground-truth
    integer cells the net passes in training to heads that read the heatmap; used only with
    ``teacher_sigma`` (else the predicted heatmap is pooled in training too).

    width: the CNN's channels (HIH_C's ``width``); pool_width: hidden units of the pooled path;
    pool: "moments" (default) or "mean" (see :func:`heatmap_pool`);
    teacher_sigma: None (default) or a sigma in cells: training then pools with a Gaussian of that
    sigma on the ground-truth cell instead of the predicted heatmap (teacher forcing, as HIH_L reads
    at the ground-truth cell; the codec's integer target with integer_target="cell" has that shape,
    so inference, which pools the predicted heatmap, sees the same weights once the heatmap is learned);
    cell_at_inference (with teacher_sigma): inference pools the same Gaussian on the heatmap's argmax
    cell instead of the predicted heatmap itself (HIH_L's scheme: ground-truth cell in training, the
    decode's argmax cell at test), so training and inference see the same weights.
    Init: the CNN as HIH_C; the pooled path's output layer N(0, 0.001^2) (eq. 6's init), so both
    start near zero; ``init_std`` draws every layer of the pooled path from N(0, std^2).
    """

    reads_heatmap = True

    def __init__(
        self,
        in_channels: int,
        num_landmarks: int,
        heatmap_size: int,
        decimal_size: int = 8,
        width: int = 384,
        pool_width: int = 128,
        pool: str = "moments",
        teacher_sigma: float | None = None,
        cell_at_inference: bool = False,
        init_std: float | None = None,
    ):
        super().__init__()
        std = check_init_std(init_std)
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.moments = pool == "moments"
        if teacher_sigma is not None and not float(teacher_sigma) > 0:
            raise ValueError(f"teacher_sigma must be None or a positive number of cells, got {teacher_sigma!r}")
        self.teacher_sigma = None if teacher_sigma is None else float(teacher_sigma)
        if cell_at_inference and self.teacher_sigma is None:
            raise ValueError("cell_at_inference needs teacher_sigma (the Gaussian's sigma in cells)")
        self.cell_at_inference = bool(cell_at_inference)
        self.decimal_size = decimal_size
        self.cnn = HIHCHead(in_channels, num_landmarks, heatmap_size, decimal_size, width=width, init_std=init_std)
        self.pool_mlp = nn.Sequential(
            nn.Linear(in_channels * (3 if self.moments else 1), pool_width),
            nn.ReLU(inplace=True),
            nn.Linear(pool_width, decimal_size**2),
        )
        if std is None:
            nn.init.normal_(self.pool_mlp[-1].weight, std=0.001)
            nn.init.zeros_(self.pool_mlp[-1].bias)
        else:
            init_small_normal(self.pool_mlp, std)

    def forward(self, fused: Tensor, heatmap: Tensor, cells: Tensor | None = None) -> Tensor:
        b, n, h, w = heatmap.shape
        weights = heatmap
        if self.teacher_sigma is not None and cells is None and self.cell_at_inference:
            cy, cx, _ = argmax_2d(heatmap.detach())  # the codec's own argmax: the cell the decode uses
            cells = torch.stack((cx, cy), dim=-1)
        if self.teacher_sigma is not None and cells is not None:
            ys, xs = torch.meshgrid(
                torch.arange(h, device=heatmap.device), torch.arange(w, device=heatmap.device), indexing="ij"
            )
            d2 = (xs - cells[..., 0, None, None]) ** 2 + (ys - cells[..., 1, None, None]) ** 2  # (B, N, H, W)
            weights = torch.exp(-d2.to(heatmap.dtype) / (2 * self.teacher_sigma**2))
        pooled = self.pool_mlp(heatmap_pool(fused, weights, self.moments))  # (B, N, d*d)
        return self.cnn(fused) + pooled.view(b, n, self.decimal_size, self.decimal_size)


def _head(channels: int, num_landmarks: int, heatmap_size: int, decimal_size: int, **kw) -> nn.Module:
    return HIHCPHead(channels, num_landmarks, heatmap_size, decimal_size, **kw)


# Same output key, loss, figures and dashboard score as HIH_C / HIH_T / HIH_L: the decimal heatmap.
register(
    Method(
        "hih_cp",
        HIHCodec,
        head=_head,
        output_key="decimal",
        loss=decimal_loss,
        head_is_heatmap=True,
        head_metric=DECIMAL_ACC,
    )
)
