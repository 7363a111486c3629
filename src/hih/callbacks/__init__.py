"""Every Lightning callback of the suite, one module each (Hydra's are in :mod:`hih.cli.hydra_callbacks`).

- :class:`LastCheckpoint` (:mod:`.checkpoints`): ``last.ckpt`` every N steps and at each epoch end;
- :class:`ConfigInCheckpoint` (:mod:`.checkpoints`): the run's model / data / labels config in every checkpoint;
- :class:`ResumeLoaderState` (:mod:`.resume`): exact mid-epoch resume of the train loader;
- :class:`RequeueAtStepEnd` (:mod:`.requeue`): SLURM's requeue signal handled at a step's end (exact resume);
- :class:`NonFiniteGuard` (:mod:`.non_finite`): stop on NaN/Inf loss or gradient, never save them;
- :class:`IntervalLog` (:mod:`.interval_log`): a log-file line per interval (ETA, data-time share) and timing metrics;
- :class:`StepTimer` / :class:`StepClock` (:mod:`.timing`): the step and data-time measurement behind it.
"""

from hih.callbacks.checkpoints import ConfigInCheckpoint, LastCheckpoint
from hih.callbacks.interval_log import IntervalLog
from hih.callbacks.non_finite import NonFiniteError, NonFiniteGuard
from hih.callbacks.requeue import RequeueAtStepEnd
from hih.callbacks.resume import ResumeLoaderState
from hih.callbacks.timing import StepClock, StepTimer, Timing

__all__ = [
    "ConfigInCheckpoint",
    "IntervalLog",
    "LastCheckpoint",
    "NonFiniteError",
    "NonFiniteGuard",
    "RequeueAtStepEnd",
    "ResumeLoaderState",
    "StepClock",
    "StepTimer",
    "Timing",
]
