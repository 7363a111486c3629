"""Plain functions behind hih-train and hih-eval: build from a composed config, fit, test, report.

Hydra is imported lazily so that ``import hih`` works without it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from hih.analysis.plots import plot_ced, plot_predictions
from hih.analysis.results import print_results, write_metrics

log = logging.getLogger(__name__)


@dataclass
class Parts:
    datamodule: object
    module: object
    trainer: object
    loggers: list


def build(cfg: DictConfig, with_callbacks: bool = True) -> Parts:
    """Instantiate datamodule, net, codec, LightningModule, loggers, callbacks and trainer."""
    from hydra.utils import instantiate

    from hih.cli._hydra import instantiate_group, resolved

    # _convert_="all": plain containers, so checkpoints load with weights_only=True.
    datamodule = instantiate(cfg.data.datamodule, _convert_="all")
    net = instantiate(cfg.model.net)
    codec = instantiate(cfg.model.codec)
    module = instantiate(cfg.module, net=net, codec=codec, layout=cfg.data.layout, loss=cfg.model.loss, _recursive_=False)
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks")) if with_callbacks else []
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    for lg in loggers:
        lg.log_hyperparams(resolved(cfg))
    return Parts(datamodule, module, trainer, loggers)


def resolve_ckpt(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """``"last"`` -> this run dir's checkpoints/last.ckpt; a missing file is a clear error."""
    if ckpt_path in (None, "", "null"):
        return None
    path = Path(output_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return str(path)


def report(parts: Parts, output_dir: str | Path, plot_samples: int = 8, title: str | None = None) -> dict[str, float]:
    """After trainer.test: metrics.json, the console table, ced.png and predictions.png."""
    output_dir = Path(output_dir)
    trainer, module, datamodule = parts.trainer, parts.module, parts.datamodule
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    if trainer.is_global_zero:
        write_metrics(output_dir / "metrics.json", metrics)
        print_results(metrics, "test", title=title)
        errors = module.test_errors_by_subset()
        plot_ced(errors, output_dir / "ced.png", threshold=100 * module.metric_threshold, title=title or "CED")
        draw_samples(module, datamodule, output_dir / "predictions.png", plot_samples)
        _log_figures(parts.loggers, output_dir, metrics)
        log.info("metrics: %s", output_dir / "metrics.json")
        log.info("plots: %s, %s", output_dir / "ced.png", output_dir / "predictions.png")
    return metrics


@torch.no_grad()
def draw_samples(module, datamodule, path: Path, count: int) -> Path | None:
    """Predictions on the first test faces, with the integer (and decimal) heatmap of one landmark."""
    if count <= 0:
        return None
    batch = next(iter(datamodule.test_dataloader()))
    batch = {k: v[:count] for k, v in batch.items()}
    module.eval()
    device = next(module.parameters()).device
    output = module.net(batch["image"].to(device))
    pred = module.codec.decode(output.for_codec()).cpu().numpy()
    target = batch["landmarks"].numpy()
    landmark = int(module.norm_pair[0])  # an eye corner: well defined on every layout
    heat = output.heatmaps[-1][:, landmark].float().cpu().numpy()
    dec = output.head[:, landmark].float().cpu().numpy() if output.head_key == "decimal" else None
    norm = np.linalg.norm(target[:, module.norm_pair[0]] - target[:, module.norm_pair[1]], axis=-1)
    nme = 100 * np.linalg.norm(pred - target, axis=-1).mean(-1) / np.maximum(norm, 1e-6)
    return plot_predictions(batch["image"].numpy(), target, pred, path, heat, dec, landmark, nme)


def _log_figures(loggers: list, output_dir: Path, metrics: dict[str, float]) -> None:
    """W&B gets the plots as images and the results as a table; other loggers have the files."""
    from hih.analysis.results import split_metrics

    for lg in loggers:
        if type(lg).__name__ != "WandbLogger":
            continue
        lg.log_image("test/ced", [str(output_dir / "ced.png")])
        lg.log_image("test/predictions", [str(output_dir / "predictions.png")])
        rows = split_metrics(metrics, "test")
        columns = sorted({c for r in rows.values() for c in r})
        lg.log_table("test/results", columns=["subset", *columns], data=[[s, *(r.get(c) for c in columns)] for s, r in rows.items()])
