"""The paper's first contribution: how much NME quantization alone costs (Tables 1 and 8, "Ideal").

Under ideal conditions the network output equals the encoded target, so
``decode(encode(labels))`` differs from the ground truth only by what the label
representation cannot express. Two label variants are measured: the float labels as
annotated, and labels rounded to integer pixels in the original image before cropping
(the preprocessing quantization the paper describes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hih.codecs import HeatmapCodec, HIHCodec, OffsetMapCodec, OffsetValueCodec
from hih.codecs.base import Codec
from hih.data.geometry import apply_affine, crop_matrix
from hih.metrics import per_sample_nme


@dataclass(frozen=True)
class Method:
    """One row of the analysis: a codec and how it is named in the tables."""

    method: str
    decode: str
    resolution: str
    codec: Codec = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.method} ({self.decode}, {self.resolution})"


def default_methods(
    input_size: int = 256,
    heatmap_size: int = 64,
    decimal_sizes: Sequence[int] = (4, 8, 16),
    sigma: float = 1.5,
    decimal_sigma: float = 1.0,
) -> list[Method]:
    """Every compensation method of the suite, each at its own resolution."""
    hw = dict(input_size=input_size, heatmap_size=heatmap_size, sigma=sigma)
    res = f"{heatmap_size}x{heatmap_size}"
    methods = [
        Method("baseline", "argmax corner", res, HeatmapCodec(**hw, decoder="argmax", anchor="corner")),
        Method("baseline", "argmax centre", res, HeatmapCodec(**hw, decoder="argmax", anchor="centre")),
        Method("wsm", "quarter shift", res, HeatmapCodec(**hw, decoder="wsm")),
        Method("dark", "taylor", res, HeatmapCodec(**hw, decoder="dark")),
        Method("soft_argmax", "integral", res, HeatmapCodec(**hw, decoder="soft_argmax")),
        Method("wov", "offset values", res, OffsetValueCodec(**hw)),
        Method("wom", "offset map", res, OffsetMapCodec(**hw)),
    ]
    for d in decimal_sizes:
        for decode in ("corner", "centre"):
            codec = HIHCodec(**hw, decimal_size=d, decimal_sigma=decimal_sigma, decimal_decode=decode)
            methods.append(Method("hih", f"decimal {decode}", f"{d}x{d}", codec))
    return methods


def input_landmarks(records: Iterable, input_size: int, crop_scale: float, rounded: bool = False) -> np.ndarray:
    """(M, N, 2) landmarks of each record in its cropped input, optionally from integer-rounded raw labels."""
    out = []
    for rec in records:
        pts = np.round(rec.landmarks) if rounded else rec.landmarks
        out.append(apply_affine(pts, crop_matrix(rec.bbox, input_size, crop_scale)))
    if not out:
        raise ValueError("no records to analyse: the split is empty")
    return np.stack(out)


@torch.no_grad()
def ideal_nme(codec: Codec, labels: torch.Tensor, truth: torch.Tensor, norm_pair: Sequence[int], batch_size: int = 64) -> torch.Tensor:
    """Per-face NME (percent) of ``decode(encode(labels))`` against ``truth``; both (M, N, 2)."""
    errs = []
    for start in range(0, len(labels), batch_size):  # batches bound memory, not a per-sample loop
        lab, gt = labels[start : start + batch_size], truth[start : start + batch_size]
        errs.append(per_sample_nme(codec.decode(codec.targets_as_outputs(codec.encode(lab))), gt, norm_pair))
    return torch.cat(errs)


def analyse(
    records: Sequence,
    norm_pair: Sequence[int],
    methods: Sequence[Method],
    input_size: int = 256,
    crop_scale: float = 1.25,
    progress: bool = True,
) -> list[dict]:
    """One record per (method, resolution, label variant): mean, median and max ideal NME."""
    truth = torch.from_numpy(input_landmarks(records, input_size, crop_scale))
    variants = {"float": truth, "rounded": torch.from_numpy(input_landmarks(records, input_size, crop_scale, rounded=True))}
    rows = []
    jobs = [(m, v) for m in methods for v in variants]
    iterator = jobs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(jobs, desc="ideal-condition NME", unit="codec")
    for method, variant in iterator:
        nme = ideal_nme(method.codec, variants[variant], truth, norm_pair)
        rows.append(
            dict(
                method=method.method,
                decode=method.decode,
                resolution=method.resolution,
                variant=variant,
                nme=float(nme.mean()),
                nme_median=float(nme.median()),
                nme_max=float(nme.max()),
                faces=len(nme),
            )
        )
    return rows


def pivot(rows: Sequence[dict]) -> list[dict]:
    """Rows keyed by (method, decode, resolution) with one NME column per label variant."""
    table: dict[tuple, dict] = {}
    for r in rows:
        key = (r["method"], r["decode"], r["resolution"])
        table.setdefault(key, dict(method=r["method"], decode=r["decode"], resolution=r["resolution"]))[r["variant"]] = r["nme"]
    return list(table.values())


def print_table(rows: Sequence[dict], title: str = "Ideal-condition NME (%)") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("method", "decode", "resolution"):
        table.add_column(col)
    variants = sorted({r["variant"] for r in rows})
    for v in variants:
        table.add_column(f"NME {v} labels", justify="right")
    for row in pivot(rows):
        table.add_row(row["method"], row["decode"], row["resolution"], *(f"{row[v]:.3f}" if v in row else "-" for v in variants))
    Console().print(table)


def plot_bars(rows: Sequence[dict], path, title: str = "Ideal-condition NME: what quantization alone costs"):
    """Grouped bar chart, one group per method, one bar per label variant."""
    from hih.analysis.plots import _save, plt

    table = pivot(rows)
    variants = sorted({r["variant"] for r in rows})
    x = np.arange(len(table))
    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(table)), 4.5), dpi=120)
    for i, v in enumerate(variants):
        vals = [row.get(v, np.nan) for row in table]
        bars = ax.bar(x + (i - (len(variants) - 1) / 2) * width, vals, width, label=f"{v} labels")
        ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(x, [f"{r['method']}\n{r['decode']}\n{r['resolution']}" for r in table], fontsize=6)
    ax.set_ylabel("NME (%) with a perfect network")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
