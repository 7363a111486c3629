"""The method registry: one entry per compensation method, the single place that says which head
writes which output, which codec reads it, how it is trained and what the figures draw.

Every consumer asks here instead of switching on head names: :func:`hih.models.build_net` (the
head class), :func:`hih.codecs.build_codec` (the codec), :func:`hih.losses.compute_losses` (the
head's loss term), ``hih.pipeline.draw_samples`` (whether predictions.png shows the head's map) and
:mod:`hih.exporting` (the ONNX outputs). The built-in methods are registered in
:mod:`hih.methods.builtin`; a new method is one module ``hih/methods/<name>.py`` that calls
:func:`register` (imported on first use of its name) plus ``conf/model/<name>.yaml``. See
docs/adding_a_method.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Method", "get_method", "head_output", "method_names", "register"]

#: loss(pred, targets, weight (B, N), weights) -> scalar: the head's term; ``weights`` are the resolved
#: loss weights (:func:`hih.losses.resolve_loss_weights`), for options such as ``decimal_loss``.
LossTerm = Callable[[Any, Mapping[str, Any], Any, Mapping[str, object]], Any]


@dataclass(frozen=True)
class Method:
    """What one method is made of.

    name: the method name (``model.name``, ``build_codec(name)``, ``build_net(head=name)``).
    codec: the codec class and the keyword arguments the method fixes (e.g. ``decoder="wsm"``).
    head: ``head(in_channels, num_landmarks, heatmap_size, decimal_size, **head_kwargs) -> nn.Module``
        reading the fused map, or None for heatmap-only methods.
    output_key: the key of the head's output in ``ModelOutput`` / codec inputs / ONNX outputs;
        must equal the codec's ``head_key``.
    loss: the head's loss term (see :data:`LossTerm`), multiplied by ``loss_weights[weight_key]``.
    head_is_heatmap: the head's output is a (B, N, h, w) map the codec takes an argmax of:
        predictions.png draws it next to the integer heatmap, the ONNX check counts its ties.
    head_metric: how the module scores the head on the dashboards (:class:`hih.metrics.HeadMetric`:
        decimal-cell accuracy for decimal maps, offset error in cells for offset heads), or None.
    """

    name: str
    codec: type
    codec_kwargs: Mapping[str, object] = field(default_factory=dict)
    head: Callable[..., Any] | None = None
    output_key: str | None = None
    loss: LossTerm | None = None
    weight_key: str = "head"
    head_is_heatmap: bool = False
    head_metric: Any | None = None

    def __post_init__(self) -> None:
        if (self.head is None) != (self.output_key is None) or (self.head is None) != (self.loss is None):
            raise ValueError(f"method {self.name!r}: head, output_key and loss are all set or all None")
        codec_key = getattr(self.codec, "head_key", None)
        if codec_key != self.output_key:
            raise ValueError(f"method {self.name!r}: codec {self.codec.__name__} reads head_key {codec_key!r}, the head writes {self.output_key!r}")
        if self.head_metric is not None and self.head is None:
            raise ValueError(f"method {self.name!r}: a head_metric needs a head")


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method``; a second method writing the same output key must train it the same way."""
    key = method.name.lower()
    if key in _REGISTRY and _REGISTRY[key] != method:
        raise ValueError(f"method {key!r} is already registered")
    for other in _REGISTRY.values():
        if method.output_key is not None and other.output_key == method.output_key and (
            other.loss is not method.loss or other.head_is_heatmap != method.head_is_heatmap or other.weight_key != method.weight_key
            or other.head_metric != method.head_metric
        ):
            raise ValueError(
                f"method {key!r} writes output {method.output_key!r} like {other.name!r} but with another loss, figure or head metric; "
                "give its head a new output key"
            )
    _REGISTRY[key] = method
    return method


def _builtins() -> None:
    importlib.import_module("hih.methods.builtin")


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name imports ``hih.methods.<name>`` once (a plug-in)."""
    _builtins()
    key = str(name).lower()
    if key not in _REGISTRY and key.isidentifier():
        try:
            importlib.import_module(f"hih.methods.{key}")
        except ModuleNotFoundError as err:
            if err.name != f"hih.methods.{key}":
                raise
    if key not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; expected one of {method_names()} (or a module hih/methods/{key}.py that registers it)")
    return _REGISTRY[key]


def method_names() -> list[str]:
    _builtins()
    return sorted(_REGISTRY)


def head_output(output_key: str | None) -> Method | None:
    """A method whose head writes ``output_key`` (they all train and draw it alike), None for no head."""
    if output_key is None:
        return None
    _builtins()
    for method in _REGISTRY.values():
        if method.output_key == output_key:
            return method
    raise ValueError(f"no registered method writes head output {output_key!r}; registered outputs: "
                     f"{sorted({m.output_key for m in _REGISTRY.values() if m.output_key})}")
