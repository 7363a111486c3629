"""hih-train: compose data x model x trainer, train, then test the best checkpoint."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from hih.cli._hydra import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hih.pipeline import train

    # The test NME is returned for Hydra sweepers (Optuna minimises it).
    return train(cfg).get("test/nme")


if __name__ == "__main__":
    main()
