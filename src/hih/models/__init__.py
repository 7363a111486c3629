"""Stacked hourglass backbone, compensation heads and the assembled net.

Heads: HIH_C, HIH_T, WOV, WOM (the paper's) and HIH_L (beyond the paper).
"""

from hih.models.complexity import count
from hih.models.heads import HIHCHead, HIHLHead, HIHTHead, WOMHead, WOVHead
from hih.models.hourglass import Hourglass, StackedHourglass, TimmBackbone
from hih.models.net import LandmarkNet
from hih.models.output import ModelOutput

__all__ = [
    "HIHCHead",
    "HIHLHead",
    "HIHTHead",
    "Hourglass",
    "LandmarkNet",
    "ModelOutput",
    "StackedHourglass",
    "TimmBackbone",
    "WOMHead",
    "WOVHead",
    "count",
]
