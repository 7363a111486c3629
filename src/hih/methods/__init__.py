"""The method registry (:mod:`hih.methods._registry`) with every method of this package registered.

Importing the package imports each of its modules, so that listings, reports, the quantization
analysis and the tests see every method whatever was imported before; a new module
``hih/methods/<name>.py`` is picked up without further edits (docs/adding_a_method.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from hih.methods._registry import (
    LossFactory,
    LossTerm,
    Method,
    build_codec,
    build_loss,
    build_net,
    codec_parameters,
    compute_losses,
    get_method,
    head_output,
    method_names,
    register,
)

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = [
    "LossFactory",
    "LossTerm",
    "Method",
    "build_codec",
    "build_loss",
    "build_net",
    "codec_parameters",
    "compute_losses",
    "get_method",
    "head_output",
    "method_names",
    "register",
]
