"""hih-eval: test a checkpoint on any configured dataset; same outputs as hih-train's test stage."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from hih.cli._hydra import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    from hih.pipeline import evaluate

    return evaluate(cfg).get("test/nme")


if __name__ == "__main__":
    main()
