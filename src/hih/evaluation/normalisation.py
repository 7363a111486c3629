"""Which landmarks normalise NME and which subsets a stage reports, from a layout or given explicitly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["NORMS", "resolve_normalisation"]

#: "ocular": the outer eye corners (paper eq. 7); "pupil": the layout's pupil pair.
NORMS = ("ocular", "pupil")


def resolve_normalisation(
    layout: str | Any | None,
    norm_pair: Sequence[int] | None = None,
    subset_names: Sequence[str] | None = None,
    norm: str = "ocular",
) -> tuple[tuple[int, int], tuple[str, ...]]:
    """``(norm_pair, subset_names)``: those given, else the layout's (a name or a
    :class:`hih.data.layouts.Layout`); ``norm`` picks the layout's pair."""
    if norm not in NORMS:
        raise ValueError(f"norm must be 'ocular' or 'pupil', got {norm!r}")
    if isinstance(layout, str):
        from hih.data.datasets import get_layout

        layout = get_layout(layout)
    if norm_pair is None:
        if layout is None:
            raise ValueError("FaceAlignmentModule needs a layout or a norm_pair to normalise NME")
        if norm == "pupil":
            if layout.pupil_pair is None:
                raise ValueError(f"layout {layout.name!r} has no pupil landmarks; use norm='ocular' or pass norm_pair")
            norm_pair = layout.pupil_pair
        else:
            norm_pair = layout.norm_pair
    if subset_names is None:
        subset_names = layout.subset_names if layout is not None else ()
    if len(norm_pair) != 2:
        raise ValueError(f"norm_pair must be two landmark indices, got {norm_pair!r}")
    return (int(norm_pair[0]), int(norm_pair[1])), tuple(str(s) for s in subset_names)
