"""The method registry: one entry per compensation method, the single place that says which head
writes which output, which codec reads it, how it is trained and what the figures draw.

Every consumer asks here instead of switching on head names: :func:`build_net` (the
head class), :func:`build_codec` (the codec; the model configs' ``codec._target_``), :func:`build_loss`
(the head's loss and its options), ``hih.analysis.figures.draw_samples`` (whether predictions.png shows the
head's map), :mod:`hih.exporting` (the ONNX outputs) and the quantization analysis. Entries import
this module, never the package face (which imports every entry up front), so nothing is circular.
A new method is one module ``hih/methods/<name>.py`` that calls :func:`register` plus
``conf/model/<name>.yaml``. See docs/adding_a_method.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from hih.losses import LandmarkLoss, resolve_loss_weights
from hih.models.hourglass import StackedHourglass, TimmBackbone
from hih.models.layers import init_small_normal
from hih.models.net import LandmarkNet

__all__ = [
    "Method",
    "build_codec",
    "codec_parameters",
    "build_loss",
    "build_net",
    "compute_losses",
    "get_method",
    "head_output",
    "method_names",
    "register",
]

#: term(pred, targets, weight (B, N)) -> scalar: the head's loss term.
LossTerm = Callable[[Any, Mapping[str, Any], Any], Any]
#: loss(**options) -> LossTerm: the method's loss, built once from its own options (``model.loss.*``
#: beyond the shared heatmap / head / stack_reduction); its keyword arguments and their defaults are
#: the options it takes (e.g. HIH's ``decimal_loss``, WOM's ``smooth_l1_beta``).
LossFactory = Callable[..., LossTerm]


@dataclass(frozen=True)
class Method:
    """What one method is made of.

    name: the method name (``model.name``, ``build_codec(name)``, ``build_net(head=name)``).
    codec: the codec class and the keyword arguments the method fixes (e.g. ``decoder="wsm"``).
    head: ``head(in_channels, num_landmarks, heatmap_size, decimal_size, **head_kwargs) -> nn.Module``
        reading the fused map, or None for heatmap-only methods.
    output_key: the key of the head's output in ``ModelOutput`` / codec inputs / ONNX outputs;
        must equal the codec's ``head_key``.
    loss: the head's loss (see :data:`LossFactory`); its term is multiplied by ``model.loss.head``.
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
    loss: LossFactory | None = None
    head_is_heatmap: bool = False
    head_metric: Any | None = None

    def __post_init__(self) -> None:
        if (self.head is None) != (self.output_key is None) or (self.head is None) != (self.loss is None):
            raise ValueError(f"method {self.name!r}: head, output_key and loss are all set or all None")
        codec_key = getattr(self.codec, "head_key", None)
        if codec_key != self.output_key:
            raise ValueError(
                f"method {self.name!r}: codec {self.codec.__name__} reads head_key {codec_key!r}, "
                f"the head writes {self.output_key!r}"
            )
        if self.head_metric is not None and self.head is None:
            raise ValueError(f"method {self.name!r}: a head_metric needs a head")


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method``; a second method writing the same output key must train it the same way."""
    key = method.name.lower()
    if key in _REGISTRY and _REGISTRY[key] != method:
        raise ValueError(f"method {key!r} is already registered")
    for other in _REGISTRY.values():
        if (
            method.output_key is not None
            and other.output_key == method.output_key
            and (
                other.loss is not method.loss
                or other.head_is_heatmap != method.head_is_heatmap
                or other.head_metric != method.head_metric
            )
        ):
            raise ValueError(
                f"method {key!r} writes output {method.output_key!r} like {other.name!r} "
                "but with another loss, figure or head metric; "
                "give its head a new output key"
            )
    _REGISTRY[key] = method
    return method


def get_method(name: str) -> Method:
    """The registered method ``name`` (case-insensitive)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown method {name!r}; expected one of {method_names()} "
            f"(or a module hih/methods/{key}.py that registers it)"
        )
    return _REGISTRY[key]


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def head_output(output_key: str | None) -> Method | None:
    """A method whose head writes ``output_key`` (they all train and draw it alike), None for no head."""
    if output_key is None:
        return None
    for method in _REGISTRY.values():
        if method.output_key == output_key:
            return method
    raise ValueError(
        f"no registered method writes head output {output_key!r}; registered outputs: "
        f"{sorted({m.output_key for m in _REGISTRY.values() if m.output_key})}"
    )


def codec_parameters(name: str) -> list[str]:
    """The keyword arguments the codec of method ``name`` takes (e.g. ``decimal_size`` for the HIH methods)."""
    return [p for p in inspect.signature(get_method(name).codec.__init__).parameters if p != "self"]


def build_codec(name: str, **kw: object):
    """The codec of method ``name``, configured with ``kw`` (what the model configs instantiate).

    Raises ValueError for an unknown name, a parameter the codec does not take, or one that
    contradicts what the method fixes (e.g. ``build_codec("wsm", decoder="dark")``).
    """
    method = get_method(name)
    accepted = codec_parameters(name)
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ValueError(
            f"codec of {method.name!r} ({method.codec.__name__}) does not take {unknown}; "
            f"accepted parameters: {accepted}"
        )
    for k, v in method.codec_kwargs.items():
        if k in kw and kw[k] != v:
            raise ValueError(
                f"method {method.name!r} fixes {k}={v!r}, got {k}={kw[k]!r}; choose the method of that variant instead"
            )
    return method.codec(**{**kw, **method.codec_kwargs})


def build_loss(head_key: str | None, options: Mapping[str, object] | None = None) -> LandmarkLoss:
    """The training loss of a net whose head writes ``head_key`` (None: no head).

    options: ``model.loss``: the shared ``heatmap`` / ``head`` weights and ``stack_reduction``
    (:func:`hih.losses.resolve_loss_weights`), the rest the head's own options, which its method's
    loss declares (an option it does not take raises, naming the method and the ones it takes).
    """
    shared, own = resolve_loss_weights(options)
    method = head_output(head_key)
    if method is None:
        if own:
            raise ValueError(
                f"loss options {sorted(own)} belong to a compensation head, and this network has none; "
                "shared options: heatmap, head, stack_reduction"
            )
        return LandmarkLoss(None, None, **shared)
    params = inspect.signature(method.loss).parameters
    takes = {k: p.default for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(own) - set(takes))
    if unknown:
        raise ValueError(
            f"unknown loss option(s) {unknown} for method {method.name!r}; it takes {sorted(takes) or 'none'} "
            "besides heatmap, head, stack_reduction"
        )
    term = method.loss(**own)
    return LandmarkLoss(term, head_key, options={**takes, **own}, **shared)


def compute_losses(output, targets: Mapping[str, Any], options: Mapping[str, object] | None = None) -> dict[str, Any]:
    """``build_loss(output.head_key, options)(output, targets)``: the named terms and ``"loss"``, for
    one-off use (the LightningModule builds its loss once)."""
    return build_loss(output.head_key, options)(output, targets)


def build_net(
    head: str,
    num_landmarks: int,
    stacks: int = 1,
    channels: int = 256,
    decimal_size: int = 8,
    input_size: int = 256,
    backbone: str = "hourglass",
    hourglass_depth: int = 4,
    align_corners: bool = False,
    **head_kwargs,
) -> LandmarkNet:
    """Build backbone + compensation head.

    head: "none" (baseline / WSM / DARK / soft-argmax) or the name of a registered method with a
    head (:mod:`hih.methods`: "hih_c", "hih_t", "hih_l" (local decimal head, not in the paper),
    "wov", "wom", ...); the registry gives the head class and its output key.
    backbone: "hourglass" (``stacks`` stacked hourglasses of ``hourglass_depth`` and ``channels``
    features) or "timm:<model name>" (that model's features of stride >= 4 aggregated at stride 4,
    randomly initialised since there is no internet, 1 stack; see :class:`TimmBackbone`).
    align_corners: the hourglass's bilinear upsampling convention (True: the authors' released code).
    head_kwargs: the head's widths (HIH_C ``width``; HIH_L ``width``, ``window``, ``reduced``;
    HIH_T ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``, ``regression_width``;
    WOV / WOM ``width``, ``num_convs``).
    """
    head = head.lower()
    try:
        method = None if head == "none" else get_method(head)
    except ValueError as err:
        raise ValueError(f"unknown head {head!r}: {err}") from None
    if method is not None and method.head is None:
        raise ValueError(f"method {head!r} has no head; use head='none'")
    if method is None and head_kwargs:
        raise ValueError(f"head 'none' takes no head arguments, got {sorted(head_kwargs)}")
    if input_size % 4:
        raise ValueError(f"input_size must be a multiple of 4 (the heatmap is input_size / 4), got {input_size}")
    heatmap_size = input_size // 4
    fuse = method is not None
    if backbone == "hourglass":
        body: nn.Module = StackedHourglass(
            num_landmarks, stacks, channels, hourglass_depth, fuse_last=fuse, align_corners=align_corners
        )
        init_small_normal(body)
    elif backbone.startswith("timm:"):
        if stacks != 1:
            raise ValueError(f"timm backbones have a single stack, got stacks={stacks}")
        if align_corners:
            raise ValueError("align_corners applies to the hourglass's upsampling; timm backbones keep their own")
        body = TimmBackbone(backbone.removeprefix("timm:"), num_landmarks, channels, fuse_last=fuse)
        init_small_normal(body.output)  # timm keeps its own initialisation for the backbone proper
        init_small_normal(body.projections)
    else:
        raise ValueError(f"unknown backbone {backbone!r}; expected 'hourglass' or 'timm:<model name>'")

    module = None if method is None else method.head(channels, num_landmarks, heatmap_size, decimal_size, **head_kwargs)
    return LandmarkNet(body, module, None if method is None else method.output_key, input_size)
