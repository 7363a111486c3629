"""Shared settings for end-to-end runs that take seconds on the CPU: the ``debug=tiny_run`` config group
(conf/debug/tiny_run.yaml) and the size of the synthetic set it trains on."""

from pathlib import Path

from omegaconf import OmegaConf

_RUN = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "debug" / "tiny_run.yaml")
#: The faces debug=tiny_run trains and tests on: a pre-made set must have these, or the run regenerates it.
N_TRAIN, N_TEST = int(_RUN.data.datamodule.n_train), int(_RUN.data.datamodule.n_test)


def tiny(data_dir, *extra: str) -> list[str]:
    """Overrides for a run of a few seconds on the CPU (debug=tiny_run) reading the data under ``data_dir``."""
    return ["debug=tiny_run", f"paths.data_dir={data_dir}", *extra]
