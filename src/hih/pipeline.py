"""Plain functions behind hih-train and hih-eval: build from a composed config, fit, test, report.

``train(cfg)`` and ``evaluate(cfg)`` are the whole body of the two CLIs, so tests and notebooks run
exactly what the console scripts run: ``train(compose("train", [...], output_dir=tmp))``.
Hydra is imported lazily so that ``import hih`` works without it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from hih.analysis.plots import plot_ced, plot_predictions
from hih.analysis.results import print_results, write_metrics
from hih.checkpoints import CheckpointMismatchError, load_weights
from hih.metrics import per_sample_nme
from hih.methods import head_output


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


def compose(config_name: str = "train", overrides: list[str] | None = None, output_dir: str | Path | None = None) -> DictConfig:
    """Compose a config as the CLI would, outside a Hydra app (tests, notebooks).

    ``paths.output_dir`` defaults to ``${hydra:runtime.output_dir}``, which only a running Hydra app
    can resolve; pass ``output_dir`` (or a ``paths.output_dir=...`` override) to set it.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from hih.cli._hydra import config_dir

    overrides = list(overrides or [])
    if output_dir is not None:
        overrides.append(f"paths.output_dir={Path(output_dir).resolve()}")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def output_dir(cfg: DictConfig) -> Path:
    """The run dir (``paths.output_dir``), created if needed; a clear error outside a Hydra app."""
    try:
        path = Path(cfg.paths.output_dir)
    except InterpolationResolutionError as err:
        raise ValueError(
            "paths.output_dir cannot be resolved here (it defaults to ${hydra:runtime.output_dir}, set only "
            "inside a running Hydra app). Outside the CLI, override it: paths.output_dir=DIR, or "
            "hih.pipeline.compose(..., output_dir=DIR)."
        ) from err
    path.mkdir(parents=True, exist_ok=True)
    return path


def train(cfg: DictConfig) -> dict[str, float]:
    """hih-train: fit (unless ``train=false``), test the best checkpoint, report; returns the test metrics."""
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    out = output_dir(cfg)
    ckpt = resolve_ckpt(cfg.ckpt_path, out)  # a missing checkpoint fails before anything starts
    parts = build(cfg)
    with finishing(parts):
        if cfg.train:
            parts.trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=ckpt, weights_only=True)
        if not cfg.test:
            return {}
        # The best checkpoint of this fit; without fitting (train=false), the given ckpt_path.
        best = getattr(parts.trainer.checkpoint_callback, "best_model_path", "") if cfg.train else ckpt
        parts.trainer.test(parts.module, datamodule=parts.datamodule, ckpt_path=best or None, weights_only=True, verbose=False)
        return report(parts, out, cfg.plot_samples, title=f"{cfg.model.name} on {cfg.data.name}")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """hih-eval: load ``cfg.ckpt_path`` (weights only) into the composed model, test, report."""
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    out = output_dir(cfg)
    ckpt = resolve_ckpt(cfg.ckpt_path, out)
    if ckpt is None:
        raise ValueError("hih-eval needs ckpt_path=PATH (a checkpoint written by hih-train)")
    parts = build(cfg, with_callbacks=False)
    with finishing(parts):
        try:
            load_weights(parts.module, ckpt)
        except CheckpointMismatchError as err:
            raise CheckpointMismatchError(f"{err}{_training_overrides_hint(ckpt)}") from None
        parts.trainer.test(parts.module, datamodule=parts.datamodule, verbose=False)
        return report(parts, out, cfg.plot_samples, title=f"{cfg.model.name} on {cfg.data.name} ({ckpt})")


def _training_overrides_hint(ckpt: str | Path) -> str:
    """hih-train keeps its overrides in RUN/.hydra/overrides.yaml next to RUN/checkpoints/: quote them."""
    overrides = Path(ckpt).resolve().parent.parent / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return ""
    from omegaconf import OmegaConf

    used = [str(o) for o in OmegaConf.load(overrides) or []]
    return f"\nThe training run was composed with ({overrides}): {' '.join(used) or '(no overrides)'}"


@contextmanager
def finishing(parts: Parts):
    """Close the W&B run at the end of a run, failed or not.

    Lightning's WandbLogger never calls ``wandb.finish()``: the summary would only be written at
    interpreter exit, and the next run of a multirun (same process) would silently reuse this one.
    """
    ok = False
    try:
        yield parts
        ok = True
    finally:
        for lg in parts.loggers:
            run = getattr(lg, "_experiment", None) if type(lg).__name__ == "WandbLogger" else None
            if run is not None:
                run.finish(exit_code=0 if ok else 1)


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
        ced = plot_ced(errors, output_dir / "ced.png", threshold=100 * module.metric_threshold, title=title or "CED")
        samples = draw_samples(module, datamodule, output_dir / "predictions.png", plot_samples)
        plots = {"test/ced": Path(ced)} | ({"test/predictions": Path(samples)} if samples else {})
        _log_figures(parts.loggers, plots, metrics)
        # Printed, not logged: the paths must reach the console whatever hydra/job_logging says.
        print(f"metrics: {output_dir / 'metrics.json'}")
        print(f"plots:   {', '.join(str(p) for p in plots.values())}")
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
    pred = module.codec.decode(output.for_codec()).float().cpu()
    nme = per_sample_nme(pred, batch["landmarks"], module.norm_pair).numpy()
    landmark = int(module.norm_pair[0])  # an eye corner: well defined on every layout
    heat = output.heatmaps[-1][:, landmark].float().cpu().numpy()
    dec = output.head[:, landmark].float().cpu().numpy() if output.head_key and head_output(output.head_key).head_is_heatmap else None
    return plot_predictions(batch["image"].numpy(), batch["landmarks"].numpy(), pred.numpy(), path, heat, dec, landmark, nme)


def _log_figures(loggers: list, plots: dict[str, Path], metrics: dict[str, float]) -> None:
    """W&B gets the plots as images and the results as a table; other loggers have the files."""
    from hih.analysis.results import column_order, split_metrics

    for lg in loggers:
        if type(lg).__name__ != "WandbLogger":
            continue
        for key, path in plots.items():
            lg.log_image(key, [str(path)])
        rows = split_metrics(metrics, "test")
        # Same column order as the console table: nme, fr, auc, then the integer-only variants.
        columns = sorted({c for r in rows.values() for c in r}, key=column_order)
        lg.log_table("test/results", columns=["subset", *columns], data=[[s, *(r.get(c) for c in columns)] for s, r in rows.items()])
