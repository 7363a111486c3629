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


#: debug=tiny for hih-train started as its own process (sbatch, srun, torchrun): 24 training faces in
#: batches of 4 (several steps an epoch, so a signal can land mid-epoch), a CSV log to compare.
TINY_SUBPROCESS = ["debug=tiny", "data.datamodule.n_train=24", "data.datamodule.batch_size=4", "logger=csv"]
#: No progress bar in a job's log file (hih-train's own bar callback off, Lightning's too).
QUIET = ["~callbacks.progress_bar", "+trainer.enable_progress_bar=false"]
#: DDP comparisons: a test set (13 faces) that 2 ranks shard unevenly; FR/AUC at a threshold an untrained
#: net straddles.
DDP = ["data.datamodule.n_test=13", "data.datamodule.val_fraction=0.25", "module.metric_threshold=1.0"]
