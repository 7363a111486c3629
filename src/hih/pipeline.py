"""Plain functions behind hih-train and hih-eval: build from a composed config, fit, test, report.

``train(cfg)`` and ``evaluate(cfg)`` are the whole body of the two CLIs, so tests and notebooks run
exactly what the console scripts run: ``train(compose("train", [...], output_dir=tmp))``.
Hydra is imported lazily so that ``import hih`` works without it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from hih.analysis.figures import log_figures, write_test_figures
from hih.analysis.results import print_results, write_metrics
from hih.callbacks import ConfigInCheckpoint
from hih.checkpoints import CheckpointMismatchError, config_from_checkpoint, describe, load_weights


@dataclass
class Parts:
    datamodule: object
    module: object
    trainer: object
    loggers: list


def build(cfg: DictConfig, with_callbacks: bool = True) -> Parts:
    """Instantiate datamodule, net, codec, LightningModule, loggers, callbacks and trainer."""
    from hydra.utils import instantiate

    from hih.config import instantiate_group, resolved

    check_accelerator(cfg)
    # _convert_="all": plain containers, so checkpoints load with weights_only=True.
    datamodule = instantiate(cfg.data.datamodule, _convert_="all")
    module = build_module(cfg)
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks")) if with_callbacks else []
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    for lg in loggers:
        lg.log_hyperparams(resolved(cfg))
    return Parts(datamodule, module, trainer, loggers)


def build_module(cfg: DictConfig):
    """The LightningModule of a composed config: ``model.net``, ``model.codec`` and ``module`` instantiated
    for the data's layout, with the model's loss options. What hih-train trains, hih-eval tests and
    hih-predict / hih-export load weights into."""
    from hydra.utils import instantiate

    net = instantiate(cfg.model.net)
    codec = instantiate(cfg.model.codec)
    return instantiate(cfg.module, net=net, codec=codec, layout=cfg.data.layout, loss=cfg.model.loss, _recursive_=False)


def compose(
    config_name: str = "train", overrides: list[str] | None = None, output_dir: str | Path | None = None
) -> DictConfig:
    """Compose a config as the CLI would, outside a Hydra app (tests, notebooks).

    ``paths.output_dir`` defaults to ``${hydra:runtime.output_dir}``, which only a running Hydra app
    can resolve; pass ``output_dir`` (or a ``paths.output_dir=...`` override) to set it.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from hih.config import config_dir

    overrides = list(overrides or [])
    if output_dir is not None:
        overrides.append(f"paths.output_dir={Path(output_dir).resolve()}")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=overrides)
    if "cli_overrides" in cfg:  # ${hydra:overrides.task} in an app; here, the overrides given
        cfg.cli_overrides = overrides
    return cfg


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
    return fit_and_test(cfg)[1]


def fit_and_test(cfg: DictConfig) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`train`'s work; returns (validation metrics of the tested checkpoint, test metrics).

    The first holds ``val/*`` after the fit, with the checkpoint monitor (``val/nme``) replaced by the
    best checkpoint's score, the one that is tested; empty without a fit.
    """
    import lightning as L

    check_experiment_data(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out = output_dir(cfg)
    ckpt = resolve_ckpt(cfg.ckpt_path, out)  # a missing checkpoint fails before anything starts
    if ckpt is not None and not cfg.train:  # test a checkpoint: its own model, as hih-eval builds it
        cfg = config_from_checkpoint(cfg, ckpt, cfg.get("cli_overrides"))
    parts = build(cfg)
    # Every checkpoint carries the model and data config: hih-eval / predict / export need only ckpt_path.
    parts.trainer.callbacks.append(ConfigInCheckpoint(describe(cfg)))
    fitted: dict[str, float] = {}
    with finishing(parts):
        if cfg.train:
            parts.trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=ckpt, weights_only=True)
            fitted = _validation_metrics(parts.trainer)
        if not cfg.test:
            return fitted, {}
        # The best checkpoint of this fit; without fitting (train=false), the given ckpt_path.
        best = getattr(parts.trainer.checkpoint_callback, "best_model_path", "") if cfg.train else ckpt
        parts.trainer.test(
            parts.module, datamodule=parts.datamodule, ckpt_path=best or None, weights_only=True, verbose=False
        )
        return fitted, report(parts, out, cfg.plot_samples, title=f"{cfg.model.name} on {cfg.data.name}")


def _validation_metrics(trainer) -> dict[str, float]:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    best = trainer.checkpoint_callback
    if best is not None and best.monitor in metrics and best.best_model_score is not None:
        metrics[best.monitor] = float(best.best_model_score)
    return metrics


def optimized_value(cfg: DictConfig, fitted: dict[str, float], tested: dict[str, float]) -> float | None:
    """The value hih-train returns to a Hydra sweeper: ``cfg.optimized_metric`` (default ``val/nme``),
    looked up in the validation metrics, then the test metrics; None when the run logged neither
    (``train=false test=false``)."""
    name = cfg.get("optimized_metric")
    metrics = {**tested, **fitted}
    if not name or not metrics:
        return None
    if name not in metrics:
        raise ValueError(f"optimized_metric={name} was not logged by this run; it logged: {', '.join(sorted(metrics))}")
    return metrics[name]


def check_experiment_data(cfg: DictConfig) -> None:
    """Refuse an experiment on a dataset it is not sized for (``experiment_data``, set by the quickstart).

    Without this, ``hih-train data=wflw`` would train WFLW at the CPU quickstart's input size, heatmap
    and epochs, in silence.
    """
    allowed = cfg.get("experiment_data")
    name = cfg.data.name
    if not allowed or name in allowed:
        return
    from hih.config import config_dir

    paper = Path(config_dir()) / "experiment" / "paper" / f"{name}.yaml"
    suggestion = (
        f"For the paper's settings on {name} (conf/experiment/paper/{name}.yaml, on a GPU) run: "
        f"hih-train experiment=paper/{name} model=hih_c (experiment=paper/{name} selects data={name} itself)."
        if paper.is_file()
        else (
            f"There is no paper experiment for {name} (conf/experiment/paper/{name}.yaml): "
            "write one, or start from the base settings with ~experiment."
        )
    )
    raise ValueError(
        f"data={name} was composed with the default experiment, the CPU quickstart ({cfg.data.input_size} px input, "
        f"{cfg.data.heatmap_size}x{cfg.data.heatmap_size} heatmap, model={cfg.model.name}, "
        f"{cfg.trainer.max_epochs} epochs), "
        f"which is sized for {', '.join(allowed)} faces only. "
        f"{suggestion} To train {name} with the base settings of train.yaml instead, drop the quickstart: ~experiment."
    )


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one: one line naming ``trainer=cpu``, instead of
    Lightning's ``MisconfigurationException('No supported gpu backend found!')``."""
    import torch

    accelerator = str(cfg.get("trainer", {}).get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda") or torch.cuda.is_available():
        return
    if accelerator == "gpu" and torch.backends.mps.is_available():
        return
    paper = "paper" in (cfg.get("tags") or [])
    raise RuntimeError(
        (
            "the paper experiments (experiment=paper/*) train on a GPU"
            if paper
            else f"trainer.accelerator={accelerator} asks for a GPU"
        )
        + ", and this machine has none (torch.cuda.is_available() is False); for a CPU try, add trainer=cpu"
        + (" (slow: 256 px input, 150 epochs)" if paper else "")
    )


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """hih-eval: build the checkpoint's model (:func:`hih.checkpoints.config_from_checkpoint`), load
    ``cfg.ckpt_path``'s weights (weights only), test on the composed or the checkpoint's data, report."""
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    out = output_dir(cfg)
    ckpt = resolve_ckpt(cfg.ckpt_path, out)
    if ckpt is None:
        raise ValueError("hih-eval needs ckpt_path=PATH (a checkpoint written by hih-train)")
    # A checkpoint that describes itself gives the model (and the data, unless the command line picks one).
    cfg = config_from_checkpoint(cfg, ckpt, cfg.get("cli_overrides"))
    parts = build(cfg, with_callbacks=False)
    # Test progress as log-file lines (hih.callbacks.IntervalLog) next to the trainer's bar.
    from hih.callbacks import IntervalLog

    parts.trainer.callbacks.append(IntervalLog(log_metrics=False))
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
    """Run the body, then close the loggers' W&B runs, failed or not (:func:`finish_wandb_runs`)."""
    ok = False
    try:
        yield parts
        ok = True
    finally:
        finish_wandb_runs(parts.loggers, ok)


def finish_wandb_runs(loggers: list, ok: bool) -> None:
    """Call ``wandb.finish()`` on every WandbLogger's run (exit code 0 if ``ok``, else 1).

    Works around Lightning's WandbLogger, which never calls ``wandb.finish()``: the summary would
    only be written at interpreter exit, and the next run of a multirun (same process) would
    silently log into this one.
    """
    for lg in loggers:
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
        plots = write_test_figures(module, datamodule, output_dir, plot_samples, title)
        log_figures(parts.loggers, plots, metrics)
        # Printed, not logged: the paths must reach the console whatever hydra/job_logging says.
        print(f"metrics: {output_dir / 'metrics.json'}")
        print(f"plots:   {', '.join(str(p) for p in plots.values())}")
    return metrics
