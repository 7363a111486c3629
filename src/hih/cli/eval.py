"""hih-eval: test a checkpoint on any configured dataset; same outputs as hih-train's test stage."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from hih.cli._hydra import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    import lightning as L

    from hih.checkpoints import load_weights
    from hih.pipeline import build, report

    L.seed_everything(cfg.seed, workers=True)
    parts = build(cfg, with_callbacks=False)
    load_weights(parts.module, cfg.ckpt_path)
    parts.trainer.test(parts.module, datamodule=parts.datamodule, verbose=False)
    metrics = report(parts, cfg.paths.output_dir, cfg.plot_samples, title=f"{cfg.model.name} on {cfg.data.name} ({cfg.ckpt_path})")
    return metrics.get("test/nme")


if __name__ == "__main__":
    main()
