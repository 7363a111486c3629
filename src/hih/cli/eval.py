"""hih-eval: test a checkpoint on any configured dataset; same outputs as hih-train's test stage."""

from __future__ import annotations

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


@hih_main("eval")
def main(cfg: DictConfig) -> float | None:
    from hih.pipeline import evaluate

    return evaluate(cfg).get("test/nme")


if __name__ == "__main__":
    main()
