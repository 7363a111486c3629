"""Every Lightning callback of the suite, one module each (Hydra's are in :mod:`hih.cli.hydra_callbacks`).

- :class:`LastCheckpoint` (:mod:`.checkpoint_writing`): ``last.ckpt`` every N steps and at each epoch end;
- :class:`ConfigInCheckpoint` (:mod:`.checkpoint_writing`): the run's model / data / labels config in every checkpoint
  (loading them back is :mod:`hih.checkpoints`);
- :class:`ResumeLoaderState` (:mod:`.resume`): exact mid-epoch resume of the train loader;
- :class:`RequeueAtStepEnd` (:mod:`.requeue`): SLURM's requeue signal handled at a step's end (exact resume);
- :class:`NonFiniteGuard` (:mod:`.non_finite`): stop on NaN/Inf loss or gradient, never save them;
- :class:`IntervalLog` (:mod:`.interval_log`): a log-file line per interval (ETA, data-time share) and timing metrics;
- :class:`StepTimer` / :class:`StepClock` (:mod:`.timing`): the step and data-time measurement behind it;
- :class:`ModelSummary` (:mod:`.summary`): Lightning's model summary without its (always zero) FLOPs column.
"""

from hih.callbacks.checkpoint_writing import ConfigInCheckpoint, LastCheckpoint
from hih.callbacks.interval_log import IntervalLog
from hih.callbacks.non_finite import NonFiniteError, NonFiniteGuard
from hih.callbacks.requeue import RequeueAtStepEnd
from hih.callbacks.resume import ResumeLoaderState
from hih.callbacks.summary import ModelSummary
from hih.callbacks.timing import StepClock, StepTimer, Timing

__all__ = [
    "ConfigInCheckpoint",
    "IntervalLog",
    "LastCheckpoint",
    "ModelSummary",
    "NonFiniteError",
    "NonFiniteGuard",
    "RequeueAtStepEnd",
    "ResumeLoaderState",
    "StepClock",
    "StepTimer",
    "Timing",
]
