"""hih-train: compose data x model x trainer, train, then test the best checkpoint."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from hih.cli._hydra import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    import lightning as L

    from hih.pipeline import build, report, resolve_ckpt

    L.seed_everything(cfg.seed, workers=True)
    output_dir = cfg.paths.output_dir
    parts = build(cfg)
    if cfg.train:
        parts.trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=resolve_ckpt(cfg.ckpt_path, output_dir), weights_only=True)
    if not cfg.test:
        return None
    best = getattr(parts.trainer.checkpoint_callback, "best_model_path", "") if cfg.train else ""
    parts.trainer.test(parts.module, datamodule=parts.datamodule, ckpt_path=best or None, weights_only=True, verbose=False)
    metrics = report(parts, output_dir, cfg.plot_samples, title=f"{cfg.model.name} on {cfg.data.name}")
    # Returned for Hydra sweepers (Optuna minimises it).
    return metrics.get("test/nme")


if __name__ == "__main__":
    main()
