"""The network to ONNX (dynamic batch), checked against PyTorch with onnxruntime.

The exported graph takes ``image`` (B, 3, S, S) ImageNet-normalised and returns the last stack's
integer ``heatmap`` (B, N, H, W) plus the compensation head's output under its own key
(``decimal`` / ``offset`` / ``offset_map``); decoding stays in the codec (plain torch or numpy).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hih.codecs.base import Codec
from hih.methods import head_output

__all__ = ["OnnxNet", "check_onnx", "export_onnx"]


class OnnxNet(nn.Module):
    """``net`` with a tuple output (ONNX graphs return tensors, not a ModelOutput)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.head_key = getattr(net, "head_key", None)

    def output_names(self) -> list[str]:
        """ "heatmap" plus the head's output under the key its method registers (ModelOutput.head_key)."""
        return ["heatmap"] + ([self.head_key] if self.head_key else [])

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(image)
        return (out.heatmaps[-1],) + ((out.head,) if out.head is not None else ())


def export_onnx(net: nn.Module, path: str | Path, input_size: int, opset: int = 18, dynamo: bool = True) -> Path:
    """Write ``net`` (in eval mode) to ``path`` with a dynamic batch dimension.

    dynamo: torch.export-based exporter (torch's default); False uses the legacy TorchScript one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = OnnxNet(net).eval()
    example = (torch.randn(2, 3, input_size, input_size),)
    names = wrapped.output_names()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape checks, which are static here
        if dynamo:
            torch.onnx.export(
                wrapped,
                example,
                str(path),
                input_names=["image"],
                output_names=names,
                opset_version=opset,
                dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=4096)}},
                dynamo=True,
            )
        else:
            torch.onnx.export(
                wrapped,
                example,
                str(path),
                input_names=["image"],
                output_names=names,
                opset_version=opset,
                dynamic_axes={n: {0: "batch"} for n in ["image", *names]},
                dynamo=False,
            )
    return path


@torch.no_grad()
def check_onnx(path: str | Path, net: nn.Module, codec: Codec, batch_sizes=(1, 3), seed: int = 0) -> dict[str, float]:
    """Run the ONNX file with onnxruntime (CPU) and PyTorch on random images of each batch size.

    Returns the max abs differences: ``heatmap``, the head's key, and ``landmarks`` (decoded by
    ``codec`` from each side's outputs, input pixels), plus ``argmax_ties``: landmarks left out of
    the comparison because their heatmap's top two cells are equal to float precision (so either
    runtime may pick either; an untrained net on noise has many). Integer and decimal
    heatmaps both count.
    """
    import onnxruntime as ort

    wrapped = OnnxNet(net).eval()
    names = wrapped.output_names()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    diffs = dict.fromkeys([*names, "landmarks", "argmax_ties"], 0.0)
    for b in batch_sizes:
        image = torch.randn(b, 3, codec.input_size, codec.input_size, generator=g)
        ours = wrapped(image)
        theirs = [torch.from_numpy(np.asarray(a)) for a in session.run(names, {"image": image.numpy()})]
        for name, a, t in zip(names, ours, theirs):
            if a.shape != t.shape:
                raise AssertionError(
                    f"ONNX output {name} has shape {tuple(t.shape)}, PyTorch {tuple(a.shape)} (batch {b})"
                )
            diffs[name] = max(diffs[name], float((a - t).abs().max()))
        lm_ours = codec.decode(dict(zip(names, ours)))
        lm_theirs = codec.decode(dict(zip(names, theirs)))
        # A heatmap whose two top cells tie to float precision may argmax differently on each
        # runtime (a whole cell apart): count such ties, compare the landmarks of all others.
        tie = torch.zeros(ours[0].shape[:2], dtype=torch.bool)
        for name, a, t in zip(names, ours, theirs):
            if name == "heatmap" or (
                name == wrapped.head_key and head_output(name).head_is_heatmap
            ):  # argmax-decoded maps
                tie |= _argmax_ties(a, t, tolerance=max(diffs[name], 1e-7) * 2)
        diffs["argmax_ties"] += float(tie.sum())
        keep = ~tie
        if keep.any():
            diffs["landmarks"] = max(diffs["landmarks"], float((lm_ours - lm_theirs)[keep].abs().max()))
    return diffs


def _argmax_ties(ours: torch.Tensor, theirs: torch.Tensor, tolerance: float) -> torch.Tensor:
    """(B, N) bool: the two argmax cells differ but hold values within ``tolerance`` in ``ours``."""
    flat_o, flat_t = ours.flatten(2), theirs.flatten(2)
    i_o, i_t = flat_o.argmax(-1), flat_t.argmax(-1)
    gap = (flat_o.gather(-1, i_o[..., None]) - flat_o.gather(-1, i_t[..., None])).squeeze(-1)
    return (i_o != i_t) & (gap <= tolerance)
