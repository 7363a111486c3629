"""The paper's first contribution: how much NME quantization alone costs (Tables 1 and 8, "Ideal").

Under ideal conditions the network output equals the encoded target, so
``decode(encode(labels))`` differs from the ground truth only by what the label
representation cannot express. Two label variants are measured: the float labels as
annotated, and labels rounded to integer pixels in the original image before cropping
(the preprocessing quantization the paper describes).

Every registered method (:mod:`hih.methods`) is measured, its codec built by the registry and its
ideal outputs taken from ``Codec.targets_as_outputs`` of its encoded targets, so a new method
appears in ``hih-quantization`` by registering itself (docs/adding_a_method.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hih.codecs.base import Codec
from hih.codecs.offset import OffsetMapCodec, OffsetValueCodec
from hih.data.geometry import apply_affine, crop_box, crop_matrix
from hih.methods import build_codec, codec_parameters, get_method, method_names
from hih.metrics import per_sample_nme

#: The label settings every method is measured with, (integer_target, decimal_quantizer): the suite's
#: own (conf/labels/ours.yaml) and the authors' code's (conf/labels/authors.yaml); a codec that does
#: not take an option is built without it.
LABEL_SETTINGS = {"ours": ("subpixel", "floor"), "authors": ("cell", "round")}

#: The decode options worth a row of their own, per label setting: HIH's decimal anchor (the
#: authors decode eq. 4 at the index, the corner) and the argmax anchor ("corner" is the paper's
#: literal floor; the authors' integer target sits on the cell, read at its centre).
DECODE_OPTIONS = {
    "ours": {"decimal_decode": ("corner", "centre"), "anchor": ("corner", "centre")},
    "authors": {"decimal_decode": ("corner",), "anchor": ("centre",)},
}

#: How the tables name each heatmap decoder (the argmax row adds its anchor).
_DECODER_LABELS = {"argmax": "argmax {anchor}", "wsm": "quarter shift", "dark": "taylor", "soft_argmax": "integral"}


@dataclass(frozen=True)
class Variant:
    """One row of the analysis: a codec of the registered method(s) ``method`` and how the tables name it.

    method: the registered method, or "a/b/..." for methods that share one codec configuration (they
    decode an ideal network alike: HIH_C, HIH_T, HIH_L, ...). integer_target / decimal_quantizer are
    read from the codec (None where the codec has no such option)."""

    method: str
    decode: str
    resolution: str
    codec: Codec = field(compare=False, repr=False)

    @property
    def integer_target(self) -> str | None:
        return getattr(self.codec, "integer_target", None)

    @property
    def decimal_quantizer(self) -> str | None:
        return getattr(self.codec, "decimal_quantizer", None)

    def row(self, variant: str, **numbers: object) -> dict:
        """A results row: the columns that name this codec, the label ``variant`` and ``numbers``."""
        return dict(
            method=self.method,
            decode=self.decode,
            resolution=self.resolution,
            integer_target=self.integer_target,
            decimal_quantizer=self.decimal_quantizer,
            variant=variant,
            **numbers,
        )

    @property
    def label(self) -> str:
        settings = ", ".join(s for s in (self.integer_target, self.decimal_quantizer) if s)
        return f"{self.method} ({self.decode}, {self.resolution}, {settings})"


def decode_label(codec: Codec) -> str:
    """How ``codec`` turns outputs into positions, as the tables name it: its own ``decode_label``
    if it has one, its decimal anchor, its heatmap decoder, WOV's / WOM's offsets, or else its class name."""
    if isinstance(getattr(codec, "decode_label", None), str):
        return codec.decode_label
    if hasattr(codec, "decimal_decode"):
        return f"decimal {codec.decimal_decode}"
    if hasattr(codec, "decoder"):
        return _DECODER_LABELS.get(codec.decoder, codec.decoder).format(anchor=getattr(codec, "anchor", ""))
    return {OffsetValueCodec: "offset values", OffsetMapCodec: "offset map"}.get(type(codec), type(codec).__name__)


def _codec_params(name: str) -> set[str]:
    return set(codec_parameters(name))


def _fixed(name: str) -> Mapping[str, object]:
    """The options method ``name`` fixes plus its codec's defaults (what decides its decode options)."""
    method = get_method(name)
    params = inspect.signature(method.codec.__init__).parameters.items()
    defaults = {k: p.default for k, p in params if p.default is not p.empty}
    return {**defaults, **method.codec_kwargs}


def method_groups(names: Iterable[str] | None = None) -> list[list[str]]:
    """Registered methods (default: all) grouped by codec configuration (class and fixed options):
    methods of one group decode an ideal network alike. Heatmap-resolution groups first, then those
    with a decimal map, each by name."""
    groups: dict[tuple, list[str]] = {}
    for name in sorted(method_names() if names is None else names):
        method = get_method(name)
        groups.setdefault((method.codec, tuple(sorted(method.codec_kwargs.items()))), []).append(method.name)
    return sorted(groups.values(), key=lambda g: ("decimal_size" in _codec_params(g[0]), g[0]))


def _decode_choices(name: str, setting: str) -> list[dict]:
    """The decode options of method ``name`` with a row each: HIH's decimal anchor, the argmax anchor
    (an option the method fixes itself is not swept)."""
    params = _codec_params(name) - set(get_method(name).codec_kwargs)
    fixed, options = _fixed(name), DECODE_OPTIONS[setting]
    if "decimal_decode" in params:
        return [{"decimal_decode": d} for d in options["decimal_decode"]]
    if "anchor" in params and fixed.get("decoder") == "argmax":
        return [{"anchor": a} for a in options["anchor"]]
    return [{}]


def method_variants(
    input_size: int = 256,
    heatmap_size: int = 64,
    decimal_sizes: Sequence[int] = (4, 8, 16),
    sigma: float = 1.5,
    decimal_sigma: float = 1.0,
    names: Iterable[str] | None = None,
    settings: Sequence[str] = ("ours", "authors"),
) -> list[Variant]:
    """Every registered method (or ``names``), each at its own resolution, under each label setting
    (:data:`LABEL_SETTINGS`; the suite's own, then the authors'), each decode option of
    :data:`DECODE_OPTIONS` and, for codecs with a decimal map, each of ``decimal_sizes``.

    Each codec is built by the registry (:func:`hih.methods.build_codec`) with the options it takes:
    a new method reaches the analysis by registering itself."""
    shared = dict(input_size=input_size, heatmap_size=heatmap_size, sigma=sigma, decimal_sigma=decimal_sigma)
    out: list[Variant] = []
    seen: set[tuple] = set()
    for setting in settings:
        integer_target, decimal_quantizer = LABEL_SETTINGS[setting]
        labels = dict(integer_target=integer_target, decimal_quantizer=decimal_quantizer)
        for group in method_groups(names):
            name, params = group[0], _codec_params(group[0])
            sizes = [dict(decimal_size=d) for d in decimal_sizes] if "decimal_size" in params else [{}]
            for size in sizes:
                for decode in _decode_choices(name, setting):
                    kw = {k: v for k, v in {**shared, **labels, **size, **decode}.items() if k in params}
                    key = (tuple(group), tuple(sorted(kw.items())))
                    if key in seen:  # a codec without label options has one row, not one per setting
                        continue
                    seen.add(key)
                    codec = build_codec(name, **kw)
                    side = codec.decimal_size if "decimal_size" in kw else heatmap_size
                    res = f"{side}x{side}"
                    out.append(Variant("/".join(group), decode_label(codec), res, codec))
    return out


def input_landmarks(
    records: Iterable, input_size: int, crop_scale: float, rounded: bool = False, crop_from: str = "box"
) -> np.ndarray:
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
def ideal_nme(
    codec: Codec, labels: torch.Tensor, truth: torch.Tensor, norm_pair: Sequence[int], batch_size: int = 64
) -> torch.Tensor:
    """Per-face NME (percent) of ``decode(encode(labels))`` against ``truth``; both (M, N, 2)."""
    errs = []
    for start in range(0, len(labels), batch_size):  # batches bound memory, not a per-sample loop
        lab, gt = labels[start : start + batch_size], truth[start : start + batch_size]
        errs.append(per_sample_nme(codec.decode(codec.targets_as_outputs(codec.encode(lab))), gt, norm_pair))
    return torch.cat(errs)


def analyse(
    records: Sequence,
    norm_pair: Sequence[int],
    methods: Sequence[Variant],
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
        from hih.progress import track

        iterator = track(jobs, "ideal-condition NME", unit="codecs", every_n=max(1, len(jobs) // 10))
    for method, variant in iterator:
        nme = ideal_nme(method.codec, variants[variant], truth, norm_pair)
        rows.append(
            method.row(
                variant,
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
    """One-line name of a pivoted row, e.g. "hih_c/hih_t decimal corner 8x8 [cell, round]"."""
    settings = ", ".join(str(row[k]) for k in ("integer_target", "decimal_quantizer") if row.get(k))
    return f"{row['method']} {row['decode']} {row['resolution']} [{settings}]"


def table8_ratios(
    rows: Sequence[dict],
    variant: str = "float",
    integer_target: str = "cell",
    decimal_quantizer: str = "round",
    method: str = "hih_c",
) -> dict[str, float]:
    """The ideal-NME ratios of ``method``'s codec (the paper's HIH_C by default) between consecutive
    decimal sizes ("4x4/8x8": ...), decoded at the decimal corner, as in the paper's Table 8 "Ideal"
    column (0.420 / 0.182 / 0.091: 2.31 and 2.00)."""
    hih = {
        r["resolution"]: r["nme"]
        for r in rows
        if method in str(r["method"]).split("/")
        and r["variant"] == variant
        and r["integer_target"] == integer_target
        and r["decimal_quantizer"] == decimal_quantizer
        and r["decode"] == "decimal corner"
    }
    sizes = sorted(hih, key=lambda res: int(res.split("x")[0]))
    return {f"{a}/{b}": hih[a] / hih[b] for a, b in zip(sizes, sizes[1:], strict=False)}


def print_table(rows: Sequence[dict], title: str = "Ideal-condition NME (%)") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("method", overflow="fold")  # "hih_c/hih_cp/..." has no space to wrap at
    for col in ("decode", "resolution", "integer target", "decimal quantiser"):
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
