"""hih-train: compose data x model x trainer, train, then test the best checkpoint."""

from __future__ import annotations

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


@hih_main("train")
def main(cfg: DictConfig) -> float | None:
    from hih.pipeline import fit_and_test, optimized_value

    # Hydra sweepers (Optuna) get optimized_metric (val/nme by default), never the test set's NME.
    return optimized_value(cfg, *fit_and_test(cfg))


if __name__ == "__main__":
    main()
