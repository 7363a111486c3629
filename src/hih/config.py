"""Where the Hydra configs live, and the helpers that turn a composed config into objects.

Shared by the pipeline and the command-line entry points (:mod:`hih.cli`); importing it changes no
global state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def config_dir() -> str:
    """The ``conf/`` folder: ``$HIH_CONFIG_DIR`` if set, else the repository's (editable install, or
    ``PYTHONPATH=src``), else the copy shipped in the wheel as ``hih/conf`` (``pip install .``, see setup.py)."""
    env = os.environ.get("HIH_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [here.parents[2] / "conf", here.parent / "conf"]
    for path in candidates:
        if (path / "train.yaml").is_file():
            return str(path)
    raise FileNotFoundError(
        "hih cannot find its Hydra configs (conf/train.yaml). Looked in: "
        + ", ".join(str(p) for p in candidates)
        + ". Install the package from a clone (make install, or pip install .) or set HIH_CONFIG_DIR."
    )


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(cfg) for cfg in group.values() if isinstance(cfg, DictConfig) and "_target_" in cfg]


def resolved(cfg: DictConfig) -> dict:
    """The fully resolved config as plain containers (for loggers and checkpoints)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts / lists (resolved); other values unchanged. Checkpoints
    that record them then hold only weights_only-safe types."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
