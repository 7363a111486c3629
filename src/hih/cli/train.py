"""hih-train: compose data x model x trainer, train, then test the best checkpoint."""

from __future__ import annotations

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


@hih_main("train")
def main(cfg: DictConfig) -> float | None:
    from hih.pipeline import train

    # The test NME is returned for Hydra sweepers (Optuna minimises it).
    return train(cfg).get("test/nme")


if __name__ == "__main__":
    main()
