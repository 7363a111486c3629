"""One stage's evaluation as a component: the LightningModule predicts, a :class:`StageEvaluator` scores.

As mmengine's ``Evaluator``: the loop feeds each batch's network output and labels to
:meth:`StageEvaluator.update`, and at the end of the epoch :meth:`StageEvaluator.compute` returns
a flat dict of results under the keys of :mod:`hih.evaluation.keys` (docs/contracts.md). The
evaluator is an ``nn.Module``, so its torchmetrics states move with the LightningModule's device and
are gathered across DDP ranks when computed; none of them is persistent, so checkpoints hold the
network's weights only.

What each stage scores (:data:`STAGES`), for a codec with a compensation head and a method whose
registry entry names a head metric (:class:`hih.metrics.HeadMetric`):

- ``train``: the head metric (``train/decimal_acc``, epoch mean);
- ``val``: ``val/nme``, ``val/fr_10``, ``val/auc_10``; the integer heatmap alone at the cell centre
  ``val/nme_integer``; the head metric and its gain ``val/<gain>`` = val/nme_integer - val/nme;
- ``test``: the same with every subset (``test/nme/pose``), the integer heatmap alone at the cell
  centre (``test/<metric>_integer``) and at the argmax index, the cell's corner
  (``test/<metric>_integer_corner``, the paper's Table 7 convention), all three metrics each, the
  gains per subset, and for a network without a head every other decoder of its output
  (:func:`hih.evaluation.redecoders`) as ``test/<metric>@<method>`` (``test/nme@dark/pose``); the
  per-face results (:class:`hih.metrics.PerFaceResults`) for the CED and sample plots.

A codec without a head has no integer-only decode (its own decode is its integer heatmap) and no
head metric; the head metric is left out too when the batches carry no targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from hih.codecs.base import Codec
from hih.evaluation.keys import metric_key
from hih.evaluation.redecode import redecoders
from hih.methods import head_output
from hih.metrics import FaceAlignmentMetrics, HeadMetricMeter, PerFaceResults
from hih.models.output import ModelOutput

__all__ = ["STAGES", "StageEvaluator", "StagePlan"]

#: The integer-only decode's anchor -> the key variant it is logged under.
ANCHOR_VARIANTS = {"centre": "_integer", "corner": "_integer_corner"}


@dataclass(frozen=True)
class StagePlan:
    """What a stage scores.

    decode: the method's own decode (NME, FR, AUC).
    anchors: the integer heatmap alone, read at these anchors of the argmax cell (with a head only).
    integer_metrics: which metrics of the integer-only decode are reported (None: all three).
    redecode: every other decoder of the same output (:func:`hih.evaluation.redecoders`).
    subsets: per subset of the layout too.
    per_face: keep per-face results (:class:`hih.metrics.PerFaceResults`).
    """

    decode: bool = True
    anchors: tuple[str, ...] = ()
    integer_metrics: tuple[str, ...] | None = None
    redecode: bool = False
    subsets: bool = False
    per_face: bool = False


STAGES = {
    "train": StagePlan(decode=False),
    "val": StagePlan(anchors=("centre",), integer_metrics=("nme",)),
    "test": StagePlan(anchors=("centre", "corner"), redecode=True, subsets=True, per_face=True),
}


class StageEvaluator(nn.Module):
    """The metrics, head meter and re-decoders of one stage (``"train"``, ``"val"`` or ``"test"``).

    codec: the codec the network's output is decoded with; norm_pair: the landmarks whose distance
    normalises NME; subset_names: the layout's evaluation subsets (test only); threshold: the FR / AUC
    cut-off as a fraction of that distance (0.10 -> fr_10, auc_10).
    """

    def __init__(
        self,
        stage: str,
        codec: Codec,
        norm_pair: Sequence[int],
        subset_names: Sequence[str] = (),
        threshold: float = 0.10,
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}")
        plan = self.plan = STAGES[stage]
        self.stage = stage
        self.codec = codec
        self.subset_names = tuple(subset_names) if plan.subsets else ()

        def metrics() -> FaceAlignmentMetrics:
            return FaceAlignmentMetrics(norm_pair, self.subset_names, threshold)

        self.decoded = metrics() if plan.decode else None
        has_head = codec.head_key is not None
        self.integer = nn.ModuleDict({anchor: metrics() for anchor in plan.anchors if has_head})
        #: How the registry scores this codec's head (None: no head, or a method without a head metric).
        method = head_output(codec.head_key)
        self.head_metric = method.head_metric if method is not None else None
        self.head_meter = HeadMetricMeter(self.subset_names) if self.head_metric is not None else None
        #: Every other decoder of this network's output, scored alongside the own decode.
        self.redecoders = redecoders(codec) if plan.redecode else {}
        self.redecoded = nn.ModuleDict({name: metrics() for name in self.redecoders})
        #: Per-face results of the last run (test): :meth:`PerFaceResults.reset` before, ``collect`` after.
        self.per_face = PerFaceResults(norm_pair, self.subset_names) if plan.per_face else None

    def update(
        self,
        output: ModelOutput,
        landmarks: Tensor | None = None,
        targets: Mapping[str, Tensor] | None = None,
        subsets: Tensor | None = None,
        index: Tensor | None = None,
    ) -> Tensor | None:
        """Score one batch: ``landmarks`` (B, N, 2) ground truth, ``targets`` the codec's (head metric;
        None leaves it out), ``subsets`` (B, K) bool (read only where this stage has subsets), ``index``
        the faces' dataset indices. Returns the own decode (B, N, 2), None where this stage decodes nothing."""
        if not self.subset_names:
            subsets = None
        elif subsets is None:
            raise KeyError(
                f"{self.stage} batches must carry 'subsets' (B, {len(self.subset_names)}) "
                f"for subsets {self.subset_names}"
            )
        pred = None
        if self.decoded is not None:
            pred = self.codec.decode(output.for_codec()).float()
            self.decoded.update(pred, landmarks, subsets)
        for anchor, metrics in self.integer.items():
            metrics.update(self.codec.decode_integer(output.heatmaps[-1], anchor=anchor), landmarks, subsets)
        if self.redecoders:
            outputs = output.for_codec()
            for name, codec in self.redecoders.items():
                self.redecoded[name].update(codec.decode(outputs).float(), landmarks, subsets)
        if self.head_meter is not None and targets is not None:
            self.score_head(output, targets, subsets)
        if self.per_face is not None:
            self.per_face.update(pred, landmarks, subsets, index)
        return pred

    def score_head(self, output: ModelOutput, targets: Mapping[str, Tensor], subsets: Tensor | None = None) -> None:
        """Add the batch's per-landmark head scores (the registry's head metric) to the head meter."""
        self.head_meter.update(*self.head_metric.score(output.head, targets, targets["cell"]), subsets)

    def _keyed(self, values: Mapping[str, Tensor], variant: str = "", method: str | None = None) -> dict:
        """FaceAlignmentMetrics' ``{"nme": .., "nme/pose": ..}`` under this stage's keys."""
        out = {}
        for name, value in values.items():
            metric, _, subset = name.partition("/")
            out[metric_key(self.stage, metric, subset or None, variant=variant, method=method)] = value
        return out

    def compute(self) -> dict[str, Tensor]:
        """The stage's results (every rank's samples under DDP): key -> 0-d tensor."""
        values: dict[str, Tensor] = {}
        if self.decoded is not None:
            values.update(self._keyed(self.decoded.compute()))
        for anchor, metrics in self.integer.items():
            computed = metrics.compute()
            if self.plan.integer_metrics is not None:
                computed = {k: v for k, v in computed.items() if k.partition("/")[0] in self.plan.integer_metrics}
            values.update(self._keyed(computed, ANCHOR_VARIANTS[anchor]))
        if self.head_metric is not None and "centre" in self.integer and self.decoded is not None:
            # What the head adds beyond centring (0 for a head that learned nothing), per subset too.
            for subset in (None, *self.subset_names):
                integer = values[metric_key(self.stage, "nme", subset, variant="_integer")]
                values[metric_key(self.stage, self.head_metric.gain, subset)] = (
                    integer - values[metric_key(self.stage, "nme", subset)]
                )
        for method, metrics in self.redecoded.items():
            values.update(self._keyed(metrics.compute(), method=method))
        if self.head_meter is not None and self.head_meter.update_called:  # not without targets
            for subset, value in self.head_meter.compute().items():
                values[metric_key(self.stage, self.head_metric.name, subset[1:] or None)] = value.float()
        return values

    def reset(self) -> None:
        """Empty the metrics and the head meter for the next epoch (the per-face results stay readable)."""
        for metric in (self.decoded, *self.integer.values(), *self.redecoded.values(), self.head_meter):
            if metric is not None:
                metric.reset()
