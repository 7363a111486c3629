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
from hih.data.geometry import apply_affine, crop_box, crop_matrix
from hih.metrics import per_sample_nme


@dataclass(frozen=True)
class Method:
    """One row of the analysis: a codec and how it is named in the tables.

    integer_target / decimal_quantizer are read from the codec ("subpixel" | "cell"; "floor" |
    "round", None for codecs without a decimal map)."""

    method: str
    decode: str
    resolution: str
    codec: Codec = field(compare=False, repr=False)

    @property
    def integer_target(self) -> str:
        return self.codec.integer_target  # type: ignore[attr-defined]

    @property
    def decimal_quantizer(self) -> str | None:
        return getattr(self.codec, "decimal_quantizer", None)

    @property
    def label(self) -> str:
        q = f", {self.decimal_quantizer}" if self.decimal_quantizer else ""
        return f"{self.method} ({self.decode}, {self.resolution}, {self.integer_target}{q})"


def default_methods(
    input_size: int = 256,
    heatmap_size: int = 64,
    decimal_sizes: Sequence[int] = (4, 8, 16),
    sigma: float = 1.5,
    decimal_sigma: float = 1.0,
) -> list[Method]:
    """Every compensation method of the suite, each at its own resolution, with today's label
    settings (integer target "subpixel", decimal quantiser "floor") and then the authors' ones
    (integer target "cell", decimal quantiser "round"; see :func:`authors_methods`)."""
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
    return methods + authors_methods(input_size, heatmap_size, decimal_sizes, sigma, decimal_sigma)


def authors_methods(
    input_size: int = 256,
    heatmap_size: int = 64,
    decimal_sizes: Sequence[int] = (4, 8, 16),
    sigma: float = 1.5,
    decimal_sigma: float = 1.0,
) -> list[Method]:
    """The authors' label placement: integer Gaussian on a whole cell, decimal index rounded and
    clipped, eq. 4 at the index (corner). DARK is included to show the premise: on a cell target
    there is no sub-cell information left for a decoder to recover."""
    hw = dict(input_size=input_size, heatmap_size=heatmap_size, sigma=sigma, integer_target="cell")
    res = f"{heatmap_size}x{heatmap_size}"
    methods = [
        Method("baseline", "argmax centre", res, HeatmapCodec(**hw, decoder="argmax", anchor="centre")),
        Method("dark", "taylor", res, HeatmapCodec(**hw, decoder="dark")),
        Method("wov", "offset values", res, OffsetValueCodec(**hw)),
        Method("wom", "offset map", res, OffsetMapCodec(**hw)),
    ]
    for d in decimal_sizes:
        codec = HIHCodec(**hw, decimal_size=d, decimal_sigma=decimal_sigma, decimal_decode="corner", decimal_quantizer="round")
        methods.append(Method("hih", "decimal corner", f"{d}x{d}", codec))
    return methods


def input_landmarks(records: Iterable, input_size: int, crop_scale: float, rounded: bool = False, crop_from: str = "box") -> np.ndarray:
    """(M, N, 2) landmarks of each record in its cropped input, optionally from integer-rounded raw labels.

    crop_from: "box" (the record's face box) or "landmarks" (the box of its float landmarks, as the
    datasets' ``crop_from``; both label variants share the crop, as they share the image)."""
    out = []
    for rec in records:
        pts = np.round(rec.landmarks) if rounded else rec.landmarks
        out.append(apply_affine(pts, crop_matrix(crop_box(crop_from, rec.bbox, rec.landmarks), input_size, crop_scale)))
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
    crop_from: str = "box",
) -> list[dict]:
    """One record per (method, resolution, label variant): mean, median and max ideal NME."""
    truth = torch.from_numpy(input_landmarks(records, input_size, crop_scale, crop_from=crop_from))
    rounded = input_landmarks(records, input_size, crop_scale, rounded=True, crop_from=crop_from)
    variants = {"float": truth, "rounded": torch.from_numpy(rounded)}
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
                integer_target=method.integer_target,
                decimal_quantizer=method.decimal_quantizer,
                variant=variant,
                nme=float(nme.mean()),
                nme_median=float(nme.median()),
                nme_max=float(nme.max()),
                faces=len(nme),
            )
        )
    return rows


#: Columns that name a row (everything but the label variant and the numbers).
KEYS = ("method", "decode", "resolution", "integer_target", "decimal_quantizer")


def pivot(rows: Sequence[dict]) -> list[dict]:
    """Rows keyed by KEYS with one NME column per label variant."""
    table: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r.get(k) for k in KEYS)
        table.setdefault(key, {k: r.get(k) for k in KEYS})[r["variant"]] = r["nme"]
    return list(table.values())


def row_label(row: dict) -> str:
    """One-line name of a pivoted row, e.g. "hih decimal corner 8x8 [cell, round]"."""
    settings = ", ".join(str(row[k]) for k in ("integer_target", "decimal_quantizer") if row.get(k))
    return f"{row['method']} {row['decode']} {row['resolution']} [{settings}]"


def table8_ratios(rows: Sequence[dict], variant: str = "float", integer_target: str = "cell", decimal_quantizer: str = "round") -> dict[str, float]:
    """HIH's ideal-NME ratios between consecutive decimal sizes ("4x4/8x8": ...), as in the paper's
    Table 8 "Ideal" column (0.420 / 0.182 / 0.091: 2.31 and 2.00)."""
    hih = {
        r["resolution"]: r["nme"]
        for r in rows
        if r["method"] == "hih"
        and r["variant"] == variant
        and r["integer_target"] == integer_target
        and r["decimal_quantizer"] == decimal_quantizer
        and r["decode"] == "decimal corner"
    }
    sizes = sorted(hih, key=lambda res: int(res.split("x")[0]))
    return {f"{a}/{b}": hih[a] / hih[b] for a, b in zip(sizes, sizes[1:])}


def print_table(rows: Sequence[dict], title: str = "Ideal-condition NME (%)") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("method", "decode", "resolution", "integer target", "decimal quantiser"):
        table.add_column(col)
    variants = sorted({r["variant"] for r in rows})
    for v in variants:
        table.add_column(f"NME {v} labels", justify="right")
    for row in pivot(rows):
        names = [str(row[k]) if row.get(k) is not None else "-" for k in KEYS]
        table.add_row(*names, *(f"{row[v]:.3f}" if v in row else "-" for v in variants))
    Console().print(table)


def bar_figure(rows: Sequence[dict], title: str = "Ideal-condition NME: what quantization alone costs"):
    """Horizontal grouped bar chart: one row (and one y tick label) per table row, top to bottom in
    table order, one bar per label variant. Rows are spaced by a fixed height so labels never
    overlap however many rows there are."""
    from matplotlib.figure import Figure

    table = pivot(rows)
    variants = sorted({r["variant"] for r in rows})
    y = np.arange(len(table))
    height = 0.8 / len(variants)
    fig = Figure(figsize=(8, 1.2 + 0.32 * len(table)), dpi=120)
    ax = fig.subplots()
    for i, v in enumerate(variants):
        vals = [row.get(v, np.nan) for row in table]
        bars = ax.barh(y + (i - (len(variants) - 1) / 2) * height, vals, height, label=f"{v} labels")
        ax.bar_label(bars, fmt="%.3f", fontsize=6, padding=2)
    ax.set_yticks(y, [row_label(r) for r in table], fontsize=7)
    ax.invert_yaxis()  # first table row on top
    ax.set_xlabel("NME (%) with a perfect network")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)  # room for the value labels
    fig.tight_layout()
    return fig


def plot_bars(rows: Sequence[dict], path, title: str = "Ideal-condition NME: what quantization alone costs"):
    """Save :func:`bar_figure` to ``path``."""
    from hih.analysis.plots import _save

    return _save(bar_figure(rows, title), path)
