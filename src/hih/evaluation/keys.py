"""Metric keys: the one place that writes and reads the flat names of docs/contracts.md.

A key is ``<stage>/<name>[/<subset>]`` and a name is ``<metric><variant>[@<method>]``:

- ``stage``: ``train``, ``val`` or ``test``;
- ``metric``: ``nme``, ``fr_10``, ``auc_10`` (the threshold suffix of :func:`hih.metrics.threshold_suffix`),
  a head metric or its gain (``decimal_acc``, ``decimal_gain``, ``offset_err``, ``offset_gain``), a loss term;
- ``variant``: ``""`` (the method's own decode) or the integer heatmap alone, read at the argmax cell's
  centre (``_integer``) or at the argmax index, the cell's corner (``_integer_corner``, the paper's Table 7);
- ``method``: the registry method that re-decoded the network's output (``nme@dark``), None for the own decode;
- ``subset``: an evaluation subset of the layout (``pose``), None for the full set.

``test/nme_integer_corner/pose`` is ``MetricKey("test", "nme", "_integer_corner", None, "pose")``.
Every writer (:class:`hih.evaluation.StageEvaluator`) and reader (the report, the console and W&B
tables, the learning curves) goes through :func:`metric_key` / :func:`parse_key`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "FULL",
    "INTEGER_VARIANTS",
    "MetricKey",
    "VARIANTS",
    "in_stage",
    "metric_key",
    "metric_name",
    "parse_key",
    "parse_name",
]

SEP = "/"
REDECODE = "@"
#: The integer heatmap alone, each metric in two conventions, the paper's first: the argmax index
#: (the cell's corner, Table 7) and the cell's centre (half the quantization cost).
INTEGER_VARIANTS = ("_integer_corner", "_integer")
#: Every variant: the own decode, then the integer heatmap at the centre and at the corner.
VARIANTS = ("", "_integer", "_integer_corner")
#: The subset name tables use for the whole test set (keys have no subset part).
FULL = "full"


@dataclass(frozen=True)
class MetricKey:
    """A parsed key; ``str(key)`` writes it back."""

    stage: str
    metric: str
    variant: str = ""
    method: str | None = None
    subset: str | None = None

    @property
    def name(self) -> str:
        """The key less stage and subset: ``nme_integer``, ``nme@dark`` (a table's column or family)."""
        return metric_name(self.metric, self.variant, self.method)

    def with_(self, **changes) -> MetricKey:
        return replace(self, **changes)

    def __str__(self) -> str:
        return metric_key(self.stage, self.metric, self.subset, variant=self.variant, method=self.method)


def metric_name(metric: str, variant: str = "", method: str | None = None) -> str:
    """``("nme", "_integer")`` -> ``nme_integer``; ``("nme", "", "dark")`` -> ``nme@dark``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return metric + variant + (REDECODE + method if method else "")


def metric_key(
    stage: str, metric: str, subset: str | None = None, *, variant: str = "", method: str | None = None
) -> str:
    """``<stage>/<metric><variant>[@<method>][/<subset>]``; ``subset`` None or :data:`FULL` is the full set.

    ``metric`` may already be a whole name (``nme_integer``, as a table's family); then leave
    ``variant`` and ``method`` out.
    """
    key = stage + SEP + metric_name(metric, variant, method)
    return key if subset is None or subset == FULL else key + SEP + subset


def parse_name(name: str) -> tuple[str, str, str | None]:
    """``fr_10_integer_corner@x`` -> ``("fr_10", "_integer_corner", "x")``;
    ``decimal_acc`` -> ``("decimal_acc", "", None)``."""
    base, sep, method = name.partition(REDECODE)
    for variant in INTEGER_VARIANTS:  # the longer suffix first
        if base.endswith(variant) and len(base) > len(variant):
            return base[: -len(variant)], variant, (method if sep else None)
    return base, "", (method if sep else None)


def parse_key(key: str) -> MetricKey | None:
    """The parts of a key, None for a name without a stage (``lr-AdamW``, ``epoch``)."""
    parts = key.split(SEP)
    if len(parts) not in (2, 3) or not all(parts):
        return None
    metric, variant, method = parse_name(parts[1])
    return MetricKey(parts[0], metric, variant, method, parts[2] if len(parts) == 3 else None)


def in_stage(key: str, stage: str) -> bool:
    """Whether ``key`` is one of ``stage``'s (``test/...``)."""
    return key.startswith(stage + SEP)
