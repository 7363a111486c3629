"""One builder at a time for whatever is built once on disk (generated sets, caches).

Processes that start together on an empty folder (SLURM array jobs, DDP ranks, two sweeps) all find the
set missing. Each takes :func:`build_lock` before building and looks again once it holds it: the first
builds (into a temporary folder renamed into place), the others wait on the lock and then find the set
there and reuse it. The lock is an OS file lock (``filelock``) on a hidden file next to the target: the
OS releases it when its holder dies, so a killed builder never blocks the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["build_lock", "lock_path"]


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def build_lock(target: str | Path) -> Iterator[None]:
    """Hold the exclusive build lock of ``target`` (waits for another holder); creates the parent folder."""
    from filelock import FileLock

    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield
