"""Evaluation as a component: the keys of the logged metrics, the re-decoders of a network's output,
and :class:`StageEvaluator`, which scores one stage for the LightningModule (:mod:`hih.module`)."""

from __future__ import annotations

from hih.evaluation.evaluator import STAGES, StageEvaluator, StagePlan
from hih.evaluation.keys import MetricKey, metric_key, parse_key
from hih.evaluation.redecode import redecoders

__all__ = ["STAGES", "MetricKey", "StageEvaluator", "StagePlan", "metric_key", "parse_key", "redecoders"]
