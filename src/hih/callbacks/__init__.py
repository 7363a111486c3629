"""Every Lightning callback of the suite, one module each (Hydra's are in :mod:`hih.cli.hydra_callbacks`).

- :class:`LastCheckpoint` (:mod:`.checkpoints`): ``last.ckpt`` every N steps and at each epoch end;
- :class:`ConfigInCheckpoint` (:mod:`.checkpoints`): the run's model / data / labels config in every checkpoint;
- :class:`ResumeLoaderState` (:mod:`.resume`): exact mid-epoch resume of the train loader;
- :class:`NonFiniteGuard` (:mod:`.non_finite`): stop on NaN/Inf loss or gradient, never save them.
"""

from hih.callbacks.checkpoints import ConfigInCheckpoint, LastCheckpoint
from hih.callbacks.non_finite import NonFiniteError, NonFiniteGuard
from hih.callbacks.resume import ResumeLoaderState

__all__ = ["ConfigInCheckpoint", "LastCheckpoint", "NonFiniteError", "NonFiniteGuard", "ResumeLoaderState"]
